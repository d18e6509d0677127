// Context: one rank's view of the job. Carries rank, size, machine layout, the topology and the
// transport, and offers every communication operation, blocking and non-blocking.
//
//   auto ctx = decent::Context::init();            // MPI under decentrun/mpirun, else 1 rank
//   ctx->set_topology(decent::topology::exponential(ctx->size()));
//   ctx->neighbor_allreduce(x, x);                  // x_i <- sum_j w_ij x_j
//
// Operations run on a per-rank communication thread in submission order, so a non-blocking
// call overlaps with the caller's computation; a blocking call is the non-blocking one + wait.
// Every rank must submit collectives and neighbour operations in the same order.
#pragma once

#include "decent/comm/types.h"
#include "decent/topology/schedule.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace decent {

namespace comm {
class Transport;
}
namespace detail {
struct OpState;
class Engine;
class TimelineWriter;
struct WindowRegistry;
}  // namespace detail
class Window;  // decent/comm/window.h
struct WindowOptions;

struct ContextOptions {
  // Longest any single wait may block before raising TimeoutError naming the missing ranks.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Buffers submitted together are packed into messages of up to this many bytes (tensor
  // fusion); 0 sends each buffer on its own.
  std::size_t fusion_threshold_bytes = std::size_t{64} << 20;
  // When non-empty, rank r writes a Chrome trace (chrome://tracing, Perfetto) to prefix<r>.json.
  std::string timeline_prefix;
  // Ranks per machine for hierarchical operations; 0 groups ranks by host name. Set it to
  // emulate several machines on one host.
  int ranks_per_machine = 0;
  // Exchange a small header with every message so that ranks disagreeing on counts, dtypes or
  // operations raise MismatchError instead of producing garbage. Costs one extra tiny message.
  bool check_consistency = true;
  // Allreduces of at least this many bytes run as a ring (reduce-scatter, then allgather) over
  // point-to-point messages: each rank sends 2(n-1)/n of the buffer, the bandwidth optimum, but
  // in 2(n-1) rounds. Unset: chosen from the number of ranks n by a latency/bandwidth model
  // measured on shared memory (about 3 MiB for n = 4, 7.5 MiB for n = 8; docs/benchmarks.md),
  // and never below small_allreduce_threshold_bytes. Every rank must use the same value.
  std::optional<std::size_t> ring_allreduce_threshold_bytes;
  // Allreduces of fewer bytes (and not taken by the ring) run as recursive doubling or
  // halving-doubling over point-to-point messages, which carry the consistency header inside
  // their own messages, so a small allreduce needs no separate check. From it up the transport's
  // allreduce (MPI_Iallreduce) or Rabenseifner's algorithm runs. Unset: 1 MiB when the ranks of
  // the allreduce are a power of two, else 256 KiB (halving-doubling's whole-buffer fold steps
  // are slower than Rabenseifner's pipelined ones there; docs/benchmarks.md). Every rank must
  // use the same value.
  std::optional<std::size_t> small_allreduce_threshold_bytes;
  // Allreduces of at least this many bytes that neither the ring nor recursive doubling takes run
  // as Rabenseifner's algorithm over point-to-point messages: reduce-scatter by recursive
  // halving, then allgather by recursive doubling; 2 log2(n) rounds (two more when n is not a
  // power of two), 2(n-1)/n of the buffer sent per rank. Below it (and from the small threshold)
  // the transport's allreduce runs. Unset: small_allreduce_threshold_bytes, so the transport's
  // allreduce is not used; SIZE_MAX gives the middle range back to it. Every rank must use the
  // same value.
  std::optional<std::size_t> rabenseifner_allreduce_threshold_bytes;
  // Allreduces below small_allreduce_threshold_bytes of at least this many bytes run as
  // halving-doubling: Rabenseifner's algorithm in single blocking steps, with the consistency
  // header inside the reduce-scatter messages (2 log2(n) rounds, 2(n-1)/n of the buffer sent
  // per rank) instead of recursive doubling (log2(n) rounds of the whole buffer). SIZE_MAX:
  // never. Every rank must use the same value. The defaults (64 KiB here, 1 MiB or 256 KiB for
  // the small threshold) are where each algorithm was fastest on shared memory
  // (docs/benchmarks.md).
  std::size_t halving_allreduce_threshold_bytes = std::size_t{64} << 10;

  // Defaults overridden by DECENT_TIMEOUT_MS, DECENT_FUSION_THRESHOLD, DECENT_TIMELINE,
  // DECENT_RANKS_PER_MACHINE, DECENT_CHECK_CONSISTENCY (0/1), DECENT_RING_ALLREDUCE_THRESHOLD,
  // DECENT_SMALL_ALLREDUCE_THRESHOLD, DECENT_RABENSEIFNER_ALLREDUCE_THRESHOLD and
  // DECENT_HALVING_ALLREDUCE_THRESHOLD.
  static ContextOptions from_env();
};

struct NeighborAllreduceOptions {
  // Weight of the rank's own value; default from the topology.
  std::optional<double> self_weight;
  // In-neighbour rank -> weight of its message. When set, these ranks are the receive set.
  std::optional<std::map<int, double>> src_weights;
  // Out-neighbour rank -> factor the sender multiplies its message by. When set, these ranks
  // are the send set (dynamic mode); use 1.0 for a plain send.
  std::optional<std::map<int, double>> dst_weights;
  // Step of a dynamic schedule to use; default: the context's step counter, which advances by
  // one after every neighbour operation that uses the schedule.
  std::optional<std::int64_t> step;
};

// Result of allgather/neighbor_allgather: concatenated elements and each contributor's count.
struct GatherResult {
  DType dtype = DType::kFloat32;
  std::vector<int> ranks;           // contributors in order
  std::vector<std::size_t> counts;  // elements from each contributor
  std::vector<std::uint8_t> data;   // concatenated payload
  template <typename T>
  std::vector<T> as() const {
    std::vector<T> out(data.size() / sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), data.data(), data.size());
    return out;
  }
};

// Completion of a non-blocking operation. Buffers passed to the operation must stay alive and
// untouched until wait() returns.
class Handle {
 public:
  Handle() = default;
  explicit Handle(std::shared_ptr<detail::OpState> s) : state_(std::move(s)) {}
  // Blocks; rethrows the operation's error. With the timeline on, a wait that blocks (the
  // operation was not complete yet) is recorded as a "wait" event on the "caller wait" row, as
  // is every blocking call.
  void wait();
  bool poll();  // true when done; rethrows the operation's error
  bool valid() const { return state_ != nullptr; }

 private:
  std::shared_ptr<detail::OpState> state_;
  std::shared_ptr<detail::TimelineWriter> timeline_;  // null when the timeline is off
  friend class Context;
};

// Counters a training loop reports: this rank's traffic through the engine (messages of
// collectives and neighbour operations) plus its windows' one-sided payload transfers to and
// from other ranks (docs/communication.md, "Counters").
struct CommStats {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t operations = 0;
  // Of messages_sent: consistency headers that went as messages of their own (neighbour payloads
  // above 16 KiB; smaller ones carry their header inline).
  std::uint64_t header_messages = 0;
};

class Context {
 public:
  // Chooses the backend: MPI when launched by decentrun/mpirun (or DECENT_BACKEND=mpi),
  // otherwise a single-rank local context.
  static std::shared_ptr<Context> init(const ContextOptions& options = ContextOptions::from_env());
  // Wraps an existing transport (used by the backends and by tests).
  static std::shared_ptr<Context> create(std::unique_ptr<comm::Transport> transport,
                                         const ContextOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const;
  int size() const;
  int local_rank() const;    // rank within its machine
  int local_size() const;    // ranks on its machine
  int machine_rank() const;  // index of its machine
  int machine_size() const;  // number of machines
  std::string backend() const;
  const ContextOptions& options() const;

  // Topology over ranks; the default is the static exponential graph with uniform weights.
  void set_topology(topology::Graph graph);
  void set_topology(topology::SchedulePtr schedule);
  topology::SchedulePtr topology() const;
  // Topology over machines used by hierarchical_neighbor_allreduce (default: exponential).
  void set_machine_topology(topology::SchedulePtr schedule);
  topology::SchedulePtr machine_topology() const;
  std::int64_t step() const;
  void set_step(std::int64_t step);

  // --- collectives over all ranks ---
  void allreduce(Buffer inout, ReduceOp op = ReduceOp::kAverage);
  Handle allreduce_async(Buffer inout, ReduceOp op = ReduceOp::kAverage);
  // Many buffers in one call, fused into as few messages as the threshold allows.
  void allreduce(const std::vector<Buffer>& inout, ReduceOp op = ReduceOp::kAverage);
  Handle allreduce_async(const std::vector<Buffer>& inout, ReduceOp op = ReduceOp::kAverage);
  void broadcast(Buffer inout, int root);
  Handle broadcast_async(Buffer inout, int root);
  // Each rank's count may differ; the result is ordered by rank.
  GatherResult allgather(ConstBuffer in);
  // `out` is filled when the handle completes.
  Handle allgather_async(ConstBuffer in, GatherResult& out);
  void barrier();
  Handle barrier_async();

  // --- partial averaging over the topology ---
  // out_i = self_weight * in_i + sum_j w_ij in_j. `in` and `out` may be the same buffer.
  void neighbor_allreduce(ConstBuffer in, Buffer out, const NeighborAllreduceOptions& opts = {});
  Handle neighbor_allreduce_async(ConstBuffer in, Buffer out,
                                  const NeighborAllreduceOptions& opts = {});
  // In place on many buffers with the same weights, fused.
  void neighbor_allreduce(const std::vector<Buffer>& inout,
                          const NeighborAllreduceOptions& opts = {});
  Handle neighbor_allreduce_async(const std::vector<Buffer>& inout,
                                  const NeighborAllreduceOptions& opts = {});
  // The in-neighbours' buffers (not this rank's), ordered by source rank. Counts may differ.
  GatherResult neighbor_allgather(ConstBuffer in, const NeighborAllreduceOptions& opts = {});
  Handle neighbor_allgather_async(ConstBuffer in, GatherResult& out,
                                  const NeighborAllreduceOptions& opts = {});
  // Exact average inside each machine, then neighbour averaging between machines over the
  // machine topology (performed by each machine's local rank 0), then broadcast in the machine.
  void hierarchical_neighbor_allreduce(ConstBuffer in, Buffer out,
                                       const NeighborAllreduceOptions& machine_opts = {});
  Handle hierarchical_neighbor_allreduce_async(ConstBuffer in, Buffer out,
                                               const NeighborAllreduceOptions& machine_opts = {});
  // Symmetric exchange with one peer: x <- self_weight * x + (1 - self_weight) * x_peer.
  // Both ranks must call it naming each other.
  void pair_gossip(Buffer inout, int peer, double self_weight = 0.5);
  Handle pair_gossip_async(Buffer inout, int peer, double self_weight = 0.5);

  // --- one-sided windows (decent/comm/window.h) ---
  // Collective: every rank creates the window `name` over its own `buffer` (same count and dtype
  // everywhere, checked). The buffer must outlive the window.
  Window& win_create(const std::string& name, Buffer buffer);
  Window& win_create(const std::string& name, Buffer buffer, const WindowOptions& options);
  // The window `name`; InvalidArgument if there is none (never created, or freed).
  Window& window(const std::string& name);
  // Collective: releases the window; a reference still held then throws on use.
  void win_free(const std::string& name);

  CommStats stats() const;

  // For the backends and tests: the transport and the engine that runs operations.
  comm::Transport& transport();

 private:
  Context(std::unique_ptr<comm::Transport> transport, const ContextOptions& options);
  Handle submit(const char* name, std::function<void()> work, bool blocking);
  Handle neighbor_allreduce_impl(ConstBuffer in, Buffer out, const NeighborAllreduceOptions& opts,
                                 bool blocking);
  Handle neighbor_allgather_impl(ConstBuffer in, GatherResult& out,
                                 const NeighborAllreduceOptions& opts, bool blocking);
  Handle pair_gossip_impl(Buffer inout, int peer, double self_weight, bool blocking);
  std::unique_ptr<detail::Engine> engine_;
  // Declared after engine_ so that windows are released before the engine stops.
  std::shared_ptr<detail::WindowRegistry> windows_;
};

using ContextPtr = std::shared_ptr<Context>;

namespace local {
// Runs fn on n ranks, each a thread of this process with its own Context over shared memory.
// Returns when every rank has finished; if any rank threw, the others are released (their
// pending operations fail) and the first error is rethrown here with its rank in the message.
void run(int n, const std::function<void(Context&)>& fn,
         const ContextOptions& options = ContextOptions::from_env());
}  // namespace local

}  // namespace decent
