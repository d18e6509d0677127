// Fuzzes the compressor decoders. The first byte picks a compressor, the second what to do with
// the rest of the input:
//   0  decode the rest as wire bytes (arbitrary bytes: only DecodeError may come out);
//   1  encode the rest as float32 values, decode, and require the exact compressors to give the
//      values back bit for bit (any NaN for a NaN);
//   2  encode, flip bits of one byte of the encoding (position and mask from the input), decode:
//      a near-valid encoding must decode or raise DecodeError, never read out of bounds.
// Bit 2 of the second byte decodes into double instead of float.
#include "decent/compress/compressor.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* const kSpecs[] = {"none",
                              "fp32",
                              "fp16",
                              "bf16",
                              "qsgd:s=15,bucket=8",
                              "qsgd:s=3,norm=max",
                              "kbit:bits=4,bucket=16",
                              "kbit:bits=2",
                              "randk:k=3",
                              "topk:ratio=0.25",
                              "sign:bucket=4",
                              "sign"};
constexpr std::size_t kSpecCount = sizeof(kSpecs) / sizeof(kSpecs[0]);
// Sparse encodings may name far more elements than they carry; decoding those is the caller's
// allocation, so larger counts are only checked for a wrong-count error.
constexpr std::size_t kMaxDecoded = std::size_t{1} << 20;

template <typename T>
void decode_checked(const decent::compress::Compressor& c, const std::uint8_t* bytes,
                    std::size_t size) {
  std::size_t count = 0;
  try {
    count = c.decoded_count(bytes, size);
  } catch (const decent::compress::DecodeError&) {
    return;
  }
  if (count > kMaxDecoded) {
    T small[4];
    try {
      c.decode(bytes, size, small, 4);
    } catch (const decent::compress::DecodeError&) {
      return;
    } catch (const decent::InvalidArgument&) {
      return;
    }
    __builtin_trap();  // decoded a count it did not have room for
  }
  std::vector<T> out(count);
  try {
    c.decode(bytes, size, out.data(), out.size());
  } catch (const decent::compress::DecodeError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static std::vector<decent::compress::CompressorPtr> compressors = [] {
    std::vector<decent::compress::CompressorPtr> all;
    for (const char* spec : kSpecs) all.push_back(decent::compress::make_compressor(spec));
    return all;
  }();
  const auto& c = *compressors[data[0] % kSpecCount];
  const int mode = data[1] & 3;
  const bool as_double = (data[1] & 4) != 0;
  const std::uint8_t* rest = data + 2;
  std::size_t rest_size = size - 2;

  if (mode == 0 || mode == 3) {
    if (as_double) {
      decode_checked<double>(c, rest, rest_size);
    } else {
      decode_checked<float>(c, rest, rest_size);
    }
    return 0;
  }

  std::size_t position = 0;
  std::uint8_t mask = 0;
  if (mode == 2) {
    if (rest_size < 3) return 0;
    position = static_cast<std::size_t>(rest[0]) | (static_cast<std::size_t>(rest[1]) << 8);
    mask = rest[2];
    rest += 3;
    rest_size -= 3;
  }
  std::vector<float> values(rest_size / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), rest, values.size() * sizeof(float));
  std::vector<std::uint8_t> wire;
  try {
    wire = c.encode(values.data(), values.size(), /*seed=*/size);
  } catch (const decent::InvalidArgument&) {
    return 0;  // e.g. non-finite values for a compressor that scales by a norm
  }
  if (wire.size() != c.encoded_size(values.size(), decent::DType::kFloat32)) __builtin_trap();
  if (mode == 2 && !wire.empty()) {
    wire[position % wire.size()] ^= mask;
    if (as_double) {
      decode_checked<double>(c, wire.data(), wire.size());
    } else {
      decode_checked<float>(c, wire.data(), wire.size());
    }
    return 0;
  }
  std::vector<float> back(values.size());
  c.decode(wire.data(), wire.size(), back.data(), back.size());  // a valid encoding must decode
  const std::string spec = c.spec();
  if (spec == "none" || spec == "fp32") {
    // Exact, except that a NaN may come back with another payload.
    for (std::size_t i = 0; i < values.size(); ++i) {
      const bool both_nan = std::isnan(values[i]) && std::isnan(back[i]);
      if (!both_nan && std::memcmp(&back[i], &values[i], sizeof(float)) != 0) __builtin_trap();
    }
  }
  return 0;
}
