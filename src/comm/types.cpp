#include "decent/comm/types.h"
#include "decent/comm/transport.h"

#include <sched.h>

#include <algorithm>
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

bool Request::wait_until(Clock::time_point deadline) {
  // Backoff: a few yields keep latency low when the peer is about to answer; then sleeps that
  // grow to 1 ms so that 16 ranks on 2 cores still leave CPU to the ranks making progress.
  int spins = 0;
  auto sleep = std::chrono::microseconds(20);
  while (!test()) {
    if (Clock::now() >= deadline) return false;
    if (spins < 16) {
      ++spins;
      sched_yield();
    } else {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }
  return true;
}

}  // namespace comm
}  // namespace decent
