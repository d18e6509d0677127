// The Compressor base (headers, size checks), every compressor, and the spec parser. Each
// compressor encodes and decodes float32 and float64 directly (templates behind the two virtual
// overloads), a block of elements at a time.
#include "decent/compress/compressor.h"

#include "wire.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <type_traits>

// The element loops below are written so that the compiler vectorises them (no branches, no
// calls). On x86-64 Linux with GCC they are also compiled for AVX2 and the variant is
// picked once at load time (target_clones, an ifunc); both variants execute the same IEEE
// operations (no FMA; ISO C++ mode keeps contraction off), so encodings are bit-identical.
// GCC only: Clang (up to at least 14) rejects target_clones on function templates, which these
// kernels are, so a Clang build (e.g. the fuzzers) keeps the portable variant.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(DECENT_NO_TARGET_CLONES)
#define DECENT_VECTOR_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define DECENT_VECTOR_KERNEL
#endif

namespace decent::compress {
namespace {

// Kind bytes of the header; never reuse a value.
enum Kind : std::uint8_t {
  kNone = 1,
  kFp16 = 2,
  kBf16 = 3,
  kQsgd = 4,
  kKbit = 5,
  kRandk = 6,
  kTopk = 7,
  kSign = 8,
  kFp32 = 9,
};

const char* kind_name(std::uint8_t kind) {
  switch (kind) {
    case kNone:
      return "none";
    case kFp16:
      return "fp16";
    case kBf16:
      return "bf16";
    case kQsgd:
      return "qsgd";
    case kKbit:
      return "kbit";
    case kRandk:
      return "randk";
    case kTopk:
      return "topk";
    case kSign:
      return "sign";
    case kFp32:
      return "fp32";
    default:
      return "unknown";
  }
}

// SplitMix64 (Steele et al. 2014): the n-th output is a pure function of (seed, n), so any
// element's random word can be computed without running the stream up to it.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return mix(state_ += kGamma); }
  // Output number `n` (0-based) of the stream seeded with `seed`.
  static std::uint64_t at(std::uint64_t seed, std::uint64_t n) {
    return mix(seed + (n + 1) * kGamma);
  }
  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, range) (range >= 1), exactly uniform: Lemire's multiply-shift with
  // rejection of the biased low products.
  std::uint32_t below(std::uint32_t range) {
    std::uint64_t m = static_cast<std::uint64_t>(static_cast<std::uint32_t>(next())) * range;
    auto low = static_cast<std::uint32_t>(m);
    if (low < range) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-range) % range;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(static_cast<std::uint32_t>(next())) * range;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

 private:
  static constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
  std::uint64_t state_;
};

// Bits of a float or double as an unsigned integer of the same width, and back.
template <typename T>
using UintOf = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
template <typename T>
UintOf<T> bits_of(T x) {
  UintOf<T> u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
template <typename T>
T from_bits(UintOf<T> u) {
  T x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// float32 >= v for finite non-negative v, so that |v_i| / scale never exceeds 1 after rounding.
float round_up_to_float(double v) {
  float f = static_cast<float>(v);
  if (std::isfinite(f) && static_cast<double>(f) < v)
    f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// ---------------------------------------------------------------- 16-bit floats

// IEEE binary format with M fraction bits and E exponent bits in 16 bits (fp16: 10/5, bf16:
// 7/8), rounded to nearest even straight from float or double (no double rounding). Branch-free
// integer arithmetic, so that loops over it vectorise:
//  - normal results: add the rounding bias (half an ulp minus one, plus the lowest kept bit) and
//    shift; a carry out of the fraction moves into the exponent, and a carry past the largest
//    finite value gives exactly the infinity bits (anything larger is clamped to infinity);
//  - subnormal results (|x| below the smallest normal): x + magic, where magic's ulp is the
//    target's subnormal step, lets the FPU round to nearest even; the low bits are the result
//    (2^M, the smallest normal, when it rounds up to it);
//  - NaN becomes the quiet NaN with the sign kept.
template <int M, int E, typename T>
std::uint16_t to_small_float(T x) {
  using U = UintOf<T>;
  constexpr int kSourceBits = 8 * sizeof(T);
  constexpr int kSourceFraction = std::numeric_limits<T>::digits - 1;
  constexpr int kSourceBias = std::numeric_limits<T>::max_exponent - 1;
  constexpr int kBias = (1 << (E - 1)) - 1;
  constexpr int kShift = kSourceFraction - M;
  constexpr U kInfinity = static_cast<U>((1u << E) - 1) << M;
  constexpr U kQuietNan = kInfinity | (U{1} << (M - 1));
  // Bits of 2^(kBias + 1) in the source format (for bf16 from float32: its infinity).
  constexpr U kOverflow = static_cast<U>(kSourceBias + kBias + 1) << kSourceFraction;
  // Bits of 2^(1 - kBias), the smallest normal target value, in the source format.
  constexpr U kSmallestNormal = static_cast<U>(kSourceBias + 1 - kBias) << kSourceFraction;

  const U u = bits_of(x);
  const U sign = (u >> (kSourceBits - 16)) & 0x8000u;
  const U a = u & ~(U{1} << (kSourceBits - 1));
  const T magnitude = from_bits<T>(a);
  // Selections are masks (all ones or zero) from floating-point comparisons, so that the loop
  // has no branches and no 64-bit integer comparisons (which SSE2 lacks), and vectorises.
  auto mask = [](bool c) { return static_cast<U>(0) - static_cast<U>(c); };
  U out = (a + ((U{1} << (kShift - 1)) - 1) + ((a >> kShift) & 1u)) >> kShift;
  out -= static_cast<U>(kSourceBias - kBias) << M;
  // From 2^(kBias + 1) on (infinity included) the result is infinite; just below, rounding up
  // carries into exactly the infinity bits.
  const U overflow = mask(magnitude >= from_bits<T>(kOverflow));
  out = (out & ~overflow) | (kInfinity & overflow);
  if constexpr (kSourceBias != kBias) {
    // 2^(1 - kBias - M + kSourceFraction): its ulp is the subnormal step 2^(1 - kBias - M).
    constexpr U kMagicBits = static_cast<U>(kSourceBias + 1 - kBias - M + kSourceFraction)
                             << kSourceFraction;
    const T magic = from_bits<T>(kMagicBits);
    const U subnormal = bits_of<T>(magnitude + magic) - kMagicBits;
    const U tiny = mask(magnitude < from_bits<T>(kSmallestNormal));
    out = (subnormal & tiny) | (out & ~tiny);
  }
  // Same exponent range (bf16 from float32): the normal path also rounds subnormals exactly.
  const U nan = mask(magnitude != magnitude);
  out = (kQuietNan & nan) | (out & ~nan);
  return static_cast<std::uint16_t>(sign | out);
}

// Exact value of an fp16 or bf16 bit pattern as float32 (every one is representable).
template <int M, int E>
float from_small_float(std::uint16_t h) {
  if constexpr (E == 8) {
    return from_bits<float>(static_cast<std::uint32_t>(h) << 16);
  } else {
    static_assert(M == 10 && E == 5, "fp16 or bf16");
    // Shift the exponent and fraction into place and rebias; Inf/NaN get the all-ones exponent,
    // subnormals are renormalised by one subtraction of 2^-14 (exact).
    constexpr std::uint32_t kExponent = 0x7C00u << 13;
    std::uint32_t o = (static_cast<std::uint32_t>(h) & 0x7FFFu) << 13;
    const std::uint32_t exponent = o & kExponent;
    o += (127 - 15) << 23;
    const std::uint32_t special = o + ((128 - 16) << 23);
    const float subnormal = from_bits<float>(o + (1u << 23)) - from_bits<float>(113u << 23);
    o = exponent == kExponent ? special : o;
    o = exponent == 0 ? bits_of(subnormal) : o;
    return from_bits<float>(o | ((static_cast<std::uint32_t>(h) & 0x8000u) << 16));
  }
}

// Element loops of the 16-bit casts.
template <int M, int E, typename T>
DECENT_VECTOR_KERNEL void to_small_floats(const T* v, std::size_t n, std::uint16_t* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = to_small_float<M, E>(v[i]);
}
template <int M, int E, typename T>
DECENT_VECTOR_KERNEL void from_small_floats(const std::uint16_t* h, std::size_t n, T* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(from_small_float<M, E>(h[i]));
}

// ---------------------------------------------------------------- reductions

// Several independent accumulators, so that the loop is not one chain of dependent additions
// and vectorises; the order of the additions is fixed, so the result is deterministic.
constexpr std::size_t kLanes = 8;

template <typename T>
DECENT_VECTOR_KERNEL double sum_of_squares(const T* v, std::size_t n) {
  double acc[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t k = 0; k < kLanes; ++k) {
      const double x = v[i + k];
      acc[k] += x * x;
    }
  for (std::size_t k = 0; i < n; ++i, ++k) {
    const double x = v[i];
    acc[k] += x * x;
  }
  double total = 0.0;
  for (double a : acc) total += a;
  return total;
}

template <typename T>
DECENT_VECTOR_KERNEL double sum_of_magnitudes(const T* v, std::size_t n) {
  double acc[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t k = 0; k < kLanes; ++k) acc[k] += std::fabs(static_cast<double>(v[i + k]));
  for (std::size_t k = 0; i < n; ++i, ++k) acc[k] += std::fabs(static_cast<double>(v[i]));
  double total = 0.0;
  for (double a : acc) total += a;
  return total;
}

// max |v_i| over the non-NaN elements (0 for none); `saw_nan` tells whether there was a NaN.
// probe accumulates a - a, which is NaN exactly when an element is infinite or NaN; only then
// are the elements searched for a NaN.
template <typename T>
DECENT_VECTOR_KERNEL T max_magnitude(const T* v, std::size_t n, bool& saw_nan) {
  T acc[kLanes] = {};
  T probe[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t k = 0; k < kLanes; ++k) {
      const T a = std::fabs(v[i + k]);
      acc[k] = a > acc[k] ? a : acc[k];
      probe[k] += a - a;
    }
  for (std::size_t k = 0; i < n; ++i, ++k) {
    const T a = std::fabs(v[i]);
    acc[k] = a > acc[k] ? a : acc[k];
    probe[k] += a - a;
  }
  T m = 0;
  bool special = false;
  for (std::size_t k = 0; k < kLanes; ++k) {
    m = acc[k] > m ? acc[k] : m;
    special |= probe[k] != probe[k];
  }
  saw_nan = special && std::any_of(v, v + n, [](T x) { return x != x; });
  return m;
}

// Index of the lowest set bit of a non-zero word.
inline int lowest_set_bit(std::uint64_t bits) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(bits);
#else
  int bit = 0;
  while (((bits >> bit) & 1u) == 0) ++bit;
  return bit;
#endif
}

// QSGD codes of one bucket: level << 1 | sign bit, the level floor(r) or floor(r) + 1 for
// r = |v_i| factor (factor = s / scale, 0 for a zero or non-finite scale). Every quantity is
// kept in doubles (integers up to 2^31 are exact), which lets the loop vectorise: the top 31 bits
// of the random word u decide, u / 2 < fraction * 2^31.
template <typename T>
DECENT_VECTOR_KERNEL void qsgd_codes(const T* v, std::size_t len, double factor, double levels,
                                     const std::uint32_t* random, std::uint16_t* out) {
  for (std::size_t i = 0; i < len; ++i) {
    const double x = static_cast<double>(v[i]);
    const double sign = std::copysign(1.0, x) < 0.0 ? 1.0 : 0.0;  // the sign bit, as -0
    double r = std::fabs(x) * factor;
    // The rounded-up scale bounds r by s up to rounding; NaN only arises from an infinite or
    // NaN element times the zero factor, and sends level 0.
    r = r == r ? r : 0.0;
    r = r < levels ? r : levels;
    const double floor_level = static_cast<double>(static_cast<std::int32_t>(r));
    const double u = static_cast<double>(static_cast<std::int32_t>(random[i] >> 1));
    const double up = u < (r - floor_level) * 0x1p31 ? 1.0 : 0.0;
    out[i] = static_cast<std::uint16_t>(static_cast<std::int32_t>(2.0 * (floor_level + up) + sign));
  }
}

// K-bit codes of one bucket: round(v_i factor) clamped to [-L, L], plus L (factor = L / scale,
// 0 for a zero or non-finite scale; NaN encodes as 0).
template <typename T>
DECENT_VECTOR_KERNEL void kbit_codes(const T* v, std::size_t len, double factor, double L,
                                     std::int32_t half_range, std::uint16_t* out) {
  // Adding and subtracting 1.5 * 2^52 rounds |x| < 2^51 to an integer, to nearest even.
  constexpr double kRound = 0x1.8p52;
  for (std::size_t i = 0; i < len; ++i) {
    double x = static_cast<double>(v[i]) * factor;
    x = x == x ? x : 0.0;
    x = x < -L ? -L : (x > L ? L : x);
    x = (x + kRound) - kRound;
    out[i] = static_cast<std::uint16_t>(static_cast<std::int32_t>(x) + half_range);
  }
}

// Random words of the elements [2 first, 2 (first + words)): word i is the low (even i) or high
// (odd i) half of SplitMix64 output floor(i / 2) of the seed.
DECENT_VECTOR_KERNEL void fill_random_words(std::uint64_t seed, std::size_t first,
                                            std::size_t words, std::uint32_t* out) {
  for (std::size_t w = 0; w < words; ++w) {
    const std::uint64_t r = SplitMix64::at(seed, first + w);
    out[2 * w] = static_cast<std::uint32_t>(r);
    out[2 * w + 1] = static_cast<std::uint32_t>(r >> 32);
  }
}

// Number of buckets of `bucket` elements (0: one bucket) covering `count` elements.
std::size_t bucket_count(std::size_t count, std::size_t bucket) {
  if (count == 0) return 0;
  if (bucket == 0) return 1;
  return (count + bucket - 1) / bucket;
}

// Bits needed for the integers 0..v.
int bit_width(std::uint32_t v) {
  int bits = 0;
  while (bits < 32 && (std::uint64_t{1} << bits) <= v) ++bits;
  return bits;
}

// Implements both element types of encode_body/decode_body with the derived class's templates
// encode_as<T>(values, count, source, seed, body) and decode_as<T>(body, count, source, out).
template <typename Derived>
class Codec : public Compressor {
 protected:
  void encode_body(const float* v, std::size_t n, DType source, std::uint64_t seed,
                   std::uint8_t* body) const final {
    self().encode_as(v, n, source, seed, body);
  }
  void encode_body(const double* v, std::size_t n, DType source, std::uint64_t seed,
                   std::uint8_t* body) const final {
    self().encode_as(v, n, source, seed, body);
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType source, float* out) const final {
    self().decode_as(body, n, source, out);
  }
  void decode_body(const std::uint8_t* body, std::size_t n, DType source, double* out) const final {
    self().decode_as(body, n, source, out);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// ---------------------------------------------------------------- lossless and casts

template <typename T>
void put_f32_values(const T* v, std::size_t n, std::uint8_t* body) {
  if constexpr (std::is_same_v<T, float> && wire::kLittleEndian) {
    if (n > 0) std::memcpy(body, v, 4 * n);
  } else {
    for (std::size_t i = 0; i < n; ++i) wire::store_f32(body + 4 * i, static_cast<float>(v[i]));
  }
}
template <typename T>
void get_f32_values(const std::uint8_t* body, std::size_t n, T* out) {
  if constexpr (std::is_same_v<T, float> && wire::kLittleEndian) {
    if (n > 0) std::memcpy(out, body, 4 * n);
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(wire::load_f32(body + 4 * i));
  }
}

// "none": the caller's values as they are (float32 or float64).
class Identity final : public Codec<Identity> {
 public:
  std::string spec() const override { return "none"; }
  bool unbiased() const override { return true; }
  std::size_t encoded_size(std::size_t count, DType source) const override {
    return kHeaderBytes + count * (source == DType::kFloat64 ? 8 : 4);
  }

  template <typename T>
  void encode_as(const T* v, std::size_t n, DType source, std::uint64_t, std::uint8_t* body) const {
    if (source == DType::kFloat64) {
      if constexpr (std::is_same_v<T, double> && wire::kLittleEndian) {
        if (n > 0) std::memcpy(body, v, 8 * n);
      } else {
        for (std::size_t i = 0; i < n; ++i) wire::store_f64(body + 8 * i, v[i]);
      }
    } else {
      put_f32_values(v, n, body);
    }
  }
  template <typename T>
  void decode_as(const std::uint8_t* body, std::size_t n, DType source, T* out) const {
    if (source == DType::kFloat64) {
      if constexpr (std::is_same_v<T, double> && wire::kLittleEndian) {
        if (n > 0) std::memcpy(out, body, 8 * n);
      } else {
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(wire::load_f64(body + 8 * i));
      }
    } else {
      get_f32_values(body, n, out);
    }
  }

 protected:
  std::uint8_t kind() const override { return kNone; }
  std::uint8_t parameter(DType source) const override { return source == DType::kFloat64 ? 1 : 0; }
};

class Fp32 final : public Codec<Fp32> {
 public:
  std::string spec() const override { return "fp32"; }
  bool unbiased() const override { return false; }
  std::size_t encoded_size(std::size_t count, DType) const override {
    return kHeaderBytes + 4 * count;
  }

  template <typename T>
  void encode_as(const T* v, std::size_t n, DType, std::uint64_t, std::uint8_t* body) const {
    put_f32_values(v, n, body);
  }
  template <typename T>
  void decode_as(const std::uint8_t* body, std::size_t n, DType, T* out) const {
    get_f32_values(body, n, out);
  }

 protected:
  std::uint8_t kind() const override { return kFp32; }
};

// fp16 (IEEE half, M = 10, E = 5) or bf16 (bfloat16, M = 7, E = 8), 2 bytes per element.
template <int M, int E>
class SmallFloat final : public Codec<SmallFloat<M, E>> {
 public:
  std::string spec() const override { return kind_name(kind()); }
  bool unbiased() const override { return false; }
  std::size_t encoded_size(std::size_t count, DType) const override {
    return Compressor::kHeaderBytes + 2 * count;
  }

  template <typename T>
  void encode_as(const T* v, std::size_t n, DType, std::uint64_t, std::uint8_t* body) const {
    if constexpr (wire::kLittleEndian) {
      // Converted a block at a time into an aligned buffer, then copied: the conversion loop
      // vectorises without aliasing questions about the byte output.
      constexpr std::size_t kBlock = 2048;
      std::uint16_t block[kBlock];
      for (std::size_t b = 0; b < n; b += kBlock) {
        const std::size_t len = std::min(kBlock, n - b);
        to_small_floats<M, E>(v + b, len, block);
        std::memcpy(body + 2 * b, block, 2 * len);
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) wire::store_u16(body + 2 * i, to_small_float<M, E>(v[i]));
    }
  }
  template <typename T>
  void decode_as(const std::uint8_t* body, std::size_t n, DType, T* out) const {
    constexpr std::size_t kBlock = 2048;
    std::uint16_t block[kBlock];
    for (std::size_t b = 0; b < n; b += kBlock) {
      const std::size_t len = std::min(kBlock, n - b);
      if constexpr (wire::kLittleEndian) {
        std::memcpy(block, body + 2 * b, 2 * len);
      } else {
        for (std::size_t i = 0; i < len; ++i) block[i] = wire::load_u16(body + 2 * (b + i));
      }
      from_small_floats<M, E>(block, len, out + b);
    }
  }

 protected:
  std::uint8_t kind() const override { return E == 5 ? kFp16 : kBf16; }
};

// ---------------------------------------------------------------- quantizers

// Common layout of the bucketed quantizers: one float32 scale per bucket, then a code of
// code_bits_ bits per element, bit-packed over the whole vector. Derived classes provide
//   float scale(const T* v, size_t len)                 the stored scale of a bucket
//   void codes(const T* v, size_t len, float scale, const uint32_t* random, uint16_t* codes)
//   uint32_t max_code()                                 codes above it are off the grid
//   double value(uint32_t code, double scale)           the decoded value of a valid code
// and kStochastic (whether codes() reads one random word per element).
// Elements are processed in blocks of kBlock (a multiple of 8, so every block starts on a byte
// of the packed stream): codes of a block go to a small buffer, then are packed in one pass.
template <typename Derived>
class Bucketed : public Codec<Derived> {
 public:
  Bucketed(std::size_t bucket, int code_bits) : bucket_(bucket), code_bits_(code_bits) {}
  std::size_t encoded_size(std::size_t count, DType) const override {
    return Compressor::kHeaderBytes + 4 * bucket_count(count, bucket_) +
           wire::packed_bytes(count, code_bits_);
  }

  template <typename T>
  void encode_as(const T* v, std::size_t n, DType, std::uint64_t seed, std::uint8_t* body) const {
    const std::size_t width = bucket_ == 0 ? n : bucket_;
    const std::size_t buckets = bucket_count(n, bucket_);
    std::vector<float> scales(buckets);
    for (std::size_t b = 0; b < buckets; ++b) {
      scales[b] = self().scale(v + b * width, std::min(width, n - b * width));
      wire::store_f32(body + 4 * b, scales[b]);
    }
    std::uint8_t* packed = body + 4 * buckets;
    std::uint16_t codes[kBlock];
    std::uint32_t random[kBlock + 1];  // an odd last block fills one word more
    for (std::size_t start = 0; start < n; start += kBlock) {
      const std::size_t end = std::min(n, start + kBlock);
      if constexpr (Derived::kStochastic) {
        fill_random_words(seed, start / 2, (end - start + 1) / 2, random);
      }
      for (std::size_t i = start; i < end;) {
        const std::size_t b = i / width;
        const std::size_t stop = std::min(end, (b + 1) * width);
        self().codes(v + i, stop - i, scales[b], random + (i - start), codes + (i - start));
        i = stop;
      }
      wire::pack_codes(codes, end - start, code_bits_, packed + start / 8 * code_bits_);
    }
  }

  template <typename T>
  void decode_as(const std::uint8_t* body, std::size_t n, DType, T* out) const {
    const std::size_t width = bucket_ == 0 ? n : bucket_;
    const std::size_t buckets = bucket_count(n, bucket_);
    const std::uint8_t* packed = body + 4 * buckets;
    const std::uint32_t max_code = self().max_code();
    std::uint16_t codes[kBlock];
    std::vector<T> table;
    std::size_t table_bucket = buckets;  // bucket whose values `table` holds
    for (std::size_t start = 0; start < n; start += kBlock) {
      const std::size_t end = std::min(n, start + kBlock);
      wire::unpack_codes(packed + start / 8 * code_bits_, end - start, code_bits_, codes);
      std::uint32_t largest = 0;
      for (std::size_t i = 0; i < end - start; ++i)
        largest = codes[i] > largest ? codes[i] : largest;
      if (largest > max_code) {
        const std::size_t bad =
            static_cast<std::size_t>(std::find_if(codes, codes + (end - start),
                                                  [&](std::uint16_t c) { return c > max_code; }) -
                                     codes);
        throw DecodeError(fmt::format("{}: element {} has code {}, beyond the grid", this->spec(),
                                      start + bad, codes[bad]));
      }
      for (std::size_t i = start; i < end;) {
        const std::size_t b = i / width;
        const std::size_t stop = std::min(end, (b + 1) * width);
        const double scale = wire::load_f32(body + 4 * b);
        const std::uint16_t* c = codes + (i - start);
        if (max_code < std::min(width, n - b * width)) {
          // Fewer codes than elements in the bucket: look the values up.
          if (table_bucket != b) {
            table.resize(max_code + 1);
            for (std::uint32_t k = 0; k <= max_code; ++k)
              table[k] = static_cast<T>(self().value(k, scale));
            table_bucket = b;
          }
          for (std::size_t k = 0; k < stop - i; ++k) out[i + k] = table[c[k]];
        } else {
          for (std::size_t k = 0; k < stop - i; ++k)
            out[i + k] = static_cast<T>(self().value(c[k], scale));
        }
        i = stop;
      }
    }
  }

 protected:
  static constexpr std::size_t kBlock = 4096;
  std::string bucket_suffix() const { return fmt::format("bucket={}", bucket_); }
  std::size_t bucket_;
  int code_bits_;

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// QSGD: code = level << 1 | sign, level in 0..s by unbiased stochastic rounding of
// r = s |v| / scale: level floor(r) + 1 with probability r - floor(r), drawn as
// floor(u / 2) < frac * 2^31 for the element's 32-bit random word u (so the probability is frac
// rounded up to a multiple of 2^-31).
class Qsgd final : public Bucketed<Qsgd> {
 public:
  static constexpr bool kStochastic = true;
  Qsgd(std::uint32_t levels, std::size_t bucket, bool max_norm)
      : Bucketed(bucket, bit_width(levels) + 1), levels_(levels), max_norm_(max_norm) {}
  std::string spec() const override {
    return fmt::format("qsgd:s={},{},norm={}", levels_, bucket_suffix(), max_norm_ ? "max" : "l2");
  }
  bool unbiased() const override { return true; }

  template <typename T>
  float scale(const T* v, std::size_t len) const {
    if (max_norm_) {
      bool saw_nan = false;
      const double m = max_magnitude(v, len, saw_nan);
      return saw_nan ? std::numeric_limits<float>::quiet_NaN() : round_up_to_float(m);
    }
    return round_up_to_float(std::sqrt(sum_of_squares(v, len)));
  }
  template <typename T>
  void codes(const T* v, std::size_t len, float scale, const std::uint32_t* random,
             std::uint16_t* out) const {
    const double levels = levels_;
    // A zero, non-finite or NaN scale sends level 0 (the sign only).
    const double factor = (scale > 0 && std::isfinite(scale)) ? levels / scale : 0.0;
    qsgd_codes(v, len, factor, levels, random, out);
  }
  std::uint32_t max_code() const { return (levels_ << 1) | 1u; }
  double value(std::uint32_t code, double scale) const {
    const double magnitude = scale * (code >> 1) / levels_;
    return (code & 1u) ? -magnitude : magnitude;
  }

 protected:
  std::uint8_t kind() const override { return kQsgd; }
  std::uint8_t parameter(DType) const override { return static_cast<std::uint8_t>(code_bits_ - 1); }

 private:
  std::uint32_t levels_;
  bool max_norm_;
};

// Deterministic K-bit: code = round(L v / scale) + L in 0..2L (round to nearest even).
class Kbit final : public Bucketed<Kbit> {
 public:
  static constexpr bool kStochastic = false;
  Kbit(int bits, std::size_t bucket)
      : Bucketed(bucket, bits), bits_(bits), half_range_((1u << (bits - 1)) - 1) {}
  std::string spec() const override {
    return fmt::format("kbit:bits={},{}", bits_, bucket_suffix());
  }
  bool unbiased() const override { return false; }

  template <typename T>
  float scale(const T* v, std::size_t len) const {
    bool saw_nan = false;  // NaNs encode as 0 and do not enter the scale
    return round_up_to_float(max_magnitude(v, len, saw_nan));
  }
  template <typename T>
  void codes(const T* v, std::size_t len, float scale, const std::uint32_t*,
             std::uint16_t* out) const {
    const double L = half_range_;
    const double factor = (scale > 0 && std::isfinite(scale)) ? L / scale : 0.0;
    kbit_codes(v, len, factor, L, static_cast<std::int32_t>(half_range_), out);
  }
  std::uint32_t max_code() const { return 2 * half_range_; }
  double value(std::uint32_t code, double scale) const {
    const double c = static_cast<double>(code) - half_range_;
    return scale * c / half_range_;
  }

 protected:
  std::uint8_t kind() const override { return kKbit; }
  std::uint8_t parameter(DType) const override { return static_cast<std::uint8_t>(bits_); }

 private:
  int bits_;
  std::uint32_t half_range_;
};

// Sign with scale ||v||_1 / d per bucket: bit 1 means negative (sign bit set, so -0 too).
class Sign final : public Bucketed<Sign> {
 public:
  static constexpr bool kStochastic = false;
  explicit Sign(std::size_t bucket) : Bucketed(bucket, 1) {}
  std::string spec() const override { return "sign:" + bucket_suffix(); }
  bool unbiased() const override { return false; }

  template <typename T>
  float scale(const T* v, std::size_t len) const {
    return static_cast<float>(sum_of_magnitudes(v, len) / static_cast<double>(len));
  }
  template <typename T>
  void codes(const T* v, std::size_t len, float, const std::uint32_t*, std::uint16_t* out) const {
    constexpr int kSignShift = 8 * sizeof(T) - 1;
    for (std::size_t i = 0; i < len; ++i)
      out[i] = static_cast<std::uint16_t>(bits_of(v[i]) >> kSignShift);
  }
  std::uint32_t max_code() const { return 1; }
  double value(std::uint32_t code, double scale) const { return code ? -scale : scale; }

 protected:
  std::uint8_t kind() const override { return kSign; }
};

// ---------------------------------------------------------------- sparsifiers

// k indices (uint32, strictly increasing) then k float32 values. Derived classes provide
// select(v, n, k, seed) -> sorted indices and value_scale(n, k).
template <typename Derived>
class Sparse : public Codec<Derived> {
 public:
  Sparse(double ratio, std::size_t k) : ratio_(ratio), fixed_k_(k) {}
  std::size_t encoded_size(std::size_t count, DType) const override {
    return Compressor::kHeaderBytes + 8 * kept(count);
  }
  // Coordinates kept out of `count`.
  std::size_t kept(std::size_t count) const {
    if (count == 0) return 0;
    if (fixed_k_ > 0) return std::min(fixed_k_, count);
    const auto k = static_cast<std::size_t>(std::ceil(ratio_ * static_cast<double>(count)));
    return std::clamp<std::size_t>(k, 1, count);
  }

  template <typename T>
  void encode_as(const T* v, std::size_t n, DType, std::uint64_t seed, std::uint8_t* body) const {
    const std::size_t k = kept(n);
    const std::vector<std::uint32_t> indices = self().select(v, n, k, seed);
    const double factor = self().value_scale(n, k);
    for (std::size_t j = 0; j < k; ++j) {
      wire::store_u32(body + 4 * j, indices[j]);
      wire::store_f32(body + 4 * (k + j), static_cast<float>(v[indices[j]] * factor));
    }
  }
  template <typename T>
  void decode_as(const std::uint8_t* body, std::size_t n, DType, T* out) const {
    const std::size_t k = kept(n);
    std::fill(out, out + n, T(0));
    std::int64_t previous = -1;
    for (std::size_t j = 0; j < k; ++j) {
      const std::uint32_t index = wire::load_u32(body + 4 * j);
      if (index >= n || static_cast<std::int64_t>(index) <= previous)
        throw DecodeError(fmt::format(
            "{}: index {} of {} is {}: indices must increase strictly and stay below {}",
            this->spec(), j, k, index, n));
      previous = index;
      out[index] = static_cast<T>(wire::load_f32(body + 4 * (k + j)));
    }
  }

 protected:
  std::string parameter_text() const {
    return fixed_k_ > 0 ? fmt::format("k={}", fixed_k_) : fmt::format("ratio={}", ratio_);
  }
  double ratio_;
  std::size_t fixed_k_;

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

class RandomK final : public Sparse<RandomK> {
 public:
  using Sparse::Sparse;
  std::string spec() const override { return "randk:" + parameter_text(); }
  bool unbiased() const override { return true; }

  // Floyd's algorithm: for j = n - k .. n - 1 pick t uniform in [0, j] and take t, or j if t is
  // taken already; every k-subset is equally likely. A bitmap marks the taken coordinates and
  // is read back in order, so the indices come out sorted.
  template <typename T>
  std::vector<std::uint32_t> select(const T*, std::size_t n, std::size_t k,
                                    std::uint64_t seed) const {
    SplitMix64 rng(seed);
    std::vector<std::uint64_t> taken((n + 63) / 64, 0);
    for (std::size_t j = n - k; j < n; ++j) {
      const std::size_t t = rng.below(static_cast<std::uint32_t>(j + 1));
      const std::size_t pick = (taken[t / 64] >> (t % 64)) & 1u ? j : t;
      taken[pick / 64] |= std::uint64_t{1} << (pick % 64);
    }
    std::vector<std::uint32_t> chosen;
    chosen.reserve(k);
    for (std::size_t w = 0; w < taken.size(); ++w)
      for (std::uint64_t bits = taken[w]; bits != 0; bits &= bits - 1) {
        chosen.push_back(static_cast<std::uint32_t>(64 * w + lowest_set_bit(bits)));
      }
    return chosen;
  }
  double value_scale(std::size_t n, std::size_t k) const {
    return static_cast<double>(n) / static_cast<double>(k);
  }

 protected:
  std::uint8_t kind() const override { return kRandk; }
};

class TopK final : public Sparse<TopK> {
 public:
  using Sparse::Sparse;
  std::string spec() const override { return "topk:" + parameter_text(); }
  bool unbiased() const override { return false; }

  // The k largest magnitudes (NaN counts as +infinity), ties at the k-th magnitude broken by
  // the lower index. Magnitudes are compared as the bits of |v_i| (ordered like the values for
  // non-negative floats; NaN mapped to infinity's bits). The k-th largest key t is found with
  // nth_element on the candidates at or above a threshold read off a strided sample (all keys
  // when the candidates are fewer than k); then every element above t and the first ones equal
  // to t are kept, in index order. The sample only changes the cost, never the result.
  template <typename T>
  std::vector<std::uint32_t> select(const T* v, std::size_t n, std::size_t k, std::uint64_t) const {
    using U = UintOf<T>;
    std::vector<std::uint32_t> chosen;
    if (k == 0) return chosen;
    chosen.reserve(k);
    if (k == n) {
      for (std::size_t i = 0; i < n; ++i) chosen.push_back(static_cast<std::uint32_t>(i));
      return chosen;
    }
    constexpr U kSignBit = U{1} << (8 * sizeof(T) - 1);
    const U infinity = bits_of(std::numeric_limits<T>::infinity());
    auto key = [&](std::size_t i) {
      const U a = bits_of(v[i]) & ~kSignBit;
      return a > infinity ? infinity : a;
    };
    // Sample threshold: the sample's key at rank k m / n plus a margin of a few standard
    // deviations, so that usually a little more than k elements are at or above it.
    const std::size_t m = std::min<std::size_t>(n, 4096);
    std::vector<U> sample(m);
    for (std::size_t j = 0; j < m; ++j) sample[j] = key(j * n / m);
    const double expected =
        static_cast<double>(k) * static_cast<double>(m) / static_cast<double>(n);
    const auto rank = std::min<std::size_t>(
        m - 1, static_cast<std::size_t>(expected + 4 * std::sqrt(expected) + 16));
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(rank),
                     sample.end(), std::greater<U>());
    U floor_key = sample[rank];
    std::vector<U> candidates;
    candidates.reserve(std::min(n, 2 * k + 1024));
    for (std::size_t i = 0; i < n; ++i) {
      const U a = key(i);
      if (a >= floor_key) candidates.push_back(a);
    }
    if (candidates.size() < k) {
      floor_key = 0;
      candidates.resize(n);
      for (std::size_t i = 0; i < n; ++i) candidates[i] = key(i);
    }
    std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k - 1),
                     candidates.end(), std::greater<U>());
    const U threshold = candidates[k - 1];
    std::size_t above = 0;  // all of them are candidates, as threshold >= floor_key
    for (const U a : candidates) above += a > threshold ? 1 : 0;
    std::size_t equal_left = k - above;
    for (std::size_t i = 0; i < n; ++i) {
      const U a = key(i);
      if (a > threshold) {
        chosen.push_back(static_cast<std::uint32_t>(i));
      } else if (a == threshold && equal_left > 0) {
        --equal_left;
        chosen.push_back(static_cast<std::uint32_t>(i));
      }
    }
    return chosen;
  }
  double value_scale(std::size_t, std::size_t) const { return 1.0; }

 protected:
  std::uint8_t kind() const override { return kTopk; }
};

// ---------------------------------------------------------------- spec parsing

struct Spec {
  std::string text;  // as given, for messages
  std::string name;
  std::map<std::string, std::string> values;
  std::vector<std::string> used;

  [[noreturn]] void fail(const std::string& problem) const {
    throw InvalidArgument(fmt::format("compressor '{}': {}", text, problem));
  }
  bool has(const std::string& key) const { return values.count(key) > 0; }
  const std::string* get(const std::string& key) {
    used.push_back(key);
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t lowest,
                       std::int64_t highest, bool required = false) {
    const std::string* v = get(key);
    if (!v) {
      if (required) fail(fmt::format("missing {}=<integer>", key));
      return fallback;
    }
    std::size_t consumed = 0;
    std::int64_t out = 0;
    try {
      out = std::stoll(*v, &consumed);
    } catch (const std::exception&) {
      consumed = 0;
    }
    if (consumed == 0 || consumed != v->size())
      fail(fmt::format("{}='{}' is not an integer", key, *v));
    if (out < lowest || out > highest)
      fail(fmt::format("{}={} is out of range [{}, {}]", key, out, lowest, highest));
    return out;
  }
  double real(const std::string& key) {
    const std::string& v = *get(key);
    std::size_t consumed = 0;
    double out = 0;
    try {
      out = std::stod(v, &consumed);
    } catch (const std::exception&) {
      consumed = 0;
    }
    if (consumed == 0 || consumed != v.size() || !std::isfinite(out))
      fail(fmt::format("{}='{}' is not a number", key, v));
    return out;
  }
  // Rejects keys the compressor does not read.
  void finish() const {
    for (const auto& [key, value] : values)
      if (std::find(used.begin(), used.end(), key) == used.end())
        fail(fmt::format(
            "unknown key '{}' for {} (keys: {})", key, name,
            used.empty() ? std::string("none") : fmt::format("{}", fmt::join(used, ", "))));
  }
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

Spec parse_spec(const std::string& text) {
  Spec spec;
  spec.text = text;
  const auto colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  std::transform(spec.name.begin(), spec.name.end(), spec.name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (spec.name.empty()) spec.fail("empty compressor name");
  if (colon == std::string::npos) return spec;
  const std::string rest = text.substr(colon + 1);
  std::size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = rest.find(',', start);
    const std::string item =
        trim(rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const auto eq = item.find('=');
    if (eq == std::string::npos || trim(item.substr(0, eq)).empty() ||
        trim(item.substr(eq + 1)).empty())
      spec.fail(fmt::format("'{}' is not of the form key=value", item));
    const std::string key = trim(item.substr(0, eq));
    if (!spec.values.emplace(key, trim(item.substr(eq + 1))).second)
      spec.fail(fmt::format("key '{}' is given twice", key));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return spec;
}

constexpr std::int64_t kMaxBucket = std::int64_t{1} << 31;

std::size_t parse_bucket(Spec& s) {
  return static_cast<std::size_t>(s.integer("bucket", 0, 0, kMaxBucket));
}

CompressorPtr make_sparse(Spec& s, bool random) {
  const bool has_ratio = s.has("ratio"), has_k = s.has("k");
  if (has_ratio == has_k) s.fail("give exactly one of ratio=<fraction in (0, 1]> or k=<count>");
  double ratio = 0.0;
  std::size_t k = 0;
  if (has_ratio) {
    ratio = s.real("ratio");
    s.get("k");
    if (!(ratio > 0 && ratio <= 1)) s.fail(fmt::format("ratio={} is out of range (0, 1]", ratio));
  } else {
    s.get("ratio");
    k = static_cast<std::size_t>(s.integer("k", 0, 1, std::numeric_limits<std::uint32_t>::max()));
  }
  if (random) return std::make_shared<RandomK>(ratio, k);
  return std::make_shared<TopK>(ratio, k);
}

const std::vector<CompressorInfo>& infos() {
  static const std::vector<CompressorInfo> table = {
      {"none", "none", "no compression: the values as they are (float32 or float64)"},
      {"fp32", "fp32", "cast to float32 (exact for float32 values)"},
      {"fp16", "fp16", "cast to IEEE half precision, 16 bits per element"},
      {"bf16", "bf16", "cast to bfloat16, 16 bits per element"},
      {"qsgd", "qsgd:s=S[,bucket=B][,norm=l2|max]",
       "QSGD, unbiased stochastic rounding to S levels of norm/S; 1 + ceil(log2(S+1)) bits each"},
      {"kbit", "kbit:bits=K[,bucket=B]",
       "deterministic K-bit rounding to 2^K - 1 levels of max|v| (biased)"},
      {"randk", "randk:ratio=R | randk:k=K",
       "K random coordinates scaled by d/K (unbiased); 8 bytes per kept element"},
      {"topk", "topk:ratio=R | topk:k=K",
       "the K coordinates of largest magnitude (biased); 8 bytes per kept element"},
      {"sign", "sign[:bucket=B]", "1 bit per element, scale ||v||_1/d (biased)"},
  };
  return table;
}

}  // namespace

// ---------------------------------------------------------------- Compressor

template <typename T>
std::vector<std::uint8_t> Compressor::encode_as(const T* values, std::size_t count,
                                                std::uint64_t seed) const {
  constexpr DType source = dtype_of<T>();
  if (count > std::numeric_limits<std::uint32_t>::max())
    throw InvalidArgument(
        fmt::format("{}: cannot encode {} elements: at most 2^32 - 1", spec(), count));
  if (count > 0 && values == nullptr)
    throw InvalidArgument(fmt::format("{}: null buffer with {} elements", spec(), count));
  std::vector<std::uint8_t> out(encoded_size(count, source));
  out[0] = kind();
  out[1] = parameter(source);
  wire::store_u32(out.data() + 2, static_cast<std::uint32_t>(count));
  encode_body(values, count, source, seed, out.data() + kHeaderBytes);
  return out;
}

std::vector<std::uint8_t> Compressor::encode(const float* values, std::size_t count,
                                             std::uint64_t seed) const {
  return encode_as(values, count, seed);
}

std::vector<std::uint8_t> Compressor::encode(const double* values, std::size_t count,
                                             std::uint64_t seed) const {
  return encode_as(values, count, seed);
}

std::size_t Compressor::check_header(const std::uint8_t* bytes, std::size_t size,
                                     DType& source) const {
  if (size < kHeaderBytes || bytes == nullptr)
    throw DecodeError(fmt::format("{}: truncated encoding: {} bytes, the header alone has {}",
                                  spec(), size, kHeaderBytes));
  if (bytes[0] != kind())
    throw DecodeError(fmt::format("{}: the bytes are a '{}' encoding (kind {}), not '{}'", spec(),
                                  kind_name(bytes[0]), bytes[0], kind_name(kind())));
  if (bytes[1] == parameter(DType::kFloat32)) {
    source = DType::kFloat32;
  } else if (bytes[1] == parameter(DType::kFloat64)) {
    source = DType::kFloat64;
  } else {
    throw DecodeError(fmt::format("{}: header parameter {} does not match this compressor's {}",
                                  spec(), bytes[1], parameter(DType::kFloat32)));
  }
  const std::size_t count = wire::load_u32(bytes + 2);
  const std::size_t expected = encoded_size(count, source);
  if (size != expected)
    throw DecodeError(fmt::format("{}: an encoding of {} elements has {} bytes, got {}{}", spec(),
                                  count, expected, size, size < expected ? " (truncated)" : ""));
  return count;
}

std::size_t Compressor::decoded_count(const std::uint8_t* bytes, std::size_t size) const {
  DType source;
  return check_header(bytes, size, source);
}

template <typename T>
void Compressor::decode_as(const std::uint8_t* bytes, std::size_t size, T* out,
                           std::size_t count) const {
  DType source;
  const std::size_t encoded_count = check_header(bytes, size, source);
  if (encoded_count != count)
    throw DecodeError(fmt::format("{}: the encoding holds {} elements, the output has room for {}",
                                  spec(), encoded_count, count));
  if (count > 0 && out == nullptr)
    throw InvalidArgument(
        fmt::format("{}: decode into a null buffer of {} elements", spec(), count));
  decode_body(bytes + kHeaderBytes, count, source, out);
}

void Compressor::decode(const std::uint8_t* bytes, std::size_t size, float* out,
                        std::size_t count) const {
  decode_as(bytes, size, out, count);
}

void Compressor::decode(const std::uint8_t* bytes, std::size_t size, double* out,
                        std::size_t count) const {
  decode_as(bytes, size, out, count);
}

// ---------------------------------------------------------------- factory

CompressorPtr make_compressor(const std::string& text) {
  Spec s = parse_spec(text);
  CompressorPtr out;
  if (s.name == "none" || s.name == "identity") {
    out = std::make_shared<Identity>();
  } else if (s.name == "fp32") {
    out = std::make_shared<Fp32>();
  } else if (s.name == "fp16") {
    out = std::make_shared<SmallFloat<10, 5>>();
  } else if (s.name == "bf16") {
    out = std::make_shared<SmallFloat<7, 8>>();
  } else if (s.name == "qsgd") {
    const auto levels = s.integer("s", 0, 1, 32767, /*required=*/true);
    const std::size_t bucket = parse_bucket(s);
    const std::string* norm = s.get("norm");
    if (norm && *norm != "l2" && *norm != "max")
      s.fail(fmt::format("norm='{}': expected l2 or max", *norm));
    out =
        std::make_shared<Qsgd>(static_cast<std::uint32_t>(levels), bucket, norm && *norm == "max");
  } else if (s.name == "kbit") {
    const auto bits = s.integer("bits", 0, 2, 16, /*required=*/true);
    out = std::make_shared<Kbit>(static_cast<int>(bits), parse_bucket(s));
  } else if (s.name == "randk" || s.name == "topk") {
    out = make_sparse(s, s.name == "randk");
  } else if (s.name == "sign") {
    out = std::make_shared<Sign>(parse_bucket(s));
  } else {
    std::vector<std::string> names;
    for (const auto& info : infos()) names.push_back(info.name);
    s.fail(fmt::format("unknown compressor '{}'; valid: {}", s.name, fmt::join(names, ", ")));
  }
  s.finish();
  return out;
}

std::vector<CompressorInfo> list_compressors() {
  return infos();
}

std::uint64_t derive_seed(std::uint64_t base, int rank, std::int64_t iteration,
                          std::uint64_t purpose) {
  SplitMix64 mix(base ^ 0x243F6A8885A308D3ULL);
  std::uint64_t h = mix.next();
  for (std::uint64_t part :
       {static_cast<std::uint64_t>(rank), static_cast<std::uint64_t>(iteration), purpose}) {
    SplitMix64 step(h ^ (part * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL));
    h = step.next();
  }
  return h;
}

}  // namespace decent::compress
