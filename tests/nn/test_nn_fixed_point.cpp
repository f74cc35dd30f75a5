// The FPI layer as a module: FPI_NN (NetMap) on feature vectors and on images, FPI_GD
// (EnergyDescentMap) with its Hessian-vector products, several layers in one network, and the
// contraction helpers.
#include <gtest/gtest.h>

#include "fixed_point_fixtures.hpp"
#include "fpi/nn.hpp"
#include "fpi/optim.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

using nn::FixedPointLayer;

FixedPointOptions precise() {
  FixedPointOptions o;
  o.forward.tolerance = o.backward.tolerance = 1e-12;
  o.forward.max_iterations = o.backward.max_iterations = 1000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// FPI_NN with g = LipschitzBound(Linear) -> tanh -> LipschitzBound(Linear): a contraction with
// constant ≤ 0.9 · 0.9 whatever the weights.
std::shared_ptr<FixedPointLayer> fpi_nn_layer(std::int64_t in, std::int64_t hidden, std::int64_t state,
                                              FixedPointOptions options = precise()) {
  Generator gen(12);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(in + state, hidden, true, TensorOptions{}, &gen), 0.9),
      std::make_shared<nn::Tanh>(),
      std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(hidden, state, true, TensorOptions{}, &gen), 0.9)});
  auto layer = std::make_shared<FixedPointLayer>(std::make_shared<nn::NetMap>(net), Shape{state}, options);
  layer->to(kFloat64);
  return layer;
}

TEST(FixedPointLayer, NamesItsParametersLikeAnyModule) {
  const auto layer = fpi_nn_layer(3, 5, 2);
  const auto named = layer->named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].first, "map.net.0.layer.weight");
  EXPECT_EQ(named[3].first, "map.net.2.layer.bias");
}

TEST(FixedPointLayer, FpiNnGradientsMatchFiniteDifferences) {
  const auto layer = fpi_nn_layer(3, 5, 2);
  layer->forward(zeros({1, 3}, {.dtype = kFloat64}));  // sizes the bounds' vectors, then keeps them fixed
  layer->eval();
  Generator gen(4);
  const Tensor z = randn({4, 3}, {.dtype = kFloat64}, &gen).requires_grad_();
  Tensors inputs{z};
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  const auto f = [&](const Tensors& in) { return layer->forward(in[0]); };
  EXPECT_TRUE(testing::gradcheck(f, inputs, {.atol = 1e-9, .rtol = 1e-6}));
  EXPECT_EQ(layer->stats().forward.converged_fraction(), 1.0);
}

TEST(FixedPointLayer, FpiNnOnImagesAgreesWithUnrolled) {
  Generator gen(3);
  auto conv = std::make_shared<nn::Conv2d>(4, 2, 3, 1, 1, 1, true, TensorOptions{}, &gen);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::LipschitzBound>(conv, 0.8), std::make_shared<nn::Tanh>()});
  FixedPointOptions options = precise();
  options.forward.solver = FixedPointSolver::Picard;
  auto layer = std::make_shared<FixedPointLayer>(std::make_shared<nn::NetMap>(net), Shape{2, 5, 6}, options);
  layer->to(kFloat64);
  const Tensor z = randn({3, 2, 5, 6}, {.dtype = kFloat64}, &gen).requires_grad_();
  const Tensor w = randn({3, 2, 5, 6}, {.dtype = kFloat64}, &gen);
  layer->forward(z);
  layer->eval();
  const auto gradients = [&](FixedPointBackward mode) {
    layer->options().backward_mode = mode;
    const Tensor x = layer->forward(z);
    return autograd::grad({sum(x * w)}, {z, conv->weight, conv->bias});
  };
  const Tensors implicit = gradients(FixedPointBackward::Implicit);
  const Tensors unrolled = gradients(FixedPointBackward::Unrolled);
  for (std::size_t i = 0; i < implicit.size(); ++i) EXPECT_TRUE(allclose(implicit[i], unrolled[i], 1e-8, 1e-10)) << i;
}

// A strongly convex energy with a nonlinear part: E(x, z) = ½‖x‖² + Σ softplus(W [z, x] + b) w, with
// small w so the curvature stays near 1 and γ = 0.5 makes gradient descent a contraction.
class ConvexEnergy : public nn::Module {
 public:
  ConvexEnergy(std::int64_t z_size, std::int64_t x_size, Generator& gen)
      : nn::Module("ConvexEnergy"), z_size_(z_size) {
    inner = register_module("inner", std::make_shared<nn::Linear>(z_size + x_size, 6, true, TensorOptions{}, &gen));
    outer = register_parameter("outer", uniform({6}, 0.0, 0.3, {}, &gen));
  }
  Tensor forward(const Tensor& zx) override {
    const Tensor x = zx.slice(1, z_size_, zx.size(1));
    return concat({square(x) * 0.5, softplus((*inner)(zx)) * outer}, 1);
  }
  std::shared_ptr<nn::Linear> inner;
  Tensor outer;

 private:
  std::int64_t z_size_;
};

// FPI_GD: the map takes ∇ₓE with autograd; its backward needs Hessian-vector products of E.
TEST(FixedPointLayer, FpiGdGradientsMatchFiniteDifferencesAndTheExactSolve) {
  Generator gen(8);
  auto energy = std::make_shared<ConvexEnergy>(3, 2, gen);
  auto map = std::make_shared<nn::EnergyDescentMap>(energy, 0.5, nn::EnergyReduction::Sum);
  auto layer = std::make_shared<FixedPointLayer>(map, Shape{2}, precise());
  layer->to(kFloat64);
  const Tensor z = randn({3, 3}, {.dtype = kFloat64}, &gen).requires_grad_();
  Tensors inputs{z};
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  EXPECT_TRUE(testing::gradcheck([&](const Tensors& in) { return layer->forward(in[0]); }, inputs,
                                 {.atol = 1e-8, .rtol = 1e-5}));

  const Tensor w = randn({3, 2}, {.dtype = kFloat64}, &gen);
  const auto gradients = [&](FixedPointBackward mode) {
    layer->options().backward_mode = mode;
    return autograd::grad({sum(layer->forward(z) * w)}, inputs);
  };
  const Tensors implicit = gradients(FixedPointBackward::Implicit), exact = gradients(FixedPointBackward::Exact);
  for (std::size_t i = 0; i < implicit.size(); ++i) EXPECT_TRUE(allclose(implicit[i], exact[i], 1e-9, 1e-11)) << i;
  // At the fixed point the energy's gradient vanishes: x̂ minimises E.
  const Tensor x = layer->forward(z).detach().requires_grad_();
  const Tensor gradient = autograd::grad({sum(map->energy(x, z.detach()))}, {x})[0];
  EXPECT_LT(max(abs(gradient)).item(), 1e-9);
}

TEST(FixedPointLayer, SeveralLayersInOneNetworkTrain) {
  Generator gen(30);
  FixedPointOptions options;
  options.forward.tolerance = options.backward.tolerance = 1e-6;
  auto first = fpi_nn_layer(4, 8, 6, options), second = fpi_nn_layer(6, 8, 3, options);
  auto input_layer = std::make_shared<nn::Linear>(2, 4, true, TensorOptions{.dtype = kFloat64}, &gen);
  auto output_layer = std::make_shared<nn::Linear>(3, 1, true, TensorOptions{.dtype = kFloat64}, &gen);
  std::vector<Tensor> params;
  for (const nn::ModulePtr& m : std::initializer_list<nn::ModulePtr>{input_layer, first, second, output_layer})
    for (const auto& p : m->parameters()) params.push_back(p);
  optim::Adam adam(params, {.lr = 0.03});
  const Tensor inputs = uniform({64, 2}, -2.0, 2.0, {.dtype = kFloat64}, &gen);
  const Tensor targets = tanh(inputs.select(1, 0) * inputs.select(1, 1)).unsqueeze(1);
  double initial = 0.0, final = 0.0;
  for (int step = 0; step < 200; ++step) {
    adam.zero_grad();
    const Tensor loss = mse_loss((*output_layer)((*second)((*first)((*input_layer)(inputs)))), targets);
    loss.backward();
    adam.step();
    if (step == 0) initial = loss.item();
    final = loss.item();
  }
  EXPECT_LT(final * 10, initial) << initial << " -> " << final;
  EXPECT_TRUE(first->stats().backward.ran);
  EXPECT_EQ(second->stats().forward.converged_fraction(), 1.0);
}

TEST(Contraction, SpectralNormOfALinearLayer) {
  Generator gen(2);
  const Tensor u = testing::householder(6, gen), v = testing::householder(4, gen);
  const Tensor singular = tensor({3.0, 1.0, 0.5, 0.25}, {.dtype = kFloat64});
  const Tensor w = matmul(u.slice(1, 0, 4) * singular.unsqueeze(0), v);  // singular values 3, 1, ½, ¼
  EXPECT_NEAR(nn::spectral_norm(w), 3.0, 1e-9);
}

// The convolution's operator norm against its dense matrix, built column by column.
TEST(Contraction, SpectralNormOfAConvolutionMatchesItsDenseMatrix) {
  Generator gen(5);
  nn::Conv2d conv(2, 3, 3, 2, 1, 1, false, TensorOptions{.dtype = kFloat64}, &gen);
  const std::int64_t h = 5, w = 4, n = 2 * h * w;
  std::vector<Tensor> columns;
  for (std::int64_t i = 0; i < n; ++i) {
    Tensor e = zeros({n}, {.dtype = kFloat64});
    NoGrad no_grad;
    e.slice(0, i, i + 1).fill_(1.0);
    columns.push_back(conv(e.reshape({1, 2, h, w})).reshape({-1}));
  }
  const Tensor dense = stack(columns, 1);
  EXPECT_NEAR(nn::spectral_norm(conv, h, w, 300), nn::spectral_norm(dense, 300), 1e-8);
}

TEST(Contraction, LipschitzBoundShrinksOnlyLargeWeights) {
  Generator gen(9);
  auto big = std::make_shared<nn::Linear>(8, 8, true, TensorOptions{.dtype = kFloat64}, &gen);
  {
    NoGrad no_grad;
    big->weight.copy_(big->weight * 10.0);
  }
  nn::LipschitzBound bounded(big, 0.5);
  const Tensor x = randn({4, 8}, {.dtype = kFloat64}, &gen);
  bounded.forward(x);
  for (int i = 0; i < 50; ++i) bounded.update();
  EXPECT_NEAR(nn::spectral_norm(bounded.effective_weight()), 0.5, 1e-6);
  EXPECT_NEAR(bounded.sigma(), nn::spectral_norm(*big), 1e-6);

  auto small = std::make_shared<nn::Linear>(8, 8, true, TensorOptions{.dtype = kFloat64}, &gen);
  nn::LipschitzBound loose(small, 100.0);
  loose.forward(x);
  EXPECT_TRUE(loose.effective_weight().is_same(small->weight));
  // The rescaled layer is differentiable in its weight, through σ as well.
  bounded.eval();
  EXPECT_TRUE(testing::gradcheck([&](const Tensors&) { return bounded.forward(x); }, {big->weight, big->bias}));
}

}  // namespace
}  // namespace fpi
