#include "decent/comm/context.h"

#include "decent/comm/window.h"
#include "engine.h"
#include "kernels.h"
#include "local/local_transport.h"
#include "mpi/mpi_transport.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

namespace decent {

using detail::Engine;
using detail::NeighborPlan;

// ---------------------------------------------------------------- options

namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

long long env_integer(const char* name, long long fallback) {
  auto v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long long parsed = std::strtoll(v->c_str(), &end, 10);
  if (end == v->c_str() || *end != '\0' || parsed < 0)
    throw InvalidArgument(
        fmt::format("environment variable {}='{}' is not a non-negative integer", name, *v));
  return parsed;
}

void check_buffer(const char* op, int rank, const void* data, std::size_t count) {
  if (count > 0 && data == nullptr)
    throw InvalidArgument(
        fmt::format("rank {}: {}: null buffer with {} elements", rank, op, count));
}

void check_float(const char* op, int rank, DType dtype) {
  if (!dtype_is_floating(dtype))
    throw InvalidArgument(
        fmt::format("rank {}: {}: needs a floating dtype (float32, float64, "
                    "float16, bfloat16), got {}",
                    rank, op, dtype_name(dtype)));
}

}  // namespace

ContextOptions ContextOptions::from_env() {
  ContextOptions o;
  o.timeout = std::chrono::milliseconds(env_integer("DECENT_TIMEOUT_MS", o.timeout.count()));
  o.fusion_threshold_bytes =
      static_cast<std::size_t>(env_integer("DECENT_FUSION_THRESHOLD", o.fusion_threshold_bytes));
  if (auto t = env("DECENT_TIMELINE")) o.timeline_prefix = *t;
  o.ranks_per_machine = static_cast<int>(env_integer("DECENT_RANKS_PER_MACHINE", 0));
  o.check_consistency = env_integer("DECENT_CHECK_CONSISTENCY", 1) != 0;
  if (env("DECENT_RING_ALLREDUCE_THRESHOLD"))
    o.ring_allreduce_threshold_bytes =
        static_cast<std::size_t>(env_integer("DECENT_RING_ALLREDUCE_THRESHOLD", 0));
  if (env("DECENT_SMALL_ALLREDUCE_THRESHOLD"))
    o.small_allreduce_threshold_bytes =
        static_cast<std::size_t>(env_integer("DECENT_SMALL_ALLREDUCE_THRESHOLD", 0));
  if (env("DECENT_RABENSEIFNER_ALLREDUCE_THRESHOLD"))
    o.rabenseifner_allreduce_threshold_bytes =
        static_cast<std::size_t>(env_integer("DECENT_RABENSEIFNER_ALLREDUCE_THRESHOLD", 0));
  o.halving_allreduce_threshold_bytes = static_cast<std::size_t>(
      env_integer("DECENT_HALVING_ALLREDUCE_THRESHOLD", o.halving_allreduce_threshold_bytes));
  return o;
}

// ---------------------------------------------------------------- handles

void Handle::wait() {
  if (!state_) throw InvalidArgument("wait() on an empty Handle");
  if (!timeline_) {
    state_->wait();
    return;
  }
  // Only a wait that blocks is recorded: a handle already complete costs the caller nothing.
  if (state_->poll()) return;
  const auto begin = Clock::now();
  try {
    state_->wait();
  } catch (...) {
    timeline_->record_wait(state_->name, begin, Clock::now());
    throw;
  }
  timeline_->record_wait(state_->name, begin, Clock::now());
}

bool Handle::poll() {
  if (!state_) throw InvalidArgument("poll() on an empty Handle");
  return state_->poll();
}

// ---------------------------------------------------------------- construction

std::shared_ptr<Context> Context::init(const ContextOptions& options) {
  const auto backend = env("DECENT_BACKEND");
  if (backend && *backend != "mpi" && *backend != "local")
    throw InvalidArgument(fmt::format("DECENT_BACKEND='{}': expected 'mpi' or 'local'", *backend));
  const bool use_mpi = backend ? *backend == "mpi" : comm::launched_under_mpi();
  if (use_mpi) return create(comm::make_mpi_world_transport(), options);
  auto transports = comm::make_local_transports(1);
  return create(std::move(transports.front()), options);
}

std::shared_ptr<Context> Context::create(std::unique_ptr<comm::Transport> transport,
                                         const ContextOptions& options) {
  return std::shared_ptr<Context>(new Context(std::move(transport), options));
}

Context::Context(std::unique_ptr<comm::Transport> transport, const ContextOptions& options)
    : engine_(std::make_unique<Engine>(std::move(transport), options)) {}

Context::~Context() = default;

int Context::rank() const {
  return engine_->rank();
}
int Context::size() const {
  return engine_->size();
}
int Context::local_rank() const {
  return engine_->local_rank();
}
int Context::local_size() const {
  return engine_->local_size();
}
int Context::machine_rank() const {
  return engine_->machine_rank();
}
int Context::machine_size() const {
  return engine_->machine_size();
}
std::string Context::backend() const {
  return engine_->transport().backend();
}
const ContextOptions& Context::options() const {
  return engine_->options();
}
comm::Transport& Context::transport() {
  return engine_->transport();
}
CommStats Context::stats() const {
  CommStats s = engine_->stats();
  const CommStats w = detail::window_traffic(windows_.get());
  s.bytes_sent += w.bytes_sent;
  s.bytes_received += w.bytes_received;
  s.messages_sent += w.messages_sent;
  s.operations += w.operations;
  return s;
}

void Context::set_topology(topology::Graph graph) {
  set_topology(std::make_shared<topology::StaticSchedule>(std::move(graph)));
}
void Context::set_topology(topology::SchedulePtr schedule) {
  engine_->set_topology(std::move(schedule));
}
topology::SchedulePtr Context::topology() const {
  return engine_->topology();
}
void Context::set_machine_topology(topology::SchedulePtr schedule) {
  engine_->set_machine_topology(std::move(schedule));
}
topology::SchedulePtr Context::machine_topology() const {
  return engine_->machine_topology();
}
std::int64_t Context::step() const {
  return engine_->step();
}
void Context::set_step(std::int64_t step) {
  engine_->set_step(step);
}

// ---------------------------------------------------------------- collectives

Handle Context::submit(const char* name, std::function<void()> work, bool blocking) {
  if (!engine_->timeline().enabled())
    return Handle(engine_->submit(name, std::move(work), blocking));
  const auto begin = Clock::now();
  Handle handle(engine_->submit(name, std::move(work), blocking));
  handle.timeline_ = engine_->timeline().writer();
  if (blocking && handle.timeline_) {
    // A blocking call on an idle context ran on this thread inside submit: the caller was
    // blocked for all of it, and its wait() will find it complete. Queued, wait() records it.
    bool done;
    {
      std::lock_guard<std::mutex> lock(handle.state_->mutex);
      done = handle.state_->done;
    }
    if (done) handle.timeline_->record_wait(handle.state_->name, begin, Clock::now());
  }
  return handle;
}

Handle Context::allreduce_async(Buffer inout, ReduceOp op) {
  check_buffer("allreduce", rank(), inout.data, inout.count);
  Engine* e = engine_.get();
  return submit(
      "allreduce", [e, inout, op] { e->run_allreduce(e->world(), inout, op); }, false);
}

void Context::allreduce(Buffer inout, ReduceOp op) {
  check_buffer("allreduce", rank(), inout.data, inout.count);
  Engine* e = engine_.get();
  submit(
      "allreduce", [e, inout, op] { e->run_allreduce(e->world(), inout, op); }, true)
      .wait();
}

Handle Context::allreduce_async(const std::vector<Buffer>& inout, ReduceOp op) {
  for (const auto& b : inout) check_buffer("allreduce", rank(), b.data, b.count);
  Engine* e = engine_.get();
  return submit(
      "allreduce",
      [e, inout, op] {
        e->run_fused(inout, [&](Buffer b) { e->run_allreduce(e->world(), b, op); });
      },
      false);
}

void Context::allreduce(const std::vector<Buffer>& inout, ReduceOp op) {
  allreduce_async(inout, op).wait();
}

Handle Context::broadcast_async(Buffer inout, int root) {
  check_buffer("broadcast", rank(), inout.data, inout.count);
  if (root < 0 || root >= size())
    throw InvalidArgument(
        fmt::format("rank {}: broadcast: root {} is out of range [0, {})", rank(), root, size()));
  Engine* e = engine_.get();
  return submit(
      "broadcast", [e, inout, root] { e->run_broadcast(e->world(), inout, root); }, false);
}

void Context::broadcast(Buffer inout, int root) {
  broadcast_async(inout, root).wait();
}

Handle Context::allgather_async(ConstBuffer in, GatherResult& out) {
  check_buffer("allgather", rank(), in.data, in.count);
  Engine* e = engine_.get();
  GatherResult* result = &out;
  return submit(
      "allgather", [e, in, result] { *result = e->run_allgather(e->world(), in); }, false);
}

GatherResult Context::allgather(ConstBuffer in) {
  check_buffer("allgather", rank(), in.data, in.count);
  Engine* e = engine_.get();
  GatherResult result;
  submit(
      "allgather", [e, in, &result] { result = e->run_allgather(e->world(), in); }, true)
      .wait();
  return result;
}

Handle Context::barrier_async() {
  Engine* e = engine_.get();
  return submit(
      "barrier", [e] { e->run_barrier(e->world()); }, false);
}

void Context::barrier() {
  Engine* e = engine_.get();
  submit(
      "barrier", [e] { e->run_barrier(e->world()); }, true)
      .wait();
}

// ---------------------------------------------------------------- neighbour operations

Handle Context::neighbor_allreduce_impl(ConstBuffer in, Buffer out,
                                        const NeighborAllreduceOptions& opts, bool blocking) {
  check_buffer("neighbor_allreduce", rank(), in.data, in.count);
  check_buffer("neighbor_allreduce", rank(), out.data, out.count);
  check_float("neighbor_allreduce", rank(), in.dtype);
  if (in.count != out.count || in.dtype != out.dtype)
    throw InvalidArgument(
        fmt::format("rank {}: neighbor_allreduce: output ({} x {}) does not match input ({} x {})",
                    rank(), out.count, dtype_name(out.dtype), in.count, dtype_name(in.dtype)));
  Engine* e = engine_.get();
  NeighborPlan plan = e->resolve_plan(*e->topology(), rank(), size(), opts, "neighbor_allreduce");
  return submit(
      "neighbor_allreduce",
      [e, plan = std::move(plan), in, out] {
        e->run_neighbor_allreduce(e->world(), plan, in, out);
      },
      blocking);
}

Handle Context::neighbor_allreduce_async(ConstBuffer in, Buffer out,
                                         const NeighborAllreduceOptions& opts) {
  return neighbor_allreduce_impl(in, out, opts, false);
}

void Context::neighbor_allreduce(ConstBuffer in, Buffer out, const NeighborAllreduceOptions& opts) {
  neighbor_allreduce_impl(in, out, opts, true).wait();
}

Handle Context::neighbor_allreduce_async(const std::vector<Buffer>& inout,
                                         const NeighborAllreduceOptions& opts) {
  for (const auto& b : inout) {
    check_buffer("neighbor_allreduce", rank(), b.data, b.count);
    check_float("neighbor_allreduce", rank(), b.dtype);
  }
  Engine* e = engine_.get();
  NeighborPlan plan = e->resolve_plan(*e->topology(), rank(), size(), opts, "neighbor_allreduce");
  return submit(
      "neighbor_allreduce",
      [e, plan = std::move(plan), inout] {
        e->run_fused(inout, [&](Buffer b) { e->run_neighbor_allreduce(e->world(), plan, b, b); });
      },
      false);
}

void Context::neighbor_allreduce(const std::vector<Buffer>& inout,
                                 const NeighborAllreduceOptions& opts) {
  neighbor_allreduce_async(inout, opts).wait();
}

Handle Context::neighbor_allgather_impl(ConstBuffer in, GatherResult& out,
                                        const NeighborAllreduceOptions& opts, bool blocking) {
  check_buffer("neighbor_allgather", rank(), in.data, in.count);
  Engine* e = engine_.get();
  NeighborPlan plan = e->resolve_plan(*e->topology(), rank(), size(), opts, "neighbor_allgather");
  GatherResult* result = &out;
  return submit(
      "neighbor_allgather",
      [e, plan = std::move(plan), in, result] {
        *result = e->run_neighbor_allgather(e->world(), plan, in);
      },
      blocking);
}

GatherResult Context::neighbor_allgather(ConstBuffer in, const NeighborAllreduceOptions& opts) {
  GatherResult result;
  neighbor_allgather_impl(in, result, opts, true).wait();
  return result;
}

Handle Context::neighbor_allgather_async(ConstBuffer in, GatherResult& out,
                                         const NeighborAllreduceOptions& opts) {
  return neighbor_allgather_impl(in, out, opts, false);
}

Handle Context::hierarchical_neighbor_allreduce_async(
    ConstBuffer in, Buffer out, const NeighborAllreduceOptions& machine_opts) {
  const char* op = "hierarchical_neighbor_allreduce";
  check_buffer(op, rank(), in.data, in.count);
  check_buffer(op, rank(), out.data, out.count);
  check_float(op, rank(), in.dtype);
  if (in.count != out.count || in.dtype != out.dtype)
    throw InvalidArgument(
        fmt::format("rank {}: {}: output ({} x {}) does not match input ({} x {})", rank(), op,
                    out.count, dtype_name(out.dtype), in.count, dtype_name(in.dtype)));
  Engine* e = engine_.get();
  NeighborPlan plan =
      e->resolve_plan(*e->machine_topology(), machine_rank(), machine_size(), machine_opts, op);
  return submit(
      op, [e, plan = std::move(plan), in, out] { e->run_hierarchical(plan, in, out); }, false);
}

void Context::hierarchical_neighbor_allreduce(ConstBuffer in, Buffer out,
                                              const NeighborAllreduceOptions& machine_opts) {
  hierarchical_neighbor_allreduce_async(in, out, machine_opts).wait();
}

Handle Context::pair_gossip_impl(Buffer inout, int peer, double self_weight, bool blocking) {
  check_buffer("pair_gossip", rank(), inout.data, inout.count);
  check_float("pair_gossip", rank(), inout.dtype);
  if (peer < 0 || peer >= size())
    throw InvalidArgument(
        fmt::format("rank {}: pair_gossip: peer {} is out of range [0, {})", rank(), peer, size()));
  if (peer == rank())
    throw InvalidArgument(fmt::format("rank {}: pair_gossip: peer is this rank itself", rank()));
  if (!detail::is_finite(self_weight))
    throw InvalidArgument(fmt::format("rank {}: pair_gossip: self_weight is not finite", rank()));
  Engine* e = engine_.get();
  return submit(
      "pair_gossip",
      [e, inout, peer, self_weight] { e->run_pair_gossip(e->world(), inout, peer, self_weight); },
      blocking);
}

void Context::pair_gossip(Buffer inout, int peer, double self_weight) {
  pair_gossip_impl(inout, peer, self_weight, true).wait();
}

Handle Context::pair_gossip_async(Buffer inout, int peer, double self_weight) {
  return pair_gossip_impl(inout, peer, self_weight, false);
}

}  // namespace decent
