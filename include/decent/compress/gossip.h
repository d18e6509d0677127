// Compressed neighbour averaging on a Context.
//
// neighbor_allreduce_encoded: each rank sends its encoding C(v_i) to its out-neighbours (as
// bytes, so the traffic is the encoded size) and forms
//     out_i = self_weight * C(v_i) + sum_{j in N_i, j != i} w_ij C(v_j).
//
// CompressedGossip: CHOCO-style gossip (Koloskova, Stich & Jaggi 2019) with replicas x^_j of
// the neighbours' states, for any compressor (biased ones included):
//     q_i = C(x_i - x^_i);   x^_j <- x^_j + q_j for j in N_i (itself included);
//     x_i <- x_i + gamma sum_j w_ij (x^_j - x^_i).
// Because the rows of W sum to one, sum_j w_ij (x^_j - x^_i) = (sum_j w_ij x^_j) - x^_i, so a
// rank keeps two vectors whatever its degree: its own replica x^_i and the mixed replica
// sum_j w_ij x^_j, updated by sum_j w_ij q_j. Replicas start at zero on every rank; they need a
// static topology (a neighbour that skipped a step would hold a stale replica).
//
//   decent::compress::CompressedGossip<float> gossip(ctx, make_compressor("topk:ratio=0.05"),
//                                                    x.size(), /*consensus_step=*/0.5);
//   for (std::int64_t k = 0; k < steps; ++k) gossip.step(x.data(), k, /*seed=*/k);
#pragma once

#include "decent/comm/context.h"
#include "decent/compress/compressor.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace decent::compress {

// Exchanges `encoded` (this rank's encoding of `count` elements; `own` is its decoded value)
// with the neighbours of topology step `step` and writes the weighted sum of the decoded
// encodings into `out` (count elements; may alias `own`). self_weight defaults to the
// topology's w_ii. Returns the payload bytes this rank sent: encoded size times out-degree.
// Throws DecodeError naming this rank and the sender when a neighbour's bytes are invalid, and
// MismatchError when a neighbour encoded another number of elements.
template <typename T>
std::uint64_t neighbor_allreduce_encoded(Context& ctx, const Compressor& compressor,
                                         const std::vector<std::uint8_t>& encoded, const T* own,
                                         std::size_t count, T* out, std::int64_t step,
                                         std::optional<double> self_weight = std::nullopt);

template <typename T>
class CompressedGossip {
 public:
  // `ctx` must outlive the object. consensus_step is gamma in (0, 1].
  CompressedGossip(Context& ctx, CompressorPtr compressor, std::size_t count,
                   double consensus_step);

  // One gossip round on x (count elements) with the graph of topology step `step`; `seed`
  // drives a randomized compressor. Returns the payload bytes sent by this rank.
  std::uint64_t step(T* x, std::int64_t step, std::uint64_t seed);

  std::size_t size() const { return replica_.size(); }
  double consensus_step() const { return consensus_step_; }
  const Compressor& compressor() const { return *compressor_; }
  // x^_i and sum_j w_ij x^_j; writable so that a checkpoint can restore them.
  std::vector<T>& replica() { return replica_; }
  std::vector<T>& mixed_replica() { return mixed_replica_; }
  // Payload bytes sent by step() so far.
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  Context& ctx_;
  CompressorPtr compressor_;
  double consensus_step_;
  std::vector<T> replica_, mixed_replica_;
  std::vector<T> difference_, decoded_, mixed_update_;  // scratch
  std::uint64_t bytes_sent_ = 0;
};

extern template class CompressedGossip<float>;
extern template class CompressedGossip<double>;

}  // namespace decent::compress
