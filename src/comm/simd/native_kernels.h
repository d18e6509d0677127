// The float32/float64 kernels behind weighted_sum, reduce_to and reduce_to_scaled, compiled once
// per instruction set (simd/*.cpp) and chosen at run time by the CPU: the same loops, so every
// variant computes every element with the same operations in the same order and gives bitwise
// identical results (no fused multiply-add: the variants build with -ffp-contract=off).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace decent::detail {

struct WeightedSource;

struct NativeKernels {
  const char* isa;  // "baseline", "avx2", "avx512"
  // out = sum_k w_k * s_k, summed in the order given; `out` may alias any source.
  void (*weighted_sum_f32)(std::size_t count, const WeightedSource* sources, std::size_t n,
                           float* out);
  void (*weighted_sum_f64)(std::size_t count, const WeightedSource* sources, std::size_t n,
                           double* out);
  // out = acc + in; `out` may be `acc`.
  void (*sum_f32)(std::size_t count, const float* in, const float* acc, float* out);
  void (*sum_f64)(std::size_t count, const double* in, const double* acc, double* out);
  // out = (acc + in) * factor, rounding the sum and then the product.
  void (*sum_scaled_f32)(std::size_t count, const float* in, const float* acc, float* out,
                         float factor);
  void (*sum_scaled_f64)(std::size_t count, const double* in, const double* acc, double* out,
                         double factor);
};

// Every variant built into this library.
const NativeKernels& native_kernels_baseline();
#if defined(DECENT_X86_KERNELS)
const NativeKernels& native_kernels_avx2();
const NativeKernels& native_kernels_avx512();
#endif

// The variants this CPU can run, baseline first.
std::vector<const NativeKernels*> supported_native_kernels();

// The supported variant of that name ("baseline", "avx2", "avx512"); InvalidArgument naming the
// supported ones otherwise.
const NativeKernels& native_kernels_named(const std::string& name);

// The variant in use: the environment variable DECENT_KERNELS (baseline, avx2, avx512) if set,
// else the widest the CPU supports. Chosen once; an unknown or unsupported name throws
// InvalidArgument naming the choices.
const NativeKernels& native_kernels();

}  // namespace decent::detail
