// nn::NetMap's hoisting through the C++ API: a Sequential whose first module is a Linear or a Conv2d
// (bounded or not) computes that layer's z part once per solve. Hoisted and plain maps built with the
// same weights must give the same fixed point and the same gradients for z and every parameter in
// float64, and a net that does not start with such a layer is not hoisted.
#include <gtest/gtest.h>

#include "fixed_point_fixtures.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"

namespace fpi {
namespace {

FixedPointOptions precise() {
  FixedPointOptions o;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 500;
  o.per_sample = false;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// The Bibtex FPI_NN's shape, small: g = sigmoid(fc2(relu(fc1(concat(z, x))))).
std::shared_ptr<nn::FixedPointLayer> dense_layer(bool hoist) {
  Generator gen(31);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(7 + 3, 6, true, TensorOptions{}, &gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(6, 3, true, TensorOptions{}, &gen), std::make_shared<nn::Sigmoid>()});
  auto layer = std::make_shared<nn::FixedPointLayer>(std::make_shared<nn::NetMap>(net, 1, hoist), Shape{3}, precise());
  layer->to(kFloat64);
  return layer;
}

// The optical-flow map's shape: g = tanh(deconv(relu(conv(concat(z, x))))), both bounded.
std::shared_ptr<nn::FixedPointLayer> conv_layer(bool hoist) {
  Generator gen(32);
  auto conv = std::make_shared<nn::Conv2d>(3 + 2, 4, 3, 2, 1, 1, true, TensorOptions{}, &gen);
  auto deconv = std::make_shared<nn::ConvTranspose2d>(4, 2, 4, 2, 1, 0, 1, true, TensorOptions{}, &gen);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::LipschitzBound>(conv, 0.5), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::LipschitzBound>(deconv, 0.5), std::make_shared<nn::Tanh>()});
  auto layer =
      std::make_shared<nn::FixedPointLayer>(std::make_shared<nn::NetMap>(net, 1, hoist), Shape{2, 6, 8}, precise());
  layer->to(kFloat64);
  return layer;
}

bool hoisted(const nn::FixedPointLayer& layer) {
  return std::dynamic_pointer_cast<nn::NetMap>(layer.map)->hoisted();
}

// Two solves, the second in evaluation mode so both layers' bounds hold the same vectors; returns the
// fixed point and the gradients of <x̂, w> for z and every parameter.
Tensors solve(nn::FixedPointLayer& layer, const Tensor& z, const Tensor& w) {
  layer.forward(z);
  layer.eval();
  return testing::output_and_gradients(layer, z, w);
}

void expect_same(const Tensors& hoisted_out, const Tensors& plain_out) {
  testing::expect_hoisted_same(hoisted_out, plain_out);
}

TEST(NetMapHoist, DenseMapHoistedEqualsPlain) {
  auto hoisted_layer = dense_layer(true), plain_layer = dense_layer(false);
  ASSERT_TRUE(hoisted(*hoisted_layer));
  ASSERT_FALSE(hoisted(*plain_layer));
  Generator gen(33);
  const Tensor z = randn({4, 7}, {.dtype = kFloat64}, &gen).requires_grad_();
  const Tensor w = randn({4, 3}, {.dtype = kFloat64}, &gen);
  expect_same(solve(*hoisted_layer, z, w), solve(*plain_layer, z, w));
}

TEST(NetMapHoist, BoundedConvMapHoistedEqualsPlain) {
  auto hoisted_layer = conv_layer(true), plain_layer = conv_layer(false);
  ASSERT_TRUE(hoisted(*hoisted_layer));
  Generator gen(34);
  const Tensor z = randn({3, 3, 6, 8}, {.dtype = kFloat64}, &gen).requires_grad_();
  const Tensor w = randn({3, 2, 6, 8}, {.dtype = kFloat64}, &gen);
  expect_same(solve(*hoisted_layer, z, w), solve(*plain_layer, z, w));
}

TEST(NetMapHoist, OnlyALeadingLinearOrConvIsHoisted) {
  Generator gen(35);
  const auto starts_with_activation = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(5, 2, true, TensorOptions{}, &gen)});
  EXPECT_FALSE(nn::NetMap(starts_with_activation).hoisted());
  EXPECT_FALSE(nn::NetMap(std::make_shared<nn::Linear>(5, 2, true, TensorOptions{}, &gen)).hoisted());
  const auto conv = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Conv2d>(3, 2, 3, 1, 1, 1, true, TensorOptions{}, &gen)});
  EXPECT_TRUE(nn::NetMap(conv).hoisted());
  EXPECT_FALSE(nn::NetMap(conv, 2).hoisted());  // a concatenation along the rows does not split channels
}

}  // namespace
}  // namespace fpi
