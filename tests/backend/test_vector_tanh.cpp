// The CPU's float32 tanh (src/backend/cpu/vector_tanh.hpp) against tanh in double rounded to float,
// through the tanh op: within 1 ulp on a sweep of every binade that float has (normal and subnormal,
// both signs, including the region where tanh saturates to ±1), with ±0, ±inf, NaN and FLT_MAX exact,
// and through the strided path as through the contiguous one. Its float64 gradient check is the op
// table's (tests/op_table.hpp); float64 keeps std::tanh.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;

std::int64_t ulps_apart(float a, float b) {
  // Ordered so that adjacent floats differ by 1 across zero too.
  const auto ordered = [](float f) {
    const std::int32_t bits = std::bit_cast<std::int32_t>(f);
    return bits < 0 ? std::int64_t{std::numeric_limits<std::int32_t>::min()} - bits : std::int64_t{bits};
  };
  return std::llabs(ordered(a) - ordered(b));
}

std::vector<float> tanh_of(const std::vector<float>& values) {
  return fpi::tanh(fpi::from_vector(values, {.dtype = fpi::kFloat32})).to_vector<float>();
}

TEST(VectorTanh, WithinOneUlpOfTheCorrectlyRoundedValueOverEveryBinade) {
  std::vector<float> inputs;
  // 4096 evenly spaced mantissas in each binade, from the smallest subnormal up to FLT_MAX.
  for (std::uint32_t bits = 1; bits < 0x7f800000u; bits += 0x7ff) {
    inputs.push_back(std::bit_cast<float>(bits));
    inputs.push_back(-std::bit_cast<float>(bits));
  }
  const std::vector<float> got = tanh_of(inputs);
  std::int64_t worst = 0, exact = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const float expected = static_cast<float>(std::tanh(static_cast<double>(inputs[i])));
    const std::int64_t apart = ulps_apart(got[i], expected);
    ASSERT_LE(apart, 1) << "tanh(" << inputs[i] << ") = " << got[i] << ", expected " << expected;
    worst = std::max(worst, apart);
    exact += apart == 0;
  }
  // Rounding in double leaves the float result correctly rounded almost everywhere (an exhaustive run
  // over all 2^32 inputs found 1,260 one ulp off), so nearly all of these are exact.
  EXPECT_GT(static_cast<double>(exact), 0.9999 * static_cast<double>(inputs.size()));
}

TEST(VectorTanh, SpecialValues) {
  constexpr float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max();
  const std::vector<float> got = tanh_of({0.0f, -0.0f, inf, -inf, big, -big, 9.0f, 20.0f, -1e30f,
                                          std::numeric_limits<float>::quiet_NaN()});
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[0]), std::bit_cast<std::uint32_t>(0.0f));
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[1]), std::bit_cast<std::uint32_t>(-0.0f));
  EXPECT_EQ(got[2], 1.0f);
  EXPECT_EQ(got[3], -1.0f);
  EXPECT_EQ(got[4], 1.0f);
  EXPECT_EQ(got[5], -1.0f);
  EXPECT_EQ(got[6], static_cast<float>(std::tanh(9.0)));
  EXPECT_EQ(got[7], 1.0f);
  EXPECT_EQ(got[8], -1.0f);
  EXPECT_TRUE(std::isnan(got[9]));
}

TEST(VectorTanh, StridedInputGivesTheContiguousResult) {
  std::vector<float> values;
  for (int i = 0; i < 6 * 7; ++i) values.push_back(0.37f * static_cast<float>(i - 20));
  const Tensor matrix = fpi::from_vector(values, fpi::Shape{6, 7}, {.dtype = fpi::kFloat32});
  const Tensor strided = fpi::tanh(matrix.transpose(0, 1));
  const Tensor contiguous = fpi::tanh(matrix.transpose(0, 1).contiguous());
  EXPECT_EQ(strided.to_vector<float>(), contiguous.to_vector<float>());
  EXPECT_EQ(fpi::tanh(matrix).transpose(0, 1).contiguous().to_vector<float>(), contiguous.to_vector<float>());
}

}  // namespace
