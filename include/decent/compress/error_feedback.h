// Error feedback (error compensation): what compression dropped is added back the next time,
// so a biased compressor's error does not accumulate in the iterates:
//
//   v = C(u + delta);   delta <- u + delta - v
//
//   decent::compress::ErrorFeedback<float> ef(make_compressor("topk:ratio=0.01"), g.size());
//   std::vector<float> v(g.size());
//   auto wire = ef.encode(g.data(), seed, v.data());   // send `wire`; v is what receivers decode
//
// After any sequence of calls, sum of inputs = sum of transmitted values + residual() (up to
// rounding), which is why the residual must be checkpointed with the model.
#pragma once

#include "decent/compress/compressor.h"

#include <cstdint>
#include <vector>

namespace decent::compress {

template <typename T>
class ErrorFeedback {
 public:
  ErrorFeedback(CompressorPtr compressor, std::size_t count)
      : compressor_(std::move(compressor)), residual_(count, T(0)), corrected_(count) {
    if (!compressor_) throw InvalidArgument("ErrorFeedback: the compressor is null");
  }

  // Encodes u + delta and updates delta; `transmitted` (count elements, may be null) receives
  // C(u + delta) as decoded on the other side.
  std::vector<std::uint8_t> encode(const T* u, std::uint64_t seed, T* transmitted = nullptr) {
    const std::size_t n = residual_.size();
    T* corrected = corrected_.data();
    T* residual = residual_.data();
    for (std::size_t i = 0; i < n; ++i) corrected[i] = u[i] + residual[i];
    T* decoded = transmitted;
    if (decoded == nullptr) {
      decoded_.resize(n);  // kept between calls
      decoded = decoded_.data();
    }
    std::vector<std::uint8_t> bytes = compress(*compressor_, corrected, n, seed, decoded);
    for (std::size_t i = 0; i < n; ++i) residual[i] = corrected[i] - decoded[i];
    return bytes;
  }

  std::size_t size() const { return residual_.size(); }
  const Compressor& compressor() const { return *compressor_; }
  // delta; writable so that a checkpoint can restore it.
  std::vector<T>& residual() { return residual_; }
  const std::vector<T>& residual() const { return residual_; }

 private:
  CompressorPtr compressor_;
  std::vector<T> residual_;
  std::vector<T> corrected_;  // scratch: u + delta
  std::vector<T> decoded_;    // scratch: C(u + delta) when the caller does not want it
};

}  // namespace decent::compress
