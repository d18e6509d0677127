#include "decent/comm/types.h"
#include "decent/comm/transport.h"

#include "polling.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

namespace decent {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat64:
      return 8;
    case DType::kFloat16:
      return 2;
    case DType::kBFloat16:
      return 2;
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kUInt8:
      return 1;
  }
  throw InvalidArgument("unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat64:
      return "float64";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kUInt8:
      return "uint8";
  }
  return "unknown";
}

bool dtype_is_floating(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 ||
         t == DType::kBFloat16;
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAverage:
      return "average";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "unknown";
}

namespace comm {

namespace {

// A non-negative integer from the environment, or `fallback` when unset.
long long env_microseconds(const char* name, long long fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 0)
    throw InvalidArgument(std::string("environment variable ") + name + "='" + text +
                          "' is not a non-negative number of microseconds");
  return value;
}

int ranks_on_this_host() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
    const char* text = std::getenv(name);
    if (text == nullptr) continue;
    const int value = std::atoi(text);
    if (value > 0) return value;
  }
  return 1;
}

int usable_hardware_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

PollPolicy make_poll_policy() {
  PollPolicy p;
  p.ranks_on_host = ranks_on_this_host();
  p.hardware_threads = usable_hardware_threads();
  // Every rank has a core: the peer answers within microseconds, so a short window and short
  // sleeps keep the latency low. Ranks share cores: the peer must first be scheduled, which takes
  // up to a scheduler slice; yielding for longer (1 ms) keeps this rank runnable to notice the
  // message at once while handing the core to whoever can use it, and only then sleeping frees
  // the core for long waits. Measured in docs/benchmarks.md ("Polling").
  const bool shared = p.oversubscribed();
  p.spin = std::chrono::microseconds(env_microseconds("DECENT_POLL_SPIN_US", shared ? 1000 : 200));
  p.max_sleep =
      std::chrono::microseconds(env_microseconds("DECENT_POLL_MAX_SLEEP_US", shared ? 1000 : 100));
  // Shared cores: 300 µs of back-to-back tests before yielding. A rank that yields on every
  // test hands its core to a peer that often has nothing to do yet, and the round trip through
  // the scheduler then costs more than the wait (n = 8 on 2 cores, 4 KiB allreduce: 0.48 ms
  // yielding at once, 0.34 ms after 300 µs; docs/benchmarks.md, "Polling").
  p.busy = std::chrono::microseconds(env_microseconds("DECENT_POLL_BUSY_US", shared ? 300 : 50));
  // A zero cap would turn the wait into a busy loop.
  p.max_sleep = std::max(p.max_sleep, std::chrono::microseconds(1));
  p.first_sleep = std::min(p.first_sleep, p.max_sleep);
  return p;
}

}  // namespace

const PollPolicy& poll_policy() {
  static const PollPolicy policy = make_poll_policy();
  return policy;
}

Backoff::Backoff(const PollPolicy& policy)
    : policy_(policy), start_(Clock::now()), sleep_(policy.first_sleep) {}

void Backoff::pause(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now - start_ < policy_.busy) return;  // test again at once
  if (now - start_ < policy_.spin) {
    sched_yield();
    return;
  }
  const auto until = std::min(deadline, now + sleep_);
  if (until > now) std::this_thread::sleep_until(until);
  sleep_ = std::min(sleep_ * 2, policy_.max_sleep);
}

bool Request::wait_until(Clock::time_point deadline) {
  Backoff backoff;
  while (!test()) {
    if (Clock::now() >= deadline) return false;
    backoff.pause(deadline);
  }
  return true;
}

ExchangeStatus Transport::exchange(const void* send, std::size_t send_bytes, int dst, void* recv,
                                   std::size_t capacity, int src, int tag,
                                   Clock::time_point deadline, std::size_t /*room*/) {
  ExchangeStatus status;
  RequestPtr received, sent;
  if (src >= 0) received = irecv(recv, capacity, src, tag);
  if (dst >= 0) sent = isend(send, send_bytes, dst, tag);
  if (received) {
    try {
      if (!received->test() && !received->wait_until(deadline)) {
        status.state = ExchangeStatus::State::kReceiveTimedOut;
        return status;
      }
      status.received_bytes = received->received_bytes();
    } catch (const MismatchError&) {
      status.too_large = true;  // the transport refused it (and consumed it)
    }
  }
  if (sent && !sent->test() && !sent->wait_until(deadline))
    status.state = ExchangeStatus::State::kSendTimedOut;
  return status;
}

}  // namespace comm
}  // namespace decent
