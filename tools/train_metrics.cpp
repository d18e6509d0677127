#include "train_metrics.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

namespace decent::train {
namespace {

nlohmann::ordered_json optional_number(const std::optional<double>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

std::optional<double> read_optional(const nlohmann::json& j, const char* key) {
  const auto& value = j.at(key);
  if (value.is_null()) return std::nullopt;
  return value.get<double>();
}

}  // namespace

nlohmann::ordered_json to_json(const EpochMetrics& m) {
  nlohmann::ordered_json j;
  j["epoch"] = m.epoch;
  j["train_loss"] = m.train_loss;
  j["test_accuracy_avg"] = optional_number(m.test_accuracy_avg);
  j["test_accuracy_local"] = optional_number(m.test_accuracy_local);
  j["test_accuracy_rank0"] = optional_number(m.test_accuracy_rank0);
  j["consensus_distance"] = m.consensus_distance;
  j["samples_per_sec"] = m.samples_per_sec;
  j["bytes_sent_per_rank"] = m.bytes_sent_per_rank;
  j["bytes_sent_per_rank_per_step"] =
      m.steps > 0 ? m.bytes_sent_per_rank / static_cast<double>(m.steps) : 0.0;
  j["wall_time_s"] = m.wall_time_s;
  j["lr"] = m.lr;
  j["steps"] = m.steps;
  return j;
}

EpochMetrics epoch_metrics_from_json(const nlohmann::json& j) {
  try {
    EpochMetrics m;
    m.epoch = j.at("epoch").get<int>();
    m.train_loss = j.at("train_loss").get<double>();
    m.test_accuracy_avg = read_optional(j, "test_accuracy_avg");
    m.test_accuracy_local = read_optional(j, "test_accuracy_local");
    m.test_accuracy_rank0 = read_optional(j, "test_accuracy_rank0");
    m.consensus_distance = j.at("consensus_distance").get<double>();
    m.samples_per_sec = j.at("samples_per_sec").get<double>();
    m.bytes_sent_per_rank = j.at("bytes_sent_per_rank").get<double>();
    m.wall_time_s = j.at("wall_time_s").get<double>();
    m.lr = j.at("lr").get<double>();
    m.steps = j.at("steps").get<std::int64_t>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("malformed epoch metrics {}: {}", j.dump(), e.what()));
  }
}

nlohmann::ordered_json metrics_document(const RunDescription& run,
                                        const std::vector<EpochMetrics>& epochs) {
  nlohmann::ordered_json doc;
  doc["algorithm"] = run.algorithm;
  doc["topology"] = run.topology;
  doc["world_size"] = run.world_size;
  doc["config"] = run.config;
  doc["epochs"] = nlohmann::ordered_json::array();
  for (const auto& m : epochs) doc["epochs"].push_back(to_json(m));
  return doc;
}

void write_file_atomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      throw std::runtime_error(fmt::format("cannot create directory {}: {}",
                                           target.parent_path().string(), ec.message()));
    }
  }
  // The pid keeps concurrent writers (one per process) from sharing a temporary file.
  const std::string temporary = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw std::runtime_error(fmt::format("cannot write {}: {}", temporary, std::strerror(errno)));
    }
    out << text;
    out.flush();
    if (!out) {
      throw std::runtime_error(fmt::format("cannot write {}: {}", temporary, std::strerror(errno)));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temporary.c_str());
    throw std::runtime_error(fmt::format("cannot rename {} to {}: {}", temporary, path, reason));
  }
}

std::string format_epoch_line(const EpochMetrics& m, int total_epochs) {
  const int width = static_cast<int>(fmt::format("{}", total_epochs).size());
  auto percent = [](const std::optional<double>& v) {
    return v ? fmt::format("{:6.2f}%", 100.0 * *v) : std::string("      -");
  };
  return fmt::format(
      "epoch {:>{}}/{}  loss {:.4f}  acc avg {} local {} r0 {}  consensus {:.3e}  {:>7.0f} "
      "samples/s  {:8.2f} MiB/rank  {:7.1f} s",
      m.epoch, width, total_epochs, m.train_loss, percent(m.test_accuracy_avg),
      percent(m.test_accuracy_local), percent(m.test_accuracy_rank0), m.consensus_distance,
      m.samples_per_sec, m.bytes_sent_per_rank / (1024.0 * 1024.0), m.wall_time_s);
}

}  // namespace decent::train
