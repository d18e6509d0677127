// Element-wise kernels for combining received buffers (weighted sums) in any floating dtype.
// float16/bfloat16 are accumulated in float32 and rounded once at the end.
#pragma once

#include "decent/comm/types.h"

#include <cstddef>
#include <vector>

namespace decent::detail {

// A weighted input to a combination.
struct WeightedSource {
  const void* data;
  double weight;
};

// out = sum_k sources[k].weight * sources[k].data, summed in the order given. `out` may alias
// one of the sources.
void weighted_sum(DType dtype, std::size_t count, const std::vector<WeightedSource>& sources,
                  void* out);

// data *= factor, in place.
void scale(DType dtype, std::size_t count, double factor, void* data);

// dst = factor * src (dst must not overlap src unless identical).
void scaled_copy(DType dtype, std::size_t count, double factor, const void* src, void* dst);

// inout[i] = op(inout[i], in[i]) for kSum, kMin, kMax (kAverage sums; the caller divides).
// float16/bfloat16 are widened to float32, combined and rounded back, like the MPI backend's
// reduction; integer sums wrap around like MPI's. `in` must not overlap `inout`.
void reduce_into(DType dtype, ReduceOp op, std::size_t count, const void* in, void* inout);

// out[i] = op(acc[i], in[i]): reduce_into writing elsewhere, which saves copying `acc` first.
// `out` may be `acc`; `in` must not overlap `out`.
void reduce_to(DType dtype, ReduceOp op, std::size_t count, const void* in, const void* acc,
               void* out);

// out[i] = factor * op(acc[i], in[i]): the last reduction of an average in one pass instead of
// reduce_to followed by scale, with the same result (float32/float64 round the sum and then the
// product, as the two passes do; the other dtypes take the two passes).
void reduce_to_scaled(DType dtype, ReduceOp op, std::size_t count, const void* in, const void* acc,
                      void* out, double factor);

// True if every element is finite (float types) — used to validate user weights, not payloads.
bool is_finite(double v);

}  // namespace decent::detail
