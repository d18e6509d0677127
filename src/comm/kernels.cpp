#include "kernels.h"

#include "decent/comm/types.h"
#include "simd/native_kernels.h"

#include <Eigen/Core>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace decent::detail {
namespace {

template <typename T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using CVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Half-precision: accumulate in float in blocks, round once.
template <typename H>
void weighted_sum_half(std::size_t count, const std::vector<WeightedSource>& sources, void* out) {
  constexpr std::size_t kBlock = 4096;
  float acc[kBlock];
  H* o = static_cast<H*>(out);
  for (std::size_t begin = 0; begin < count; begin += kBlock) {
    const std::size_t len = std::min(kBlock, count - begin);
    std::fill(acc, acc + len, 0.0f);
    for (const auto& s : sources) {
      const H* src = static_cast<const H*>(s.data) + begin;
      const float w = static_cast<float>(s.weight);
      for (std::size_t i = 0; i < len; ++i) acc[i] += w * static_cast<float>(src[i]);
    }
    for (std::size_t i = 0; i < len; ++i) o[begin + i] = H(acc[i]);
  }
}

template <typename T>
void weighted_sum_integer(std::size_t count, const std::vector<WeightedSource>& sources,
                          void* out) {
  std::vector<double> acc(count, 0.0);
  for (const auto& s : sources) {
    const T* src = static_cast<const T*>(s.data);
    for (std::size_t i = 0; i < count; ++i) acc[i] += s.weight * static_cast<double>(src[i]);
  }
  T* o = static_cast<T*>(out);
  for (std::size_t i = 0; i < count; ++i) o[i] = static_cast<T>(std::llround(acc[i]));
}

template <typename T>
void reduce_native(ReduceOp op, std::size_t count, const void* in, const void* acc, void* out) {
  const auto n = static_cast<Eigen::Index>(count);
  CVec<T> a(static_cast<const T*>(in), n);
  CVec<T> b(static_cast<const T*>(acc), n);
  Vec<T> o(static_cast<T*>(out), n);
  // Element-wise, so `out` may be `acc`.
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      if constexpr (std::is_same_v<T, float>)
        native_kernels().sum_f32(count, static_cast<const float*>(in),
                                 static_cast<const float*>(acc), static_cast<float*>(out));
      else
        native_kernels().sum_f64(count, static_cast<const double*>(in),
                                 static_cast<const double*>(acc), static_cast<double*>(out));
      return;
    case ReduceOp::kMin:
      o = b.min(a);
      return;
    case ReduceOp::kMax:
      o = b.max(a);
      return;
  }
}

// Signed overflow is undefined in C++: add as unsigned, which wraps like MPI_SUM in practice.
template <typename T>
void reduce_integer(ReduceOp op, std::size_t count, const void* in, const void* acc, void* out) {
  const T* a = static_cast<const T*>(in);
  const T* b = static_cast<const T*>(acc);
  T* o = static_cast<T*>(out);
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      for (std::size_t i = 0; i < count; ++i)
        o[i] = static_cast<T>(static_cast<U>(static_cast<U>(b[i]) + static_cast<U>(a[i])));
      return;
    case ReduceOp::kMin:
      for (std::size_t i = 0; i < count; ++i) o[i] = a[i] < b[i] ? a[i] : b[i];
      return;
    case ReduceOp::kMax:
      for (std::size_t i = 0; i < count; ++i) o[i] = b[i] < a[i] ? a[i] : b[i];
      return;
  }
}

template <typename H>
void reduce_half(ReduceOp op, std::size_t count, const void* in, const void* acc, void* out) {
  const H* a = static_cast<const H*>(in);
  const H* b = static_cast<const H*>(acc);
  H* o = static_cast<H*>(out);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAverage:
      for (std::size_t i = 0; i < count; ++i)
        o[i] = H(static_cast<float>(b[i]) + static_cast<float>(a[i]));
      return;
    case ReduceOp::kMin:
      for (std::size_t i = 0; i < count; ++i)
        o[i] = static_cast<float>(a[i]) < static_cast<float>(b[i]) ? a[i] : b[i];
      return;
    case ReduceOp::kMax:
      for (std::size_t i = 0; i < count; ++i)
        o[i] = static_cast<float>(b[i]) < static_cast<float>(a[i]) ? a[i] : b[i];
      return;
  }
}

}  // namespace

void reduce_to(DType dtype, ReduceOp op, std::size_t count, const void* in, const void* acc,
               void* out) {
  switch (dtype) {
    case DType::kFloat32:
      return reduce_native<float>(op, count, in, acc, out);
    case DType::kFloat64:
      return reduce_native<double>(op, count, in, acc, out);
    case DType::kFloat16:
      return reduce_half<Eigen::half>(op, count, in, acc, out);
    case DType::kBFloat16:
      return reduce_half<Eigen::bfloat16>(op, count, in, acc, out);
    case DType::kInt32:
      return reduce_integer<std::int32_t>(op, count, in, acc, out);
    case DType::kInt64:
      return reduce_integer<std::int64_t>(op, count, in, acc, out);
    case DType::kUInt8:
      return reduce_integer<std::uint8_t>(op, count, in, acc, out);
  }
}

void reduce_to_scaled(DType dtype, ReduceOp op, std::size_t count, const void* in, const void* acc,
                      void* out, double factor) {
  const bool sum = op == ReduceOp::kSum || op == ReduceOp::kAverage;
  if (factor != 1.0 && sum && dtype == DType::kFloat32)
    return native_kernels().sum_scaled_f32(count, static_cast<const float*>(in),
                                           static_cast<const float*>(acc), static_cast<float*>(out),
                                           static_cast<float>(factor));
  if (factor != 1.0 && sum && dtype == DType::kFloat64)
    return native_kernels().sum_scaled_f64(count, static_cast<const double*>(in),
                                           static_cast<const double*>(acc),
                                           static_cast<double*>(out), factor);
  reduce_to(dtype, op, count, in, acc, out);
  scale(dtype, count, factor, out);
}

void reduce_into(DType dtype, ReduceOp op, std::size_t count, const void* in, void* inout) {
  reduce_to(dtype, op, count, in, inout, inout);
}

void weighted_sum(DType dtype, std::size_t count, const std::vector<WeightedSource>& sources,
                  void* out) {
  switch (dtype) {
    case DType::kFloat32:
      return native_kernels().weighted_sum_f32(count, sources.data(), sources.size(),
                                               static_cast<float*>(out));
    case DType::kFloat64:
      return native_kernels().weighted_sum_f64(count, sources.data(), sources.size(),
                                               static_cast<double*>(out));
    case DType::kFloat16:
      return weighted_sum_half<Eigen::half>(count, sources, out);
    case DType::kBFloat16:
      return weighted_sum_half<Eigen::bfloat16>(count, sources, out);
    case DType::kInt32:
      return weighted_sum_integer<std::int32_t>(count, sources, out);
    case DType::kInt64:
      return weighted_sum_integer<std::int64_t>(count, sources, out);
    case DType::kUInt8:
      return weighted_sum_integer<std::uint8_t>(count, sources, out);
  }
}

void scale(DType dtype, std::size_t count, double factor, void* data) {
  if (factor == 1.0) return;
  weighted_sum(dtype, count, {{data, factor}}, data);
}

void scaled_copy(DType dtype, std::size_t count, double factor, const void* src, void* dst) {
  if (factor == 1.0) {
    if (src != dst) std::memcpy(dst, src, count * dtype_size(dtype));
    return;
  }
  weighted_sum(dtype, count, {{src, factor}}, dst);
}

bool is_finite(double v) {
  return std::isfinite(v);
}

std::vector<const NativeKernels*> supported_native_kernels() {
  std::vector<const NativeKernels*> out{&native_kernels_baseline()};
#if defined(DECENT_X86_KERNELS)
  // __builtin_cpu_supports also checks that the OS saves the wider registers.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) out.push_back(&native_kernels_avx2());
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f"))
    out.push_back(&native_kernels_avx512());
#endif
  return out;
}

const NativeKernels& native_kernels_named(const std::string& name) {
  const std::vector<const NativeKernels*> supported = supported_native_kernels();
  std::vector<std::string> names;
  for (const NativeKernels* k : supported) {
    if (name == k->isa) return *k;
    names.push_back(k->isa);
  }
  throw InvalidArgument(fmt::format("DECENT_KERNELS={}: this CPU and build support {}", name,
                                    fmt::join(names, ", ")));
}

const NativeKernels& native_kernels() {
  static const NativeKernels* const chosen = [] {
    const char* wanted = std::getenv("DECENT_KERNELS");
    if (wanted == nullptr || *wanted == '\0') return supported_native_kernels().back();
    return &native_kernels_named(wanted);
  }();
  return *chosen;
}

}  // namespace decent::detail

namespace decent {

const char* combining_kernels() {
  return detail::native_kernels().isa;
}

}  // namespace decent
