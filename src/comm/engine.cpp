#include "engine.h"

#include "kernels.h"
#include "simd/native_kernels.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <numeric>

namespace decent::detail {

namespace {

constexpr int kHeaderTag = 1;
constexpr int kPayloadTag = 2;
// Neighbour-exchange payloads up to this size travel behind their consistency header in one
// message ([MessageHeader][payload] on kPayloadTag) instead of a header and a payload message.
constexpr std::size_t kInlineHeaderMaxBytes = 16 * 1024;
// Recursive-doubling collectives (small allreduces, consistency checks, barriers): one tag for
// all of them, so that ranks running different collectives still exchange (and compare) their
// headers instead of waiting for messages that never come.
constexpr int kCollectiveTag = 3;
// Ring allreduce messages use tag kRingTagBase + seq % kRingTagSpan: apart from the neighbour
// exchanges, and a rank that runs a different collective (consistency checks off) cannot take
// them for its own.
constexpr int kRingTagBase = 1024;
constexpr int kRingTagSpan = 1024;
// Rabenseifner allreduce messages: kHalvingTagBase + seq % kRingTagSpan.
constexpr int kHalvingTagBase = kRingTagBase + kRingTagSpan;
// The ring moves each chunk in segments of at most this many bytes: a segment is forwarded as
// soon as it is reduced, so the next rank starts before the whole chunk has arrived, and the
// receive buffer stays in cache while it is added.
constexpr std::size_t kRingSegmentBytes = std::size_t{1} << 20;
// Segments received ahead of the one being reduced.
constexpr std::size_t kRingWindow = 4;

// The ring takes 2(n-1) rounds moving 2(n-1)/n of the buffer; the transport's allreduce (Open
// MPI's in-place MPI_Iallreduce: a binomial tree) takes 2 log2(n) rounds moving the whole buffer
// in each. With a cost of a per round plus bytes/b, the ring is faster from
//   bytes > a*b * (n - 1 - log2 n) / (log2 n - (n - 1)/n),
// which is 0 for n = 2. a*b is what a round's latency is worth in bytes; 4 MiB fits the crossovers
// measured on shared memory with several ranks per core (docs/benchmarks.md).
constexpr double kRoundLatencyBytes = 4.0 * (1 << 20);
std::size_t model_ring_threshold(int n) {
  if (n <= 2) return 0;  // the ring then only competes with recursive doubling (see below)
  const double log_n = std::log2(static_cast<double>(n));
  const double extra_rounds = (n - 1) - log_n;
  const double volume_saved = log_n - static_cast<double>(n - 1) / n;
  return static_cast<std::size_t>(kRoundLatencyBytes * extra_rounds / volume_saved);
}

// The small-allreduce threshold when unset: halving-doubling (with its header lent from the
// caller's buffer) beat Rabenseifner's and the ring's pipelined steps up to 1 MiB at n = 2 and 4,
// but with a fold (n not a power of two) its two whole-buffer blocking steps lose from 256 KiB
// (docs/benchmarks.md).
constexpr std::size_t kSmallAllreducePowerOfTwo = std::size_t{1} << 20;
constexpr std::size_t kSmallAllreduceOtherwise = std::size_t{256} << 10;

int positive_mod(std::int64_t a, int n) {
  return static_cast<int>(((a % n) + n) % n);
}

// Elements [begin, begin + count) of chunk `c` when `total` elements are cut into n chunks whose
// sizes differ by at most one (the first total % n chunks hold the extra element).
struct Span {
  std::size_t begin = 0;
  std::size_t count = 0;
};
Span ring_chunk(std::size_t total, int n, int c) {
  const std::size_t base = total / n, extra = total % n, index = static_cast<std::size_t>(c);
  return {index * base + std::min(index, extra), base + (index < extra ? 1 : 0)};
}

// What the reduction that completes the sum multiplies by: 1/n for an average, else 1.
double completion_factor(ReduceOp op, int n) {
  return op == ReduceOp::kAverage ? 1.0 / n : 1.0;
}

// Largest power of two not above n (n >= 1).
int power_of_two_below(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

// Rabenseifner's layout (rabenseifner_allreduce, halving_doubling): the elements of blocks
// [lo, hi) when `count` elements are cut into p blocks, and the rank of virtual rank v after the
// fold of rem = n - p ranks.
Span block_range(std::size_t count, int p, int lo, int hi) {
  const std::size_t b = ring_chunk(count, p, lo).begin;
  return Span{b, ring_chunk(count, p, hi).begin - b};
}
int unfolded_rank(int v, int rem) {
  return v < rem ? 2 * v + 1 : v + rem;
}

// Folds a received collective message into `summary`: merges the header at its front (if
// `header_bytes` > 0) and marks the summary lost when the message was refused (too large), had
// another size than `expected` or no valid header.
void merge_received(CollectiveHeader& summary, const std::uint8_t* message, bool readable,
                    std::size_t got, std::size_t expected, std::size_t header_bytes) {
  if (header_bytes && readable && got >= header_bytes) {
    CollectiveHeader theirs;
    std::memcpy(&theirs, message, header_bytes);
    if (theirs.magic == CollectiveHeader{}.magic)
      summary.merge(theirs);
    else
      summary.lost = 1;
  }
  if (!readable || got != expected) summary.lost = 1;
}

std::string describe_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

const char* op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kNeighborAllreduce:
      return "neighbor_allreduce";
    case OpKind::kNeighborAllgather:
      return "neighbor_allgather";
    case OpKind::kPairGossip:
      return "pair_gossip";
    case OpKind::kAllreduce:
      return "allreduce";
    case OpKind::kBroadcast:
      return "broadcast";
    case OpKind::kAllgather:
      return "allgather";
    case OpKind::kBarrier:
      return "barrier";
  }
  return "unknown";
}

const char* allreduce_algorithm_name(AllreduceAlgorithm a) {
  switch (a) {
    case AllreduceAlgorithm::kRecursiveDoubling:
      return "recursive-doubling";
    case AllreduceAlgorithm::kTransport:
      return "transport";
    case AllreduceAlgorithm::kRing:
      return "ring";
    case AllreduceAlgorithm::kRabenseifner:
      return "rabenseifner";
    case AllreduceAlgorithm::kHalvingDoubling:
      return "halving-doubling";
  }
  return "unknown";
}

std::string collective_name(const CollectiveFields& f) {
  return fmt::format("{} #{}", op_kind_name(static_cast<OpKind>(f.kind)), f.seq);
}

CollectiveHeader::CollectiveHeader(const CollectiveFields& f) {
  for (std::size_t i = 0; i < CollectiveFields::kSize; ++i) {
    max[i] = f.data()[i];
    neg_min[i] = -f.data()[i];
  }
}

void CollectiveHeader::merge(const CollectiveHeader& other) {
  for (std::size_t i = 0; i < CollectiveFields::kSize; ++i) {
    max[i] = std::max(max[i], other.max[i]);
    neg_min[i] = std::max(neg_min[i], other.neg_min[i]);
  }
  lost = std::max(lost, other.lost);
}

bool CollectiveHeader::agree() const {
  if (lost) return false;
  for (std::size_t i = 0; i < CollectiveFields::kSize; ++i)
    if (max[i] != -neg_min[i]) return false;
  return true;
}

// ---------------------------------------------------------------- OpState

void OpState::finish(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
    error = std::move(e);
    work = nullptr;  // release captured buffers/plans early
  }
  cv.notify_all();
}

void OpState::wait() {
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return done; });
  if (error) std::rethrow_exception(error);
}

bool OpState::poll() {
  std::lock_guard<std::mutex> lock(mutex);
  if (done && error) std::rethrow_exception(error);
  return done;
}

// ---------------------------------------------------------------- construction

topology::Graph default_exponential_graph(int n) {
  topology::Graph g(n, "exponential");
  for (int i = 0; i < n; ++i)
    for (int hop = 1; hop < n; hop *= 2) {
      const int dst = (i + hop) % n;
      if (dst != i) g.set_edge(i, dst, 1.0);
    }
  for (int i = 0; i < n; ++i) {
    const double w = 1.0 / (g.in_degree(i) + 1);
    g.set_self_weight(i, w);
    for (int src : g.in_ranks(i)) g.set_edge(src, i, w);
  }
  return g;
}

Engine::Engine(std::unique_ptr<comm::Transport> transport, const ContextOptions& options)
    : transport_(std::move(transport)), options_(options) {
  if (!transport_) throw InvalidArgument("Context needs a transport");
  rank_ = transport_->rank();
  size_ = transport_->size();
  world_.transport = transport_.get();
  if (options_.timeout.count() <= 0)
    throw InvalidArgument(fmt::format("rank {}: timeout must be positive", rank_));
  // A bad DECENT_KERNELS fails here, naming the rank, rather than inside the first operation.
  try {
    native_kernels();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(fmt::format("rank {}: {}", rank_, e.what()));
  }

  // Machine layout: an explicit ranks-per-machine, or ranks grouped by host name.
  if (options_.ranks_per_machine > 0) {
    const int k = options_.ranks_per_machine;
    machine_rank_ = rank_ / k;
    local_rank_ = rank_ % k;
    machine_size_ = (size_ + k - 1) / k;
    local_size_ = std::min(k, size_ - machine_rank_ * k);
  } else if (size_ > 1) {
    constexpr std::size_t kHostBytes = 256;
    std::string host = transport_->host();
    host.resize(kHostBytes, '\0');
    std::vector<char> all(kHostBytes * size_);
    auto req = transport_->iallgather(host.data(), kHostBytes, all.data());
    if (!req->wait_until(deadline()))
      throw TimeoutError(
          fmt::format("rank {}: timed out exchanging host names at start-up", rank_));
    std::vector<std::string> hosts;
    std::vector<int> machine_of(size_);
    std::vector<int> count;
    for (int r = 0; r < size_; ++r) {
      std::string h(all.data() + r * kHostBytes, kHostBytes);
      auto it = std::find(hosts.begin(), hosts.end(), h);
      if (it == hosts.end()) {
        hosts.push_back(h);
        count.push_back(0);
        it = hosts.end() - 1;
      }
      machine_of[r] = static_cast<int>(it - hosts.begin());
      if (r == rank_) local_rank_ = count[machine_of[r]];
      ++count[machine_of[r]];
    }
    machine_rank_ = machine_of[rank_];
    machine_size_ = static_cast<int>(hosts.size());
    local_size_ = count[machine_rank_];
  }

  // The largest message any rank sends with kCollectiveTag: recursive doubling and
  // halving-doubling run below the small-allreduce threshold (header + payload); checks,
  // barriers and Rabenseifner's headers are one header. The maximum over the ranks (whose
  // thresholds should agree, but a misconfigured rank must not overrun a receive) bounds every
  // message of that tag, so receives into a buffer of that size can be posted early. Above
  // kMaxCollectiveRoom the buffer would cost more memory than the early receive saves time.
  constexpr std::size_t kMaxCollectiveRoom = (std::size_t{1} << 20) + sizeof(CollectiveHeader);
  std::int64_t room =
      static_cast<std::int64_t>(std::min(options_.small_allreduce_threshold_bytes.value_or(std::max(
                                             kSmallAllreducePowerOfTwo, kSmallAllreduceOtherwise)),
                                         kMaxCollectiveRoom) +
                                sizeof(CollectiveHeader));
  if (size_ > 1) {
    auto req = transport_->iallreduce(&room, 1, DType::kInt64, ReduceOp::kMax);
    if (!req->wait_until(deadline()))
      throw TimeoutError(
          fmt::format("rank {}: timed out agreeing on message sizes at start-up", rank_));
  }
  collective_room_ =
      static_cast<std::size_t>(room) <= kMaxCollectiveRoom ? static_cast<std::size_t>(room) : 0;

  schedule_ = std::make_shared<topology::StaticSchedule>(default_exponential_graph(size_));
  machine_schedule_ =
      std::make_shared<topology::StaticSchedule>(default_exponential_graph(machine_size_));
  timeline_.open(options_.timeline_prefix.empty()
                     ? std::string()
                     : Timeline::claim_path(options_.timeline_prefix, rank_),
                 rank_);
  worker_ = std::thread([this] { worker_loop(); });
}

Engine::~Engine() {
  {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    stopping_ = true;
    queue_cv_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
  timeline_.close();
}

std::string Engine::where() const {
  return fmt::format("rank {}", rank_);
}

// ---------------------------------------------------------------- scheduling

std::shared_ptr<OpState> Engine::submit(std::string name, std::function<void()> work,
                                        bool blocking) {
  auto op = std::make_shared<OpState>();
  op->name = std::move(name);
  op->work = std::move(work);
  op->submitted = Clock::now();
  std::unique_lock<std::mutex> lock(queue_mutex_);
  if (stopping_) throw CommError(fmt::format("{}: {} after shutdown", where(), op->name));
  if (!failure_.empty())
    throw CommError(
        fmt::format("{}: {} refused: the context failed earlier: {}", where(), op->name, failure_));
  if (blocking && queue_.empty() && !busy_) {
    // Idle: run on the caller's thread and skip the hand-off to the worker.
    busy_ = true;
    lock.unlock();
    execute(op);
    lock.lock();
    busy_ = false;
    // Wake the worker only when it has something to do: a needless wake-up is a futex call and
    // a context switch that, on a loaded core, delays this thread by more than the operation.
    if (!queue_.empty() || stopping_) queue_cv_.notify_all();
    return op;
  }
  queue_.push_back(op);
  queue_cv_.notify_all();
  return op;
}

void Engine::worker_loop() {
  std::unique_lock<std::mutex> lock(queue_mutex_);
  while (true) {
    queue_cv_.wait(lock, [&] { return (!queue_.empty() && !busy_) || (stopping_ && !busy_); });
    if (queue_.empty()) {
      if (stopping_) return;
      continue;
    }
    auto op = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    execute(op);
    lock.lock();
    busy_ = false;
  }
}

void Engine::execute(const std::shared_ptr<OpState>& op) {
  const auto start = Clock::now();
  timeline_.record(op->name, "queue", op->submitted, start);
  std::string failure;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    failure = failure_;
  }
  if (!failure.empty()) {
    op->finish(std::make_exception_ptr(CommError(fmt::format(
        "{}: {} refused: the context failed earlier: {}", where(), op->name, failure))));
    return;
  }
  std::exception_ptr error;
  try {
    op->work();
  } catch (const InvalidArgument&) {
    error = std::current_exception();  // local misuse: the streams stay consistent
  } catch (...) {
    error = std::current_exception();
    std::lock_guard<std::mutex> lock(queue_mutex_);
    failure_ = describe_error(error);
  }
  ++operations_;
  op->finish(error);
}

// ---------------------------------------------------------------- topology

void Engine::set_topology(topology::SchedulePtr s) {
  if (!s) throw InvalidArgument(fmt::format("{}: set_topology: null schedule", where()));
  if (s->size() != size_)
    throw InvalidArgument(
        fmt::format("{}: set_topology: topology '{}' has {} nodes but the job has {} ranks",
                    where(), s->name(), s->size(), size_));
  std::lock_guard<std::mutex> lock(topo_mutex_);
  schedule_ = std::move(s);
}

topology::SchedulePtr Engine::topology() const {
  std::lock_guard<std::mutex> lock(topo_mutex_);
  return schedule_;
}

void Engine::set_machine_topology(topology::SchedulePtr s) {
  if (!s) throw InvalidArgument(fmt::format("{}: set_machine_topology: null schedule", where()));
  if (s->size() != machine_size_)
    throw InvalidArgument(fmt::format(
        "{}: set_machine_topology: topology '{}' has {} nodes but the job has {} machines", where(),
        s->name(), s->size(), machine_size_));
  std::lock_guard<std::mutex> lock(topo_mutex_);
  machine_schedule_ = std::move(s);
}

topology::SchedulePtr Engine::machine_topology() const {
  std::lock_guard<std::mutex> lock(topo_mutex_);
  return machine_schedule_;
}

NeighborPlan Engine::resolve_plan(const topology::Schedule& schedule, int rank, int size,
                                  const NeighborAllreduceOptions& opts, const char* op) {
  NeighborPlan plan;
  const bool uses_schedule = !(opts.src_weights && opts.dst_weights);
  plan.step = opts.step ? *opts.step : (uses_schedule ? step_.fetch_add(1) : step_.load());
  topology::StepPlan base;
  if (uses_schedule) base = schedule.plan(plan.step, rank);

  auto check_weight = [&](double w, const std::string& what) {
    if (!is_finite(w))
      throw InvalidArgument(fmt::format("rank {}: {}: {} is not finite ({})", rank_, op, what, w));
  };
  auto check_peer = [&](int peer, const char* role) {
    if (peer < 0 || peer >= size)
      throw InvalidArgument(fmt::format("rank {}: {}: {} rank {} is out of range [0, {})", rank_,
                                        op, role, peer, size));
    if (peer == rank)
      throw InvalidArgument(fmt::format(
          "rank {}: {}: {} names this rank itself; use self_weight instead", rank_, op, role));
  };

  if (opts.src_weights) {
    if (!opts.self_weight)
      throw InvalidArgument(fmt::format(
          "rank {}: {}: self_weight must be given together with src_weights", rank_, op));
    for (const auto& [src, w] : *opts.src_weights) {
      check_peer(src, "src_weights");
      check_weight(w, fmt::format("weight for source rank {}", src));
      if (!opts.dst_weights) {
        // Static mode: peers send along the topology, so a source must be an in-neighbour.
        const bool is_in =
            std::any_of(base.recv.begin(), base.recv.end(),
                        [&](const topology::WeightedPeer& p) { return p.rank == src; });
        if (!is_in)
          throw InvalidArgument(fmt::format(
              "rank {}: {}: src_weights names rank {}, which is not an in-neighbour in topology "
              "'{}' at step {} (in-neighbours: [{}]); pass dst_weights for dynamic sends",
              rank_, op, src, schedule.name(), plan.step,
              fmt::join(
                  [&] {
                    std::vector<int> r;
                    for (auto& p : base.recv) r.push_back(p.rank);
                    return r;
                  }(),
                  ", ")));
      }
      plan.recv.push_back({src, w});
    }
  } else {
    plan.recv = base.recv;
  }
  plan.self_weight = opts.self_weight ? *opts.self_weight : base.self_weight;
  check_weight(plan.self_weight, "self_weight");

  if (opts.dst_weights) {
    for (const auto& [dst, w] : *opts.dst_weights) {
      check_peer(dst, "dst_weights");
      check_weight(w, fmt::format("weight for destination rank {}", dst));
      plan.send.push_back({dst, w});
    }
  } else {
    for (const auto& p : base.send) plan.send.push_back({p.rank, 1.0});
  }
  return plan;
}

// ---------------------------------------------------------------- waiting

void Engine::wait_all(
    std::vector<comm::RequestPtr>& reqs, const std::function<void(std::size_t)>& on_complete,
    const std::function<std::string(const std::vector<std::size_t>&)>& describe_missing,
    const std::string& op) {
  const auto limit = deadline();
  std::vector<bool> done(reqs.size(), false);
  std::size_t remaining = reqs.size();
  while (remaining > 0) {
    bool progressed = false;
    std::size_t first_pending = reqs.size();
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      if (done[i]) continue;
      if (reqs[i]->test()) {
        done[i] = true;
        --remaining;
        progressed = true;
        if (on_complete) on_complete(i);
      } else if (first_pending == reqs.size()) {
        first_pending = i;
      }
    }
    if (remaining == 0) break;
    if (progressed) continue;
    if (Clock::now() >= limit) {
      std::vector<std::size_t> missing;
      for (std::size_t i = 0; i < reqs.size(); ++i)
        if (!done[i]) missing.push_back(i);
      throw TimeoutError(fmt::format("rank {}: {} timed out after {} ms; {}", rank_, op,
                                     options_.timeout.count(), describe_missing(missing)));
    }
    // Block on one pending request for a short while (the local backend sleeps on a condition
    // variable; MPI polls with backoff), then sweep the others again.
    const auto slice = std::min(limit, Clock::now() + std::chrono::milliseconds(2));
    if (reqs[first_pending]->wait_until(slice)) {
      done[first_pending] = true;
      --remaining;
      if (on_complete) on_complete(first_pending);
    }
  }
}

std::vector<std::uint8_t>& Engine::scratch(std::size_t slot, std::size_t bytes) {
  if (scratch_.size() <= slot) scratch_.resize(slot + 1);
  if (scratch_[slot].size() < bytes) scratch_[slot].resize(bytes);
  return scratch_[slot];
}

// ---------------------------------------------------------------- neighbour exchange

void Engine::exchange(Channel& ch, OpKind kind, std::int64_t seq, DType dtype,
                      const std::vector<Outgoing>& sends, const std::vector<Incoming>& recvs,
                      bool with_headers) {
  comm::Transport& t = *ch.transport;
  const std::size_t esize = dtype_size(dtype);
  const std::string op = fmt::format("{} #{}", op_kind_name(kind), seq);
  const std::size_t nr = recvs.size(), ns = sends.size();
  constexpr std::size_t kHeaderBytes = sizeof(MessageHeader);
  // Whether a message of `payload` bytes carries its header inline. Sender and receiver decide
  // from the payload size alone, so they agree whenever their counts do; when they do not, the
  // receiver still reports the mismatch (see size_mismatch).
  auto inline_header = [&](std::size_t payload) {
    return with_headers && payload <= kInlineHeaderMaxBytes;
  };

  MessageHeader out_header;
  out_header.kind = static_cast<std::uint8_t>(kind);
  out_header.dtype = static_cast<std::uint8_t>(dtype);
  out_header.seq = seq;
  std::vector<MessageHeader> in_headers(nr);
  std::vector<bool> header_checked(nr, false);
  // Staging buffers of the inline messages: sends first, then receives.
  if (inline_stage_.size() < ns + nr) inline_stage_.resize(ns + nr);
  auto send_stage = [&](std::size_t i) -> std::vector<std::uint8_t>& { return inline_stage_[i]; };
  auto recv_stage = [&](std::size_t i) -> std::vector<std::uint8_t>& {
    return inline_stage_[ns + i];
  };

  auto validate_header = [&](std::size_t i) {
    const MessageHeader& h = in_headers[i];
    const int src = recvs[i].peer;
    if (h.magic != MessageHeader{}.magic)
      throw MismatchError(
          fmt::format("rank {}: {}: corrupt message header from rank {}", rank_, op, src));
    if (h.kind != static_cast<std::uint8_t>(kind) || h.seq != seq)
      throw MismatchError(fmt::format(
          "rank {}: {}: rank {} sent a message for {} #{} instead; the ranks disagree on the "
          "sequence of operations or on who sends to whom (send/receive sets do not match)",
          rank_, op, src, op_kind_name(static_cast<OpKind>(h.kind)), h.seq));
    if (h.dtype != static_cast<std::uint8_t>(dtype))
      throw MismatchError(
          fmt::format("rank {}: {}: dtype mismatch: rank {} sent {}, this rank has {}", rank_, op,
                      src, dtype_name(static_cast<DType>(h.dtype)), dtype_name(dtype)));
    if (h.count != recvs[i].count)
      throw MismatchError(fmt::format(
          "rank {}: {}: element count mismatch: rank {} sent {} elements, this rank expects {}",
          rank_, op, src, h.count, recvs[i].count));
    header_checked[i] = true;
  };
  // A received message of `got` bytes at `message` (for receive i) that is not the size this
  // rank expects: explained by the header it starts with when it has one (the sender decided
  // from its own count whether the header goes inline), else by the sizes.
  auto size_mismatch = [&](std::size_t i, const std::uint8_t* message, std::size_t got,
                           std::size_t expected) {
    if (with_headers && got >= kHeaderBytes) {
      std::memcpy(&in_headers[i], message, kHeaderBytes);
      if (in_headers[i].magic == MessageHeader{}.magic) validate_header(i);
    }
    return MismatchError(
        fmt::format("rank {}: {}: element count mismatch: rank {} sent {} bytes, this rank expects "
                    "{} ({} {} elements{})",
                    rank_, op, recvs[i].peer, got, expected, recvs[i].count, dtype_name(dtype),
                    expected > recvs[i].count * esize ? " behind a header" : ""));
  };
  auto too_large = [&](std::size_t i, const char* detail) {
    return MismatchError(fmt::format(
        "rank {}: {}: element count mismatch: rank {} sent more than the {} {} elements this rank "
        "expects{}{}",
        rank_, op, recvs[i].peer, recvs[i].count, dtype_name(dtype), *detail ? ": " : "", detail));
  };
  // An inline message has arrived in recv_stage(i): check it, then move its payload.
  auto accept_inline = [&](std::size_t i, std::size_t got) {
    const std::size_t payload = recvs[i].count * esize;
    const std::uint8_t* message = recv_stage(i).data();
    if (got != kHeaderBytes + payload) throw size_mismatch(i, message, got, kHeaderBytes + payload);
    std::memcpy(&in_headers[i], message, kHeaderBytes);
    validate_header(i);
    if (payload) std::memcpy(recvs[i].data, message + kHeaderBytes, payload);
  };

  for (std::size_t i = 0; i < ns; ++i) {
    const std::size_t payload = sends[i].count * esize;
    if (!inline_header(payload)) continue;
    auto& stage = send_stage(i);
    if (stage.size() < kHeaderBytes + payload) stage.resize(kHeaderBytes + payload);
    MessageHeader h = out_header;
    h.count = sends[i].count;
    std::memcpy(stage.data(), &h, kHeaderBytes);
    if (payload) std::memcpy(stage.data() + kHeaderBytes, sends[i].data, payload);
  }
  for (std::size_t i = 0; i < nr; ++i) {
    const std::size_t payload = recvs[i].count * esize;
    if (!inline_header(payload)) continue;
    auto& stage = recv_stage(i);
    if (stage.size() < kHeaderBytes + payload) stage.resize(kHeaderBytes + payload);
  }
  std::uint64_t sent_bytes = 0;
  for (const auto& s : sends) sent_bytes += s.count * esize + (with_headers ? kHeaderBytes : 0);
  std::uint64_t received = 0;
  for (const auto& r : recvs) received += r.count * esize;

  // One small message each way: one blocking exchange, the path of the small collectives (the
  // MPI transport sends 4033-8066 bytes as two eager pieces instead of one rendezvous). The
  // messages are the same as on the general path below, so peers may take either.
  const bool one_small_each_way = ns == 1 && nr == 1 &&
                                  sends[0].count * esize <= kInlineHeaderMaxBytes &&
                                  recvs[0].count * esize <= kInlineHeaderMaxBytes;
  if (one_small_each_way) {
    const std::size_t header = with_headers ? kHeaderBytes : 0;
    const std::size_t out_bytes = header + sends[0].count * esize;
    const std::size_t in_bytes = header + recvs[0].count * esize;
    bytes_sent_ += sent_bytes;
    ++messages_sent_;
    const comm::ExchangeStatus status =
        t.exchange(with_headers ? send_stage(0).data() : sends[0].data, out_bytes, sends[0].peer,
                   with_headers ? recv_stage(0).data() : recvs[0].data, in_bytes, recvs[0].peer,
                   kPayloadTag, deadline());
    if (status.state == comm::ExchangeStatus::State::kReceiveTimedOut)
      throw TimeoutError(fmt::format(
          "rank {}: {} timed out after {} ms; still waiting for messages from ranks [{}]", rank_,
          op, options_.timeout.count(), recvs[0].peer));
    if (status.state == comm::ExchangeStatus::State::kSendTimedOut)
      throw TimeoutError(
          fmt::format("rank {}: {} timed out after {} ms; still waiting for sends to ranks [{}] to "
                      "complete",
                      rank_, op, options_.timeout.count(), sends[0].peer));
    if (status.too_large) throw too_large(0, "");
    if (with_headers)
      accept_inline(0, status.received_bytes);
    else if (status.received_bytes != in_bytes)
      throw size_mismatch(0, static_cast<const std::uint8_t*>(recvs[0].data), status.received_bytes,
                          in_bytes);
    bytes_received_ += received;
    return;
  }

  // What each request is, for completion handling and for naming the missing ranks.
  enum class Role { kRecvHeader, kRecvPayload, kRecvInline, kSend };
  struct Entry {
    Role role;
    std::size_t index;  // into recvs or sends
  };
  std::vector<comm::RequestPtr> reqs;
  std::vector<Entry> entries;
  reqs.reserve((nr + ns) * 2);
  entries.reserve((nr + ns) * 2);

  // Sends start before the receives: a receive is matched only once its message is there, and
  // matching a large one copies it at once (Open MPI's single-copy rendezvous over shared memory),
  // so a rank that received first would hold back its own sends while it copies and leave its
  // peers idle. The receives still come first in `reqs`: wait_all tests them first, and a
  // receive is matched only when it is tested.
  std::vector<comm::RequestPtr> send_reqs;
  std::vector<Entry> send_entries;
  std::vector<MessageHeader> out_headers(ns, out_header);
  for (std::size_t i = 0; i < ns; ++i) {
    const std::size_t payload = sends[i].count * esize;
    if (inline_header(payload)) {
      send_reqs.push_back(
          t.isend(send_stage(i).data(), kHeaderBytes + payload, sends[i].peer, kPayloadTag));
      send_entries.push_back({Role::kSend, i});
      ++messages_sent_;
      continue;
    }
    if (with_headers) {
      out_headers[i].count = sends[i].count;
      send_reqs.push_back(t.isend(&out_headers[i], kHeaderBytes, sends[i].peer, kHeaderTag));
      send_entries.push_back({Role::kSend, i});
      ++messages_sent_;
      ++header_messages_;
    }
    send_reqs.push_back(t.isend(sends[i].data, payload, sends[i].peer, kPayloadTag));
    send_entries.push_back({Role::kSend, i});
    ++messages_sent_;
  }
  bytes_sent_ += sent_bytes;
  // Payload receives before the separate headers: a payload that arrives in the wrong size is
  // reported at once, even when its sender put the header inline and no separate one will come.
  std::vector<comm::RequestPtr> header_reqs;
  std::vector<Entry> header_entries;
  for (std::size_t i = 0; i < nr; ++i) {
    const std::size_t payload = recvs[i].count * esize;
    if (inline_header(payload)) {
      reqs.push_back(
          t.irecv(recv_stage(i).data(), kHeaderBytes + payload, recvs[i].peer, kPayloadTag));
      entries.push_back({Role::kRecvInline, i});
      continue;
    }
    if (with_headers) {
      header_reqs.push_back(t.irecv(&in_headers[i], kHeaderBytes, recvs[i].peer, kHeaderTag));
      header_entries.push_back({Role::kRecvHeader, i});
    }
    reqs.push_back(t.irecv(recvs[i].data, payload, recvs[i].peer, kPayloadTag));
    entries.push_back({Role::kRecvPayload, i});
  }
  for (std::size_t i = 0; i < header_reqs.size(); ++i) {
    reqs.push_back(std::move(header_reqs[i]));
    entries.push_back(header_entries[i]);
  }
  for (std::size_t i = 0; i < send_reqs.size(); ++i) {
    reqs.push_back(std::move(send_reqs[i]));
    entries.push_back(send_entries[i]);
  }

  auto on_complete = [&](std::size_t idx) {
    const Entry e = entries[idx];
    switch (e.role) {
      case Role::kRecvHeader:
        validate_header(e.index);
        break;
      case Role::kRecvInline:
        accept_inline(e.index, reqs[idx]->received_bytes());
        break;
      case Role::kRecvPayload: {
        // A shorter message: the sender's count put its header inline, or (without headers)
        // the ranks disagree on the count or dtype.
        const std::size_t got = reqs[idx]->received_bytes();
        const std::size_t expected = recvs[e.index].count * esize;
        if (got != expected)
          throw size_mismatch(e.index, static_cast<const std::uint8_t*>(recvs[e.index].data), got,
                              expected);
        break;
      }
      case Role::kSend:
        break;
    }
  };
  auto describe = [&](const std::vector<std::size_t>& missing) {
    std::vector<int> from, to;
    for (std::size_t idx : missing) {
      const Entry e = entries[idx];
      if (e.role == Role::kSend)
        to.push_back(sends[e.index].peer);
      else
        from.push_back(recvs[e.index].peer);
    }
    for (auto* v : {&from, &to}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    std::string msg =
        fmt::format("still waiting for messages from ranks [{}]", fmt::join(from, ", "));
    if (!to.empty())
      msg += fmt::format(" and for sends to ranks [{}] to complete", fmt::join(to, ", "));
    return msg;
  };
  try {
    wait_all(reqs, on_complete, describe, op);
  } catch (const MismatchError&) {
    // A message larger than its receive fails in the transport. Prefer the header's explanation
    // where a separate header has arrived; else name the rank and the count this rank expects.
    // Requests that fail otherwise (a peer that has given up) explain nothing: the mismatch
    // stands.
    for (std::size_t idx = 0; idx < reqs.size(); ++idx) {
      const Entry e = entries[idx];
      if (e.role != Role::kRecvHeader || header_checked[e.index]) continue;
      bool ready = false;
      try {
        ready = reqs[idx]->test();
      } catch (const Error&) {
      }
      if (ready) validate_header(e.index);
    }
    for (std::size_t idx = 0; idx < reqs.size(); ++idx) {
      const Entry e = entries[idx];
      if (e.role != Role::kRecvInline && e.role != Role::kRecvPayload) continue;
      try {
        reqs[idx]->test();
      } catch (const MismatchError& transport_error) {
        throw too_large(e.index, transport_error.what());
      } catch (const Error&) {
      }
    }
    throw;
  }
  bytes_received_ += received;
}

void Engine::run_neighbor_allreduce(Channel& ch, const NeighborPlan& plan, ConstBuffer in,
                                    Buffer out) {
  const std::int64_t seq = ch.collective_seq++;
  const auto t0 = Clock::now();
  const std::size_t bytes = in.bytes();
  std::vector<Outgoing> sends;
  std::size_t slot = 0;
  for (const auto& p : plan.send) {
    if (p.weight == 1.0) {
      sends.push_back({p.rank, in.data, in.count});
    } else {
      auto& buf = scratch(slot++, bytes);
      scaled_copy(in.dtype, in.count, p.weight, in.data, buf.data());
      sends.push_back({p.rank, buf.data(), in.count});
    }
  }
  std::vector<Incoming> recvs;
  for (const auto& p : plan.recv) {
    auto& buf = scratch(slot++, bytes);
    recvs.push_back({p.rank, buf.data(), in.count});
  }
  exchange(ch, OpKind::kNeighborAllreduce, seq, in.dtype, sends, recvs, options_.check_consistency);
  const auto t1 = Clock::now();
  std::vector<WeightedSource> sources;
  sources.push_back({in.data, plan.self_weight});
  for (std::size_t i = 0; i < recvs.size(); ++i)
    sources.push_back({recvs[i].data, plan.recv[i].weight});
  weighted_sum(in.dtype, in.count, sources, out.data);
  const auto t2 = Clock::now();
  const std::string name = fmt::format("neighbor_allreduce#{}", seq);
  timeline_.record(name, "communicate", t0, t1, bytes * sends.size());
  timeline_.record(name, "reduce", t1, t2);
}

GatherResult Engine::run_neighbor_allgather(Channel& ch, const NeighborPlan& plan, ConstBuffer in) {
  const std::int64_t seq = ch.collective_seq++;
  comm::Transport& t = *ch.transport;
  const std::string op = fmt::format("neighbor_allgather #{}", seq);
  const auto t0 = Clock::now();
  // Phase 1: headers carry each sender's count; phase 2: payloads sized from them.
  std::vector<MessageHeader> in_headers(plan.recv.size());
  MessageHeader out_header;
  out_header.kind = static_cast<std::uint8_t>(OpKind::kNeighborAllgather);
  out_header.dtype = static_cast<std::uint8_t>(in.dtype);
  out_header.seq = seq;
  out_header.count = in.count;
  std::vector<comm::RequestPtr> reqs;
  for (std::size_t i = 0; i < plan.recv.size(); ++i)
    reqs.push_back(t.irecv(&in_headers[i], sizeof(MessageHeader), plan.recv[i].rank, kHeaderTag));
  for (const auto& p : plan.send)
    reqs.push_back(t.isend(&out_header, sizeof(MessageHeader), p.rank, kHeaderTag));
  for (const auto& p : plan.send) reqs.push_back(t.isend(in.data, in.bytes(), p.rank, kPayloadTag));
  bytes_sent_ += plan.send.size() * (in.bytes() + sizeof(MessageHeader));
  messages_sent_ += plan.send.size() * 2;

  const std::size_t nr = plan.recv.size();
  auto describe = [&](const std::vector<std::size_t>& missing) {
    std::vector<int> from, to;
    for (std::size_t idx : missing) {
      if (idx < nr)
        from.push_back(plan.recv[idx].rank);
      else
        to.push_back(plan.send[(idx - nr) % plan.send.size()].rank);
    }
    std::sort(to.begin(), to.end());
    to.erase(std::unique(to.begin(), to.end()), to.end());
    return fmt::format("still waiting for messages from ranks [{}] and for sends to ranks [{}]",
                       fmt::join(from, ", "), fmt::join(to, ", "));
  };
  std::vector<comm::RequestPtr> header_reqs;
  for (std::size_t i = 0; i < nr; ++i) header_reqs.push_back(std::move(reqs[i]));
  std::vector<comm::RequestPtr> send_reqs;
  for (std::size_t i = nr; i < reqs.size(); ++i) send_reqs.push_back(std::move(reqs[i]));
  wait_all(header_reqs, nullptr, describe, op);

  GatherResult result;
  result.dtype = in.dtype;
  std::size_t total = 0;
  for (std::size_t i = 0; i < nr; ++i) {
    const auto& h = in_headers[i];
    const int src = plan.recv[i].rank;
    if (h.magic != MessageHeader{}.magic || h.kind != out_header.kind || h.seq != seq)
      throw MismatchError(fmt::format(
          "rank {}: {}: rank {} sent a message for {} #{} instead; the ranks disagree on the "
          "sequence of operations or on who sends to whom",
          rank_, op, src, op_kind_name(static_cast<OpKind>(h.kind)), h.seq));
    if (h.dtype != out_header.dtype)
      throw MismatchError(
          fmt::format("rank {}: {}: dtype mismatch: rank {} sent {}, this rank has {}", rank_, op,
                      src, dtype_name(static_cast<DType>(h.dtype)), dtype_name(in.dtype)));
    result.ranks.push_back(src);
    result.counts.push_back(h.count);
    total += h.count;
  }
  const std::size_t esize = dtype_size(in.dtype);
  result.data.resize(total * esize);
  std::vector<comm::RequestPtr> payload_reqs;
  std::size_t offset = 0;
  for (std::size_t i = 0; i < nr; ++i) {
    payload_reqs.push_back(t.irecv(result.data.data() + offset, result.counts[i] * esize,
                                   plan.recv[i].rank, kPayloadTag));
    offset += result.counts[i] * esize;
  }
  for (auto& r : send_reqs) payload_reqs.push_back(std::move(r));
  wait_all(payload_reqs, nullptr, describe, op);
  bytes_received_ += result.data.size();
  timeline_.record(fmt::format("neighbor_allgather#{}", seq), "communicate", t0, Clock::now(),
                   in.bytes() * plan.send.size());
  return result;
}

void Engine::run_pair_gossip(Channel& ch, Buffer inout, int peer, double self_weight) {
  const std::int64_t seq = ch.pair_seq[peer]++;
  const auto t0 = Clock::now();
  auto& buf = scratch(0, inout.bytes());
  exchange(ch, OpKind::kPairGossip, seq, inout.dtype, {{peer, inout.data, inout.count}},
           {{peer, buf.data(), inout.count}}, options_.check_consistency);
  const auto t1 = Clock::now();
  weighted_sum(inout.dtype, inout.count,
               {{inout.data, self_weight}, {buf.data(), 1.0 - self_weight}}, inout.data);
  timeline_.record(fmt::format("pair_gossip#{}", seq), "communicate", t0, t1, inout.bytes());
  timeline_.record(fmt::format("pair_gossip#{}", seq), "reduce", t1, Clock::now());
}

// ---------------------------------------------------------------- collectives

AllreduceAlgorithm Engine::allreduce_algorithm(std::size_t bytes, int n) const {
  const std::size_t small = options_.small_allreduce_threshold_bytes.value_or(
      (n & (n - 1)) == 0 ? kSmallAllreducePowerOfTwo : kSmallAllreduceOtherwise);
  // Unset, the ring threshold is the model's, but never below the recursive-doubling range
  // (at n = 2 the model would send every size through the ring).
  const std::size_t ring =
      options_.ring_allreduce_threshold_bytes.value_or(std::max(model_ring_threshold(n), small));
  if (bytes >= ring) return AllreduceAlgorithm::kRing;
  if (bytes < small)
    return bytes >= options_.halving_allreduce_threshold_bytes
               ? AllreduceAlgorithm::kHalvingDoubling
               : AllreduceAlgorithm::kRecursiveDoubling;
  if (bytes >= options_.rabenseifner_allreduce_threshold_bytes.value_or(small))
    return AllreduceAlgorithm::kRabenseifner;
  return AllreduceAlgorithm::kTransport;
}

// Recursive doubling with the standard fold. With p the largest power of two <= n and
// rem = n - p: ranks 2i < 2 rem send their data to 2i + 1 and wait; the p remaining ranks
// (virtual rank v = i for 2i + 1, r - rem for r >= 2 rem) exchange with v ^ 2^k for
// k = 0 .. log2(p) - 1, both sides reducing the pair's values in the same way (so every rank
// ends with bit-identical elements); then 2i + 1 sends the result back to 2i. One message per
// step, log2(p) steps (+2 with the fold), each moving the whole buffer.
//
// Checked, each message is [CollectiveHeader][payload]: the receiver merges the header into its
// summary, so after the last step every rank's summary covers every rank's fields (or says that
// a message was lost). Receives hold exactly header + this rank's payload: a larger message is
// refused by the transport, a smaller one is seen in the received byte count, and either marks
// the summary `lost` without touching the data; the steps go on regardless, so every rank
// finishes with the same verdict and none waits for a message that will not come. The payload
// is reduced in a scratch copy and copied back only when all ranks agree.
CollectiveHeader Engine::recursive_doubling(Channel& ch, const CollectiveFields& fields,
                                            Buffer data, ReduceOp op, bool checked, double factor) {
  CollectiveHeader summary = checked ? CollectiveHeader(fields) : CollectiveHeader();
  const int n = ch.size(), r = ch.rank();
  if (n == 1) return summary;
  comm::Transport& t = *ch.transport;
  const std::size_t header_bytes = checked ? sizeof(CollectiveHeader) : 0;
  const std::size_t payload_bytes = data.bytes();
  const std::size_t message_bytes = header_bytes + payload_bytes;
  // The higher slot first, so that scratch_ grows once.
  std::uint8_t* work = static_cast<std::uint8_t*>(data.data);
  if (checked || work == nullptr) {
    work = scratch(1, std::max<std::size_t>(message_bytes, 1)).data();
    if (payload_bytes) std::memcpy(work + header_bytes, data.data, payload_bytes);
  }
  // Sized for any message of the collective tag, so that the transport may post the receive
  // before the message arrives (see collective_room_).
  const std::size_t room = collective_room_ >= message_bytes ? collective_room_ : 0;
  std::uint8_t* incoming = scratch(0, std::max<std::size_t>({message_bytes, room, 1})).data();
  const auto limit = deadline();

  const int p = power_of_two_below(n), rem = n - p;
  enum class Use { kNone, kReduce, kReplace };
  int step = 0;
  // One step with `peer`: send the working message (if `send`), receive one (if `use` is not
  // kNone) and fold it in.
  bool result_in_place = false;  // the caller's buffer already holds the result
  // `completes` marks the reduction that completes the sum, which also applies `factor`.
  auto exchange_with = [&](int peer, bool send, Use use, bool final_step = false,
                           bool completes = false) {
    const bool receive = use != Use::kNone;
    if (send) {
      if (checked) std::memcpy(work, &summary, header_bytes);
      bytes_sent_ += message_bytes;
      ++messages_sent_;
    }
    const comm::ExchangeStatus status =
        t.exchange(work, message_bytes, send ? peer : -1, incoming, message_bytes,
                   receive ? peer : -1, kCollectiveTag, limit, room);
    if (status.state != comm::ExchangeStatus::State::kDone)
      throw TimeoutError(fmt::format(
          "rank {}: {} timed out after {} ms; still waiting for {} rank {} (step {})", rank_,
          collective_name(fields), options_.timeout.count(),
          status.state == comm::ExchangeStatus::State::kReceiveTimedOut ? "a message from"
                                                                        : "the send to",
          peer, step));
    const bool readable = !status.too_large;
    const std::size_t got = status.received_bytes;
    if (receive && !checked) {
      if (!readable)
        throw MismatchError(
            fmt::format("rank {}: {}: rank {} sent more than the {} bytes this rank expects (the "
                        "ranks disagree on the element count or dtype)",
                        rank_, collective_name(fields), peer, message_bytes));
      if (got != message_bytes)
        throw MismatchError(fmt::format(
            "rank {}: {}: rank {} sent {} bytes, this rank expects {} (the ranks disagree on the "
            "element count or dtype)",
            rank_, collective_name(fields), peer, got, message_bytes));
    }
    if (receive) bytes_received_ += readable ? got : 0;
    ++step;
    if (!receive) return;
    if (checked) {
      merge_received(summary, incoming, readable, got, message_bytes, header_bytes);
      if (!summary.agree()) return;  // never combine data the ranks disagree on
    }
    // This rank's last receive completes its summary; when nothing is sent after it, the
    // result goes straight into the caller's buffer (checked, it was untouched until now).
    std::uint8_t* into =
        final_step && checked ? static_cast<std::uint8_t*>(data.data) : work + header_bytes;
    if (use == Use::kReduce && data.count)
      reduce_to_scaled(data.dtype, op, data.count, incoming + header_bytes, work + header_bytes,
                       into, completes ? factor : 1.0);
    else if (payload_bytes)
      std::memcpy(into, incoming + header_bytes, payload_bytes);
    if (final_step && checked) result_in_place = true;
  };

  int virtual_rank = -1;
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      exchange_with(r + 1, true, Use::kNone);
    } else {
      exchange_with(r - 1, false, Use::kReduce);
      virtual_rank = r / 2;
    }
  } else {
    virtual_rank = r - rem;
  }
  if (virtual_rank >= 0) {
    for (int mask = 1; mask < p; mask <<= 1) {
      const int v = virtual_rank ^ mask;
      // A rank outside the fold sends nothing after its last hypercube step.
      exchange_with(v < rem ? 2 * v + 1 : v + rem, true, Use::kReduce,
                    2 * mask >= p && r >= 2 * rem, 2 * mask >= p);
    }
  }
  if (r < 2 * rem) {
    if (r % 2 == 0)
      exchange_with(r + 1, false, Use::kReplace, true);
    else
      exchange_with(r - 1, true, Use::kNone);
  }
  if (checked && payload_bytes && summary.agree() && !result_in_place)
    std::memcpy(data.data, work + header_bytes, payload_bytes);
  return summary;
}

// Rabenseifner's algorithm for small and middle buffers, every step one blocking exchange:
// the same fold, recursive-halving reduce-scatter and recursive-doubling allgather as
// rabenseifner_allreduce (see there), without its segments and pipelining. Checked, each fold
// and reduce-scatter message is [CollectiveHeader][elements], exchanged with the partners, in
// the order and with the tag of recursive doubling, so the checks of both (and a rank in a
// barrier) pair up; after the reduce-scatter every rank's summary covers all ranks and the
// unfold message hands it on. Every rank takes the fold, reduce-scatter and unfold steps
// whatever it receives; a message of the wrong size or content is never combined. The
// allgather runs only when the summary agrees (then on every rank), header-free, straight
// between the caller's buffers. Until the last reduce-scatter step the sums go to a scratch
// buffer; that step completes the summary and writes its sums into the caller's buffer, so a
// failed allreduce leaves the buffer untouched. Unchecked, everything happens in place and
// nothing is copied. Divides by n itself for an average. Returns the summary.
CollectiveHeader Engine::halving_doubling(Channel& ch, const CollectiveFields& fields, Buffer inout,
                                          ReduceOp op, bool checked) {
  CollectiveHeader summary = checked ? CollectiveHeader(fields) : CollectiveHeader();
  const int n = ch.size(), r = ch.rank();
  if (n == 1) return summary;
  comm::Transport& t = *ch.transport;
  const std::size_t header_bytes = checked ? sizeof(CollectiveHeader) : 0;
  const std::size_t count = inout.count, esize = dtype_size(inout.dtype);
  const std::size_t bytes = inout.bytes();
  auto* base = static_cast<std::uint8_t*>(inout.data);
  const ReduceOp reduce_op = op == ReduceOp::kAverage ? ReduceOp::kSum : op;
  const int p = power_of_two_below(n), rem = n - p;
  // The higher slots first, so that scratch_ grows once.
  std::uint8_t* work = checked ? scratch(2, std::max<std::size_t>(bytes, 1)).data() : base;
  std::uint8_t* staging =
      checked ? scratch(1, std::max<std::size_t>(header_bytes + bytes, 1)).data() : nullptr;
  // Sized for any message of the collective tag (see collective_room_).
  std::uint8_t* incoming =
      scratch(0, std::max<std::size_t>({header_bytes + bytes, collective_room_, 1})).data();
  const auto limit = deadline();
  int step = 0;

  // Where a block's header travels: in front of its elements when the buffer has
  // header_bytes of this rank's own data before the block, else behind them when it has that
  // much after it; otherwise (the whole buffer, or blocks too small) the message is assembled
  // in `staging`, header in front. Sender and receiver apply the rule to the same block, so
  // they agree on the layout whenever they agree on the count (and a disagreement shows as a
  // header that does not read back).
  enum class Layout { kLead, kTrail, kStaged };
  auto layout_of = [&](Span s) {
    if (s.begin * esize >= header_bytes) return Layout::kLead;
    if ((count - s.begin - s.count) * esize >= header_bytes) return Layout::kTrail;
    return Layout::kStaged;
  };
  // The received elements of the last step (in `incoming`, after or before its header).
  const std::uint8_t* received = incoming;

  // One step: sends the elements `out` of `from` to `dst` and receives `in.count` elements from
  // `src` (either rank -1: no message), both with the header when `with_header` and checked. A
  // header goes out from the bytes next to `out` in `from` (saved and put back once the send has
  // completed), so the elements are sent from where they are instead of being copied behind it
  // first. A received header is merged into the summary; the elements land in `incoming` (see
  // `received`), or at `direct` for a header-free message. Returns whether the received
  // elements may be used: they have the expected size and (checked) the merged summary agrees.
  auto step_with = [&](int dst, std::uint8_t* from, Span out, int src, Span in, bool with_header,
                       std::uint8_t* direct) {
    const std::size_t header = with_header ? header_bytes : 0;
    const void* send_data = nullptr;
    std::size_t send_bytes = 0;
    // Bytes of `from` lent to the outgoing header, put back when this step ends however it
    // ends (the elements they hold are this rank's and are read only after the exchange).
    struct Lent {
      std::uint8_t* at = nullptr;
      std::uint8_t saved[sizeof(CollectiveHeader)];
      ~Lent() {
        if (at) std::memcpy(at, saved, sizeof(saved));
      }
    } lent;
    if (dst >= 0) {
      send_bytes = header + out.count * esize;
      send_data = from + out.begin * esize;
      if (header) {
        static_assert(sizeof(Lent::saved) == sizeof(CollectiveHeader));
        const Layout layout = layout_of(out);
        if (layout == Layout::kStaged) {
          std::memcpy(staging, &summary, header);
          if (out.count) std::memcpy(staging + header, from + out.begin * esize, out.count * esize);
          send_data = staging;
        } else {
          std::uint8_t* at = layout == Layout::kLead ? from + out.begin * esize - header
                                                     : from + (out.begin + out.count) * esize;
          std::memcpy(lent.saved, at, header);
          lent.at = at;
          std::memcpy(at, &summary, header);
          if (layout == Layout::kLead) send_data = at;
        }
      }
      bytes_sent_ += send_bytes;
      ++messages_sent_;
    }
    const std::size_t expected = src >= 0 ? header + in.count * esize : 0;
    void* target = header || direct == nullptr ? incoming : direct + in.begin * esize;
    // Only `incoming` has room for any message. Once the ranks agree on the count (checked),
    // every message has the size its receiver expects, so a receive into the caller's buffer
    // may be posted before the message arrives too.
    std::size_t room = target == incoming && collective_room_ >= expected ? collective_room_ : 0;
    if (target != incoming && checked && summary.agree()) room = expected;
    const comm::ExchangeStatus status =
        t.exchange(send_data, send_bytes, dst, target, expected, src, kCollectiveTag, limit, room);
    if (status.state != comm::ExchangeStatus::State::kDone) {
      const bool receiving = status.state == comm::ExchangeStatus::State::kReceiveTimedOut;
      throw TimeoutError(
          fmt::format("rank {}: {} timed out after {} ms; still waiting for {} rank {} (step {})",
                      rank_, collective_name(fields), options_.timeout.count(),
                      receiving ? "a message from" : "the send to", receiving ? src : dst, step));
    }
    ++step;
    if (src < 0) return true;
    const bool readable = !status.too_large;
    const std::size_t got = status.received_bytes;
    bytes_received_ += readable ? got : 0;
    if (!checked) {
      if (!readable || got != expected)
        throw MismatchError(fmt::format(
            "rank {}: {}: rank {} sent {} bytes at step {}, this rank expects {} (the ranks "
            "disagree on the element count or dtype)",
            rank_, collective_name(fields), src,
            readable ? fmt::format("{}", got) : std::string("more than that"), step - 1, expected));
      return true;
    }
    if (header && layout_of(in) == Layout::kTrail) {
      // The header is read only from a message of the expected size (it is at its end).
      const bool whole_message = readable && got == expected;
      merge_received(summary, incoming + in.count * esize, whole_message, header, header, header);
      received = incoming;
    } else {
      merge_received(summary, incoming, readable, got, expected, header);
      received = incoming + header;
    }
    return summary.agree();
  };

  auto blocks = [&](int lo, int hi) { return block_range(count, p, lo, hi); };
  auto real_rank = [&](int v) { return unfolded_rank(v, rem); };
  const Span whole{0, count}, none{0, 0};
  // Whether this rank's partial sums live in `work` (after the fold) or still in `base`.
  bool in_work = false;

  int v = -1;
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      step_with(r + 1, base, whole, -1, none, true, nullptr);
    } else {
      if (step_with(-1, nullptr, none, r - 1, whole, true, nullptr) && count)
        reduce_to(inout.dtype, reduce_op, count, received, base, work);
      in_work = true;
      v = r / 2;
    }
  } else {
    v = r - rem;
  }
  if (v >= 0) {
    int lo = 0, size = p;  // the blocks [lo, lo + size) this rank is responsible for
    for (int mask = 1; mask < p; mask *= 2) {
      const int peer = real_rank(v ^ mask);
      const int half = size / 2, mid = lo + half;
      const bool upper = (v & mask) != 0;
      const Span keep = upper ? blocks(mid, mid + half) : blocks(lo, mid);
      const Span give = upper ? blocks(lo, mid) : blocks(mid, mid + half);
      std::uint8_t* from = in_work ? work : base;
      // The last step completes the summary: its sums go to the caller's buffer.
      std::uint8_t* into = 2 * mask >= p ? base : work;
      // That step also divides by n for an average, in the same pass.
      const double factor = 2 * mask >= p ? completion_factor(op, n) : 1.0;
      if (step_with(peer, from, give, peer, keep, true, nullptr) && keep.count)
        reduce_to_scaled(inout.dtype, reduce_op, keep.count, received, from + keep.begin * esize,
                         into + keep.begin * esize, factor);
      in_work = true;
      if (upper) lo = mid;
      size = half;
    }
    if (summary.agree()) {
      for (int mask = p / 2; mask >= 1; mask /= 2) {
        const int other = lo ^ size;  // lo is a multiple of size: the partner's blocks
        const int peer = real_rank(v ^ mask);
        step_with(peer, base, blocks(lo, lo + size), peer, blocks(other, other + size), false,
                  base);
        lo = std::min(lo, other);
        size *= 2;
      }
    }
  }
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      if (step_with(-1, nullptr, none, r + 1, whole, true, base) && checked && bytes)
        std::memcpy(base, received, bytes);
    } else {
      step_with(r - 1, base, whole, -1, none, true, nullptr);
    }
  }
  return summary;
}

void Engine::check_collective(Channel& ch, const CollectiveFields& fields) {
  if (!options_.check_consistency || ch.size() == 1) return;
  const CollectiveHeader summary = recursive_doubling(ch, fields, Buffer(), ReduceOp::kSum, true);
  if (!summary.agree()) report_mismatch(ch, fields, collective_name(fields));
}

void Engine::report_mismatch(Channel& ch, const CollectiveFields& fields,
                             const std::string& op_name) {
  // Every rank's summary shows the disagreement, so every rank is here: gather all fields to
  // name the ranks.
  constexpr std::size_t kFieldBytes = sizeof(CollectiveFields);
  std::vector<CollectiveFields> all(ch.size());
  std::vector<comm::RequestPtr> gather;
  gather.push_back(ch.transport->iallgather(&fields, kFieldBytes, all.data()));
  wait_all(
      gather, nullptr,
      [&](const std::vector<std::size_t>&) { return std::string("while reporting a mismatch"); },
      op_name);
  std::string detail;
  for (int r = 0; r < ch.size(); ++r) {
    const CollectiveFields& f = all[r];
    const auto kind = static_cast<OpKind>(f.kind);
    detail += fmt::format("{}rank {}: {} #{}", r ? "; " : "", r, op_kind_name(kind), f.seq);
    const bool has_buffer = kind == OpKind::kAllreduce || kind == OpKind::kBroadcast;
    if (has_buffer)
      detail += fmt::format(" count={} dtype={}", f.count, dtype_name(static_cast<DType>(f.dtype)));
    if (kind == OpKind::kAllreduce)
      detail += fmt::format(" op={} algorithm={}", reduce_op_name(static_cast<ReduceOp>(f.op)),
                            allreduce_algorithm_name(static_cast<AllreduceAlgorithm>(f.algorithm)));
    if (kind == OpKind::kBroadcast) detail += fmt::format(" root={}", f.root);
  }
  throw MismatchError(fmt::format("rank {}: {}: ranks disagree: {}", rank_, op_name, detail));
}

void Engine::run_allreduce(Channel& ch, Buffer inout, ReduceOp op) {
  const std::int64_t seq = ch.collective_seq++;
  const auto t0 = Clock::now();
  const int n = ch.size();
  const AllreduceAlgorithm algorithm = allreduce_algorithm(inout.bytes(), n);
  CollectiveFields fields;
  fields.kind = static_cast<std::int64_t>(OpKind::kAllreduce);
  fields.seq = seq;
  fields.count = static_cast<std::int64_t>(inout.count);
  fields.dtype = static_cast<std::int64_t>(inout.dtype);
  fields.op = static_cast<std::int64_t>(op);
  // Compared too: ranks with different thresholds would run different algorithms.
  fields.algorithm = static_cast<std::int64_t>(algorithm);
  const bool invalid = op == ReduceOp::kAverage && !dtype_is_floating(inout.dtype);
  // Recursive doubling checks inside its own messages; the other algorithms (and a call that
  // will be refused, which must still agree with the other ranks first) check beforehand.
  if ((algorithm != AllreduceAlgorithm::kRecursiveDoubling &&
       algorithm != AllreduceAlgorithm::kRabenseifner &&
       algorithm != AllreduceAlgorithm::kHalvingDoubling) ||
      invalid)
    check_collective(ch, fields);
  if (invalid)
    throw InvalidArgument(fmt::format("rank {}: allreduce: average needs a floating dtype, got {}",
                                      rank_, dtype_name(inout.dtype)));
  const ReduceOp reduce_op = op == ReduceOp::kAverage ? ReduceOp::kSum : op;
  if (n > 1) {
    switch (algorithm) {
      case AllreduceAlgorithm::kRecursiveDoubling: {
        const bool checked = options_.check_consistency;
        // Divides by n in the step that completes the sum.
        const CollectiveHeader summary =
            recursive_doubling(ch, fields, inout, reduce_op, checked, completion_factor(op, n));
        if (checked && !summary.agree()) report_mismatch(ch, fields, collective_name(fields));
        break;
      }
      case AllreduceAlgorithm::kHalvingDoubling: {
        // Checks inside its own steps; divides by n itself, once per block.
        const bool checked = options_.check_consistency;
        const CollectiveHeader summary = halving_doubling(ch, fields, inout, op, checked);
        if (checked && !summary.agree()) report_mismatch(ch, fields, collective_name(fields));
        break;
      }
      case AllreduceAlgorithm::kRing:
        ring_allreduce(ch, inout, op, seq);  // divides by n itself, once per chunk
        break;
      case AllreduceAlgorithm::kRabenseifner: {
        // Checks inside its own steps; divides by n itself, once per block.
        const bool checked = options_.check_consistency;
        const CollectiveHeader summary =
            rabenseifner_allreduce(ch, inout, op, seq, fields, checked);
        if (checked && !summary.agree()) report_mismatch(ch, fields, collective_name(fields));
        break;
      }
      case AllreduceAlgorithm::kTransport: {
        std::vector<comm::RequestPtr> reqs;
        reqs.push_back(ch.transport->iallreduce(inout.data, inout.count, inout.dtype, reduce_op));
        wait_all(
            reqs, nullptr,
            [&](const std::vector<std::size_t>&) {
              return std::string("not every rank joined the allreduce");
            },
            collective_name(fields));
        // Ring-allreduce volume, the usual model of what an allreduce puts on the wire.
        bytes_sent_ += 2 * inout.bytes() * (n - 1) / n;
        break;
      }
    }
    if (op == ReduceOp::kAverage && algorithm == AllreduceAlgorithm::kTransport)
      scale(inout.dtype, inout.count, 1.0 / n, inout.data);
  }
  if (timeline_.enabled())
    timeline_.record(fmt::format("allreduce#{}", seq), "communicate", t0, Clock::now(),
                     inout.bytes());
}

// Ring allreduce. Rank r sends to r + 1 and receives from r - 1. The buffer is cut into n chunks
// and the ring runs 2(n - 1) steps; at step t rank r receives chunk (r - t - 1) mod n:
//  - steps 0 .. n-2 (reduce-scatter): the received partial sum is added into the buffer; after
//    step n-2 chunk (r + 1) mod n holds the full reduction (divided by n here for an average);
//  - steps n-1 .. 2n-3 (allgather): the received final chunk overwrites the buffer.
// What rank r receives at step t it sends on at step t + 1 (the same chunk); at step 0 it sends
// its own chunk r. Chunks travel in segments, each forwarded as soon as it is reduced, so the
// pipeline fills after one segment rather than one chunk. Both ends derive the same list of
// (step, segment) messages from (count, n), and messages between two ranks with one tag arrive
// in the order sent, so every receive gets the message it expects.
void Engine::ring_allreduce(Channel& ch, Buffer inout, ReduceOp op, std::int64_t seq) {
  comm::Transport& t = *ch.transport;
  const int n = ch.size();
  const int r = ch.rank();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  const int tag = kRingTagBase + static_cast<int>(seq % kRingTagSpan);
  const std::size_t esize = dtype_size(inout.dtype);
  const std::size_t segment = std::max<std::size_t>(1, kRingSegmentBytes / esize);
  const std::size_t max_segments = (ring_chunk(inout.count, n, 0).count + segment - 1) / segment;
  auto* base = static_cast<std::uint8_t*>(inout.data);
  const std::string op_name = fmt::format("allreduce #{} (ring)", seq);
  const auto limit = deadline();

  struct Unit {
    int step;
    int chunk;
    std::size_t segment;  // index within the chunk
    std::size_t begin;    // elements
    std::size_t count;
  };
  auto segments_of = [&](int step, int chunk, std::vector<Unit>& out) {
    const Span span = ring_chunk(inout.count, n, chunk);
    for (std::size_t j = 0, begin = span.begin; begin < span.begin + span.count; ++j) {
      const std::size_t len = std::min(segment, span.begin + span.count - begin);
      out.push_back({step, chunk, j, begin, len});
      begin += len;
    }
  };
  std::vector<Unit> units;  // receives, in the order the left neighbour sends them
  for (int step = 0; step <= 2 * n - 3; ++step)
    segments_of(step, positive_mod(r - step - 1, n), units);
  const int last_reduce_step = n - 2, last_step = 2 * n - 3;

  // Sends of the reduce-scatter steps, by (chunk, segment): the allgather later receives into
  // the same elements, which must not change before those sends complete.
  std::vector<comm::RequestPtr> scatter_sends(static_cast<std::size_t>(n) * max_segments);
  std::vector<comm::RequestPtr> gather_sends;
  auto send_unit = [&](const Unit& u, int step) {
    comm::RequestPtr req = t.isend(base + u.begin * esize, u.count * esize, right, tag);
    bytes_sent_ += u.count * esize;
    bytes_received_ += u.count * esize;  // every rank receives as much as it sends
    ++messages_sent_;
    if (step <= last_reduce_step)
      scatter_sends[u.chunk * max_segments + u.segment] = std::move(req);
    else
      gather_sends.push_back(std::move(req));
  };
  {
    std::vector<Unit> own;
    segments_of(0, r, own);
    for (const Unit& u : own) send_unit(u, 0);
  }

  auto timed_out = [&](const std::string& what) {
    return TimeoutError(fmt::format("rank {}: {} timed out after {} ms; {}", rank_, op_name,
                                    options_.timeout.count(), what));
  };
  auto wait_for = [&](comm::Request& req, const std::string& what) {
    if (!req.test() && !req.wait_until(limit)) throw timed_out(what);
  };

  // Receive buffers of the reduce-scatter; the highest slot first so that scratch_ grows once.
  const std::size_t partial_bytes = std::min(segment, ring_chunk(inout.count, n, 0).count) * esize;
  std::vector<std::uint8_t*> partials(kRingWindow);
  for (std::size_t k = kRingWindow; k-- > 0;) partials[k] = scratch(k, partial_bytes).data();
  std::vector<comm::RequestPtr> recvs(kRingWindow);
  std::size_t posted = 0;
  for (std::size_t done = 0; done < units.size(); ++done) {
    // Post receives up to kRingWindow ahead, in order.
    while (posted < units.size() && posted < done + kRingWindow) {
      const Unit& u = units[posted];
      void* target = base + u.begin * esize;
      if (u.step <= last_reduce_step) {
        target = partials[posted % kRingWindow];
      } else {
        auto& pending = scatter_sends[u.chunk * max_segments + u.segment];
        if (pending) {
          if (posted > done && !pending->test()) break;  // retried after the next receive
          wait_for(*pending, fmt::format("still waiting for the send of chunk {} to rank {}",
                                         u.chunk, right));
          pending.reset();
        }
      }
      recvs[posted % kRingWindow] = t.irecv(target, u.count * esize, left, tag);
      ++posted;
    }
    const Unit& u = units[done];
    comm::RequestPtr& req = recvs[done % kRingWindow];
    wait_for(*req, fmt::format("still waiting for step {} of {} (chunk {}) from rank {}", u.step,
                               last_step + 1, u.chunk, left));
    req.reset();
    void* elements = base + u.begin * esize;
    if (u.step <= last_reduce_step) {
      const double factor = u.step == last_reduce_step ? completion_factor(op, n) : 1.0;
      reduce_to_scaled(inout.dtype, op, u.count, partials[done % kRingWindow], elements, elements,
                       factor);
    }
    if (u.step < last_step) send_unit(u, u.step + 1);
  }
  for (auto& req : scatter_sends)
    if (req) wait_for(*req, fmt::format("still waiting for sends to rank {}", right));
  for (auto& req : gather_sends)
    wait_for(*req, fmt::format("still waiting for sends to rank {}", right));
}

// Rabenseifner's allreduce. With p the largest power of two <= n and rem = n - p, ranks 2i < 2 rem
// first fold: 2i sends its whole buffer to 2i + 1, which adds it to its own, and 2i waits for the
// result at the end. The p remaining ranks (virtual rank v as in recursive doubling) cut the
// buffer into p blocks (sizes differing by at most one element; blocks may be empty) and
//  1. reduce-scatter by recursive halving, log2 p steps: with the blocks this rank is still
//     responsible for and mask = 1, 2, ..., p/2, it keeps the upper half of them if bit `mask`
//     of v is set (else the lower), sends the other half to the partner v ^ mask and adds the
//     partner's copy of the kept half into its own; afterwards it holds the complete reduction
//     of one block (v with its bits reversed), which it divides by n for an average (one
//     division per element);
//  2. allgather by recursive doubling, log2 p steps, in the opposite order: with mask = p/2,
//     ..., 2, 1 it sends the blocks it has complete to v ^ mask and receives the partner's (as
//     many), which overwrite its buffer.
// Finally 2i + 1 sends the result to 2i. Each rank sends and receives 2(p-1)/p of the buffer (the
// fold adds the whole buffer once each way for ranks below 2 rem) in 2 log2 p rounds (+2). Each
// block is reduced on one rank and copied to the others, so all ranks end with bit-identical
// elements. Messages travel in segments of kRingSegmentBytes, and a received partial sum is
// added while the next segments arrive. Both partners of a step derive the same spans from
// (count, n); messages between two ranks with one tag arrive in the order sent.
//
// Checked, the consistency check rides on the same steps instead of running before them: every
// message of the fold and of the reduce-scatter is preceded by a CollectiveHeader (the sender's
// summary so far), exchanged exactly like the messages of recursive doubling (same tag, same
// partners in the same order): afterwards every rank's summary covers all ranks, the final fold
// message hands it to the ranks that folded, and a rank running another collective exchanges
// its headers with these. A payload is sent only
// when the sender's summary agrees and received only when the summary merged with the sender's
// header agrees, which implies equal counts and dtypes, hence equal spans; otherwise the header
// steps go on without payloads, so every rank reaches the same verdict and none waits for a
// message that will not come. Until the verdict the sums go to a scratch buffer, written by
// the reductions themselves (partial sums + received elements -> scratch, no copy pass): the
// fold and every reduce-scatter step but the last. The last step's header completes the
// summary, so its sums go straight into the caller's buffer when it agrees (at n = 2, 3 the
// only step: no scratch at all). A failed allreduce leaves the buffer untouched. Returns the
// summary (empty unchecked).
CollectiveHeader Engine::rabenseifner_allreduce(Channel& ch, Buffer inout, ReduceOp op,
                                                std::int64_t seq, const CollectiveFields& fields,
                                                bool checked) {
  CollectiveHeader summary = checked ? CollectiveHeader(fields) : CollectiveHeader();
  comm::Transport& t = *ch.transport;
  const int n = ch.size(), r = ch.rank();
  const int p = power_of_two_below(n), rem = n - p;
  const int tag = kHalvingTagBase + static_cast<int>(seq % kRingTagSpan);
  // Headers share the tag of the recursive-doubling collectives and follow their pattern (fold,
  // hypercube with ascending masks, unfold), so a rank in another collective still exchanges
  // headers with this one and the mismatch is reported.
  const int header_tag = kCollectiveTag;
  const std::size_t count = inout.count;
  const std::size_t esize = dtype_size(inout.dtype);
  const std::size_t segment = std::max<std::size_t>(1, kRingSegmentBytes / esize);
  auto* base = static_cast<std::uint8_t*>(inout.data);
  auto op_name = [&] { return fmt::format("allreduce #{} (rabenseifner)", seq); };
  const ReduceOp reduce_op = op == ReduceOp::kAverage ? ReduceOp::kSum : op;
  const auto limit = deadline();

  // Scratch: the working copy (checked) in the highest slot, so that scratch_ grows once, then
  // the receive buffers of the reducing steps.
  std::uint8_t* work = base;
  if (checked) work = scratch(kRingWindow, std::max<std::size_t>(1, inout.bytes())).data();
  const std::size_t partial_bytes = std::max<std::size_t>(1, std::min(segment, count) * esize);
  std::vector<std::uint8_t*> partials(kRingWindow);
  for (std::size_t k = kRingWindow; k-- > 0;) partials[k] = scratch(k, partial_bytes).data();

  int step = 0;
  // `what` describes the awaited message, formatted only on a timeout.
  auto wait_for = [&](comm::Request& req, auto&& what) {
    if (!req.test() && !req.wait_until(limit))
      throw TimeoutError(
          fmt::format("rank {}: allreduce #{} (rabenseifner) timed out after {} ms; still waiting "
                      "for {} (step {})",
                      rank_, seq, options_.timeout.count(), what(), step));
  };
  // Sends are completed only before their elements are written again (the allgather and the
  // final fold step receive into elements sent earlier) and at the end, so that a step starts
  // as soon as its predecessor's data has arrived. Header sends read `out_headers`.
  struct PendingSend {
    comm::RequestPtr request;
    int peer;
  };
  // Header sends are small enough to complete without their receiver (eager), so they are
  // always completed before `out_headers` goes away.
  std::vector<PendingSend> pending_sends, header_sends;
  std::deque<CollectiveHeader> out_headers;
  auto complete = [&](std::vector<PendingSend>& sends) {
    for (auto& s : sends)
      wait_for(*s.request, [&] { return fmt::format("the send to rank {}", s.peer); });
    sends.clear();
  };
  auto complete_sends = [&] { complete(pending_sends); };
  // Sends the elements `out` from `from` (base or work, addressed by element offset) to `peer`.
  auto send_payload = [&](int peer, Span out, const std::uint8_t* from) {
    for (std::size_t b = out.begin; b < out.begin + out.count; b += segment) {
      const std::size_t len = std::min(segment, out.begin + out.count - b);
      pending_sends.push_back({t.isend(from + b * esize, len * esize, peer, tag), peer});
      bytes_sent_ += len * esize;
      ++messages_sent_;
    }
  };
  // Exchanges headers with `peer` (either direction may be absent) and merges the received one;
  // `sends` runs after this rank's header is sent and before the peer's is awaited (it starts
  // this step's payload, so the data moves while the header is on its way). Returns whether
  // payloads go ahead: the summary agrees, merged with the peer's header if one was received.
  auto exchange_headers = [&](int peer, bool send, bool receive, auto&& sends) {
    if (!checked) {
      sends();
      return true;
    }
    comm::RequestPtr recv;
    CollectiveHeader theirs;
    if (receive) recv = t.irecv(&theirs, sizeof(CollectiveHeader), peer, header_tag);
    if (send) {
      out_headers.push_back(summary);
      header_sends.push_back(
          {t.isend(&out_headers.back(), sizeof(CollectiveHeader), peer, header_tag), peer});
      bytes_sent_ += sizeof(CollectiveHeader);
      ++messages_sent_;
    }
    sends();
    if (!recv) return summary.agree();
    try {
      wait_for(*recv, [&] { return fmt::format("the header from rank {}", peer); });
      if (recv->received_bytes() != sizeof(CollectiveHeader) ||
          theirs.magic != CollectiveHeader{}.magic) {
        summary.lost = 1;
      } else {
        bytes_received_ += sizeof(CollectiveHeader);
        summary.merge(theirs);
      }
    } catch (const MismatchError&) {
      summary.lost = 1;  // the transport refused a larger message (and consumed it)
    }
    return summary.agree();
  };
  // Payloads of one step with `peer`: sends the elements `out` from `from`, receives the peer's
  // copy of the elements `in` and adds it into `into` (`reduce`) or writes it there. Either span
  // may be empty; `from` and `into` are base or work, addressed by element offset.
  // Reducing, `acc` holds the partial sums the received elements are added to (written to
  // `into`, which may be `acc`).
  auto payloads = [&](int peer, Span out, const std::uint8_t* from, Span in, std::uint8_t* into,
                      bool reduce, const std::uint8_t* acc = nullptr, double factor = 1.0) {
    if (acc == nullptr) acc = into;
    send_payload(peer, out, from);
    const std::size_t units = (in.count + segment - 1) / segment;
    auto unit = [&](std::size_t j) {
      const std::size_t b = in.begin + j * segment;
      return Span{b, std::min(segment, in.begin + in.count - b)};
    };
    // Reducing steps receive into kRingWindow scratch buffers, the others straight into place.
    std::vector<comm::RequestPtr> recvs(reduce ? kRingWindow : units);
    auto slot = [&](std::size_t j) -> comm::RequestPtr& {
      return recvs[reduce ? j % kRingWindow : j];
    };
    std::size_t posted = 0;
    for (std::size_t j = 0; j < units; ++j) {
      while (posted < units && (!reduce || posted < j + kRingWindow)) {
        const Span u = unit(posted);
        void* target = reduce ? partials[posted % kRingWindow] : into + u.begin * esize;
        slot(posted) = t.irecv(target, u.count * esize, peer, tag);
        ++posted;
      }
      const Span u = unit(j);
      const std::size_t expected = u.count * esize;
      std::size_t got = 0;
      try {
        wait_for(*slot(j), [&] { return fmt::format("{} bytes from rank {}", expected, peer); });
        got = slot(j)->received_bytes();
      } catch (const MismatchError& e) {
        // The transport refused a message larger than the receive (and consumed it).
        throw MismatchError(
            fmt::format("rank {}: {}: {} (the ranks disagree on the element count or dtype)", rank_,
                        op_name(), e.what()));
      }
      if (got != expected)
        throw MismatchError(fmt::format(
            "rank {}: {}: rank {} sent {} bytes at step {}, this rank expects {} (the ranks "
            "disagree on the element count or dtype)",
            rank_, op_name(), peer, got, step, expected));
      slot(j).reset();
      bytes_received_ += got;
      if (reduce)
        reduce_to_scaled(inout.dtype, reduce_op, u.count, partials[j % kRingWindow],
                         acc + u.begin * esize, into + u.begin * esize, factor);
    }
  };

  auto blocks = [&](int lo, int hi) { return block_range(count, p, lo, hi); };
  auto real_rank = [&](int v) { return unfolded_rank(v, rem); };
  const Span whole{0, count}, none{0, 0};
  // Whether the fold put this rank's partial sums in `work` (else they start in the caller's
  // buffer, and the first halving step writes them to `work`).
  bool whole_in_work = false;

  int v = -1;
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      exchange_headers(r + 1, true, false, [&] { send_payload(r + 1, whole, base); });
      ++step;
    } else {
      whole_in_work = true;
      if (exchange_headers(r - 1, false, true, [] {}))
        payloads(r - 1, none, work, whole, work, true, base);
      ++step;
      v = r / 2;
    }
  } else {
    v = r - rem;
  }
  if (v >= 0) {
    int lo = 0, size = p;  // the blocks [lo, lo + size) this rank is responsible for
    bool first = true;
    for (int mask = 1; mask < p; mask *= 2) {
      const int peer = real_rank(v ^ mask);
      const int half = size / 2, mid = lo + half;
      const bool upper = (v & mask) != 0;
      const Span keep = upper ? blocks(mid, mid + half) : blocks(lo, mid);
      const Span give = upper ? blocks(lo, mid) : blocks(mid, mid + half);
      // The partial sums so far: the caller's buffer at the first step (unless the fold put
      // them in `work`), then `work`.
      const std::uint8_t* from = first && !whole_in_work ? base : work;
      first = false;
      // This rank's payload goes only if its summary so far agrees; the peer's is read only if
      // the summary merged with the peer's header agrees.
      const bool send_ok = !checked || summary.agree();
      const bool recv_ok = exchange_headers(peer, true, true, [&] {
        if (send_ok) send_payload(peer, give, from);
      });
      // After the last step's header the summary covers every rank, so if it agrees the sums of
      // that step go straight into the caller's buffer: no copy pass at any step.
      std::uint8_t* into = 2 * mask >= p ? base : work;
      // That step also divides by n for an average, in the same pass.
      const double factor = 2 * mask >= p ? completion_factor(op, n) : 1.0;
      payloads(peer, none, from, recv_ok ? keep : none, into, true, from, factor);
      ++step;
      if (upper) lo = mid;
      size = half;
    }
    if (summary.agree()) {
      complete_sends();  // the allgather writes over what the reduce-scatter sent
      for (int mask = p / 2; mask >= 1; mask /= 2) {
        const int other = lo ^ size;  // lo is a multiple of size: the partner's blocks
        payloads(real_rank(v ^ mask), blocks(lo, lo + size), base, blocks(other, other + size),
                 base, false);
        ++step;
        lo = std::min(lo, other);
        size *= 2;
      }
    }
  }
  if (r < 2 * rem) {
    if (r % 2 == 0) {
      if (exchange_headers(r + 1, false, true, [] {})) {
        complete_sends();  // the result lands on the buffer handed over at the start
        payloads(r + 1, none, base, whole, base, false);
      }
    } else {
      const bool send_ok = !checked || summary.agree();
      exchange_headers(r - 1, true, false, [&] {
        if (send_ok) send_payload(r - 1, whole, base);
      });
    }
    ++step;
  }
  // Disagreeing ranks skip payloads their peers may have sent: those sends are left to finish
  // on their own (the context fails with the mismatch).
  complete(header_sends);
  if (!checked || summary.agree()) complete_sends();
  return summary;
}

void Engine::run_broadcast(Channel& ch, Buffer inout, int root) {
  const std::int64_t seq = ch.collective_seq++;
  const auto t0 = Clock::now();
  CollectiveFields fields;
  fields.kind = static_cast<std::int64_t>(OpKind::kBroadcast);
  fields.seq = seq;
  fields.count = static_cast<std::int64_t>(inout.count);
  fields.dtype = static_cast<std::int64_t>(inout.dtype);
  fields.root = root;
  check_collective(ch, fields);
  if (ch.size() > 1) {
    std::vector<comm::RequestPtr> reqs;
    reqs.push_back(ch.transport->ibroadcast(inout.data, inout.bytes(), root));
    wait_all(
        reqs, nullptr,
        [&](const std::vector<std::size_t>&) {
          return fmt::format("not every rank joined the broadcast from rank {}", root);
        },
        fmt::format("broadcast #{}", seq));
    if (ch.rank() == root) bytes_sent_ += inout.bytes();
  }
  timeline_.record(fmt::format("broadcast#{}", seq), "communicate", t0, Clock::now(),
                   inout.bytes());
}

GatherResult Engine::run_allgather(Channel& ch, ConstBuffer in) {
  const std::int64_t seq = ch.collective_seq++;
  const auto t0 = Clock::now();
  const int n = ch.size();
  const std::string op = fmt::format("allgather #{}", seq);
  // Counts (and kind/seq/dtype for the consistency check) first, then padded payloads.
  std::vector<std::int64_t> mine = {static_cast<std::int64_t>(OpKind::kAllgather), seq,
                                    static_cast<std::int64_t>(in.dtype),
                                    static_cast<std::int64_t>(in.count)};
  std::vector<std::int64_t> meta(4 * n);
  std::vector<comm::RequestPtr> reqs;
  reqs.push_back(ch.transport->iallgather(mine.data(), sizeof(std::int64_t) * 4, meta.data()));
  auto describe = [&](const std::vector<std::size_t>&) {
    return std::string("not every rank joined the allgather");
  };
  wait_all(reqs, nullptr, describe, op);
  GatherResult result;
  result.dtype = in.dtype;
  std::size_t max_count = 0, total = 0;
  std::string mismatch;
  for (int r = 0; r < n; ++r) {
    const std::int64_t* m = meta.data() + 4 * r;
    if (m[0] != mine[0] || m[1] != seq || m[2] != mine[2])
      mismatch += fmt::format("{}rank {}: {} #{} dtype={}", mismatch.empty() ? "" : "; ", r,
                              op_kind_name(static_cast<OpKind>(m[0])), m[1],
                              dtype_name(static_cast<DType>(m[2])));
    result.ranks.push_back(r);
    result.counts.push_back(static_cast<std::size_t>(m[3]));
    max_count = std::max<std::size_t>(max_count, m[3]);
    total += m[3];
  }
  if (!mismatch.empty())
    throw MismatchError(fmt::format("rank {}: {}: ranks disagree (this rank: {} dtype={}): {}",
                                    rank_, op, op_kind_name(OpKind::kAllgather),
                                    dtype_name(in.dtype), mismatch));
  const std::size_t esize = dtype_size(in.dtype);
  std::vector<std::uint8_t> padded_in(max_count * esize, 0), padded_all(max_count * esize * n);
  if (in.count) std::memcpy(padded_in.data(), in.data, in.bytes());
  reqs.clear();
  reqs.push_back(ch.transport->iallgather(padded_in.data(), padded_in.size(), padded_all.data()));
  wait_all(reqs, nullptr, describe, op);
  result.data.resize(total * esize);
  std::size_t offset = 0;
  for (int r = 0; r < n; ++r) {
    std::memcpy(result.data.data() + offset, padded_all.data() + r * max_count * esize,
                result.counts[r] * esize);
    offset += result.counts[r] * esize;
  }
  bytes_sent_ += padded_in.size() * (n - 1);
  timeline_.record(fmt::format("allgather#{}", seq), "communicate", t0, Clock::now(), in.bytes());
  return result;
}

void Engine::run_barrier(Channel& ch) {
  const std::int64_t seq = ch.collective_seq++;
  const auto t0 = Clock::now();
  CollectiveFields fields;
  fields.kind = static_cast<std::int64_t>(OpKind::kBarrier);
  fields.seq = seq;
  // Recursive doubling of empty payloads is a barrier: a rank's last step depends on every
  // rank having started. Checked, the same messages compare the ranks' operations.
  const bool checked = options_.check_consistency;
  const CollectiveHeader summary =
      recursive_doubling(ch, fields, Buffer(), ReduceOp::kSum, checked);
  if (checked && !summary.agree()) report_mismatch(ch, fields, collective_name(fields));
  if (timeline_.enabled())
    timeline_.record(fmt::format("barrier#{}", seq), "communicate", t0, Clock::now());
}

// ---------------------------------------------------------------- hierarchical

void Engine::ensure_hierarchy() {
  if (machine_transport_) return;
  machine_transport_ = transport_->split(machine_rank_, rank_);
  leader_transport_ = transport_->split(local_rank_ == 0 ? 0 : 1, machine_rank_);
  machine_channel_.transport = machine_transport_.get();
  leader_channel_.transport = leader_transport_.get();
}

void Engine::run_hierarchical(const NeighborPlan& machine_plan, ConstBuffer in, Buffer out) {
  ensure_hierarchy();
  if (out.data != in.data) std::memcpy(out.data, in.data, in.bytes());
  run_allreduce(machine_channel_, out, ReduceOp::kAverage);
  if (local_rank_ == 0) run_neighbor_allreduce(leader_channel_, machine_plan, out, out);
  run_broadcast(machine_channel_, out, 0);
}

// ---------------------------------------------------------------- fusion

void Engine::run_fused(const std::vector<Buffer>& bufs, const std::function<void(Buffer)>& op) {
  const std::size_t threshold = options_.fusion_threshold_bytes;
  std::size_t i = 0;
  while (i < bufs.size()) {
    const Buffer& first = bufs[i];
    if (threshold == 0 || first.bytes() >= threshold) {
      op(first);
      ++i;
      continue;
    }
    // Greedily pack consecutive buffers of the same dtype while they fit.
    std::size_t j = i, bytes = 0;
    while (j < bufs.size() && bufs[j].dtype == first.dtype &&
           bytes + bufs[j].bytes() <= threshold) {
      bytes += bufs[j].bytes();
      ++j;
    }
    if (j == i + 1) {
      op(first);
      ++i;
      continue;
    }
    auto& fused = scratch_fusion_;
    fused.resize(bytes);
    std::size_t offset = 0;
    for (std::size_t k = i; k < j; ++k) {
      std::memcpy(fused.data() + offset, bufs[k].data, bufs[k].bytes());
      offset += bufs[k].bytes();
    }
    op(Buffer(fused.data(), bytes / dtype_size(first.dtype), first.dtype));
    offset = 0;
    for (std::size_t k = i; k < j; ++k) {
      std::memcpy(bufs[k].data, fused.data() + offset, bufs[k].bytes());
      offset += bufs[k].bytes();
    }
    i = j;
  }
}

CommStats Engine::stats() const {
  CommStats s;
  s.bytes_sent = bytes_sent_.load();
  s.bytes_received = bytes_received_.load();
  s.messages_sent = messages_sent_.load();
  s.header_messages = header_messages_.load();
  s.operations = operations_.load();
  return s;
}

}  // namespace decent::detail
