// The element-wise kernels the collectives combine received data with.
#include "comm/kernels.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
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

}  // namespace
