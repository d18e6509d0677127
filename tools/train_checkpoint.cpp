#include "train_checkpoint.h"

#include "train_metrics.h"
#include "train_options.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <regex>
#include <stdexcept>

#include <unistd.h>

namespace decent::train {
namespace fs = std::filesystem;
namespace {

constexpr std::int64_t kFormatVersion = 1;

std::string rank_directory(const std::string& dir, int rank) {
  return (fs::path(dir) / fmt::format("rank-{:05d}", rank)).string();
}

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, std::int64_t v) {
  archive.write(key, c10::IValue(v));
}
void write_double(torch::serialize::OutputArchive& archive, const std::string& key, double v) {
  archive.write(key, c10::IValue(v));
}
void write_string(torch::serialize::OutputArchive& archive, const std::string& key,
                  const std::string& v) {
  archive.write(key, c10::IValue(v));
}

c10::IValue read_value(torch::serialize::InputArchive& archive, const std::string& key,
                       const std::string& path) {
  c10::IValue value;
  if (!archive.try_read(key, value)) {
    throw std::runtime_error(fmt::format("checkpoint {}: entry '{}' is missing", path, key));
  }
  return value;
}

}  // namespace

std::string rank_checkpoint_path(const std::string& dir, int rank, std::int64_t epoch) {
  return (fs::path(rank_directory(dir, rank)) / fmt::format("epoch-{:06d}.pt", epoch)).string();
}

std::string manifest_path(const std::string& dir) {
  return (fs::path(dir) / "manifest.json").string();
}

std::vector<std::int64_t> checkpoint_epochs(const std::string& dir, int rank) {
  std::vector<std::int64_t> epochs;
  std::error_code ec;
  const fs::path rank_dir(rank_directory(dir, rank));
  if (!fs::is_directory(rank_dir, ec)) return epochs;
  static const std::regex pattern(R"(epoch-(\d{6,})\.pt)");
  for (const auto& entry : fs::directory_iterator(rank_dir, ec)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file(ec) && std::regex_match(name, match, pattern)) {
      epochs.push_back(std::stoll(match[1].str()));
    }
  }
  std::sort(epochs.begin(), epochs.end());
  return epochs;
}

std::int64_t newest_checkpoint_epoch(const std::string& dir, int rank) {
  const auto epochs = checkpoint_epochs(dir, rank);
  return epochs.empty() ? -1 : epochs.back();
}

void save_rank_checkpoint(const std::string& dir, const RankCheckpoint& c,
                          const torch::nn::Module& model,
                          const torch::optim::Optimizer& optimizer) {
  const std::string path = rank_checkpoint_path(dir, c.rank, c.epoch);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) {
    throw std::runtime_error(fmt::format("rank {}: cannot create checkpoint directory {}: {}",
                                         c.rank, fs::path(path).parent_path().string(),
                                         ec.message()));
  }
  torch::serialize::OutputArchive archive(std::make_shared<torch::jit::CompilationUnit>());
  write_int(archive, "format_version", kFormatVersion);
  write_int(archive, "rank", c.rank);
  write_int(archive, "world_size", c.world_size);
  write_int(archive, "epoch", c.epoch);
  write_int(archive, "global_step", c.global_step);
  write_int(archive, "stream_pass", c.stream_pass);
  write_int(archive, "stream_cursor", c.stream_cursor);
  write_int(archive, "bytes_sent", c.bytes_sent);
  write_double(archive, "wall_time_s", c.wall_time_s);
  write_string(archive, "fingerprint", c.fingerprint_json);
  write_string(archive, "metrics", c.metrics_json);
  torch::serialize::OutputArchive model_archive(archive.compilation_unit());
  model.save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optimizer_archive(archive.compilation_unit());
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);

  const std::string temporary = fmt::format("{}.tmp.{}", path, ::getpid());
  try {
    archive.save_to(temporary);
  } catch (const c10::Error& e) {
    std::remove(temporary.c_str());
    throw std::runtime_error(fmt::format("rank {}: cannot write checkpoint {}: {}", c.rank,
                                         temporary, e.what_without_backtrace()));
  }
  fs::rename(temporary, path, ec);
  if (ec) {
    std::remove(temporary.c_str());
    throw std::runtime_error(
        fmt::format("rank {}: cannot rename {} to {}: {}", c.rank, temporary, path, ec.message()));
  }
}

RankCheckpoint load_rank_checkpoint(const std::string& dir, int rank, std::int64_t epoch,
                                    const std::string& expected_fingerprint_json,
                                    torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  const std::string path = rank_checkpoint_path(dir, rank, epoch);
  if (!fs::is_regular_file(path)) {
    throw std::runtime_error(
        fmt::format("rank {}: checkpoint of epoch {} is missing: {}", rank, epoch, path));
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    const std::int64_t version = read_value(archive, "format_version", path).toInt();
    if (version != kFormatVersion) {
      throw std::runtime_error(fmt::format("checkpoint {}: format version {}, expected {}", path,
                                           version, kFormatVersion));
    }
    RankCheckpoint c;
    c.rank = static_cast<int>(read_value(archive, "rank", path).toInt());
    c.world_size = static_cast<int>(read_value(archive, "world_size", path).toInt());
    c.epoch = read_value(archive, "epoch", path).toInt();
    if (c.rank != rank || c.epoch != epoch) {
      throw std::runtime_error(
          fmt::format("checkpoint {} holds rank {} epoch {}, expected rank {} "
                      "epoch {}",
                      path, c.rank, c.epoch, rank, epoch));
    }
    c.global_step = read_value(archive, "global_step", path).toInt();
    c.stream_pass = read_value(archive, "stream_pass", path).toInt();
    c.stream_cursor = read_value(archive, "stream_cursor", path).toInt();
    c.bytes_sent = read_value(archive, "bytes_sent", path).toInt();
    c.wall_time_s = read_value(archive, "wall_time_s", path).toDouble();
    c.fingerprint_json = read_value(archive, "fingerprint", path).toStringRef();
    c.metrics_json = read_value(archive, "metrics", path).toStringRef();
    const std::string differences =
        describe_mismatch(nlohmann::ordered_json::parse(c.fingerprint_json),
                          nlohmann::ordered_json::parse(expected_fingerprint_json));
    if (!differences.empty()) {
      throw UsageError(fmt::format(
          "--resume: the checkpoint {} was written with other options ({}); resume with the "
          "same options or start afresh without --resume",
          path, differences));
    }
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model.load(model_archive);
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    return c;
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("rank {}: cannot read checkpoint {}: {}", rank, path,
                                         e.what_without_backtrace()));
  }
}

void remove_rank_checkpoints_before(const std::string& dir, int rank, std::int64_t keep_from) {
  for (std::int64_t epoch : checkpoint_epochs(dir, rank)) {
    if (epoch < keep_from) {
      std::error_code ec;
      fs::remove(rank_checkpoint_path(dir, rank, epoch), ec);
    }
  }
}

void remove_rank_checkpoints(const std::string& dir, int rank) {
  remove_rank_checkpoints_before(dir, rank, std::numeric_limits<std::int64_t>::max());
  if (rank == 0) {
    std::error_code ec;
    fs::remove(manifest_path(dir), ec);
  }
}

void write_manifest(const std::string& dir, std::int64_t epoch, int world_size,
                    const std::string& fingerprint_json) {
  nlohmann::ordered_json manifest;
  manifest["epoch"] = epoch;
  manifest["world_size"] = world_size;
  manifest["files"] = nlohmann::ordered_json::array();
  for (int r = 0; r < world_size; ++r) {
    manifest["files"].push_back(
        fs::relative(rank_checkpoint_path(dir, r, epoch), fs::path(dir)).string());
  }
  manifest["options"] = nlohmann::ordered_json::parse(fingerprint_json);
  write_file_atomically(manifest_path(dir), manifest.dump(2) + "\n");
}

}  // namespace decent::train
