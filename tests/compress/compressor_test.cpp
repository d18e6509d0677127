// Compressors: exact round trips where the format is exact, encoded sizes equal to the formulas,
// unbiasedness of the randomized ones, error feedback, spec parsing and corrupted encodings.
#include "decent/compress/compressor.h"
#include "decent/compress/error_feedback.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
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
