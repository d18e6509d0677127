// Byte-level helpers of the encodings: little-endian scalars stored at a pointer, and packing of
// 1..16-bit codes, least significant bit first, a byte or a 32-bit word at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace decent::compress::wire {

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
inline constexpr bool kLittleEndian = true;
#else
inline constexpr bool kLittleEndian = false;
#endif

inline void store_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline std::uint16_t load_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline void store_u32(std::uint8_t* p, std::uint32_t v) {
  if constexpr (kLittleEndian) {
    std::memcpy(p, &v, 4);
  } else {
    for (int b = 0; b < 4; ++b) p[b] = static_cast<std::uint8_t>(v >> (8 * b));
  }
}
inline std::uint32_t load_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  if constexpr (kLittleEndian) {
    std::memcpy(&v, p, 4);
  } else {
    for (int b = 0; b < 4; ++b) v |= static_cast<std::uint32_t>(p[b]) << (8 * b);
  }
  return v;
}
inline void store_u64(std::uint8_t* p, std::uint64_t v) {
  store_u32(p, static_cast<std::uint32_t>(v));
  store_u32(p + 4, static_cast<std::uint32_t>(v >> 32));
}
inline std::uint64_t load_u64(const std::uint8_t* p) {
  return load_u32(p) | (static_cast<std::uint64_t>(load_u32(p + 4)) << 32);
}
inline void store_f32(std::uint8_t* p, float v) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  store_u32(p, bits);
}
inline float load_f32(const std::uint8_t* p) {
  const std::uint32_t bits = load_u32(p);
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
inline void store_f64(std::uint8_t* p, double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  store_u64(p, bits);
}
inline double load_f64(const std::uint8_t* p) {
  const std::uint64_t bits = load_u64(p);
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

inline std::size_t packed_bytes(std::size_t count, int bits_each) {
  return (count * static_cast<std::size_t>(bits_each) + 7) / 8;
}

// Writes codes[0, count) (each below 2^bits, 1 <= bits <= 16) to out[0, packed_bytes(count,
// bits)): code i occupies bits [i*bits, (i+1)*bits) of the little-endian bit stream, the last
// byte padded with zeros.
inline void pack_codes(const std::uint16_t* codes, std::size_t count, int bits, std::uint8_t* out) {
  std::size_t i = 0;
  // Whole bytes for the widths that divide 8 or 16: loops the compiler vectorises.
  switch (bits) {
    case 1:
      for (; i + 8 <= count; i += 8, ++out) {
        std::uint32_t b = 0;
        for (int k = 0; k < 8; ++k) b |= static_cast<std::uint32_t>(codes[i + k]) << k;
        *out = static_cast<std::uint8_t>(b);
      }
      break;
    case 2:
      for (; i + 4 <= count; i += 4, ++out)
        *out = static_cast<std::uint8_t>(codes[i] | (codes[i + 1] << 2) | (codes[i + 2] << 4) |
                                         (codes[i + 3] << 6));
      break;
    case 4:
      for (; i + 2 <= count; i += 2, ++out)
        *out = static_cast<std::uint8_t>(codes[i] | (codes[i + 1] << 4));
      break;
    case 8:
      for (; i < count; ++i) out[i] = static_cast<std::uint8_t>(codes[i]);
      return;
    case 16:
      for (; i < count; ++i) store_u16(out + 2 * i, codes[i]);
      return;
    default: {
      // Any width: a 64-bit accumulator emptied 32 bits at a time (at most 31 + 16 bits held).
      std::uint64_t acc = 0;
      int filled = 0;
      for (; i < count; ++i) {
        acc |= static_cast<std::uint64_t>(codes[i]) << filled;
        filled += bits;
        if (filled >= 32) {
          store_u32(out, static_cast<std::uint32_t>(acc));
          out += 4;
          acc >>= 32;
          filled -= 32;
        }
      }
      for (; filled > 0; filled -= 8, acc >>= 8) *out++ = static_cast<std::uint8_t>(acc);
      return;
    }
  }
  // Tail of a 1/2/4-bit stream: fewer codes than fill a byte.
  if (i < count) {
    std::uint32_t b = 0;
    for (int shift = 0; i < count; ++i, shift += bits)
      b |= static_cast<std::uint32_t>(codes[i]) << shift;
    *out = static_cast<std::uint8_t>(b);
  }
}

// Reads `count` codes of `bits` bits from in[0, packed_bytes(count, bits)) (never beyond it).
inline void unpack_codes(const std::uint8_t* in, std::size_t count, int bits,
                         std::uint16_t* codes) {
  std::size_t i = 0;
  switch (bits) {
    case 1:
      for (; i + 8 <= count; i += 8, ++in)
        for (int k = 0; k < 8; ++k) codes[i + k] = static_cast<std::uint16_t>((*in >> k) & 1u);
      break;
    case 2:
      for (; i + 4 <= count; i += 4, ++in)
        for (int k = 0; k < 4; ++k)
          codes[i + k] = static_cast<std::uint16_t>((*in >> (2 * k)) & 3u);
      break;
    case 4:
      for (; i + 2 <= count; i += 2, ++in) {
        codes[i] = static_cast<std::uint16_t>(*in & 15u);
        codes[i + 1] = static_cast<std::uint16_t>(*in >> 4);
      }
      break;
    case 8:
      for (; i < count; ++i) codes[i] = in[i];
      return;
    case 16:
      for (; i < count; ++i) codes[i] = load_u16(in + 2 * i);
      return;
    default: {
      const std::uint8_t* end = in + packed_bytes(count, bits);
      const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
      std::uint64_t acc = 0;
      int filled = 0;
      for (; i < count; ++i) {
        if (filled < bits) {
          if (end - in >= 4) {
            acc |= static_cast<std::uint64_t>(load_u32(in)) << filled;
            in += 4;
            filled += 32;
          } else {
            while (filled < bits) {
              acc |= static_cast<std::uint64_t>(*in++) << filled;
              filled += 8;
            }
          }
        }
        codes[i] = static_cast<std::uint16_t>(acc & mask);
        acc >>= bits;
        filled -= bits;
      }
      return;
    }
  }
  const std::uint32_t mask = (1u << bits) - 1;
  for (int shift = 0; i < count; ++i, shift += bits)
    codes[i] = static_cast<std::uint16_t>((*in >> shift) & mask);
}

}  // namespace decent::compress::wire
