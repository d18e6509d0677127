// decent-bench-fusion: neighbour averaging of a model made of many small tensors, fused (the
// context packs them into few messages) against unfused (one message per tensor) and against
// one flat buffer of the same total size; also the flat buffer on other topologies (ring,
// static exponential) for the comparisons of docs/benchmarks-cluster.md. Run under decentrun:
//
//   decentrun -np 4 build/bin/decent-bench-fusion --total 16M --tensors 64
//
// Every operation runs once per round, in the order given (A B C A B C ...), so that machine
// noise hits all of them alike; before each call every rank refills its buffers (not timed) and
// passes a barrier; the time of a call is the maximum over ranks. Every operation's result is
// checked against the flat buffer on the same topology and step before timing.
#include "decent/comm/context.h"
#include "decent/topology/dynamic.h"
#include "decent/topology/generators.h"
#include "decent/topology/schedule.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace topo = decent::topology;

struct Config {
  std::string total = "16M";
  int tensors = 64;
  std::string small = "1K";
  int reps = 10;
  int warmup = 2;
  std::vector<std::string> ops = {"flat", "fused", "unfused"};
  std::string csv;
};

std::size_t parse_bytes(const std::string& text) {
  std::size_t pos = 0;
  const double value = std::stod(text, &pos);
  const std::string unit = text.substr(pos);
  double scale = 1;
  if (unit == "K" || unit == "KiB") {
    scale = 1024.0;
  } else if (unit == "M" || unit == "MiB") {
    scale = 1024.0 * 1024.0;
  } else if (unit == "G" || unit == "GiB") {
    scale = 1024.0 * 1024.0 * 1024.0;
  } else if (!unit.empty() && unit != "B") {
    throw std::invalid_argument("bad size '" + text + "' (use e.g. 4K, 16M)");
  }
  return static_cast<std::size_t>(value * scale);
}

// Sizes in floats of a model-like set of tensors with `total_floats` in all: every other tensor is
// a small one (a bias or a normalisation scale of `small_floats`), the others share the rest
// equally (weights).
std::vector<std::size_t> tensor_sizes(std::size_t total_floats, int tensors,
                                      std::size_t small_floats) {
  const int small_count = tensors / 2;
  const int large_count = tensors - small_count;
  if (small_floats * small_count >= total_floats) {
    throw std::invalid_argument("the small tensors alone exceed --total");
  }
  const std::size_t large_total = total_floats - small_floats * small_count;
  std::vector<std::size_t> sizes;
  std::size_t placed = 0;
  int large_index = 0;
  for (int i = 0; i < tensors; ++i) {
    if (i % 2 == 1) {
      sizes.push_back(small_floats);
    } else {
      const std::size_t share = large_index + 1 == large_count
                                    ? large_total - placed
                                    : large_total / static_cast<std::size_t>(large_count);
      sizes.push_back(share);
      placed += share;
      ++large_index;
    }
  }
  return sizes;
}

struct Op {
  std::string name;
  std::string description;
  std::function<void(std::int64_t step)> run;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double index = p * static_cast<double>(v.size() - 1);
  const auto low = static_cast<std::size_t>(std::floor(index));
  const auto high = static_cast<std::size_t>(std::ceil(index));
  return v[low] + (v[high] - v[low]) * (index - static_cast<double>(low));
}

int run(const Config& config) {
  decent::ContextOptions options = decent::ContextOptions::from_env();
  auto fused = decent::Context::init(options);
  if (fused->backend() != "mpi") {
    throw std::runtime_error("run under decentrun or mpirun (the MPI backend is required)");
  }
  options.fusion_threshold_bytes = 0;
  if (!options.timeline_prefix.empty()) options.timeline_prefix += "unfused-";
  auto unfused = decent::Context::init(options);
  const int rank = fused->rank();
  const int n = fused->size();

  const std::size_t total_floats = parse_bytes(config.total) / sizeof(float);
  const std::vector<std::size_t> sizes =
      tensor_sizes(total_floats, config.tensors, parse_bytes(config.small) / sizeof(float));

  auto one_peer = std::make_shared<topo::OnePeerExponential>(n);
  auto ring = std::make_shared<topo::StaticSchedule>(topo::ring(n));
  auto exponential = std::make_shared<topo::StaticSchedule>(topo::exponential(n));
  fused->set_topology(one_peer);
  unfused->set_topology(one_peer);

  std::vector<float> data(total_floats);
  std::vector<decent::Buffer> pieces;
  std::size_t offset = 0;
  for (std::size_t size : sizes) {
    pieces.emplace_back(data.data() + offset, size);
    offset += size;
  }
  auto fill = [&] {
    for (std::size_t i = 0; i < data.size(); ++i) {
      data[i] = static_cast<float>(rank + 1) * (1.0f + static_cast<float>(i % 97) / 97.0f);
    }
  };
  auto at_step = [](std::int64_t step) {
    decent::NeighborAllreduceOptions o;
    o.step = step;
    return o;
  };

  std::vector<Op> all = {
      {"flat", "one buffer of the total size, one-peer exponential",
       [&](std::int64_t step) {
         decent::Buffer whole(data.data(), data.size());
         fused->neighbor_allreduce(whole, whole, at_step(step));
       }},
      {"fused",
       fmt::format("{} tensors in one call, fused (threshold {} bytes), one-peer", sizes.size(),
                   decent::ContextOptions::from_env().fusion_threshold_bytes),
       [&](std::int64_t step) { fused->neighbor_allreduce(pieces, at_step(step)); }},
      {"unfused",
       fmt::format("{} tensors in one call, fusion off (one message each), one-peer", sizes.size()),
       [&](std::int64_t step) { unfused->neighbor_allreduce(pieces, at_step(step)); }},
      {"ring", "one buffer of the total size, ring (2 neighbours, uniform weights)",
       [&](std::int64_t) {
         fused->set_topology(ring);
         decent::Buffer whole(data.data(), data.size());
         fused->neighbor_allreduce(whole, whole);
         fused->set_topology(one_peer);
       }},
      {"exponential", "one buffer of the total size, static exponential (uniform weights)",
       [&](std::int64_t) {
         fused->set_topology(exponential);
         decent::Buffer whole(data.data(), data.size());
         fused->neighbor_allreduce(whole, whole);
         fused->set_topology(one_peer);
       }},
  };
  std::vector<Op> ops;
  for (const std::string& name : config.ops) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Op& op) { return op.name == name; });
    if (it == all.end()) throw std::invalid_argument("unknown op '" + name + "'");
    ops.push_back(*it);
  }

  // Check: fused and unfused give the flat buffer's result on the same step.
  fill();
  all[0].run(0);
  const std::vector<float> reference = data;
  for (const Op& op : ops) {
    if (op.name != "fused" && op.name != "unfused") continue;
    fill();
    op.run(0);
    double worst = 0;
    for (std::size_t i = 0; i < data.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(data[i]) - reference[i]) /
                                  std::max(1e-12, std::abs(static_cast<double>(reference[i]))));
    }
    fused->allreduce(decent::Buffer(&worst, 1), decent::ReduceOp::kMax);
    if (worst > 1e-6) {
      throw std::runtime_error(
          fmt::format("{} differs from the flat buffer by {:.2e} (relative)", op.name, worst));
    }
  }

  std::vector<std::vector<double>> times(ops.size());
  for (int round = 0; round < config.warmup + config.reps; ++round) {
    for (std::size_t k = 0; k < ops.size(); ++k) {
      fill();
      fused->barrier();
      const auto start = std::chrono::steady_clock::now();
      ops[k].run(round);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      fused->allreduce(decent::Buffer(&ms, 1), decent::ReduceOp::kMax);
      if (round >= config.warmup) times[k].push_back(ms);
    }
  }

  if (rank == 0) {
    const double total_mb = static_cast<double>(total_floats * sizeof(float)) / 1e6;
    std::cout << fmt::format(
        "decent-bench-fusion: {} ranks, {} tensors ({} small of {}), {:.2f} MB in all, {} rounds "
        "+ {} warm-up\n",
        n, sizes.size(), config.tensors / 2, config.small, total_mb, config.reps, config.warmup);
    const double flat = times[0].empty() ? 0 : median(times[0]);
    std::cout << fmt::format("{:<12} {:>10} {:>10} {:>10} {:>9}  {}\n", "op", "median ms", "p10 ms",
                             "p90 ms", "vs first", "what");
    for (std::size_t k = 0; k < ops.size(); ++k) {
      const double m = median(times[k]);
      std::cout << fmt::format("{:<12} {:>10.2f} {:>10.2f} {:>10.2f} {:>8.2f}x  {}\n", ops[k].name,
                               m, percentile(times[k], 0.1), percentile(times[k], 0.9),
                               flat > 0 ? m / flat : 0.0, ops[k].description);
    }
    if (!config.csv.empty()) {
      std::ofstream csv(config.csv);
      csv << "ranks,tensors,total_bytes,op,median_ms,p10_ms,p90_ms\n";
      for (std::size_t k = 0; k < ops.size(); ++k) {
        csv << fmt::format("{},{},{},{},{:.4f},{:.4f},{:.4f}\n", n, sizes.size(),
                           total_floats * sizeof(float), ops[k].name, median(times[k]),
                           percentile(times[k], 0.1), percentile(times[k], 0.9));
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{"Neighbour averaging of many small tensors: fused, unfused and one flat buffer",
               "decent-bench-fusion"};
  app.add_option("--total", config.total, "total size of the tensors (e.g. 16M)")
      ->capture_default_str();
  app.add_option("--tensors", config.tensors, "number of tensors (half of them small)")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  app.add_option("--small", config.small, "size of each small tensor")->capture_default_str();
  app.add_option("--reps", config.reps, "timed rounds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", config.warmup, "untimed rounds first")->capture_default_str();
  app.add_option("--ops", config.ops,
                 "flat, fused, unfused, ring, exponential (flat is first "
                 "and the reference of the ratios)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--csv", config.csv, "write the results to FILE (rank 0)");
  CLI11_PARSE(app, argc, argv);
  if (config.ops.empty() || config.ops.front() != "flat") {
    config.ops.erase(std::remove(config.ops.begin(), config.ops.end(), "flat"), config.ops.end());
    config.ops.insert(config.ops.begin(), "flat");
  }
  try {
    return run(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decent-bench-fusion: %s\n", e.what());
    return 1;
  }
}
