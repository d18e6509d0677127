// Compressors: exact round trips where the format is exact, encoded sizes equal to the formulas,
// unbiasedness of the randomized ones, error feedback, spec parsing and corrupted encodings.
#include "decent/compress/compressor.h"
#include "decent/compress/error_feedback.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace decent::compress {
namespace {

std::vector<double> sample_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = normal(gen);
  return v;
}

std::vector<float> to_float(const std::vector<double>& v) {
  return {v.begin(), v.end()};
}

std::size_t packed(std::size_t n, std::size_t bits) {
  return (n * bits + 7) / 8;
}

// ---------------------------------------------------------------- casts

TEST(Cast, Fp16RoundTripsRepresentableValuesExactly) {
  const std::vector<double> values = {
      0.0,    -0.0,    1.0,     0.5,    -3.25,         65504.0,
      -65504, 0x1p-14, 0x1p-24, 1027.0, 0.333251953125 /* 1365 * 2^-12 */};
  const auto c = make_compressor("fp16");
  const auto wire = c->encode(values.data(), values.size());
  EXPECT_EQ(wire.size(), 6 + 2 * values.size());
  const auto back = c->decode<double>(wire);
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(back[i], values[i]) << i;
    EXPECT_EQ(std::signbit(back[i]), std::signbit(values[i])) << i;
  }
  const auto f = to_float(values);
  EXPECT_EQ(c->decode<float>(c->encode(f.data(), f.size())), f);
}

TEST(Cast, Fp16RoundsToNearestEvenAndOverflowsToInfinity) {
  const std::vector<double> values = {1.0 + 0x1p-11, 1.0 + 3 * 0x1p-11, 65519.0, 65520.0, 1e-9,
                                      -1e6};
  const auto c = make_compressor("fp16");
  const auto back = c->decode<double>(c->encode(values.data(), values.size()));
  EXPECT_EQ(back[0], 1.0);           // tie goes to the even mantissa
  EXPECT_EQ(back[1], 1.0 + 0x1p-9);  // tie goes up to the even mantissa
  EXPECT_EQ(back[2], 65504.0);
  EXPECT_TRUE(std::isinf(back[3]));
  EXPECT_EQ(back[4], 0.0);
  EXPECT_EQ(back[5], -std::numeric_limits<double>::infinity());
}

TEST(Cast, Bf16KeepsEightMantissaBitsAndTheFloatRange) {
  const std::vector<double> values = {1.5,    -0x1p100,     0x1p-130,
                                      3.0e38, 1.0 + 0x1p-7, 1.0 + 0x1p-8 /* tie -> 1 */};
  const auto c = make_compressor("bf16");
  const auto wire = c->encode(values.data(), values.size());
  EXPECT_EQ(wire.size(), 6 + 2 * values.size());
  const auto back = c->decode<double>(wire);
  EXPECT_EQ(back[0], 1.5);
  EXPECT_EQ(back[1], -0x1p100);
  EXPECT_EQ(back[2], 0x1p-130);
  EXPECT_NEAR(back[3], 3.0e38, 3.0e38 * 0x1p-8);
  EXPECT_EQ(back[4], 1.0 + 0x1p-7);
  EXPECT_EQ(back[5], 1.0);
}

TEST(Cast, NoneIsExactInEitherPrecision) {
  const auto v = sample_vector(33, 1);
  const auto c = make_compressor("none");
  const auto wire = c->encode(v.data(), v.size());
  EXPECT_EQ(wire.size(), 6 + 8 * v.size());
  EXPECT_EQ(c->decode<double>(wire), v);
  const auto f = to_float(v);
  const auto wire_f = c->encode(f.data(), f.size());
  EXPECT_EQ(wire_f.size(), 6 + 4 * f.size());
  EXPECT_EQ(c->decode<float>(wire_f), f);
  EXPECT_TRUE(c->unbiased());

  const auto fp32 = make_compressor("fp32");
  EXPECT_EQ(fp32->decode<float>(fp32->encode(f.data(), f.size())), f);
}

// ---------------------------------------------------------------- sparsifiers

TEST(TopK, KeepsTheKLargestMagnitudesExactly) {
  const std::vector<float> v = {0.5f, -7.0f, 2.0f, 0.0f, 3.5f, -0.25f, 6.0f, 1.0f, -2.5f, 0.1f};
  const auto c = make_compressor("topk:k=4");
  const auto wire = c->encode(v.data(), v.size());
  EXPECT_EQ(wire.size(), 6 + 8 * 4u);
  const auto back = c->decode<float>(wire);
  const std::vector<float> expected = {0, -7.0f, 0, 0, 3.5f, 0, 6.0f, 0, -2.5f, 0};
  EXPECT_EQ(back, expected);
  EXPECT_FALSE(c->unbiased());
}

TEST(TopK, RatioRoundsUpAndKIsClampedToTheLength) {
  EXPECT_EQ(make_compressor("topk:ratio=0.01")->encoded_size(1000, DType::kFloat32), 6 + 8 * 10u);
  EXPECT_EQ(make_compressor("topk:ratio=0.01")->encoded_size(1001, DType::kFloat32), 6 + 8 * 11u);
  EXPECT_EQ(make_compressor("topk:ratio=0.01")->encoded_size(5, DType::kFloat32), 6 + 8 * 1u);
  EXPECT_EQ(make_compressor("randk:k=50")->encoded_size(20, DType::kFloat64), 6 + 8 * 20u);
  EXPECT_EQ(make_compressor("randk:k=50")->encoded_size(0, DType::kFloat32), 6u);
}

TEST(RandomK, IsUnbiasedOverSeeds) {
  const std::size_t n = 40, k = 8, draws = 20000;
  const auto v = sample_vector(n, 2);
  const auto c = make_compressor("randk:k=8");
  std::vector<double> mean(n, 0.0);
  for (std::size_t s = 0; s < draws; ++s) {
    const auto wire = c->encode(v.data(), n, s);
    ASSERT_EQ(wire.size(), 6 + 8 * k);
    const auto back = c->decode<double>(wire);
    EXPECT_EQ(std::count_if(back.begin(), back.end(), [](double x) { return x != 0; }),
              static_cast<std::ptrdiff_t>(k));
    for (std::size_t i = 0; i < n; ++i) mean[i] += back[i] / draws;
  }
  // Var of one draw of coordinate i: v_i^2 (d/k - 1); 5 standard deviations of the mean.
  const double spread = std::sqrt((static_cast<double>(n) / k - 1) / draws);
  for (std::size_t i = 0; i < n; ++i)
    EXPECT_NEAR(mean[i], v[i], 5 * std::fabs(v[i]) * spread + 1e-6) << i;
}

TEST(RandomK, SameSeedSameDrawOtherSeedOtherDraw) {
  const auto v = sample_vector(100, 3);
  const auto c = make_compressor("randk:ratio=0.1");
  EXPECT_EQ(c->encode(v.data(), v.size(), 7), c->encode(v.data(), v.size(), 7));
  EXPECT_NE(c->encode(v.data(), v.size(), 7), c->encode(v.data(), v.size(), 8));
}

// ---------------------------------------------------------------- quantizers

TEST(Qsgd, EncodedSizeIsTheBitPackedFormula) {
  // 1 sign bit + ceil(log2(s + 1)) level bits per element, one float32 norm per bucket.
  const std::size_t n = 1000;
  const auto v = sample_vector(n, 4);
  for (auto [levels, bits] : {std::pair<int, int>{1, 2}, {7, 4}, {15, 5}, {127, 8}}) {
    for (std::size_t bucket : {0, 128, 512}) {
      const auto c =
          make_compressor("qsgd:s=" + std::to_string(levels) + ",bucket=" + std::to_string(bucket));
      const std::size_t buckets = bucket == 0 ? 1 : (n + bucket - 1) / bucket;
      const std::size_t expected = 6 + 4 * buckets + packed(n, bits);
      EXPECT_EQ(c->encoded_size(n, DType::kFloat32), expected);
      EXPECT_EQ(c->encode(v.data(), n, 1).size(), expected);
    }
  }
}

TEST(Qsgd, IsUnbiasedOverSeeds) {
  const std::size_t n = 50, draws = 20000;
  const auto v = sample_vector(n, 5);
  const double norm = std::sqrt(std::inner_product(v.begin(), v.end(), v.begin(), 0.0));
  for (const std::string spec : {"qsgd:s=2", "qsgd:s=1,norm=max"}) {
    const auto c = make_compressor(spec);
    const int levels = spec == "qsgd:s=2" ? 2 : 1;
    double max_abs = 0;
    for (double x : v) max_abs = std::max(max_abs, std::fabs(x));
    const double scale = spec == "qsgd:s=2" ? norm : max_abs;
    std::vector<double> mean(n, 0.0);
    for (std::size_t s = 0; s < draws; ++s) {
      const auto back = c->decode<double>(c->encode(v.data(), n, s));
      for (std::size_t i = 0; i < n; ++i) mean[i] += back[i] / draws;
    }
    // Each coordinate rounds between two levels norm/s apart: Var <= (norm / s)^2 / 4.
    const double bound = 5 * scale / (2 * levels * std::sqrt(static_cast<double>(draws)));
    for (std::size_t i = 0; i < n; ++i) EXPECT_NEAR(mean[i], v[i], bound) << spec << " " << i;
    EXPECT_TRUE(c->unbiased());
  }
}

TEST(Qsgd, DecodedValuesLieOnTheGrid) {
  const auto v = sample_vector(64, 6);
  const auto c = make_compressor("qsgd:s=4,bucket=16");
  const auto back = c->decode<double>(c->encode(v.data(), v.size(), 3));
  for (std::size_t b = 0; b < 64; b += 16) {
    double norm = 0;
    for (std::size_t i = b; i < b + 16; ++i) norm += v[i] * v[i];
    const double step = static_cast<float>(std::sqrt(norm)) / 4.0;
    for (std::size_t i = b; i < b + 16; ++i) {
      const double level = std::fabs(back[i]) / step;
      EXPECT_NEAR(level, std::round(level), 1e-5) << i;
      EXPECT_LE(std::round(level), 4) << i;
      // Stochastic rounding picks one of the two neighbouring levels.
      EXPECT_LE(std::fabs(back[i] - v[i]), step * (1 + 1e-6)) << i;
    }
  }
}

TEST(Kbit, GridValuesRoundTripExactly) {
  // bits=4: L = 7, values scale * c / L with max |c| = L so that the scale is 0.75.
  const double scale = 0.75;
  std::vector<double> v;
  for (int c = -7; c <= 7; ++c) v.push_back(scale * c / 7);
  const auto k = make_compressor("kbit:bits=4");
  const auto wire = k->encode(v.data(), v.size());
  EXPECT_EQ(wire.size(), 6 + 4 + packed(v.size(), 4));
  EXPECT_EQ(k->decode<double>(wire), v);
}

TEST(Kbit, ErrorIsAtMostHalfAStep) {
  const auto v = sample_vector(300, 7);
  for (int bits : {2, 3, 8}) {
    const auto c = make_compressor("kbit:bits=" + std::to_string(bits) + ",bucket=100");
    const auto wire = c->encode(v.data(), v.size());
    EXPECT_EQ(wire.size(), 6 + 4 * 3 + packed(300, bits));
    const auto back = c->decode<double>(wire);
    const double L = (1 << (bits - 1)) - 1;
    for (std::size_t b = 0; b < 300; b += 100) {
      double m = 0;
      for (std::size_t i = b; i < b + 100; ++i) m = std::max(m, std::fabs(v[i]));
      for (std::size_t i = b; i < b + 100; ++i)
        EXPECT_LE(std::fabs(back[i] - v[i]), m / (2 * L) * (1 + 1e-6)) << bits << " " << i;
    }
  }
}

TEST(Sign, OneBitPerElementAndTheMeanMagnitude) {
  const std::vector<float> v = {1.0f, -2.0f, 3.0f, -4.0f, 0.5f, 0.0f, -0.5f, 1.0f, 2.0f};
  const auto c = make_compressor("sign");
  const auto wire = c->encode(v.data(), v.size());
  EXPECT_EQ(wire.size(), 6 + 4 + packed(9, 1));
  const float scale = 14.0f / 9.0f;
  const auto back = c->decode<float>(wire);
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(back[i], v[i] < 0 ? -scale : scale) << i;
}

TEST(Compressors, NonFiniteInputsEncodeWithoutThrowing) {
  // A diverging run must reach its own non-finite-loss check instead of failing in encode.
  const std::vector<double> v = {1.0, std::nan(""), -std::numeric_limits<double>::infinity(), 2.0};
  for (const char* spec : {"qsgd:s=3", "qsgd:s=3,norm=max", "kbit:bits=4", "sign", "topk:k=2",
                           "randk:k=2", "fp16", "bf16", "none"}) {
    const auto c = make_compressor(spec);
    EXPECT_NO_THROW(c->decode<double>(c->encode(v.data(), v.size(), 1))) << spec;
  }
}

// ---------------------------------------------------------------- 16-bit casts against a reference

// Value of a 16-bit pattern with M fraction and E exponent bits, from the definition.
double small_float_value(std::uint16_t bits, int M, int E) {
  const int bias = (1 << (E - 1)) - 1;
  const int e = (bits >> M) & ((1 << E) - 1);
  const int fraction = bits & ((1 << M) - 1);
  const double sign = (bits & 0x8000) ? -1.0 : 1.0;
  if (e == (1 << E) - 1)
    return fraction ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  if (e == 0) return sign * std::ldexp(fraction, 1 - bias - M);
  return sign * std::ldexp(fraction + (1 << M), e - bias - M);
}

// Reference rounding: the nearest of all finite patterns (and 2^(bias+1), which stands for
// infinity: beyond the largest finite value rounding goes up to it), ties to the even pattern.
struct SmallFloatReference {
  int M, E;
  std::vector<double> values;  // non-negative finite values by pattern, then 2^(bias + 1)
  SmallFloatReference(int m, int e) : M(m), E(e) {
    const std::uint16_t infinity = static_cast<std::uint16_t>(((1 << E) - 1) << M);
    for (std::uint32_t b = 0; b < infinity; ++b)
      values.push_back(small_float_value(static_cast<std::uint16_t>(b), M, E));
    values.push_back(std::ldexp(1.0, (1 << (E - 1))));
  }
  std::uint16_t round(double x) const {
    const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    if (std::isnan(x))
      return static_cast<std::uint16_t>(sign | (((1 << E) - 1) << M) | (1 << (M - 1)));
    const double a = std::fabs(x);
    const auto above = std::lower_bound(values.begin(), values.end(), a);
    std::size_t pattern;
    if (above == values.end()) {
      pattern = values.size() - 1;
    } else if (*above == a || above == values.begin()) {
      pattern = static_cast<std::size_t>(above - values.begin());
    } else {
      const std::size_t hi = static_cast<std::size_t>(above - values.begin()), lo = hi - 1;
      const double down = a - values[lo], up = values[hi] - a;  // exact: neighbours of a
      pattern = down < up ? lo : up < down ? hi : (lo % 2 == 0 ? lo : hi);
    }
    return static_cast<std::uint16_t>(sign | pattern);
  }
};

template <typename T>
std::vector<std::uint16_t> encoded_patterns(const Compressor& c, const std::vector<T>& v) {
  const auto wire = c.encode(v.data(), v.size());
  EXPECT_EQ(wire.size(), 6 + 2 * v.size());
  std::vector<std::uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = static_cast<std::uint16_t>(wire[6 + 2 * i] | (wire[7 + 2 * i] << 8));
  return out;
}

// Inputs around every finite pattern: the value, the midpoint to the next one (an exact tie),
// and the floats and doubles just beside both; plus zeros, subnormals, huge values, infinities
// and NaNs with several payloads, with both signs.
std::vector<double> cast_inputs(const SmallFloatReference& ref, bool as_float) {
  std::vector<double> in;
  auto add = [&](double x) {
    if (as_float) x = static_cast<float>(x);
    in.push_back(x);
    in.push_back(-x);
  };
  auto beside = [&](double x) {
    add(x);
    if (as_float) {
      add(std::nextafter(static_cast<float>(x), 0.0f));
      add(std::nextafter(static_cast<float>(x), std::numeric_limits<float>::infinity()));
    } else {
      add(std::nextafter(x, 0.0));
      add(std::nextafter(x, std::numeric_limits<double>::infinity()));
    }
  };
  for (std::size_t p = 0; p + 1 < ref.values.size(); ++p) {
    beside(ref.values[p]);
    beside((ref.values[p] + ref.values[p + 1]) / 2);
  }
  for (double x : {0.0, 1e-45, 1e-300, 5e-324, 0x1p-126, 0x1p-149, 1e30, 3.4e38, 1e300,
                   std::numeric_limits<double>::infinity()})
    add(x);
  return in;
}

template <typename T>
void expect_cast_matches_reference(const char* spec, int M, int E) {
  const SmallFloatReference ref(M, E);
  const auto c = make_compressor(spec);
  const auto wide = cast_inputs(ref, std::is_same_v<T, float>);
  std::vector<T> v(wide.begin(), wide.end());
  // NaNs: quiet, signalling-style payloads, negative.
  for (std::uint64_t payload : {1ull, 0x400000ull, 0x3FFFFFull}) {
    if constexpr (std::is_same_v<T, float>) {
      const std::uint32_t bits = 0x7F800000u | static_cast<std::uint32_t>(payload);
      float x;
      std::memcpy(&x, &bits, 4);
      v.push_back(x);
      v.push_back(-x);
    } else {
      const std::uint64_t bits = 0x7FF0000000000000ull | (payload << 29);
      double x;
      std::memcpy(&x, &bits, 8);
      v.push_back(x);
      v.push_back(-x);
    }
  }
  const auto got = encoded_patterns(*c, v);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (got[i] != ref.round(static_cast<double>(v[i])) && ++mismatches <= 10)
      ADD_FAILURE() << spec << " of " << std::hexfloat << static_cast<double>(v[i]) << ": got 0x"
                    << std::hex << got[i] << ", expected 0x"
                    << ref.round(static_cast<double>(v[i]));
  EXPECT_EQ(mismatches, 0u) << spec << " " << v.size() << " inputs";
}

TEST(Cast, Fp16FromFloatMatchesTheReferenceAroundEveryValue) {
  expect_cast_matches_reference<float>("fp16", 10, 5);
}
TEST(Cast, Fp16FromDoubleMatchesTheReferenceAroundEveryValue) {
  expect_cast_matches_reference<double>("fp16", 10, 5);
}
TEST(Cast, Bf16FromFloatMatchesTheReferenceAroundEveryValue) {
  expect_cast_matches_reference<float>("bf16", 7, 8);
}
TEST(Cast, Bf16FromDoubleMatchesTheReferenceAroundEveryValue) {
  expect_cast_matches_reference<double>("bf16", 7, 8);
}

TEST(Cast, EveryPatternDecodesToItsValue) {
  for (auto [spec, M, E] : {std::tuple<const char*, int, int>{"fp16", 10, 5}, {"bf16", 7, 8}}) {
    const auto c = make_compressor(spec);
    std::vector<std::uint8_t> wire = {
        spec[0] == 'f' ? std::uint8_t{2} : std::uint8_t{3}, 0, 0, 0, 1, 0};  // 65536 elements
    for (std::uint32_t b = 0; b < 65536; ++b) {
      wire.push_back(static_cast<std::uint8_t>(b));
      wire.push_back(static_cast<std::uint8_t>(b >> 8));
    }
    const auto as_double = c->decode<double>(wire);
    const auto as_float = c->decode<float>(wire);
    for (std::uint32_t b = 0; b < 65536; ++b) {
      const double expected = small_float_value(static_cast<std::uint16_t>(b), M, E);
      if (std::isnan(expected)) {
        EXPECT_TRUE(std::isnan(as_double[b])) << spec << " " << b;
        EXPECT_TRUE(std::isnan(as_float[b])) << spec << " " << b;
        continue;
      }
      EXPECT_EQ(as_double[b], expected) << spec << " " << b;
      EXPECT_EQ(static_cast<double>(as_float[b]), expected) << spec << " " << b;
      EXPECT_EQ(std::signbit(as_double[b]), (b & 0x8000) != 0) << spec << " " << b;
    }
  }
}

// ---------------------------------------------------------------- bit packing at every width

TEST(Kbit, GridValuesRoundTripAtEveryWidthAcrossBlockBoundaries) {
  // Codes span the whole range 0..2L at every width, so every packing path (1..16 bits, the
  // byte and word paths, partial last bytes) is checked by exact equality.
  std::mt19937 gen(21);
  for (int bits = 2; bits <= 16; ++bits) {
    const int L = (1 << (bits - 1)) - 1;
    for (std::size_t n : {1u, 7u, 9u, 4095u, 4096u, 4097u, 12291u}) {
      for (std::size_t bucket : {0u, 5u, 512u}) {
        const std::size_t width = bucket == 0 ? n : bucket;
        std::vector<double> v(n);
        std::uniform_int_distribution<int> code(-L, L);
        for (std::size_t b = 0; b < n; b += width) {
          const double scale = 0.5 + (b % 7);
          for (std::size_t i = b; i < std::min(n, b + width); ++i)
            v[i] = scale * (i == b ? L : code(gen)) / L;  // the first one fixes the scale
        }
        const auto c = make_compressor("kbit:bits=" + std::to_string(bits) +
                                       ",bucket=" + std::to_string(bucket));
        const auto wire = c->encode(v.data(), n);
        ASSERT_EQ(wire.size(), 6 + 4 * ((n + width - 1) / width) + packed(n, bits));
        ASSERT_EQ(c->decode<double>(wire), v) << bits << " bits, n " << n << ", bucket " << bucket;
      }
    }
  }
}

TEST(Qsgd, LevelsFollowTheDocumentedRandomWords) {
  // Element i rounds up iff floor(u_i / 2) < frac * 2^31, u_i the low (even i) or high (odd i)
  // half of SplitMix64 output floor(i / 2); with norm=max on float input the scale is max|v|
  // exactly, so every code can be predicted. s = 127: one byte per code, level << 1 | sign.
  auto splitmix = [](std::uint64_t seed, std::uint64_t k) {
    std::uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  const std::size_t n = 9001;
  const auto v = to_float(sample_vector(n, 22));
  const auto c = make_compressor("qsgd:s=127,norm=max");
  for (std::uint64_t seed : {0ull, 1ull, 0xDEADBEEFull}) {
    const auto wire = c->encode(v.data(), n, seed);
    ASSERT_EQ(wire.size(), 6 + 4 + n);
    float scale = 0;
    for (float x : v) scale = std::max(scale, std::fabs(x));
    const double factor = 127.0 / scale;
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t r = splitmix(seed, i / 2);
      const auto u = static_cast<std::uint32_t>(i % 2 == 0 ? r : r >> 32);
      const double level = std::min(127.0, std::fabs(static_cast<double>(v[i])) * factor);
      const double floor_level = std::floor(level);
      const int expected =
          static_cast<int>(floor_level) + ((u >> 1) < (level - floor_level) * 0x1p31 ? 1 : 0);
      const int code = wire[10 + i];
      mismatches += (code >> 1) != expected || (code & 1) != (v[i] < 0 ? 1 : 0);
    }
    EXPECT_EQ(mismatches, 0u) << seed;
  }
}

TEST(Qsgd, LargeVectorsStayOnTheGridAcrossBlocksAndBuckets) {
  const std::size_t n = 10007;
  const auto v = sample_vector(n, 23);
  for (const char* spec : {"qsgd:s=5,bucket=333", "qsgd:s=127,bucket=0",
                           "qsgd:s=1,bucket=4096,norm=max", "qsgd:s=32767,bucket=100"}) {
    const auto c = make_compressor(spec);
    const auto back = c->decode<double>(c->encode(v.data(), n, 4));
    const std::string text = spec;
    const int levels = std::stoi(text.substr(text.find("s=") + 2));
    const std::size_t bucket = std::stoul(text.substr(text.find("bucket=") + 7));
    const bool max_norm = text.find("norm=max") != std::string::npos;
    const std::size_t width = bucket == 0 ? n : bucket;
    for (std::size_t b = 0; b < n; b += width) {
      const std::size_t e = std::min(n, b + width);
      double norm = 0;
      for (std::size_t i = b; i < e; ++i)
        norm = max_norm ? std::max(norm, std::fabs(v[i])) : norm + v[i] * v[i];
      const double step = static_cast<float>(max_norm ? norm : std::sqrt(norm)) / levels;
      for (std::size_t i = b; i < e; ++i) {
        const double level = std::fabs(back[i]) / step;
        ASSERT_NEAR(level, std::round(level), 1e-6 * levels) << spec << " " << i;
        ASSERT_LE(std::fabs(back[i] - v[i]), step * (1 + 1e-6)) << spec << " " << i;
        ASSERT_TRUE(back[i] == 0 || std::signbit(back[i]) == std::signbit(v[i]))
            << spec << " " << i;
      }
    }
  }
}

TEST(Qsgd, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto v = sample_vector(5000, 24);
  const auto f = to_float(v);
  const auto c = make_compressor("qsgd:s=7,bucket=512");
  EXPECT_EQ(c->encode(v.data(), v.size(), 3), c->encode(v.data(), v.size(), 3));
  EXPECT_NE(c->encode(v.data(), v.size(), 3), c->encode(v.data(), v.size(), 4));
  // float and double inputs holding the same values encode identically.
  EXPECT_EQ(c->encode(f.data(), f.size(), 3).size(), c->encode(v.data(), v.size(), 3).size());
  const std::vector<double> widened(f.begin(), f.end());
  auto from_float = c->encode(f.data(), f.size(), 3);
  auto from_double = c->encode(widened.data(), widened.size(), 3);
  from_float[1] = from_double[1] = 0;  // the header's parameter byte is the same; keep it simple
  EXPECT_EQ(from_float, from_double);
}

// ---------------------------------------------------------------- top-k and random-k at scale

// Reference top-k: indices ordered by magnitude (NaN as +infinity), then index; the first k.
std::vector<std::size_t> reference_topk(const std::vector<double>& v, std::size_t k) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  auto magnitude = [&](std::size_t i) {
    return std::isnan(v[i]) ? std::numeric_limits<double>::infinity() : std::fabs(v[i]);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return magnitude(a) > magnitude(b); });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

void expect_topk_matches_reference(const std::vector<double>& v, std::size_t k,
                                   const std::string& what) {
  const auto c = make_compressor("topk:k=" + std::to_string(k));
  const auto f = to_float(v);
  for (bool single : {false, true}) {
    const auto wire = single ? c->encode(f.data(), f.size()) : c->encode(v.data(), v.size());
    ASSERT_EQ(wire.size(), 6 + 8 * k);
    const auto expected = reference_topk(single ? std::vector<double>(f.begin(), f.end()) : v, k);
    std::vector<std::size_t> got(k);
    for (std::size_t j = 0; j < k; ++j)
      got[j] = wire[6 + 4 * j] | (wire[7 + 4 * j] << 8) | (wire[8 + 4 * j] << 16) |
               (static_cast<std::size_t>(wire[9 + 4 * j]) << 24);
    EXPECT_EQ(got, expected) << what << (single ? " (float)" : " (double)");
    const auto back = c->decode<double>(wire);
    for (std::size_t i : expected) {
      const double want = static_cast<float>(single ? f[i] : v[i]);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(back[i])) << what << " " << i;
      else
        EXPECT_EQ(back[i], want) << what << " " << i;
    }
  }
}

TEST(TopK, MatchesASortOnLargeVectorsWithTies) {
  std::mt19937 gen(25);
  std::uniform_int_distribution<int> small(-20, 20);
  std::vector<double> ties(100000);
  for (auto& x : ties) x = small(gen);  // many equal magnitudes at the threshold
  expect_topk_matches_reference(ties, 1000, "ties");
  expect_topk_matches_reference(ties, 1, "ties k=1");
  expect_topk_matches_reference(ties, 99999, "ties k=n-1");
  expect_topk_matches_reference(sample_vector(100000, 26), 1000, "normal");
  expect_topk_matches_reference(sample_vector(100000, 27), 50000, "normal half");
  // The large values sit exactly where a strided sample looks, so the sample overestimates the
  // threshold and the selection falls back to all elements.
  std::vector<double> spiky(24576, 0.001);
  for (std::size_t i = 0; i < spiky.size(); i += 6) spiky[i] = 1.0 + static_cast<double>(i % 97);
  expect_topk_matches_reference(spiky, 100, "spiky");
  expect_topk_matches_reference(spiky, 5000, "spiky many");
}

TEST(TopK, NonFiniteValuesCountAsTheLargest) {
  const std::vector<double> v = {1.0,
                                 std::nan(""),
                                 -std::numeric_limits<double>::infinity(),
                                 2.0,
                                 std::numeric_limits<double>::infinity(),
                                 -0.0};
  expect_topk_matches_reference(v, 3, "non-finite");
  expect_topk_matches_reference(v, 4, "non-finite 4");
}

TEST(RandomK, LargeVectorsKeepKDistinctSortedCoordinatesScaledByDOverK) {
  const std::size_t n = 100003, k = 1001;
  const auto v = sample_vector(n, 28);
  const auto c = make_compressor("randk:k=1001");
  const auto wire = c->encode(v.data(), n, 9);
  ASSERT_EQ(wire.size(), 6 + 8 * k);
  const auto back = c->decode<double>(wire);  // decoding checks strictly increasing indices
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (back[i] != 0) {
      ++kept;
      EXPECT_EQ(back[i], static_cast<float>(v[i] * n / k)) << i;
    }
  EXPECT_EQ(kept, k);
  // Every coordinate is equally likely: over seeds, each of 20 is kept k/n = 1/4 of the time.
  const auto small = make_compressor("randk:k=5");
  const std::vector<double> ones(20, 1.0);
  std::vector<int> hits(20, 0);
  const int draws = 20000;
  for (int s = 0; s < draws; ++s) {
    const auto b = small->decode<double>(small->encode(ones.data(), 20, s));
    for (std::size_t i = 0; i < 20; ++i) hits[i] += b[i] != 0;
  }
  const double sd = std::sqrt(draws * 0.25 * 0.75);
  for (std::size_t i = 0; i < 20; ++i) EXPECT_NEAR(hits[i], draws * 0.25, 5 * sd) << i;
}

TEST(Sign, LargeVectorsUseTheMeanMagnitudePerBucketAndTheSignBit) {
  auto v = sample_vector(10000, 29);
  v[17] = -0.0;  // the sign bit decides: -0 sends -scale
  const auto c = make_compressor("sign:bucket=999");
  const auto back = c->decode<double>(c->encode(v.data(), v.size()));
  for (std::size_t b = 0; b < v.size(); b += 999) {
    const std::size_t e = std::min(v.size(), b + 999);
    double sum = 0;
    for (std::size_t i = b; i < e; ++i) sum += std::fabs(v[i]);
    const double scale = static_cast<float>(sum / (e - b));
    for (std::size_t i = b; i < e; ++i)
      ASSERT_NEAR(back[i], std::signbit(v[i]) ? -scale : scale, scale * 1e-6) << i;
  }
  EXPECT_LT(back[17], 0.0);
}

TEST(ErrorFeedbackTest, ResidualIsExactlyCorrectedMinusSent) {
  // delta <- u + delta - v, evaluated in the element type, at every step.
  const std::size_t n = 3000;
  for (const char* spec : {"topk:ratio=0.05", "qsgd:s=3,bucket=256", "sign:bucket=100", "fp16"}) {
    ErrorFeedback<float> ef(make_compressor(spec), n);
    std::vector<float> sent(n), previous(n, 0.0f);
    for (int t = 0; t < 4; ++t) {
      const auto u = to_float(sample_vector(n, 200 + t));
      ef.encode(u.data(), t, sent.data());
      for (std::size_t i = 0; i < n; ++i) {
        const float corrected = u[i] + previous[i];
        ASSERT_EQ(ef.residual()[i], corrected - sent[i]) << spec << " " << t << " " << i;
      }
      previous = ef.residual();
    }
  }
}

// ---------------------------------------------------------------- error feedback

TEST(ErrorFeedbackTest, TransmittedPlusResidualEqualsTheInputs) {
  const std::size_t n = 30;
  ErrorFeedback<double> ef(make_compressor("topk:k=3"), n);
  std::vector<double> sum_inputs(n, 0.0), sum_sent(n, 0.0), sent(n);
  for (int t = 0; t < 25; ++t) {
    const auto u = sample_vector(n, 100 + t);
    ef.encode(u.data(), t, sent.data());
    EXPECT_EQ(std::count_if(sent.begin(), sent.end(), [](double x) { return x != 0; }), 3);
    for (std::size_t i = 0; i < n; ++i) {
      sum_inputs[i] += u[i];
      sum_sent[i] += sent[i];
    }
  }
  for (std::size_t i = 0; i < n; ++i)
    EXPECT_NEAR(sum_sent[i] + ef.residual()[i], sum_inputs[i], 1e-9) << i;
  // What was dropped is carried over, not lost: the residual is bounded, not growing with t.
  double residual_norm = 0;
  for (double r : ef.residual()) residual_norm += r * r;
  EXPECT_GT(residual_norm, 0.0);
}

TEST(ErrorFeedbackTest, SendsTheCompressedCorrectedInput) {
  ErrorFeedback<float> ef(make_compressor("sign"), 4);
  const std::vector<float> u = {1.0f, -3.0f, 2.0f, 0.0f};
  std::vector<float> sent(4);
  ef.encode(u.data(), 0, sent.data());
  EXPECT_EQ(sent, (std::vector<float>{1.5f, -1.5f, 1.5f, 1.5f}));
  EXPECT_EQ(ef.residual(), (std::vector<float>{-0.5f, -1.5f, 0.5f, -1.5f}));
  // Second call compresses u + delta = {0.5, -4.5, 2.5, -1.5}: scale 9/4.
  ef.encode(u.data(), 1, sent.data());
  EXPECT_EQ(sent, (std::vector<float>{2.25f, -2.25f, 2.25f, -2.25f}));
}

// ---------------------------------------------------------------- specs

void expect_bad_spec(const std::string& spec, const std::string& fragment) {
  try {
    make_compressor(spec);
    ADD_FAILURE() << "no error for '" << spec << "'";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'" + spec + "'"), std::string::npos) << e.what();
  }
}

TEST(Specs, MalformedSpecsAreRejectedWithTheReason) {
  expect_bad_spec("", "empty compressor name");
  expect_bad_spec("gzip", "unknown compressor 'gzip'; valid: none, fp32, fp16");
  expect_bad_spec("qsgd", "missing s=<integer>");
  expect_bad_spec("qsgd:s=0", "s=0 is out of range [1, 32767]");
  expect_bad_spec("qsgd:s=abc", "s='abc' is not an integer");
  expect_bad_spec("qsgd:s=4x", "s='4x' is not an integer");
  expect_bad_spec("qsgd:s=4,s=5", "key 's' is given twice");
  expect_bad_spec("qsgd:s=4,levels=5", "unknown key 'levels' for qsgd (keys: s, bucket, norm)");
  expect_bad_spec("qsgd:s=4,norm=l1", "norm='l1': expected l2 or max");
  expect_bad_spec("qsgd:s", "'s' is not of the form key=value");
  expect_bad_spec("kbit:bits=1", "bits=1 is out of range [2, 16]");
  expect_bad_spec("topk", "exactly one of ratio");
  expect_bad_spec("topk:ratio=0.1,k=5", "exactly one of ratio");
  expect_bad_spec("randk:ratio=1.5", "ratio=1.5 is out of range (0, 1]");
  expect_bad_spec("randk:ratio=nan", "ratio='nan' is not a number");
  expect_bad_spec("sign:bucket=-1", "bucket=-1 is out of range");
  expect_bad_spec("fp16:bits=8", "unknown key 'bits' for fp16");
}

TEST(Specs, CanonicalSpecsBuildEquivalentCompressors) {
  for (const char* spec : {"none", "fp32", "FP16", "bf16", "qsgd:s=7", "qsgd: s=3 , norm=max",
                           "kbit:bits=4,bucket=256", "randk:ratio=0.25", "topk:k=12", "sign",
                           "sign:bucket=64", "identity"}) {
    const auto c = make_compressor(spec);
    const auto again = make_compressor(c->spec());
    EXPECT_EQ(again->spec(), c->spec()) << spec;
    EXPECT_EQ(again->encoded_size(777, DType::kFloat32), c->encoded_size(777, DType::kFloat32));
    const auto v = sample_vector(777, 8);
    EXPECT_EQ(again->encode(v.data(), v.size(), 5), c->encode(v.data(), v.size(), 5)) << spec;
  }
  EXPECT_EQ(make_compressor("qsgd:s=7")->spec(), "qsgd:s=7,bucket=0,norm=l2");
  EXPECT_EQ(list_compressors().size(), 9u);
}

// ---------------------------------------------------------------- corrupted encodings

void expect_decode_error(const Compressor& c, const std::vector<std::uint8_t>& bytes,
                         std::size_t count, const std::string& fragment) {
  std::vector<double> out(count);
  try {
    c.decode(bytes.data(), bytes.size(), out.data(), count);
    ADD_FAILURE() << c.spec() << ": no error (" << fragment << ")";
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Corrupted, TruncatedOrPaddedEncodingsAreRejected) {
  const auto v = sample_vector(37, 9);
  for (const char* spec : {"none", "fp16", "qsgd:s=5,bucket=8", "kbit:bits=3", "randk:k=5",
                           "topk:ratio=0.2", "sign"}) {
    const auto c = make_compressor(spec);
    const auto wire = c->encode(v.data(), v.size(), 1);
    for (std::size_t cut = 0; cut < wire.size(); ++cut) {
      const std::vector<std::uint8_t> prefix(wire.begin(), wire.begin() + cut);
      expect_decode_error(*c, prefix, v.size(), cut < 6 ? "truncated encoding" : "(truncated)");
    }
    auto longer = wire;
    longer.push_back(0);
    expect_decode_error(*c, longer, v.size(), "got " + std::to_string(wire.size() + 1));
    expect_decode_error(*c, wire, v.size() + 1, "holds 37 elements, the output has room for 38");
  }
}

TEST(Corrupted, ContentsOutsideTheFormatAreRejected) {
  const auto v = sample_vector(16, 10);
  const auto topk = make_compressor("topk:k=4");
  auto wire = topk->encode(v.data(), v.size());
  auto bad = wire;
  bad[6] = 16;  // first index = d
  bad[7] = bad[8] = bad[9] = 0;
  expect_decode_error(*topk, bad, 16, "indices must increase strictly and stay below 16");
  bad = wire;
  std::copy(wire.begin() + 6, wire.begin() + 10, bad.begin() + 10);  // repeated index
  expect_decode_error(*topk, bad, 16, "indices must increase strictly");

  // Another compressor's bytes, or the same one with other parameters.
  expect_decode_error(*make_compressor("randk:k=4"), wire, 16, "'topk' encoding (kind 7)");
  const auto q5 = make_compressor("qsgd:s=5");
  const auto q5_wire = q5->encode(v.data(), v.size(), 2);
  expect_decode_error(*make_compressor("qsgd:s=1"), q5_wire, 16, "header parameter 3");

  // s = 5 uses 3 level bits: levels 6 and 7 are off the grid.
  bad = q5_wire;
  bad[10] |= 0x0E;  // element 0: level bits all ones
  expect_decode_error(*q5, bad, 16, "element 0 has code");
  // bits = 2: codes 0..2, code 3 is off the grid.
  const auto k2 = make_compressor("kbit:bits=2");
  bad = k2->encode(v.data(), v.size());
  bad[10] |= 0x03;
  expect_decode_error(*k2, bad, 16, "element 0 has code 3, beyond the grid");
}

TEST(Corrupted, RandomByteFlipsNeverReadOutOfBounds) {
  // Every flipped byte either decodes or raises DecodeError, never reads out of bounds.
  const auto v = sample_vector(50, 11);
  std::mt19937 gen(12);
  for (const char* spec : {"none", "fp16", "qsgd:s=5,bucket=8", "kbit:bits=3", "randk:k=5",
                           "topk:ratio=0.2", "sign:bucket=7"}) {
    const auto c = make_compressor(spec);
    const auto wire = c->encode(v.data(), v.size(), 1);
    for (int trial = 0; trial < 300; ++trial) {
      auto bad = wire;
      bad[gen() % bad.size()] ^= static_cast<std::uint8_t>(1 + gen() % 255);
      // Receivers decode into the element count they expect (a sparse encoding of fixed k
      // has the same size for any count, so the count itself may be what was corrupted).
      try {
        std::vector<float> out(v.size());
        c->decode(bad.data(), bad.size(), out.data(), out.size());
      } catch (const DecodeError&) {
      }
    }
  }
}

}  // namespace
}  // namespace decent::compress
