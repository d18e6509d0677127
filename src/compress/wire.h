// Byte-level helpers of the encodings: little-endian scalars, a bit-packing writer and a reader
// that never reads past the end of its range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace decent::compress::wire {

inline void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
}
inline std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int b = 0; b < 4; ++b) v |= static_cast<std::uint32_t>(p[b]) << (8 * b);
  return v;
}
inline void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline std::uint16_t get_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline void put_f32(std::vector<std::uint8_t>& out, float v) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_u32(out, bits);
}
inline float get_f32(const std::uint8_t* p) {
  const std::uint32_t bits = get_u32(p);
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline void put_f64(std::vector<std::uint8_t>& out, double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_u32(out, static_cast<std::uint32_t>(bits));
  put_u32(out, static_cast<std::uint32_t>(bits >> 32));
}
inline double get_f64(const std::uint8_t* p) {
  const std::uint64_t bits = get_u32(p) | (static_cast<std::uint64_t>(get_u32(p + 4)) << 32);
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Appends fields of 1..32 bits, least significant bit first; flush() pads the last byte.
class BitWriter {
 public:
  explicit BitWriter(std::vector<std::uint8_t>& out) : out_(out) {}
  void put(std::uint32_t value, int bits) {
    acc_ |= static_cast<std::uint64_t>(value) << filled_;
    filled_ += bits;
    while (filled_ >= 8) {
      out_.push_back(static_cast<std::uint8_t>(acc_));
      acc_ >>= 8;
      filled_ -= 8;
    }
  }
  void flush() {
    if (filled_ > 0) out_.push_back(static_cast<std::uint8_t>(acc_));
    acc_ = 0;
    filled_ = 0;
  }

 private:
  std::vector<std::uint8_t>& out_;
  std::uint64_t acc_ = 0;
  int filled_ = 0;
};

// Reads fields written by BitWriter from [begin, begin + size); the caller has checked that
// the range holds every field it reads (sizes follow from the element count).
class BitReader {
 public:
  BitReader(const std::uint8_t* begin, std::size_t size) : p_(begin), end_(begin + size) {}
  std::uint32_t get(int bits) {
    while (filled_ < bits && p_ < end_) {
      acc_ |= static_cast<std::uint64_t>(*p_++) << filled_;
      filled_ += 8;
    }
    const std::uint32_t v = static_cast<std::uint32_t>(acc_ & ((std::uint64_t{1} << bits) - 1));
    acc_ >>= bits;
    filled_ -= bits;
    return v;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::uint64_t acc_ = 0;
  int filled_ = 0;
};

inline std::size_t packed_bytes(std::size_t count, int bits_each) {
  return (count * static_cast<std::size_t>(bits_each) + 7) / 8;
}

}  // namespace decent::compress::wire
