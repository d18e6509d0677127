// Element types, buffers and errors shared by every communication layer. No MPI, no LibTorch.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace decent {

enum class DType : std::uint8_t { kFloat32, kFloat64, kFloat16, kBFloat16, kInt32, kInt64, kUInt8 };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);
// True for the types neighbour averaging can combine with weights.
bool dtype_is_floating(DType t);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kFloat64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::kUInt8;
}

enum class ReduceOp : std::uint8_t { kSum, kAverage, kMin, kMax };
const char* reduce_op_name(ReduceOp op);

// The instruction set of the element-wise kernels that combine float32/float64 buffers in
// neighbour averaging and allreduce: "baseline", "avx2" or "avx512", the widest this CPU
// supports unless DECENT_KERNELS names another (docs/communication.md, "Combining kernels").
// Throws InvalidArgument if DECENT_KERNELS names one this CPU or build does not support.
const char* combining_kernels();

// A typed, contiguous, mutable view of `count` elements. It does not own memory.
struct Buffer {
  void* data = nullptr;
  std::size_t count = 0;
  DType dtype = DType::kFloat32;

  Buffer() = default;
  Buffer(void* d, std::size_t n, DType t) : data(d), count(n), dtype(t) {}
  template <typename T>
  Buffer(T* d, std::size_t n) : data(d), count(n), dtype(dtype_of<T>()) {}
  template <typename T>
  Buffer(std::vector<T>& v) : Buffer(v.data(), v.size()) {}  // NOLINT: implicit by design
  std::size_t bytes() const { return count * dtype_size(dtype); }
};

// Read-only counterpart of Buffer.
struct ConstBuffer {
  const void* data = nullptr;
  std::size_t count = 0;
  DType dtype = DType::kFloat32;

  ConstBuffer() = default;
  ConstBuffer(const void* d, std::size_t n, DType t) : data(d), count(n), dtype(t) {}
  template <typename T>
  ConstBuffer(const T* d, std::size_t n) : data(d), count(n), dtype(dtype_of<T>()) {}
  template <typename T>
  ConstBuffer(const std::vector<T>& v) : ConstBuffer(v.data(), v.size()) {}       // NOLINT
  ConstBuffer(const Buffer& b) : data(b.data), count(b.count), dtype(b.dtype) {}  // NOLINT
  std::size_t bytes() const { return count * dtype_size(dtype); }
};

using Clock = std::chrono::steady_clock;

// Base of every error the library raises. Messages name the rank and the operation.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Bad arguments on this rank (weights for a non-neighbour, rank out of range, bad dtype...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
// Ranks disagree (different counts, dtypes, operations, or send/receive sets that do not match).
class MismatchError : public Error {
 public:
  using Error::Error;
};
// A wait exceeded the context's timeout; the message names the ranks still missing.
class TimeoutError : public Error {
 public:
  using Error::Error;
};
// The communicator is unusable (peer lost, shut down, or a previous operation failed).
class CommError : public Error {
 public:
  using Error::Error;
};

}  // namespace decent
