// The element-wise kernels the collectives combine received data with.
#include "comm/kernels.h"
#include "comm/simd/native_kernels.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using decent::DType;
using decent::ReduceOp;
namespace detail = decent::detail;

// Random elements: any bits for the integer types; finite values of either sign and many
// magnitudes for the floating types (no NaN, whose bits the comparisons below could not match).
std::vector<std::uint8_t> random_elements(DType dtype, std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> value(-100.0, 100.0);
  std::vector<std::uint8_t> bytes(count * decent::dtype_size(dtype));
  for (std::size_t i = 0; i < count; ++i) {
    std::uint8_t* element = bytes.data() + i * decent::dtype_size(dtype);
    const double v = value(rng);
    const auto f = static_cast<float>(v);
    std::uint32_t float_bits;
    std::memcpy(&float_bits, &f, 4);
    // float16: sign, a biased exponent in [1, 29], any mantissa (finite, normal).
    const auto half_bits = static_cast<std::uint16_t>(((rng() & 1u) << 15) |
                                                      ((1 + rng() % 29) << 10) | (rng() & 0x3ffu));
    const auto bfloat_bits = static_cast<std::uint16_t>(float_bits >> 16);
    const auto random_bits = static_cast<std::uint64_t>(rng()) << 32 | rng();
    switch (dtype) {
      case DType::kFloat32:
        std::memcpy(element, &f, 4);
        break;
      case DType::kFloat64:
        std::memcpy(element, &v, 8);
        break;
      case DType::kFloat16:
        std::memcpy(element, &half_bits, 2);
        break;
      case DType::kBFloat16:
        std::memcpy(element, &bfloat_bits, 2);
        break;
      default:
        std::memcpy(element, &random_bits, decent::dtype_size(dtype));
        break;
    }
  }
  return bytes;
}

struct KernelCase {
  DType dtype;
  ReduceOp op;
};

class ReduceToScaled : public ::testing::TestWithParam<KernelCase> {};

// The fused kernel gives, bit for bit, what reduce_to followed by scale gives: the collectives
// use it for the step that completes an average, and the backends and algorithms must agree.
TEST_P(ReduceToScaled, EqualsReduceThenScaleBitForBit) {
  const auto [dtype, op] = GetParam();
  const bool floating = decent::dtype_is_floating(dtype);
  for (std::size_t count : {0, 1, 3, 17, 1000, 4099}) {
    const auto in = random_elements(dtype, count, 1);
    const auto acc = random_elements(dtype, count, 2);
    for (double factor : {1.0, 0.5, 1.0 / 3.0, 1.0 / 7.0, 0.125}) {
      if (!floating && factor != 1.0) continue;  // averages need a floating dtype
      std::vector<std::uint8_t> expected(in.size()), fused(in.size());
      detail::reduce_to(dtype, op, count, in.data(), acc.data(), expected.data());
      detail::scale(dtype, count, factor, expected.data());
      detail::reduce_to_scaled(dtype, op, count, in.data(), acc.data(), fused.data(), factor);
      EXPECT_EQ(fused, expected) << decent::dtype_name(dtype) << " count " << count << " factor "
                                 << factor;
      // In place on the accumulator, as the ring and the last halving steps use it.
      std::vector<std::uint8_t> in_place = acc;
      detail::reduce_to_scaled(dtype, op, count, in.data(), in_place.data(), in_place.data(),
                               factor);
      EXPECT_EQ(in_place, expected) << decent::dtype_name(dtype) << " count " << count << " factor "
                                    << factor << " (in place)";
    }
  }
}

TEST(ReduceToScaledValues, AveragesFloat32) {
  const std::vector<float> in = {1.0f, -2.0f, 3.5f}, acc = {3.0f, 4.0f, 0.5f};
  std::vector<float> out(3);
  detail::reduce_to_scaled(DType::kFloat32, ReduceOp::kAverage, 3, in.data(), acc.data(),
                           out.data(), 0.5);
  EXPECT_EQ(out, (std::vector<float>{2.0f, 1.0f, 2.0f}));
}

std::vector<KernelCase> all_cases() {
  std::vector<KernelCase> cases;
  for (DType d : {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
                  DType::kInt32, DType::kInt64, DType::kUInt8})
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMin, ReduceOp::kMax})
      if (decent::dtype_is_floating(d) || op != ReduceOp::kAverage) cases.push_back({d, op});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, ReduceToScaled, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<KernelCase>& info) {
                           std::string name = decent::dtype_name(info.param.dtype);
                           switch (info.param.op) {
                             case ReduceOp::kSum:
                               return name + "_sum";
                             case ReduceOp::kAverage:
                               return name + "_average";
                             case ReduceOp::kMin:
                               return name + "_min";
                             case ReduceOp::kMax:
                               return name + "_max";
                           }
                           return name;
                         });

// ---- The native float32/float64 kernels: every variant this CPU supports (baseline, AVX2,
// AVX-512) against a scalar reference, bit for bit. Ranks on different CPUs, and the backends,
// must combine alike; this file builds with -ffp-contract=off so the reference is not fused.

using detail::NativeKernels;
using detail::WeightedSource;

template <typename T>
std::vector<T> random_values(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> value(-100.0, 100.0);
  std::vector<T> out(count);
  for (auto& x : out) x = static_cast<T>(value(rng));
  return out;
}

// ((w0 s0 + w1 s1) + w2 s2) + ..., rounded to T after every operation.
template <typename T>
std::vector<T> reference_weighted_sum(const std::vector<std::vector<T>>& sources,
                                      const std::vector<double>& weights, std::size_t count) {
  std::vector<T> out(count, T(0));
  for (std::size_t i = 0; i < count; ++i) {
    if (sources.empty()) continue;
    T v = static_cast<T>(weights[0]) * sources[0][i];
    for (std::size_t k = 1; k < sources.size(); ++k)
      v = v + static_cast<T>(weights[k]) * sources[k][i];
    out[i] = v;
  }
  return out;
}

template <typename T>
void weighted_sum(const NativeKernels& k, std::size_t count, const WeightedSource* s, std::size_t n,
                  T* out) {
  if constexpr (std::is_same_v<T, float>)
    k.weighted_sum_f32(count, s, n, out);
  else
    k.weighted_sum_f64(count, s, n, out);
}

// Every count around the kernels' 1024-element blocks, 0 to 5 sources, and `out` either its own
// buffer or each of the sources in turn (in place, as neighbour averaging and gossip use it).
template <typename T>
void check_weighted_sums(const NativeKernels& k) {
  const std::vector<double> weights = {0.3, 1.0 / 3.0, -0.7, 0.125, 2.0 / 7.0};
  for (std::size_t count : {0, 1, 7, 1023, 1024, 1025, 3001}) {
    for (std::size_t n = 0; n <= weights.size(); ++n) {
      std::vector<std::vector<T>> inputs;
      for (std::size_t j = 0; j < n; ++j)
        inputs.push_back(random_values<T>(count, static_cast<std::uint32_t>(10 * count + j)));
      const std::vector<double> w(weights.begin(), weights.begin() + static_cast<long>(n));
      const std::vector<T> expected = reference_weighted_sum(inputs, w, count);
      for (int alias = -1; alias < static_cast<int>(n); ++alias) {
        std::vector<std::vector<T>> buffers = inputs;
        std::vector<T> own(count, T(-1));
        T* out = alias < 0 ? own.data() : buffers[static_cast<std::size_t>(alias)].data();
        std::vector<WeightedSource> sources;
        for (std::size_t j = 0; j < n; ++j) sources.push_back({buffers[j].data(), w[j]});
        weighted_sum<T>(k, count, sources.data(), sources.size(), out);
        // (memcmp must not see the null data() of an empty vector.)
        EXPECT_TRUE(count == 0 || std::memcmp(out, expected.data(), count * sizeof(T)) == 0)
            << k.isa << ": " << sizeof(T) * 8 << "-bit, count " << count << ", " << n
            << " sources, out "
            << (alias < 0 ? std::string("separate") : "= source " + std::to_string(alias));
      }
    }
  }
}

template <typename T>
void check_sums(const NativeKernels& k) {
  for (std::size_t count : {0, 1, 5, 1000, 4099}) {
    const auto in = random_values<T>(count, 1), acc = random_values<T>(count, 2);
    for (T factor : {T(1), T(0.5), T(1) / T(3), T(0.125)}) {
      std::vector<T> expected(count), scaled_expected(count);
      for (std::size_t i = 0; i < count; ++i) {
        expected[i] = acc[i] + in[i];
        scaled_expected[i] = expected[i] * factor;
      }
      std::vector<T> out(count), in_place = acc, scaled(count), scaled_in_place = acc;
      if constexpr (std::is_same_v<T, float>) {
        k.sum_f32(count, in.data(), acc.data(), out.data());
        k.sum_f32(count, in.data(), in_place.data(), in_place.data());
        k.sum_scaled_f32(count, in.data(), acc.data(), scaled.data(), factor);
        k.sum_scaled_f32(count, in.data(), scaled_in_place.data(), scaled_in_place.data(), factor);
      } else {
        k.sum_f64(count, in.data(), acc.data(), out.data());
        k.sum_f64(count, in.data(), in_place.data(), in_place.data());
        k.sum_scaled_f64(count, in.data(), acc.data(), scaled.data(), factor);
        k.sum_scaled_f64(count, in.data(), scaled_in_place.data(), scaled_in_place.data(), factor);
      }
      const std::string where = std::string(k.isa) + ", count " + std::to_string(count);
      EXPECT_EQ(out, expected) << where;
      EXPECT_EQ(in_place, expected) << where << " (in place)";
      EXPECT_EQ(scaled, scaled_expected) << where << ", factor " << factor;
      EXPECT_EQ(scaled_in_place, scaled_expected)
          << where << ", factor " << factor << " (in place)";
    }
  }
}

class NativeKernelsVariant : public ::testing::TestWithParam<const NativeKernels*> {};

TEST_P(NativeKernelsVariant, WeightedSumsMatchTheScalarOrderBitForBit) {
  check_weighted_sums<float>(*GetParam());
  check_weighted_sums<double>(*GetParam());
}

TEST_P(NativeKernelsVariant, SumsMatchTheScalarOrderBitForBit) {
  check_sums<float>(*GetParam());
  check_sums<double>(*GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kernels, NativeKernelsVariant,
                         ::testing::ValuesIn(detail::supported_native_kernels()),
                         [](const ::testing::TestParamInfo<const NativeKernels*>& info) {
                           return std::string(info.param->isa);
                         });

TEST(NativeKernelsChoice, BaselineIsAlwaysSupportedAndFirst) {
  const auto supported = detail::supported_native_kernels();
  ASSERT_FALSE(supported.empty());
  EXPECT_STREQ(supported.front()->isa, "baseline");
  EXPECT_EQ(&detail::native_kernels_named("baseline"), supported.front());
}

// Without DECENT_KERNELS the widest supported variant runs; with it, the one named.
TEST(NativeKernelsChoice, InUseIsTheWidestOrTheOneNamed) {
  const char* wanted = std::getenv("DECENT_KERNELS");
  if (wanted == nullptr || *wanted == '\0')
    EXPECT_EQ(&detail::native_kernels(), detail::supported_native_kernels().back());
  else
    EXPECT_STREQ(detail::native_kernels().isa, wanted);
}

TEST(NativeKernelsChoice, PublicNameIsTheVariantInUse) {
  EXPECT_STREQ(decent::combining_kernels(), detail::native_kernels().isa);
}

TEST(NativeKernelsChoice, UnknownNameIsRefusedNamingTheChoices) {
  try {
    detail::native_kernels_named("sse9");
    FAIL() << "expected InvalidArgument";
  } catch (const decent::InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("DECENT_KERNELS=sse9"), std::string::npos) << what;
    EXPECT_NE(what.find("baseline"), std::string::npos) << what;
  }
}

}  // namespace
