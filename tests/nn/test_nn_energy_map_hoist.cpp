// nn::EnergyDescentMap's hoisting through the C++ API: a Sequential energy network whose first module is
// a Linear or a Conv2d computes that layer's z part once per solve, and each iteration takes ∇ₓE of the
// rest. Hoisted and plain maps with the same weights must give the same fixed point and the same
// gradients for z and every parameter in float64 (the backward FPI differentiates ∇ₓE, so this checks
// the hoisted step's Hessian-vector products too), and the hoisted layer must pass finite differences.
#include <gtest/gtest.h>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fixed_point_fixtures.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

constexpr TensorOptions kF64{.dtype = kFloat64};

FixedPointOptions precise() {
  FixedPointOptions o;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 1000;
  o.per_sample = false;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// The Bibtex FPI_GD's shape, small: E = mean(relu(fc(concat(z, x)))²) per sample; summed, relu would
// make ∇ₓE piecewise constant, so the sum takes softplus. The proximal term makes the fixed point
// unique and the backward well posed wherever relu switches units off.
std::shared_ptr<nn::FixedPointLayer> dense_layer(bool hoist, nn::EnergyReduction reduction) {
  Generator gen(41);
  nn::ModulePtr activation = std::make_shared<nn::ReLU>();
  if (reduction == nn::EnergyReduction::Sum) activation = std::make_shared<nn::Softplus>();
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(7 + 3, 6, true, kF64, &gen), activation});
  auto map = std::make_shared<nn::EnergyDescentMap>(net, 0.5, reduction, 1, hoist);
  map->proximal_weight = 1.0;
  map->proximal_center = -0.5;
  auto layer = std::make_shared<nn::FixedPointLayer>(map, Shape{3}, precise());
  layer->set_initial_value(-0.5);
  return layer;
}

// A convolutional energy: E = Σ tanh(conv(concat(z, x))) + (μ/2)‖x‖², the concatenation over channels.
std::shared_ptr<nn::FixedPointLayer> conv_layer(bool hoist) {
  Generator gen(42);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(3 + 2, 4, 3, 1, 1, 1, true, kF64, &gen), std::make_shared<nn::Tanh>()});
  auto map = std::make_shared<nn::EnergyDescentMap>(net, 0.25, nn::EnergyReduction::Sum, 1, hoist);
  map->proximal_weight = 2.0;
  return std::make_shared<nn::FixedPointLayer>(map, Shape{2, 4, 5}, precise());
}

bool hoisted(const nn::FixedPointLayer& layer) {
  return std::dynamic_pointer_cast<nn::EnergyDescentMap>(layer.map)->hoisted();
}

Tensors solve(nn::FixedPointLayer& layer, const Tensor& z, const Tensor& w) {
  return testing::output_and_gradients(layer, z, w);
}

void expect_same(const Tensors& hoisted_out, const Tensors& plain_out) {
  testing::expect_hoisted_same(hoisted_out, plain_out);
}

TEST(EnergyMapHoist, DenseMeanSquareEnergyHoistedEqualsPlain) {
  auto hoisted_layer = dense_layer(true, nn::EnergyReduction::MeanSquare);
  auto plain_layer = dense_layer(false, nn::EnergyReduction::MeanSquare);
  ASSERT_TRUE(hoisted(*hoisted_layer));
  ASSERT_FALSE(hoisted(*plain_layer));
  Generator gen(43);
  const Tensor z = randn({4, 7}, kF64, &gen), w = randn({4, 3}, kF64, &gen);
  expect_same(solve(*hoisted_layer, z, w), solve(*plain_layer, z, w));
  EXPECT_GT(hoisted_layer->stats().forward.max_iterations(), 1);
}

TEST(EnergyMapHoist, DenseSumEnergyHoistedEqualsPlain) {
  auto hoisted_layer = dense_layer(true, nn::EnergyReduction::Sum);
  auto plain_layer = dense_layer(false, nn::EnergyReduction::Sum);
  Generator gen(44);
  const Tensor z = randn({3, 7}, kF64, &gen), w = randn({3, 3}, kF64, &gen);
  expect_same(solve(*hoisted_layer, z, w), solve(*plain_layer, z, w));
}

TEST(EnergyMapHoist, ConvEnergyHoistedEqualsPlain) {
  auto hoisted_layer = conv_layer(true), plain_layer = conv_layer(false);
  ASSERT_TRUE(hoisted(*hoisted_layer));
  Generator gen(45);
  const Tensor z = randn({2, 3, 4, 5}, kF64, &gen), w = randn({2, 2, 4, 5}, kF64, &gen);
  expect_same(solve(*hoisted_layer, z, w), solve(*plain_layer, z, w));
}

// One step of the hoisted map equals one step of the plain one, and so does the energy the map reports.
TEST(EnergyMapHoist, OneStepEqualsThePlainStep) {
  auto layer = dense_layer(true, nn::EnergyReduction::MeanSquare);
  auto& map = static_cast<nn::EnergyDescentMap&>(*layer->map);
  Generator gen(46);
  const Tensor z = randn({5, 7}, kF64, &gen), x = randn({5, 3}, kF64, &gen);
  NoGrad no_grad;
  const Tensor plain = map.step(x, z), prepared = map.step_prepared(x, map.prepare(z));
  EXPECT_LT(max(abs(prepared - plain)).item(), 1e-14);
  EXPECT_GT(max(abs(plain - x)).item(), 1e-3);
}

TEST(EnergyMapHoist, PassesFiniteDifferenceChecks) {
  auto layer = dense_layer(true, nn::EnergyReduction::MeanSquare);
  Generator gen(47);
  Tensors inputs{randn({2, 7}, kF64, &gen).requires_grad_()};
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  const auto f = [&](const Tensors& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(testing::gradcheck(f, inputs, {.atol = 1e-8, .rtol = 1e-5}));
  EXPECT_TRUE(testing::gradgradcheck(f, inputs, {.atol = 1e-6, .rtol = 1e-4}));
}

TEST(EnergyMapHoist, OnlyALeadingLinearOrConvIsHoisted) {
  Generator gen(48);
  const auto starts_with_activation = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(5, 2, true, TensorOptions{}, &gen)});
  EXPECT_FALSE(nn::EnergyDescentMap(starts_with_activation, 0.5).hoisted());
  EXPECT_FALSE(nn::EnergyDescentMap(std::make_shared<nn::Linear>(5, 2, true, TensorOptions{}, &gen), 0.5).hoisted());
  const auto conv = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(3, 2, 3, 1, 1, 1, true, TensorOptions{}, &gen)});
  EXPECT_TRUE(nn::EnergyDescentMap(conv, 0.5).hoisted());
  EXPECT_FALSE(nn::EnergyDescentMap(conv, 0.5, nn::EnergyReduction::Sum, 2).hoisted());
  EXPECT_FALSE(nn::EnergyDescentMap(conv, 0.5, nn::EnergyReduction::Sum, 1, false).hoisted());
}

}  // namespace
}  // namespace fpi
