// Sizes, bounds and values that do not fit: each is an fpi::Error before any arithmetic wraps or any
// memory is touched, and zero-size tensors go through every loop without pointer arithmetic on null.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "fpi/ops.hpp"

namespace {

using fpi::Error;
using fpi::Shape;
using fpi::Tensor;

constexpr std::int64_t kHuge = std::int64_t{1} << 32;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

TEST(BadSizes, ShapesWhoseElementCountOverflowsAreRefused) {
  EXPECT_THROW(fpi::zeros({kHuge, kHuge}), Error);
  EXPECT_THROW(fpi::empty({kHuge, kHuge, 0}), Error) << "the count overflows before the zero";
  EXPECT_THROW(fpi::eye(kHuge), Error);
  EXPECT_THROW(fpi::empty({std::int64_t{1} << 62}, {.dtype = fpi::kFloat64}), Error)
      << "the element count fits, the byte count does not";
}

TEST(BadSizes, BoundsCheckedWithoutOverflow) {
  const Tensor t = fpi::ones({2, 3});
  EXPECT_THROW(t.narrow(1, 1, kMax), Error);
  EXPECT_THROW(t.narrow(1, kMax, 1), Error);
  EXPECT_EQ(t.slice(1, 0, 3, kMax).shape(), (Shape{2, 1}));
  EXPECT_EQ(t.slice(1, 1, 3, kMax).shape(), (Shape{2, 1}));
  EXPECT_EQ(t.slice(1, 3, 3, kMax).shape(), (Shape{2, 0}));
  EXPECT_THROW(t.reshape({-1, std::int64_t{1} << 62, 4}), Error);
}

TEST(BadSizes, FloatToIntegerConversionsAreRangeChecked) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(fpi::arange(0.0, inf), Error);
  EXPECT_THROW(fpi::arange(0.0, std::nan("")), Error);
  EXPECT_THROW(fpi::arange(0.0, 1e30), Error);
  EXPECT_EQ(fpi::arange(0.0, 5.0, 2.0).to_vector<double>(), (std::vector<double>{0, 2, 4}));

  const Tensor logits = fpi::zeros({2, 3});
  for (double bad : {std::nan(""), 1e30, -1e30, 2.5, 3.0, -1.0})
    EXPECT_THROW(fpi::cross_entropy_loss(logits, fpi::tensor({0.0, bad})), Error) << "target " << bad;
  EXPECT_NO_THROW(fpi::cross_entropy_loss(logits, fpi::tensor({0.0, 2.0})));
}

TEST(BadSizes, ZeroSizeTensorsPassThroughEveryLoop) {
  const Tensor a = fpi::ones({2, 0});
  EXPECT_EQ((a + a).shape(), (Shape{2, 0}));
  EXPECT_EQ(fpi::exp(a).shape(), (Shape{2, 0}));
  EXPECT_EQ(fpi::ones({3, 0, 2}).clone().shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(fpi::ones({3, 0, 2}).transpose(0, 2).contiguous().shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(fpi::ones({3, 0, 2}).to(fpi::kFloat64).shape(), (Shape{3, 0, 2}));
  EXPECT_EQ(fpi::ones({0}).sum().item(), 0.0);
  EXPECT_EQ(fpi::ones({2, 0}).sum({1}).to_vector<double>(), (std::vector<double>{0.0, 0.0}));
  Tensor filled = fpi::empty({0, 4});
  filled.fill_(1.0);
  EXPECT_EQ(filled.numel(), 0);
}

}  // namespace
