// decent-bench-comm: our communication primitives side by side with the raw MPI patterns they
// build on, in one MPI job. For every message size it runs rounds of all selected operations
// (A B C, B C A, C A B, ...) so that machine noise and the order hit them alike, and reports per
// operation the median and p10/p90 time per call (each call's time is the maximum over ranks) and
// the ratio ours/raw for the matching pairs.
//
//   mpiexec --allow-run-as-root --oversubscribe --bind-to none -n 8 build/bin/decent-bench-comm
//   mpiexec ... -n 4 build/bin/decent-bench-comm --sizes 4M,16M --reps 50 --csv out.csv
//   mpiexec ... -n 4 build/bin/decent-bench-comm --ops mpi-one-peer,one-peer,one-peer-nocheck
#include "decent/comm/context.h"
#include "decent/topology/dynamic.h"
#include "decent/topology/generators.h"
#include "decent/topology/schedule.h"

#include <fmt/format.h>
#include <mpi.h>
#include <sched.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using BenchClock = std::chrono::steady_clock;
namespace topo = decent::topology;

// ------------------------------------------------------------------ configuration

struct Config {
  std::vector<std::string> sizes = {"4K", "64K", "1M", "4M", "16M", "64M"};
  int reps = 30;
  int warmup = 3;
  std::string large_from = "16M";  // sizes at or above this use the "large" counts
  int large_reps = 10;
  int large_warmup = 1;
  std::vector<std::string> ops;  // empty: the default set
  int ranks_per_machine = 2;
  bool verify = true;
  std::string csv;
};

// Parses "4K", "64KiB", "1M", "4MB", "1048576": binary multiples of bytes.
std::size_t parse_bytes(const std::string& text) {
  std::size_t pos = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &pos);
  } catch (const std::exception&) {
    throw std::invalid_argument(fmt::format("size '{}' does not start with a number", text));
  }
  std::string unit = text.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::size_t multiplier = 1;
  if (unit.empty() || unit == "B") {
    multiplier = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    multiplier = std::size_t{1} << 10;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    multiplier = std::size_t{1} << 20;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    multiplier = std::size_t{1} << 30;
  } else {
    throw std::invalid_argument(
        fmt::format("size '{}': unknown unit '{}' (use K, M or G)", text, unit));
  }
  const std::size_t bytes = static_cast<std::size_t>(value) * multiplier;
  if (bytes == 0 || bytes % sizeof(float) != 0)
    throw std::invalid_argument(
        fmt::format("size '{}' must be a positive multiple of 4 bytes (float32)", text));
  return bytes;
}

std::string format_bytes(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
    return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (std::size_t{1} << 10) && bytes % (std::size_t{1} << 10) == 0)
    return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw std::runtime_error(fmt::format("rank {}: {} failed: {}", rank, what,
                                       std::string(text, static_cast<std::size_t>(length))));
}

// ------------------------------------------------------------------ data

// Rank r starts with x_i = (r + 1) * pattern(i). Every operation is linear with weights that
// do not depend on i, so its result is E * pattern(i) where E is a per-rank scalar.
constexpr std::size_t kPatternPeriod = 1021;
float pattern(std::size_t i) {
  return 1.0f + 0.01f * static_cast<float>(i % kPatternPeriod);
}

void fill(float* x, std::size_t count, int rank) {
  const float scale = static_cast<float>(rank + 1);
  const std::size_t head = std::min(count, kPatternPeriod);
  for (std::size_t i = 0; i < head; ++i) x[i] = scale * pattern(i);
  // The pattern repeats, so the rest is copied from the first period (memory speed, no division).
  for (std::size_t begin = head; begin < count; begin += kPatternPeriod)
    std::memcpy(x + begin, x, std::min(kPatternPeriod, count - begin) * sizeof(float));
}

// x <- self_weight * x + sum_k weights[k] * sources[k], in cache-sized blocks: the one pass
// over memory a hand-written exchange would do.
void weighted_average(float* x, std::size_t count, float self_weight,
                      const std::vector<const float*>& sources, const std::vector<float>& weights) {
  constexpr std::size_t kBlock = 4096;
  for (std::size_t begin = 0; begin < count; begin += kBlock) {
    const std::size_t end = std::min(count, begin + kBlock);
    for (std::size_t i = begin; i < end; ++i) x[i] *= self_weight;
    for (std::size_t k = 0; k < sources.size(); ++k) {
      const float* s = sources[k];
      const float w = weights[k];
      for (std::size_t i = begin; i < end; ++i) x[i] += w * s[i];
    }
  }
}

// Completes MPI requests the way decent's transport used to wait (docs/benchmarks.md, history):
// MPI_Test, 16 sched_yield()s, then sleeps growing from 20 us to 1 ms. Used by the diagnostic
// operations that measured the cost of that polling; without `sleep_allowed` it only yields
// (the same loop with the sleeps taken out).
void wait_with_backoff(std::vector<MPI_Request>& requests, bool sleep_allowed = true) {
  int spins = 0;
  auto sleep = std::chrono::microseconds(20);
  while (true) {
    int done = 0;
    check_mpi(
        MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE),
        "MPI_Testall");
    if (done) return;
    if (spins < 16 || !sleep_allowed) {
      ++spins;
      sched_yield();
    } else {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }
}

// ------------------------------------------------------------------ operations

struct Operation {
  std::string name;
  std::string description;
  std::string baseline;  // the raw MPI operation this one is compared with ("" for none)
  // Runs one call in place on x (count floats); `step` selects the dynamic topology's round.
  std::function<void(float* x, std::size_t count, std::int64_t step)> run;
  // E such that this rank's result is E * pattern(i) when rank r started from (r+1)*pattern(i).
  std::function<double(std::int64_t step)> expected_scale;
};

// Everything the operations need: communicators, contexts, topologies, receive buffers.
class Harness {
 public:
  // Without `with_contexts` the operations can be listed but not run (used by --list-ops,
  // which must work without a launcher).
  Harness(const Config& config, MPI_Comm world, bool with_contexts = true) {
    check_mpi(MPI_Comm_dup(world, &raw_comm_), "MPI_Comm_dup (raw operations)");
    MPI_Comm_rank(raw_comm_, &rank_);
    MPI_Comm_size(raw_comm_, &size_);
    one_peer_ = std::make_shared<topo::OnePeerExponential>(size_);
    exponential_ = std::make_shared<topo::StaticSchedule>(topo::exponential(size_));
    ring_graph_ = std::make_shared<topo::StaticSchedule>(topo::ring(size_));
    ranks_per_machine_ = config.ranks_per_machine;
    machines_ = (size_ + ranks_per_machine_ - 1) / ranks_per_machine_;
    machine_graph_ = std::make_shared<topo::StaticSchedule>(topo::exponential(machines_));

    if (!with_contexts) return;
    decent::ContextOptions options = decent::ContextOptions::from_env();
    options.ranks_per_machine = config.ranks_per_machine;
    options.check_consistency = true;
    checked_ = make_context(options);
    options.check_consistency = false;
    // Each context writes its own timeline (DECENT_TIMELINE=prefix): prefix<rank>.json for the
    // checked one, prefix + "nocheck-<rank>.json" for this one.
    if (!options.timeline_prefix.empty()) options.timeline_prefix += "nocheck-";
    unchecked_ = make_context(options);
    // Each allreduce algorithm on every size, to choose the thresholds.
    options.check_consistency = true;
    options.timeline_prefix = decent::ContextOptions::from_env().timeline_prefix;
    options.ring_allreduce_threshold_bytes = 0;
    ring_ = make_context(options);
    options.ring_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
    options.small_allreduce_threshold_bytes = 0;
    options.rabenseifner_allreduce_threshold_bytes = 0;
    rabenseifner_ = make_context(options);
    options.rabenseifner_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
    transport_allreduce_ = make_context(options);
    options.small_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
    options.halving_allreduce_threshold_bytes = std::numeric_limits<std::size_t>::max();
    recursive_doubling_ = make_context(options);
    options.halving_allreduce_threshold_bytes = 0;
    halving_ = make_context(options);
  }

  ~Harness() {
    checked_.reset();
    unchecked_.reset();
    ring_.reset();
    rabenseifner_.reset();
    transport_allreduce_.reset();
    recursive_doubling_.reset();
    halving_.reset();
    if (raw_comm_ != MPI_COMM_NULL) MPI_Comm_free(&raw_comm_);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int machines() const { return machines_; }

  std::vector<Operation> operations() {
    std::vector<Operation> ops;
    ops.push_back({"mpi-allreduce", "MPI_Allreduce, sum, in place", "",
                   [this](float* x, std::size_t count, std::int64_t) { raw_allreduce(x, count); },
                   [this](std::int64_t) { return size_ * (size_ + 1) / 2.0; }});
    ops.push_back(
        {"mpi-one-peer", "MPI_Sendrecv to i+2^t, from i-2^t, then average", "",
         [this](float* x, std::size_t count, std::int64_t step) { raw_one_peer(x, count, step); },
         [this](std::int64_t step) { return one_peer_scale(step); }});
    ops.push_back(
        {"mpi-exponential", "MPI_Isend/Irecv with every exponential-graph neighbour, then average",
         "",
         [this](float* x, std::size_t count, std::int64_t) { raw_static(exponential_, x, count); },
         [this](std::int64_t) { return static_scale(exponential_); }});
    ops.push_back(
        {"mpi-ring", "MPI_Isend/Irecv with both ring neighbours, then average (weights 1/3)", "",
         [this](float* x, std::size_t count, std::int64_t) { raw_static(ring_graph_, x, count); },
         [this](std::int64_t) { return static_scale(ring_graph_); }});
    // Diagnostics (not run by default): the raw patterns as our implementation issues them.
    ops.push_back(
        {"mpi-iallreduce", "MPI_Iallreduce + MPI_Wait, sum, in place", "mpi-allreduce",
         [this](float* x, std::size_t count, std::int64_t) { raw_iallreduce(x, count, false); },
         [this](std::int64_t) { return size_ * (size_ + 1) / 2.0; }});
    ops.push_back(
        {"mpi-iallreduce-poll",
         "MPI_Iallreduce completed by MPI_Test with decent's former sleep backoff", "mpi-allreduce",
         [this](float* x, std::size_t count, std::int64_t) { raw_iallreduce(x, count, true); },
         [this](std::int64_t) { return size_ * (size_ + 1) / 2.0; }});
    ops.push_back(
        {"mpi-iallreduce-copy",
         "copy to a second buffer, MPI_Iallreduce from it into x (not in place) + "
         "MPI_Wait",
         "mpi-allreduce",
         [this](float* x, std::size_t count, std::int64_t) { raw_iallreduce_from_copy(x, count); },
         [this](std::int64_t) { return size_ * (size_ + 1) / 2.0; }});
    ops.push_back({"mpi-one-peer-poll",
                   "MPI_Irecv/Isend with the one peer, MPI_Test with decent's former sleep backoff",
                   "mpi-one-peer",
                   [this](float* x, std::size_t count, std::int64_t step) {
                     raw_one_peer_polled(x, count, step, true);
                   },
                   [this](std::int64_t step) { return one_peer_scale(step); }});
    ops.push_back({"mpi-one-peer-yield",
                   "MPI_Irecv/Isend with the one peer, MPI_Test + sched_yield, no sleeps",
                   "mpi-one-peer",
                   [this](float* x, std::size_t count, std::int64_t step) {
                     raw_one_peer_polled(x, count, step, false);
                   },
                   [this](std::int64_t step) { return one_peer_scale(step); }});
    ops.push_back({"allreduce-ring", "ctx.allreduce, average, always the ring algorithm",
                   "mpi-allreduce",
                   [this](float* x, std::size_t count, std::int64_t) {
                     ring_->allreduce(decent::Buffer(x, count));
                   },
                   [this](std::int64_t) { return (size_ + 1) / 2.0; }});
    ops.push_back({"allreduce-rabenseifner",
                   "ctx.allreduce, average, always Rabenseifner's algorithm (recursive halving + "
                   "recursive doubling)",
                   "mpi-allreduce",
                   [this](float* x, std::size_t count, std::int64_t) {
                     rabenseifner_->allreduce(decent::Buffer(x, count));
                   },
                   [this](std::int64_t) { return (size_ + 1) / 2.0; }});
    ops.push_back({"allreduce-transport",
                   "ctx.allreduce, average, always the transport's allreduce (MPI_Iallreduce)",
                   "mpi-allreduce",
                   [this](float* x, std::size_t count, std::int64_t) {
                     transport_allreduce_->allreduce(decent::Buffer(x, count));
                   },
                   [this](std::int64_t) { return (size_ + 1) / 2.0; }});
    ops.push_back({"allreduce-rd",
                   "ctx.allreduce, average, always recursive doubling over point-to-point",
                   "mpi-allreduce",
                   [this](float* x, std::size_t count, std::int64_t) {
                     recursive_doubling_->allreduce(decent::Buffer(x, count));
                   },
                   [this](std::int64_t) { return (size_ + 1) / 2.0; }});
    ops.push_back({"allreduce-halving",
                   "ctx.allreduce, average, always halving-doubling (Rabenseifner in blocking "
                   "steps, header in-message)",
                   "mpi-allreduce",
                   [this](float* x, std::size_t count, std::int64_t) {
                     halving_->allreduce(decent::Buffer(x, count));
                   },
                   [this](std::int64_t) { return (size_ + 1) / 2.0; }});
    for (bool check : {true, false}) {
      const std::string suffix = check ? "" : "-nocheck";
      const std::string note = check ? "" : ", check_consistency off";
      decent::Context* ctx = check ? checked_.get() : unchecked_.get();
      ops.push_back({"allreduce" + suffix, "ctx.allreduce, average" + note, "mpi-allreduce",
                     [ctx](float* x, std::size_t count, std::int64_t) {
                       ctx->allreduce(decent::Buffer(x, count));
                     },
                     [this](std::int64_t) { return (size_ + 1) / 2.0; }});
      ops.push_back({"one-peer" + suffix, "ctx.neighbor_allreduce, one-peer exponential" + note,
                     "mpi-one-peer",
                     [this, ctx](float* x, std::size_t count, std::int64_t step) {
                       ctx->set_topology(one_peer_);
                       decent::NeighborAllreduceOptions opts;
                       opts.step = step;
                       ctx->neighbor_allreduce(decent::ConstBuffer(x, count),
                                               decent::Buffer(x, count), opts);
                     },
                     [this](std::int64_t step) { return one_peer_scale(step); }});
      ops.push_back({"exponential" + suffix,
                     "ctx.neighbor_allreduce, static exponential graph" + note, "mpi-exponential",
                     [this, ctx](float* x, std::size_t count, std::int64_t) {
                       ctx->set_topology(exponential_);
                       ctx->neighbor_allreduce(decent::ConstBuffer(x, count),
                                               decent::Buffer(x, count));
                     },
                     [this](std::int64_t) { return static_scale(exponential_); }});
      ops.push_back(
          {"ring" + suffix, "ctx.neighbor_allreduce, static ring (weights 1/3)" + note, "mpi-ring",
           [this, ctx](float* x, std::size_t count, std::int64_t) {
             ctx->set_topology(ring_graph_);
             ctx->neighbor_allreduce(decent::ConstBuffer(x, count), decent::Buffer(x, count));
           },
           [this](std::int64_t) { return static_scale(ring_graph_); }});
      ops.push_back(
          {"hierarchical" + suffix,
           fmt::format("ctx.hierarchical_neighbor_allreduce, {} ranks/machine, exponential "
                       "between machines{}",
                       ranks_per_machine_, note),
           "",
           [ctx](float* x, std::size_t count, std::int64_t) {
             ctx->hierarchical_neighbor_allreduce(decent::ConstBuffer(x, count),
                                                  decent::Buffer(x, count));
           },
           [this](std::int64_t) { return hierarchical_scale(); }});
    }
    return ops;
  }

  // Receive buffers for the raw exchanges, grown once to the largest size.
  void reserve(std::size_t count) {
    const std::size_t peers = std::max<std::size_t>(
        {1, exponential_->plan(0, rank_).recv.size(), ring_graph_->plan(0, rank_).recv.size()});
    recv_.resize(peers);
    for (auto& b : recv_)
      if (b.size() < count) b.resize(count);
  }

 private:
  std::shared_ptr<decent::Context> make_context(const decent::ContextOptions& options) {
    auto ctx = decent::Context::init(options);
    if (ctx->backend() != "mpi" || ctx->size() != size_)
      throw std::runtime_error(fmt::format(
          "rank {}: the context runs on the '{}' backend with {} ranks, expected MPI with {}; "
          "launch with mpiexec (or decentrun)",
          rank_, ctx->backend(), ctx->size(), size_));
    ctx->set_machine_topology(machine_graph_);
    return ctx;
  }

  void raw_allreduce(float* x, std::size_t count) {
    check_mpi(
        MPI_Allreduce(MPI_IN_PLACE, x, static_cast<int>(count), MPI_FLOAT, MPI_SUM, raw_comm_),
        "MPI_Allreduce");
  }

  void raw_one_peer(float* x, std::size_t count, std::int64_t step) {
    const int offset = one_peer_->offset_at(step);
    const int dst = (rank_ + offset) % size_;
    const int src = (rank_ - offset + size_) % size_;
    float* in = recv_[0].data();
    check_mpi(
        MPI_Sendrecv(x, static_cast<int>(count), MPI_FLOAT, dst, 0, in, static_cast<int>(count),
                     MPI_FLOAT, src, 0, raw_comm_, MPI_STATUS_IGNORE),
        "MPI_Sendrecv");
    weighted_average(x, count, 0.5f, {in}, {0.5f});
  }

  void raw_iallreduce(float* x, std::size_t count, bool poll_with_backoff) {
    std::vector<MPI_Request> request(1);
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, x, static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                             raw_comm_, request.data()),
              "MPI_Iallreduce");
    if (poll_with_backoff)
      wait_with_backoff(request);
    else
      check_mpi(MPI_Wait(request.data(), MPI_STATUS_IGNORE), "MPI_Wait");
  }

  // Open MPI's libnbc picks its binomial tree for every in-place MPI_Iallreduce; with distinct
  // buffers it may pick ring or recursive halving (this diagnostic shows what that buys).
  void raw_iallreduce_from_copy(float* x, std::size_t count) {
    float* copy = recv_[0].data();
    std::memcpy(copy, x, count * sizeof(float));
    MPI_Request request;
    check_mpi(
        MPI_Iallreduce(copy, x, static_cast<int>(count), MPI_FLOAT, MPI_SUM, raw_comm_, &request),
        "MPI_Iallreduce");
    check_mpi(MPI_Wait(&request, MPI_STATUS_IGNORE), "MPI_Wait");
  }

  void raw_one_peer_polled(float* x, std::size_t count, std::int64_t step, bool sleep_allowed) {
    const int offset = one_peer_->offset_at(step);
    const int dst = (rank_ + offset) % size_;
    const int src = (rank_ - offset + size_) % size_;
    float* in = recv_[0].data();
    std::vector<MPI_Request> requests(2);
    check_mpi(MPI_Irecv(in, static_cast<int>(count), MPI_FLOAT, src, 2, raw_comm_, &requests[0]),
              "MPI_Irecv");
    check_mpi(MPI_Isend(x, static_cast<int>(count), MPI_FLOAT, dst, 2, raw_comm_, &requests[1]),
              "MPI_Isend");
    wait_with_backoff(requests, sleep_allowed);
    weighted_average(x, count, 0.5f, {in}, {0.5f});
  }

  // One exchange with every neighbour of a static graph, then its weighted average.
  void raw_static(const topo::SchedulePtr& graph, float* x, std::size_t count) {
    const topo::StepPlan plan = graph->plan(0, rank_);
    std::vector<MPI_Request> requests;
    std::vector<const float*> sources;
    std::vector<float> weights;
    for (std::size_t k = 0; k < plan.recv.size(); ++k) {
      requests.emplace_back();
      check_mpi(MPI_Irecv(recv_[k].data(), static_cast<int>(count), MPI_FLOAT, plan.recv[k].rank, 1,
                          raw_comm_, &requests.back()),
                "MPI_Irecv");
      sources.push_back(recv_[k].data());
      weights.push_back(static_cast<float>(plan.recv[k].weight));
    }
    for (const auto& peer : plan.send) {
      requests.emplace_back();
      check_mpi(MPI_Isend(x, static_cast<int>(count), MPI_FLOAT, peer.rank, 1, raw_comm_,
                          &requests.back()),
                "MPI_Isend");
    }
    check_mpi(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall");
    weighted_average(x, count, static_cast<float>(plan.self_weight), sources, weights);
  }

  double one_peer_scale(std::int64_t step) const {
    const int src = (rank_ - one_peer_->offset_at(step) + size_) % size_;
    return 0.5 * (rank_ + 1) + 0.5 * (src + 1);
  }

  double static_scale(const topo::SchedulePtr& graph) const {
    const topo::StepPlan plan = graph->plan(0, rank_);
    double e = plan.self_weight * (rank_ + 1);
    for (const auto& p : plan.recv) e += p.weight * (p.rank + 1);
    return e;
  }

  // Exact average inside each machine, then the machine graph mixes machine averages.
  double hierarchical_scale() const {
    auto machine_average = [&](int m) {
      const int first = m * ranks_per_machine_;
      const int last = std::min(size_, first + ranks_per_machine_);
      double sum = 0;
      for (int r = first; r < last; ++r) sum += r + 1;
      return sum / (last - first);
    };
    const int m = rank_ / ranks_per_machine_;
    const topo::StepPlan plan = machine_graph_->plan(0, m);
    double e = plan.self_weight * machine_average(m);
    for (const auto& p : plan.recv) e += p.weight * machine_average(p.rank);
    return e;
  }

  MPI_Comm raw_comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int ranks_per_machine_ = 2;
  int machines_ = 1;
  std::shared_ptr<topo::OnePeerExponential> one_peer_;
  topo::SchedulePtr exponential_, ring_graph_;
  topo::SchedulePtr machine_graph_;
  std::shared_ptr<decent::Context> checked_, unchecked_;
  std::shared_ptr<decent::Context> ring_, rabenseifner_, transport_allreduce_, recursive_doubling_,
      halving_;
  std::vector<std::vector<float>> recv_;
};

const std::vector<std::string>& default_operations() {
  static const std::vector<std::string> names = {
      "mpi-allreduce", "mpi-one-peer",      "mpi-exponential", "mpi-ring",
      "allreduce",     "one-peer",          "exponential",     "ring",
      "hierarchical",  "allreduce-nocheck", "one-peer-nocheck"};
  return names;
}

// ------------------------------------------------------------------ statistics

// Linear interpolation between order statistics (the usual "type 7" quantile).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const double pos = q * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

struct Result {
  std::size_t bytes = 0;
  std::string op;
  std::string baseline;
  int reps = 0;
  double median_ms = 0, p10_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0;
  std::optional<double> ratio;  // median / baseline median
};

// ------------------------------------------------------------------ running

// Runs every operation once from the same input and checks the result against the maths, so
// that a fast but wrong operation cannot pass. Throws naming the operation and the worst rank.
void verify(Harness& h, const std::vector<Operation>& ops, std::vector<float>& x, std::size_t count,
            std::int64_t step, MPI_Comm control) {
  for (const auto& op : ops) {
    fill(x.data(), count, h.rank());
    op.run(x.data(), count, step);
    const double e = op.expected_scale(step);
    double worst = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const double want = e * pattern(i);
      worst = std::max(worst, std::abs(x[i] - want) / std::abs(want));
    }
    struct {
      double error;
      int rank;
    } mine{worst, h.rank()}, global{};
    check_mpi(MPI_Allreduce(&mine, &global, 1, MPI_DOUBLE_INT, MPI_MAXLOC, control),
              "MPI_Allreduce (verification)");
    if (!(global.error < 1e-5))
      throw std::runtime_error(
          fmt::format("{} on {} gave a wrong result: relative error {:.3g} on rank {}", op.name,
                      format_bytes(count * sizeof(float)), global.error, global.rank));
  }
}

std::vector<Result> run_size(Harness& h, const std::vector<Operation>& ops, std::size_t bytes,
                             int reps, int warmup, bool do_verify, MPI_Comm control) {
  const std::size_t count = bytes / sizeof(float);
  std::vector<float> x(count);
  h.reserve(count);
  if (do_verify) verify(h, ops, x, count, 0, control);

  std::vector<std::vector<double>> samples(ops.size());
  std::vector<double> round(ops.size());
  for (int r = 0; r < warmup + reps; ++r) {
    // Each round starts one operation later: an operation right after another library's runs
    // with caches and predictors warmed for that code (measured: about 1 µs more at 4 KiB), so a
    // fixed order would always charge that to the same column.
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const std::size_t k = (i + static_cast<std::size_t>(r)) % ops.size();
      fill(x.data(), count, h.rank());
      check_mpi(MPI_Barrier(control), "MPI_Barrier");
      const auto t0 = BenchClock::now();
      ops[k].run(x.data(), count, r);
      const auto t1 = BenchClock::now();
      round[k] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    }
    // A call takes as long as its slowest rank.
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, round.data(), static_cast<int>(round.size()), MPI_DOUBLE,
                            MPI_MAX, control),
              "MPI_Allreduce (timings)");
    if (r >= warmup)
      for (std::size_t k = 0; k < ops.size(); ++k) samples[k].push_back(round[k]);
  }

  std::vector<Result> results;
  std::map<std::string, double> medians;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    Result res;
    res.bytes = bytes;
    res.op = ops[k].name;
    res.baseline = ops[k].baseline;
    res.reps = reps;
    res.median_ms = quantile(samples[k], 0.5);
    res.p10_ms = quantile(samples[k], 0.1);
    res.p90_ms = quantile(samples[k], 0.9);
    res.min_ms = quantile(samples[k], 0.0);
    res.max_ms = quantile(samples[k], 1.0);
    medians[res.op] = res.median_ms;
    results.push_back(res);
  }
  for (auto& res : results) {
    auto it = medians.find(res.baseline);
    if (!res.baseline.empty() && it != medians.end() && it->second > 0)
      res.ratio = res.median_ms / it->second;
  }
  return results;
}

// ------------------------------------------------------------------ reporting

std::string table(const std::vector<Result>& results) {
  std::ostringstream out;
  out << fmt::format("{:>8}  {:<21} {:>10} {:>10} {:>10} {:>9}  {}\n", "size", "operation",
                     "median ms", "p10 ms", "p90 ms", "GB/s", "ours/raw (median)");
  std::size_t last_bytes = 0;
  for (const auto& r : results) {
    if (last_bytes != 0 && r.bytes != last_bytes) out << "\n";
    const std::string size = r.bytes != last_bytes ? format_bytes(r.bytes) : "";
    last_bytes = r.bytes;
    const double gbps = r.median_ms > 0 ? r.bytes / (r.median_ms * 1e6) : 0;
    const std::string ratio =
        r.ratio ? fmt::format("{:.2f}x vs {}", *r.ratio, r.baseline) : std::string();
    out << fmt::format("{:>8}  {:<21} {:>10.3f} {:>10.3f} {:>10.3f} {:>9.2f}  {}\n", size, r.op,
                       r.median_ms, r.p10_ms, r.p90_ms, gbps, ratio);
  }
  return out.str();
}

void write_csv(const std::string& path, int ranks, const std::vector<Result>& results) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error(fmt::format("cannot write CSV file '{}'", path));
  f << "ranks,size_bytes,operation,reps,median_ms,p10_ms,p90_ms,min_ms,max_ms,gb_per_s,"
       "baseline,ratio_vs_baseline\n";
  for (const auto& r : results) {
    const double gbps = r.median_ms > 0 ? r.bytes / (r.median_ms * 1e6) : 0;
    f << fmt::format("{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.3f},{},{}\n", ranks,
                     r.bytes, r.op, r.reps, r.median_ms, r.p10_ms, r.p90_ms, r.min_ms, r.max_ms,
                     gbps, r.baseline, r.ratio ? fmt::format("{:.4f}", *r.ratio) : "");
  }
  if (!f) throw std::runtime_error(fmt::format("error writing CSV file '{}'", path));
}

std::string library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string v(text, static_cast<std::size_t>(length));
  const auto comma = v.find(',');
  return comma == std::string::npos ? v : v.substr(0, comma);
}

int run(const Config& config, bool list_only) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (list_only) {
    Harness h(config, MPI_COMM_WORLD, false);
    if (rank == 0)
      for (const auto& op : h.operations())
        std::cout << fmt::format("{:<22} {}\n", op.name, op.description);
    return 0;
  }
  if (size < 2) {
    std::cerr << "decent-bench-comm: needs at least 2 ranks; launch with mpiexec -n N (N >= 2)\n";
    return 2;
  }
  if (config.ranks_per_machine < 1) {
    std::cerr << "decent-bench-comm: --ranks-per-machine must be at least 1\n";
    return 2;
  }
  std::vector<std::size_t> sizes;
  for (const auto& s : config.sizes) sizes.push_back(parse_bytes(s));
  const std::size_t large_from = parse_bytes(config.large_from);

  MPI_Comm control = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &control), "MPI_Comm_dup (control)");
  std::vector<Result> all;
  {
    Harness h(config, MPI_COMM_WORLD);
    std::vector<Operation> available = h.operations();
    std::vector<Operation> ops;
    for (const auto& name : config.ops.empty() ? default_operations() : config.ops) {
      auto it = std::find_if(available.begin(), available.end(),
                             [&](const Operation& o) { return o.name == name; });
      if (it == available.end()) {
        std::string known;
        for (const auto& o : available) known += (known.empty() ? "" : ", ") + o.name;
        throw std::invalid_argument(fmt::format("unknown operation '{}'; known: {}", name, known));
      }
      ops.push_back(*it);
    }

    if (rank == 0) {
      std::cout << fmt::format(
          "decent-bench-comm: {} ranks ({} emulated machines of {}), {} hardware threads, {}, "
          "{} kernels\n"
          "float32 payloads; time per call = max over ranks; {} reps + {} warm-up "
          "({} + {} from {}); operations interleaved in every round, in rotating order\n\n",
          size, h.machines(), config.ranks_per_machine, std::thread::hardware_concurrency(),
          library_version(), decent::combining_kernels(), config.reps, config.warmup,
          config.large_reps, config.large_warmup, format_bytes(large_from));
      std::cout.flush();
    }
    for (std::size_t bytes : sizes) {
      const bool large = bytes >= large_from;
      auto results = run_size(h, ops, bytes, large ? config.large_reps : config.reps,
                              large ? config.large_warmup : config.warmup, config.verify, control);
      if (rank == 0) {
        std::cout << table(results) << "\n";
        std::cout.flush();
      }
      all.insert(all.end(), results.begin(), results.end());
    }
  }
  if (rank == 0 && !config.csv.empty()) {
    write_csv(config.csv, size, all);
    std::cout << "wrote " << config.csv << "\n";
  }
  MPI_Comm_free(&control);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  bool list_only = false;
  CLI::App app{
      "Times decent's communication primitives against the raw MPI patterns they build on.\n"
      "Run under mpiexec (or decentrun) with at least 2 ranks."};
  app.add_option("--sizes", config.sizes, "message sizes (float32 payload), e.g. 4K,1M,64M")
      ->delimiter(',');
  app.add_option("--reps", config.reps, "timed rounds per size")->check(CLI::PositiveNumber);
  app.add_option("--warmup", config.warmup, "untimed rounds per size")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--large-from", config.large_from,
                 "sizes at or above this use --large-reps and --large-warmup");
  app.add_option("--large-reps", config.large_reps, "timed rounds for large sizes")
      ->check(CLI::PositiveNumber);
  app.add_option("--large-warmup", config.large_warmup, "untimed rounds for large sizes")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--ops", config.ops,
                 "operations to run, comma separated (default: all but exponential-nocheck and "
                 "hierarchical-nocheck; see --list-ops)")
      ->delimiter(',');
  app.add_flag("--list-ops", list_only, "list the operations and exit");
  app.add_option("--ranks-per-machine", config.ranks_per_machine,
                 "ranks per emulated machine for hierarchical_neighbor_allreduce");
  app.add_flag("!--no-verify", config.verify,
               "skip checking every operation's result before timing it");
  app.add_option("--csv", config.csv, "write the results to this CSV file (rank 0)");

  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    std::cerr << "decent-bench-comm: MPI_Init_thread failed\n";
    return 1;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int code = 0;
  try {
    app.parse(argc, argv);
    code = run(config, list_only);
  } catch (const CLI::ParseError& e) {
    code = rank == 0 ? app.exit(e) : (e.get_exit_code() != 0 ? 2 : 0);
  } catch (const std::exception& e) {
    // The library's errors name the rank already; the benchmark's own do not.
    const std::string what = e.what();
    const std::string prefix = "rank " + std::to_string(rank) + ": ";
    std::cerr << "decent-bench-comm: " << (what.rfind(prefix, 0) == 0 ? "" : prefix) << what
              << std::endl;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}
