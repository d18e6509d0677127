#include "comm/local/local_transport.h"

#include <fmt/format.h>
#include <Eigen/Core>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace decent::comm {
namespace local_detail {

enum class RankStatus { kAlive, kFailed, kLeft };

// State shared by every world of one job. One mutex guards all of it and every world's
// mailboxes and collectives; it is never held while payloads are copied or reduced. Each
// thread (job rank) sleeps on its own condition variable and is woken only by events that
// can complete one of its requests.
struct Job {
  explicit Job(int n) : status(n, RankStatus::kAlive), reasons(n) {
    wakeups.reserve(n);
    for (int i = 0; i < n; ++i) wakeups.push_back(std::make_unique<std::condition_variable>());
  }
  void wake(int job_rank) { wakeups[job_rank]->notify_all(); }
  void wake_all() {
    for (auto& wakeup : wakeups) wakeup->notify_all();
  }

  std::mutex mutex;
  std::vector<std::unique_ptr<std::condition_variable>> wakeups;
  std::vector<RankStatus> status;
  std::vector<std::string> reasons;
  bool shut_down = false;
  std::string shutdown_reason;
};

// A receive the destination posted before a matching message arrived. The sender hands the
// payload over by moving it in and setting `matched`.
struct PostedRecv {
  bool matched = false;
  std::vector<std::uint8_t> payload;
};

// Invariant: at most one of the two queues is non-empty.
struct Channel {
  std::deque<std::vector<std::uint8_t>> messages;  // sent, not yet matched
  std::deque<std::shared_ptr<PostedRecv>> posted;  // posted, not yet matched
  bool empty() const { return messages.empty() && posted.empty(); }
};

using ChannelKey = std::pair<int, int>;  // (source, tag)

enum class CollectiveKind { kAllreduce, kBroadcast, kAllgather, kBarrier, kSplit };

struct CollectiveArgs {
  CollectiveKind kind = CollectiveKind::kBarrier;
  std::size_t count = 0;  // allreduce: elements
  DType dtype = DType::kUInt8;
  ReduceOp op = ReduceOp::kSum;
  std::size_t bytes = 0;  // broadcast, allgather
  int root = 0;           // broadcast
  int color = 0;          // split (may differ between ranks)
  int key = 0;
};

// One rendezvous: the k-th collective of every rank of a world.
struct Collective {
  Collective(std::uint64_t seq, int n) : sequence(seq), joined(n, 0), args(n), inputs(n) {}

  std::uint64_t sequence;
  std::vector<char> joined;
  std::vector<CollectiveArgs> args;
  std::vector<std::vector<std::uint8_t>> inputs;  // each rank's contribution (copied)
  int joined_count = 0;
  int first_rank = -1;
  bool mismatch = false;
  // Set once the result is final; afterwards inputs/result/split_* are read-only.
  bool complete = false;
  std::vector<std::uint8_t> result;  // allreduce
  std::vector<std::shared_ptr<LocalWorld>> split_worlds;
  std::vector<int> split_ranks;
};

struct WorldState {
  explicit WorldState(int n) : mailboxes(n) {}
  std::vector<std::map<ChannelKey, Channel>> mailboxes;  // indexed by destination
  // Collectives that some rank has not joined yet, by sequence number.
  std::map<std::uint64_t, std::shared_ptr<Collective>> open;
};

namespace {

std::string describe(const CollectiveArgs& a) {
  switch (a.kind) {
    case CollectiveKind::kAllreduce:
      return fmt::format("allreduce(count={}, dtype={}, op={})", a.count, dtype_name(a.dtype),
                         reduce_op_name(a.op));
    case CollectiveKind::kBroadcast:
      return fmt::format("broadcast(bytes={}, root={})", a.bytes, a.root);
    case CollectiveKind::kAllgather:
      return fmt::format("allgather(bytes={})", a.bytes);
    case CollectiveKind::kBarrier:
      return "barrier()";
    case CollectiveKind::kSplit:
      return "split()";
  }
  return "unknown";
}

// The fields in which two ranks' calls disagree, e.g. "count, dtype"; empty when they agree.
std::string differences(const CollectiveArgs& a, const CollectiveArgs& b) {
  if (a.kind != b.kind) return "operation";
  std::vector<const char*> fields;
  switch (a.kind) {
    case CollectiveKind::kAllreduce:
      if (a.count != b.count) fields.push_back("count");
      if (a.dtype != b.dtype) fields.push_back("dtype");
      if (a.op != b.op) fields.push_back("op");
      break;
    case CollectiveKind::kBroadcast:
      if (a.bytes != b.bytes) fields.push_back("bytes");
      if (a.root != b.root) fields.push_back("root");
      break;
    case CollectiveKind::kAllgather:
      if (a.bytes != b.bytes) fields.push_back("bytes");
      break;
    case CollectiveKind::kBarrier:
    case CollectiveKind::kSplit:
      break;
  }
  return fmt::format("{}", fmt::join(fields, ", "));
}

std::string rank_list(const std::vector<int>& ranks) {
  return fmt::format("{} {}", ranks.size() == 1 ? "rank" : "ranks", fmt::join(ranks, ", "));
}

// Groups the ranks that have joined by what they called, e.g. "ranks disagree on collective
// #3: ranks 0, 1 called barrier(); rank 2 called allgather(bytes=8) (differs in operation)".
std::string mismatch_message(const Collective& op) {
  std::vector<std::pair<int, std::vector<int>>> groups;  // (representative rank, ranks)
  for (int r = 0; r < static_cast<int>(op.joined.size()); ++r) {
    if (!op.joined[r]) continue;
    auto group = std::find_if(groups.begin(), groups.end(), [&](const auto& g) {
      return differences(op.args[g.first], op.args[r]).empty();
    });
    if (group == groups.end()) {
      groups.push_back({r, {r}});
    } else {
      group->second.push_back(r);
    }
  }
  std::string message = fmt::format("ranks disagree on collective #{}: ", op.sequence);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const CollectiveArgs& args = op.args[groups[g].first];
    if (g > 0) message += "; ";
    message += fmt::format("{} called {}", rank_list(groups[g].second), describe(args));
    if (g > 0) {
      message += fmt::format(" (differs in {})", differences(op.args[groups[0].first], args));
    }
  }
  return message;
}

// ---- reduction, in rank order so that every run and every rank gets the same bits ----

template <typename T>
T load(const std::vector<std::uint8_t>& bytes, std::size_t i) {
  T value;
  std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
  return value;
}

template <typename T>
T add(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    // Integer sums wrap around like MPI's instead of overflowing (undefined for signed types).
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}

// T is the element type, Acc the type accumulated in (float for the 16-bit floats, which are
// rounded once at the end).
template <typename T, typename Acc>
std::vector<std::uint8_t> reduce_typed(const std::vector<std::vector<std::uint8_t>>& inputs,
                                       std::size_t count, ReduceOp op) {
  std::vector<Acc> acc(count);
  for (std::size_t i = 0; i < count; ++i) acc[i] = static_cast<Acc>(load<T>(inputs[0], i));
  for (std::size_t r = 1; r < inputs.size(); ++r) {
    const auto& in = inputs[r];
    switch (op) {
      case ReduceOp::kSum:
        for (std::size_t i = 0; i < count; ++i)
          acc[i] = add(acc[i], static_cast<Acc>(load<T>(in, i)));
        break;
      case ReduceOp::kMin:
        for (std::size_t i = 0; i < count; ++i) {
          const Acc v = static_cast<Acc>(load<T>(in, i));
          if (v < acc[i]) acc[i] = v;
        }
        break;
      case ReduceOp::kMax:
        for (std::size_t i = 0; i < count; ++i) {
          const Acc v = static_cast<Acc>(load<T>(in, i));
          if (acc[i] < v) acc[i] = v;
        }
        break;
      case ReduceOp::kAverage:
        throw InvalidArgument("local allreduce: average is not a transport op");
    }
  }
  std::vector<std::uint8_t> out(count * sizeof(T));
  for (std::size_t i = 0; i < count; ++i) {
    const T value = static_cast<T>(acc[i]);
    std::memcpy(out.data() + i * sizeof(T), &value, sizeof(T));
  }
  return out;
}

std::vector<std::uint8_t> reduce(const std::vector<std::vector<std::uint8_t>>& inputs,
                                 std::size_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::kFloat32:
      return reduce_typed<float, float>(inputs, count, op);
    case DType::kFloat64:
      return reduce_typed<double, double>(inputs, count, op);
    case DType::kFloat16:
      return reduce_typed<Eigen::half, float>(inputs, count, op);
    case DType::kBFloat16:
      return reduce_typed<Eigen::bfloat16, float>(inputs, count, op);
    case DType::kInt32:
      return reduce_typed<std::int32_t, std::int32_t>(inputs, count, op);
    case DType::kInt64:
      return reduce_typed<std::int64_t, std::int64_t>(inputs, count, op);
    case DType::kUInt8:
      return reduce_typed<std::uint8_t, std::uint8_t>(inputs, count, op);
  }
  throw InvalidArgument("local allreduce: unknown dtype");
}

void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

}  // namespace
}  // namespace local_detail

using local_detail::Channel;
using local_detail::ChannelKey;
using local_detail::Collective;
using local_detail::CollectiveArgs;
using local_detail::CollectiveKind;
using local_detail::Job;
using local_detail::PostedRecv;
using local_detail::RankStatus;

namespace {

// Under the job mutex: why `rank` of `world` can no longer take part, or null if it can.
std::exception_ptr rank_unavailable(const Job& job, const std::vector<int>& job_ranks, int rank) {
  const int job_rank = job_ranks[rank];
  const RankStatus status = job.status[job_rank];
  if (status == RankStatus::kAlive) return nullptr;
  const std::string who = job_rank == rank ? fmt::format("rank {}", rank)
                                           : fmt::format("rank {} (job rank {})", rank, job_rank);
  const char* what = status == RankStatus::kFailed ? "failed" : "left";
  return std::make_exception_ptr(
      CommError(fmt::format("{} {}: {}", who, what, job.reasons[job_rank])));
}

std::exception_ptr job_shut_down(const Job& job) {
  if (!job.shut_down) return nullptr;
  return std::make_exception_ptr(CommError("local job shut down: " + job.shutdown_reason));
}

// A send: eager, so it is complete (or failed) from the start.
class LocalSendRequest : public Request {
 public:
  explicit LocalSendRequest(std::exception_ptr error) : error_(std::move(error)) {}
  bool test() override {
    if (error_) std::rethrow_exception(error_);
    return true;
  }
  bool wait_until(Clock::time_point) override { return test(); }

 private:
  std::exception_ptr error_;
};

}  // namespace

// Completion logic shared by receives and collectives: a state check under the job mutex,
// blocking on the owning rank's condition variable, and the data movement outside the mutex.
class LocalRequest : public Request {
 public:
  LocalRequest(std::shared_ptr<LocalWorld> world, int rank)
      : world_(std::move(world)), rank_(rank), job_(*world_->job_) {}

  bool test() final {
    if (done_) return true;
    if (error_) std::rethrow_exception(error_);
    bool ready;
    {
      std::lock_guard<std::mutex> lock(job_.mutex);
      ready = poll_locked();
    }
    return settle(ready);
  }

  bool wait_until(Clock::time_point deadline) final {
    if (done_) return true;
    if (error_) std::rethrow_exception(error_);
    bool ready;
    {
      std::unique_lock<std::mutex> lock(job_.mutex);
      std::condition_variable& wakeup = *job_.wakeups[world_->job_ranks_[rank_]];
      while (!(ready = poll_locked()) && !error_) {
        if (deadline == Clock::time_point::max()) {
          wakeup.wait(lock);
        } else if (wakeup.wait_until(lock, deadline) == std::cv_status::timeout) {
          ready = poll_locked();
          break;
        }
      }
    }
    return settle(ready);
  }

 protected:
  // Under the job mutex: true when the operation can finish; sets error_ when it never will.
  virtual bool poll_locked() = 0;
  // Outside the mutex, once, after poll_locked returned true: moves data to the caller.
  virtual void finish() = 0;

  std::shared_ptr<LocalWorld> world_;
  int rank_;
  Job& job_;
  bool done_ = false;
  std::exception_ptr error_;

 private:
  bool settle(bool ready) {
    if (error_) std::rethrow_exception(error_);
    if (!ready) return false;
    try {
      finish();
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
    done_ = true;
    return true;
  }
};

class LocalRecvRequest : public LocalRequest {
 public:
  LocalRecvRequest(std::shared_ptr<LocalWorld> world, int rank, void* data, std::size_t capacity,
                   int src, int tag, std::shared_ptr<PostedRecv> slot)
      : LocalRequest(std::move(world), rank),
        data_(data),
        capacity_(capacity),
        src_(src),
        tag_(tag),
        slot_(std::move(slot)) {}

  ~LocalRecvRequest() override {
    if (done_ || error_) return;
    // Abandoned before completion: stop it from swallowing a later message.
    std::lock_guard<std::mutex> lock(job_.mutex);
    if (!slot_->matched) unpost_locked();
  }

  std::size_t received_bytes() const override { return received_; }

 protected:
  bool poll_locked() override {
    if (slot_->matched) return true;
    std::exception_ptr error = job_shut_down(job_);
    if (!error) error = rank_unavailable(job_, world_->job_ranks_, rank_);
    if (!error) error = rank_unavailable(job_, world_->job_ranks_, src_);
    if (error) {
      unpost_locked();
      error_ = error;
    }
    return false;
  }

  void finish() override {
    // Once matched, the sender no longer touches the slot.
    std::vector<std::uint8_t> payload = std::move(slot_->payload);
    if (payload.size() > capacity_) {
      throw MismatchError(fmt::format(
          "message from rank {} to rank {} (tag {}) is {} bytes but the receive holds only {} "
          "bytes",
          src_, rank_, tag_, payload.size(), capacity_));
    }
    local_detail::copy_bytes(data_, payload.data(), payload.size());
    received_ = payload.size();
  }

 private:
  void unpost_locked() {
    auto& mailbox = world_->state_->mailboxes[rank_];
    auto channel = mailbox.find(ChannelKey{src_, tag_});
    if (channel == mailbox.end()) return;
    auto& posted = channel->second.posted;
    posted.erase(std::remove(posted.begin(), posted.end(), slot_), posted.end());
    if (channel->second.empty()) mailbox.erase(channel);
  }

  void* data_;
  std::size_t capacity_;
  int src_;
  int tag_;
  std::shared_ptr<PostedRecv> slot_;
  std::size_t received_ = 0;
};

class LocalCollectiveRequest : public LocalRequest {
 public:
  LocalCollectiveRequest(std::shared_ptr<LocalWorld> world, int rank,
                         std::shared_ptr<Collective> op, void* out)
      : LocalRequest(std::move(world), rank), op_(std::move(op)), out_(out) {}

 protected:
  bool poll_locked() override {
    if (op_->mismatch) {
      error_ = std::make_exception_ptr(MismatchError(local_detail::mismatch_message(*op_)));
      return false;
    }
    if (op_->complete) return true;
    std::exception_ptr error = job_shut_down(job_);
    if (!error) error = rank_unavailable(job_, world_->job_ranks_, rank_);
    for (int r = 0; !error && r < world_->size(); ++r) {
      if (!op_->joined[r]) error = rank_unavailable(job_, world_->job_ranks_, r);
    }
    error_ = error;
    return false;
  }

  void finish() override {
    const CollectiveArgs& args = op_->args[rank_];
    switch (args.kind) {
      case CollectiveKind::kAllreduce:
        local_detail::copy_bytes(out_, op_->result.data(), op_->result.size());
        break;
      case CollectiveKind::kBroadcast:
        if (rank_ != args.root)
          local_detail::copy_bytes(out_, op_->inputs[args.root].data(), args.bytes);
        break;
      case CollectiveKind::kAllgather:
        for (std::size_t r = 0; r < op_->inputs.size(); ++r) {
          local_detail::copy_bytes(static_cast<std::uint8_t*>(out_) + r * args.bytes,
                                   op_->inputs[r].data(), args.bytes);
        }
        break;
      case CollectiveKind::kBarrier:
      case CollectiveKind::kSplit:
        break;
    }
  }

 private:
  std::shared_ptr<Collective> op_;
  void* out_;
};

// ---- LocalWorld ----

std::shared_ptr<LocalWorld> LocalWorld::create(int n, std::string host_prefix) {
  if (n < 1) throw InvalidArgument(fmt::format("local world: size must be at least 1, got {}", n));
  std::vector<int> job_ranks(n);
  for (int r = 0; r < n; ++r) job_ranks[r] = r;
  return std::make_shared<LocalWorld>(PrivateTag{}, std::make_shared<Job>(n), std::move(job_ranks),
                                      std::move(host_prefix));
}

LocalWorld::LocalWorld(PrivateTag, std::shared_ptr<Job> job, std::vector<int> job_ranks,
                       std::string host)
    : job_(std::move(job)),
      job_ranks_(std::move(job_ranks)),
      host_(std::move(host)),
      state_(std::make_unique<local_detail::WorldState>(static_cast<int>(job_ranks_.size()))) {}

LocalWorld::~LocalWorld() = default;

std::unique_ptr<LocalTransport> LocalWorld::transport(int rank) {
  if (rank < 0 || rank >= size()) {
    throw InvalidArgument(
        fmt::format("local world: rank {} is out of range [0, {})", rank, size()));
  }
  return std::make_unique<LocalTransport>(shared_from_this(), rank);
}

void LocalWorld::mark(int rank, bool failed, const std::string& reason) {
  if (rank < 0 || rank >= size()) {
    throw InvalidArgument(
        fmt::format("local world: rank {} is out of range [0, {})", rank, size()));
  }
  std::lock_guard<std::mutex> lock(job_->mutex);
  const int job_rank = job_ranks_[rank];
  if (job_->status[job_rank] != RankStatus::kAlive) return;  // the first cause is kept
  job_->status[job_rank] = failed ? RankStatus::kFailed : RankStatus::kLeft;
  job_->reasons[job_rank] = reason;
  job_->wake_all();
}

void LocalWorld::fail(int rank, const std::string& reason) {
  mark(rank, true, reason);
}

void LocalWorld::leave(int rank, const std::string& reason) {
  mark(rank, false, reason);
}

void LocalWorld::shutdown(const std::string& reason) {
  std::lock_guard<std::mutex> lock(job_->mutex);
  if (job_->shut_down) return;
  job_->shut_down = true;
  job_->shutdown_reason = reason;
  job_->wake_all();
}

void LocalWorld::check_usable(int rank, bool left_is_ok) const {
  std::lock_guard<std::mutex> lock(job_->mutex);
  std::exception_ptr error = job_shut_down(*job_);
  const bool left = job_->status[job_ranks_[rank]] == RankStatus::kLeft;
  if (!error && !(left && left_is_ok)) error = rank_unavailable(*job_, job_ranks_, rank);
  if (error) std::rethrow_exception(error);
}

// ---- LocalTransport ----

LocalTransport::LocalTransport(std::shared_ptr<LocalWorld> world, int rank)
    : world_(std::move(world)), rank_(rank) {}

LocalTransport::~LocalTransport() = default;

void LocalTransport::check_peer(int peer, const char* operation) const {
  if (peer < 0 || peer >= size()) {
    throw InvalidArgument(fmt::format("local rank {}: {} names rank {}, outside [0, {})", rank_,
                                      operation, peer, size()));
  }
}

void LocalTransport::check_tag(int tag, const char* operation) const {
  if (tag < 0 || tag > max_tag()) {
    throw InvalidArgument(fmt::format("local rank {}: {} tag {} is outside [0, {}]", rank_,
                                      operation, tag, max_tag()));
  }
}

void LocalTransport::check_data(const void* data, std::size_t bytes, const char* operation) const {
  if (data == nullptr && bytes > 0) {
    throw InvalidArgument(
        fmt::format("local rank {}: {} of {} bytes with a null buffer", rank_, operation, bytes));
  }
}

RequestPtr LocalTransport::isend(const void* data, std::size_t bytes, int dst, int tag) {
  check_peer(dst, "isend");
  check_tag(tag, "isend");
  check_data(data, bytes, "isend");
  // Copy before taking the lock so that large messages do not stall the other ranks.
  const auto* begin = static_cast<const std::uint8_t*>(data);
  std::vector<std::uint8_t> payload;
  if (bytes > 0) payload.assign(begin, begin + bytes);

  Job& job = *world_->job_;
  std::lock_guard<std::mutex> lock(job.mutex);
  std::exception_ptr error = job_shut_down(job);
  if (!error) error = rank_unavailable(job, world_->job_ranks_, rank_);
  if (error) return std::make_unique<LocalSendRequest>(error);

  auto& mailbox = world_->state_->mailboxes[dst];
  auto channel = mailbox.try_emplace(ChannelKey{rank_, tag}).first;
  auto& posted = channel->second.posted;
  if (posted.empty()) {
    channel->second.messages.push_back(std::move(payload));
  } else {
    std::shared_ptr<PostedRecv> slot = std::move(posted.front());
    posted.pop_front();
    slot->payload = std::move(payload);
    slot->matched = true;
    if (channel->second.empty()) mailbox.erase(channel);
    job.wake(world_->job_ranks_[dst]);
  }
  return std::make_unique<LocalSendRequest>(nullptr);
}

RequestPtr LocalTransport::irecv(void* data, std::size_t capacity, int src, int tag) {
  check_peer(src, "irecv");
  check_tag(tag, "irecv");
  check_data(data, capacity, "irecv");
  auto slot = std::make_shared<PostedRecv>();
  {
    std::lock_guard<std::mutex> lock(world_->job_->mutex);
    auto& mailbox = world_->state_->mailboxes[rank_];
    auto channel = mailbox.try_emplace(ChannelKey{src, tag}).first;
    auto& messages = channel->second.messages;
    if (messages.empty()) {
      channel->second.posted.push_back(slot);
    } else {
      slot->payload = std::move(messages.front());
      slot->matched = true;
      messages.pop_front();
      if (channel->second.empty()) mailbox.erase(channel);
    }
  }
  return std::make_unique<LocalRecvRequest>(world_, rank_, data, capacity, src, tag,
                                            std::move(slot));
}

std::shared_ptr<Collective> LocalTransport::join_collective(const CollectiveArgs& args,
                                                            std::vector<std::uint8_t> input) {
  Job& job = *world_->job_;
  const std::uint64_t sequence = next_sequence_++;
  const int n = size();
  std::shared_ptr<Collective> op;
  bool reduce_here = false;
  {
    std::lock_guard<std::mutex> lock(job.mutex);
    auto& open = world_->state_->open;
    auto it = open.find(sequence);
    if (it == open.end())
      it = open.emplace(sequence, std::make_shared<Collective>(sequence, n)).first;
    op = it->second;
    op->joined[rank_] = 1;
    op->args[rank_] = args;
    op->inputs[rank_] = std::move(input);
    ++op->joined_count;
    if (op->first_rank < 0) {
      op->first_rank = rank_;
    } else if (!op->mismatch &&
               !local_detail::differences(op->args[op->first_rank], args).empty()) {
      op->mismatch = true;
      for (int r = 0; r < n; ++r) {
        if (op->joined[r]) job.wake(world_->job_ranks_[r]);
      }
    }
    if (op->joined_count == n) {
      open.erase(it);
      if (!op->mismatch) {
        if (args.kind == CollectiveKind::kAllreduce) {
          reduce_here = true;  // outside the lock, below
        } else {
          if (args.kind == CollectiveKind::kSplit) {
            // Members of each colour ordered by (key, old rank).
            std::map<int, std::vector<std::pair<int, int>>> members;
            for (int r = 0; r < n; ++r) members[op->args[r].color].push_back({op->args[r].key, r});
            op->split_worlds.resize(n);
            op->split_ranks.resize(n);
            for (auto& [color, group] : members) {
              std::sort(group.begin(), group.end());
              std::vector<int> job_ranks;
              for (const auto& member : group)
                job_ranks.push_back(world_->job_ranks_[member.second]);
              auto sub = std::make_shared<LocalWorld>(LocalWorld::PrivateTag{}, world_->job_,
                                                      std::move(job_ranks), world_->host_);
              for (std::size_t i = 0; i < group.size(); ++i) {
                op->split_worlds[group[i].second] = sub;
                op->split_ranks[group[i].second] = static_cast<int>(i);
              }
            }
          }
          op->complete = true;
          for (int r = 0; r < n; ++r) job.wake(world_->job_ranks_[r]);
        }
      }
    }
  }
  if (reduce_here) {
    // Every rank has joined, so the inputs no longer change; the others wait for `complete`.
    std::vector<std::uint8_t> result =
        local_detail::reduce(op->inputs, args.count, args.dtype, args.op);
    std::lock_guard<std::mutex> lock(job.mutex);
    op->result = std::move(result);
    op->inputs.clear();
    op->complete = true;
    for (int r = 0; r < n; ++r) job.wake(world_->job_ranks_[r]);
  }
  return op;
}

RequestPtr LocalTransport::iallreduce(void* data, std::size_t count, DType dtype, ReduceOp op) {
  if (op == ReduceOp::kAverage) {
    throw InvalidArgument(fmt::format(
        "local rank {}: allreduce takes sum, min or max (average is applied by the caller)",
        rank_));
  }
  const std::size_t bytes = count * dtype_size(dtype);
  check_data(data, bytes, "allreduce");
  CollectiveArgs args;
  args.kind = CollectiveKind::kAllreduce;
  args.count = count;
  args.dtype = dtype;
  args.op = op;
  const auto* begin = static_cast<const std::uint8_t*>(data);
  std::vector<std::uint8_t> input;
  if (bytes > 0) input.assign(begin, begin + bytes);
  return std::make_unique<LocalCollectiveRequest>(world_, rank_,
                                                  join_collective(args, std::move(input)), data);
}

RequestPtr LocalTransport::ibroadcast(void* data, std::size_t bytes, int root) {
  check_peer(root, "broadcast");
  check_data(data, bytes, "broadcast");
  CollectiveArgs args;
  args.kind = CollectiveKind::kBroadcast;
  args.bytes = bytes;
  args.root = root;
  std::vector<std::uint8_t> input;
  if (rank_ == root && bytes > 0) {
    const auto* begin = static_cast<const std::uint8_t*>(data);
    input.assign(begin, begin + bytes);
  }
  return std::make_unique<LocalCollectiveRequest>(world_, rank_,
                                                  join_collective(args, std::move(input)), data);
}

RequestPtr LocalTransport::iallgather(const void* send, std::size_t bytes, void* recv) {
  check_data(send, bytes, "allgather");
  check_data(recv, bytes, "allgather");
  CollectiveArgs args;
  args.kind = CollectiveKind::kAllgather;
  args.bytes = bytes;
  std::vector<std::uint8_t> input;
  if (bytes > 0) {
    const auto* begin = static_cast<const std::uint8_t*>(send);
    input.assign(begin, begin + bytes);
  }
  return std::make_unique<LocalCollectiveRequest>(world_, rank_,
                                                  join_collective(args, std::move(input)), recv);
}

RequestPtr LocalTransport::ibarrier() {
  CollectiveArgs args;
  args.kind = CollectiveKind::kBarrier;
  return std::make_unique<LocalCollectiveRequest>(world_, rank_, join_collective(args, {}),
                                                  nullptr);
}

std::unique_ptr<Transport> LocalTransport::split(int color, int key) {
  CollectiveArgs args;
  args.kind = CollectiveKind::kSplit;
  args.color = color;
  args.key = key;
  std::shared_ptr<Collective> op = join_collective(args, {});
  LocalCollectiveRequest request(world_, rank_, op, nullptr);
  request.wait_until(Clock::time_point::max());  // throws on mismatch, failure or shutdown
  // `complete` was observed under the mutex, so the results are safe to read.
  return op->split_worlds[rank_]->transport(op->split_ranks[rank_]);
}

void LocalTransport::fail(const std::string& reason) {
  world_->fail(rank_, reason);
}

std::vector<std::unique_ptr<Transport>> make_local_transports(int n, std::string host_prefix) {
  std::shared_ptr<LocalWorld> world = LocalWorld::create(n, std::move(host_prefix));
  std::vector<std::unique_ptr<Transport>> transports;
  transports.reserve(n);
  for (int r = 0; r < n; ++r) transports.push_back(world->transport(r));
  return transports;
}

}  // namespace decent::comm
