// nn::init and the layers' default initialisation: PyTorch's bounds, the variances they imply (checked
// statistically on layers large enough that a loose tolerance still catches a wrong fan), and
// reproducibility from a seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"

namespace fpi::nn {
namespace {

struct Stats {
  double mean = 0.0, variance = 0.0, max_abs = 0.0;
};

Stats stats_of(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) {
    s.variance += (x - s.mean) * (x - s.mean);
    s.max_abs = std::max(s.max_abs, std::abs(x));
  }
  s.variance /= static_cast<double>(v.size());
  return s;
}

// Values drawn from U(±bound): all inside, the largest close to the bound, variance bound² / 3.
void expect_uniform(const Tensor& t, double bound, const char* what) {
  const Stats s = stats_of(t);
  EXPECT_LE(s.max_abs, bound) << what;
  EXPECT_GT(s.max_abs, 0.98 * bound) << what;
  EXPECT_NEAR(s.variance, bound * bound / 3.0, 0.06 * bound * bound / 3.0) << what;
  EXPECT_NEAR(s.mean, 0.0, 0.05 * bound) << what;
}

// Too few values for a variance check (a bias): inside the bound, and not concentrated near zero.
void expect_within(const Tensor& t, double bound, const char* what) {
  const Stats s = stats_of(t);
  EXPECT_LE(s.max_abs, bound) << what;
  EXPECT_GT(s.max_abs, 0.5 * bound) << what;
}

TEST(Init, FansFollowPyTorchsLayout) {
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({4, 3})), (std::pair<std::int64_t, std::int64_t>{3, 4}));
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({8, 2, 3, 3})),
            (std::pair<std::int64_t, std::int64_t>{18, 72}));
  EXPECT_THROW(init::calculate_fan_in_and_fan_out(zeros({5})), Error);
}

TEST(Init, Gains) {
  using init::Nonlinearity;
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Linear), 1.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Relu), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::LeakyRelu), std::sqrt(2.0 / (1.0 + 1e-4)));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::LeakyRelu, std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain(Nonlinearity::Selu), 0.75);
}

TEST(Init, LinearDefaultMatchesPyTorchBounds) {
  manual_seed(11);
  Linear fc(256, 512);
  expect_uniform(fc.weight, 1.0 / 16.0, "Linear weight");
  expect_within(fc.bias, 1.0 / 16.0, "Linear bias");
}

TEST(Init, ConvDefaultsUseThePyTorchFan) {
  manual_seed(12);
  Conv2d conv(16, 32, 3);
  expect_uniform(conv.weight, 1.0 / std::sqrt(144.0), "Conv2d weight");
  expect_within(conv.bias, 1.0 / std::sqrt(144.0), "Conv2d bias");
  // ConvTranspose2d's weight is (C_in, C_out, kH, kW); PyTorch takes fan_in from size(1) = C_out.
  ConvTranspose2d up(16, 64, 3);
  const double bound = 1.0 / std::sqrt(64.0 * 9.0);
  expect_uniform(up.weight, bound, "ConvTranspose2d weight");
  expect_within(up.bias, bound, "ConvTranspose2d bias");
}

TEST(Init, SameSeedSameWeights) {
  Generator a(42), b(42), c(43);
  Linear x(5, 7, true, {}, &a), y(5, 7, true, {}, &b), z(5, 7, true, {}, &c);
  EXPECT_EQ(x.weight.to_vector<double>(), y.weight.to_vector<double>());
  EXPECT_EQ(x.bias.to_vector<double>(), y.bias.to_vector<double>());
  EXPECT_NE(x.weight.to_vector<double>(), z.weight.to_vector<double>());

  manual_seed(9);
  Conv2d p(2, 3, 3);
  manual_seed(9);
  Conv2d q(2, 3, 3);
  EXPECT_EQ(p.weight.to_vector<double>(), q.weight.to_vector<double>());
}

TEST(Init, VarianceScaledInitialisers) {
  using init::FanMode;
  using init::Nonlinearity;
  Generator gen(5);
  const Tensor w = empty({300, 400}, {.dtype = kFloat64});

  init::kaiming_normal_(w, 0.0, FanMode::FanIn, Nonlinearity::Relu, &gen);
  EXPECT_NEAR(stats_of(w).variance, 2.0 / 400.0, 0.03 * 2.0 / 400.0);
  init::kaiming_normal_(w, 0.0, FanMode::FanOut, Nonlinearity::Relu, &gen);
  EXPECT_NEAR(stats_of(w).variance, 2.0 / 300.0, 0.03 * 2.0 / 300.0);
  init::kaiming_uniform_(w, 0.0, FanMode::FanIn, Nonlinearity::Relu, &gen);
  expect_uniform(w, std::sqrt(6.0 / 400.0), "kaiming_uniform_");

  init::xavier_uniform_(w, 2.0, &gen);
  expect_uniform(w, 2.0 * std::sqrt(6.0 / 700.0), "xavier_uniform_");
  init::xavier_normal_(w, 1.0, &gen);
  EXPECT_NEAR(stats_of(w).variance, 2.0 / 700.0, 0.03 * 2.0 / 700.0);

  init::normal_(w, 3.0, 0.5, &gen);
  EXPECT_NEAR(stats_of(w).mean, 3.0, 0.01);
  EXPECT_NEAR(stats_of(w).variance, 0.25, 0.01);
  init::uniform_(w, 1.0, 2.0, &gen);
  EXPECT_NEAR(stats_of(w).mean, 1.5, 0.01);
}

TEST(Init, WritesParametersInPlaceWithGradModeOn) {
  Linear fc(3, 2);
  const Tensor held = fc.weight;
  init::constant_(fc.weight, 0.25);
  EXPECT_EQ(held.to_vector<double>(), std::vector<double>(6, 0.25));
  init::zeros_(fc.bias);
  EXPECT_EQ(fc.bias.to_vector<double>(), std::vector<double>(2, 0.0));
  init::ones_(fc.weight.select(0, 1));
  EXPECT_EQ(held.to_vector<double>(), (std::vector<double>{0.25, 0.25, 0.25, 1, 1, 1}));
  EXPECT_TRUE(held.requires_grad());
  EXPECT_NO_THROW(init::kaiming_uniform_(empty({0, 3})));
}

}  // namespace
}  // namespace fpi::nn
