// Compressors: what a rank puts on the wire instead of a full-precision vector. Each one has a
// byte encoding whose size is exactly what crosses the network (levels and signs bit-packed,
// indices as 32-bit integers), and a decoder that validates the bytes before reading them.
//
//   auto c = decent::compress::make_compressor("qsgd:s=15,bucket=512");
//   std::vector<std::uint8_t> wire = c->encode(x.data(), x.size(), /*seed=*/step);
//   std::vector<float> y = c->decode<float>(wire);       // C(x), E[C(x)] = x for qsgd
//
// Specs are `name` or `name:key=value,key=value` (list_compressors() prints them all):
//   none              the values themselves (float32 stays float32, float64 stays float64)
//   fp32, fp16, bf16  cast to that floating format (round to nearest even)
//   qsgd:s=S[,bucket=B][,norm=l2|max]
//                     QSGD (Alistarh et al. 2017): per bucket of B elements (0: the whole
//                     vector) a float32 norm, and per element a sign bit and a level in 0..S
//                     chosen by unbiased stochastic rounding of S|v_i|/norm
//   kbit:bits=K[,bucket=B]
//                     deterministic K-bit quantization: per bucket a float32 scale max|v_i|,
//                     per element round(L v_i / scale) in -L..L, L = 2^(K-1) - 1
//   randk:ratio=R | randk:k=K
//                     K (or ceil(R d)) uniformly random coordinates, scaled by d/K (unbiased)
//   topk:ratio=R | topk:k=K
//                     the K coordinates of largest magnitude, unscaled
//   sign[:bucket=B]   one bit per element; every element decodes to +-scale, scale = ||v||_1/d
//                     per bucket
// Every encoding starts with a 6-byte header: compressor kind (1 byte), its parameter (level
// bits, bits per element or value width; 1 byte) and the element count d (uint32, little
// endian). Sizes are given by encoded_size(); docs/compression.md lists the formulas.
//
// Randomized compressors draw from a counter-based generator seeded by encode()'s `seed`, so an
// encoding is a pure function of (values, seed): resuming from a checkpoint repeats it exactly.
// QSGD rounds element i up iff floor(u_i / 2) < frac * 2^31, u_i the low (even i) or high
// (odd i) 32 bits of SplitMix64 output number floor(i/2) of the seed (outputs numbered from 0).
// Random-k runs Floyd's algorithm on the SplitMix64 stream of the seed.
#pragma once

#include "decent/comm/types.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace decent::compress {

// Bytes that are not a valid encoding for this compressor (truncated, wrong kind or count,
// indices out of range, levels beyond the grid, non-finite scales).
class DecodeError : public Error {
 public:
  using Error::Error;
};

class Compressor {
 public:
  virtual ~Compressor() = default;

  // Canonical spec: make_compressor(spec()) builds an equivalent compressor.
  virtual std::string spec() const = 0;
  // True when E[C(v)] = v for every v over the random seed (or C is exact).
  virtual bool unbiased() const = 0;
  // Bytes encode() produces for `count` elements of `source` (kFloat32 or kFloat64).
  virtual std::size_t encoded_size(std::size_t count, DType source) const = 0;

  std::vector<std::uint8_t> encode(const float* values, std::size_t count,
                                   std::uint64_t seed = 0) const;
  std::vector<std::uint8_t> encode(const double* values, std::size_t count,
                                   std::uint64_t seed = 0) const;

  // Element count of an encoding after checking its header and total size.
  std::size_t decoded_count(const std::uint8_t* bytes, std::size_t size) const;
  // Decodes into out[0..count); `count` must be the encoding's element count.
  void decode(const std::uint8_t* bytes, std::size_t size, float* out, std::size_t count) const;
  void decode(const std::uint8_t* bytes, std::size_t size, double* out, std::size_t count) const;
  template <typename T>
  std::vector<T> decode(const std::vector<std::uint8_t>& bytes) const {
    std::vector<T> out(decoded_count(bytes.data(), bytes.size()));
    decode(bytes.data(), bytes.size(), out.data(), out.size());
    return out;
  }

  // Header layout shared by every compressor.
  static constexpr std::size_t kHeaderBytes = 6;

 protected:
  // Writes the encoding of `count` values after the header into body[0, encoded_size() - 6),
  // straight from the caller's element type; `source` is that type, which only lossless
  // formats care about.
  virtual void encode_body(const float* values, std::size_t count, DType source, std::uint64_t seed,
                           std::uint8_t* body) const = 0;
  virtual void encode_body(const double* values, std::size_t count, DType source,
                           std::uint64_t seed, std::uint8_t* body) const = 0;
  // Decodes the bytes after the header, whose size has already been checked against
  // encoded_size(count, source); throws DecodeError for invalid contents.
  virtual void decode_body(const std::uint8_t* body, std::size_t count, DType source,
                           float* out) const = 0;
  virtual void decode_body(const std::uint8_t* body, std::size_t count, DType source,
                           double* out) const = 0;
  // Kind byte of the header, and the parameter byte for an encoding of `source` elements.
  virtual std::uint8_t kind() const = 0;
  virtual std::uint8_t parameter(DType source) const { return 0; }

 private:
  template <typename T>
  std::vector<std::uint8_t> encode_as(const T* values, std::size_t count, std::uint64_t seed) const;
  // Validates the header and size; returns the count and the source type recorded in it.
  std::size_t check_header(const std::uint8_t* bytes, std::size_t size, DType& source) const;
  template <typename T>
  void decode_as(const std::uint8_t* bytes, std::size_t size, T* out, std::size_t count) const;
};

using CompressorPtr = std::shared_ptr<const Compressor>;

// Builds a compressor from its spec. Throws decent::InvalidArgument naming the spec and what is
// wrong with it (unknown name or key, missing or malformed value, value out of range).
CompressorPtr make_compressor(const std::string& spec);

struct CompressorInfo {
  std::string name;
  std::string syntax;       // e.g. "qsgd:s=S[,bucket=B][,norm=l2|max]"
  std::string description;  // one line
};
std::vector<CompressorInfo> list_compressors();

// C(values) as the receivers see it: decode(encode(values, seed)). Returns the encoding.
template <typename T>
std::vector<std::uint8_t> compress(const Compressor& c, const T* values, std::size_t count,
                                   std::uint64_t seed, T* decoded) {
  std::vector<std::uint8_t> bytes = c.encode(values, count, seed);
  c.decode(bytes.data(), bytes.size(), decoded, count);
  return bytes;
}

// Seed for the `purpose`-th encoding of `rank` at `iteration`: distinct streams per rank and
// call, reproducible across runs and resumes.
std::uint64_t derive_seed(std::uint64_t base, int rank, std::int64_t iteration,
                          std::uint64_t purpose = 0);

}  // namespace decent::compress
