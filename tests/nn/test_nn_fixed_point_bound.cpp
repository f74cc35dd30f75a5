// LipschitzBound inside an FPI layer: the FixedPointLayer computes each bound's weight W · min(1, k/σ)
// once per solve and hands it to the iterations as an input of the solve. The gradients must equal
// those of the old way, where every iteration computed the bounded weight itself, to round-off, and
// match finite differences, with bounds that shrink their weights so the gradient through σ counts.
#include <gtest/gtest.h>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

// The flow map's shape on a small image: g = tanh(deconv(relu(conv(concat(z, x))))), both layers
// bounded below their norms at initialisation.
std::shared_ptr<nn::FixedPointLayer> bounded_conv_layer() {
  Generator gen(21);
  auto conv = std::make_shared<nn::Conv2d>(5, 4, 3, 2, 1, 1, true, TensorOptions{}, &gen);
  auto deconv = std::make_shared<nn::ConvTranspose2d>(4, 2, 4, 2, 1, 0, 1, true, TensorOptions{}, &gen);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::LipschitzBound>(conv, 0.3), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::LipschitzBound>(deconv, 0.4), std::make_shared<nn::Tanh>()});
  FixedPointOptions options;
  options.forward.tolerance = options.backward.tolerance = 1e-13;
  options.forward.max_iterations = options.backward.max_iterations = 500;
  options.per_sample = false;
  options.on_nonconvergence = NonConvergencePolicy::Error;
  auto layer = std::make_shared<nn::FixedPointLayer>(std::make_shared<nn::NetMap>(net), Shape{2, 6, 8}, options);
  layer->to(kFloat64);
  return layer;
}

TEST(FixedPointBound, WeightsOncePerSolveGiveTheGradientsOfWeightsPerIteration) {
  const auto layer = bounded_conv_layer();
  Generator gen(22);
  const Tensor z = randn({3, 3, 6, 8}, {.dtype = kFloat64}, &gen).requires_grad_();
  const Tensor w = randn({3, 2, 6, 8}, {.dtype = kFloat64}, &gen);
  layer->forward(z);  // sizes the bounds' vectors (and, training, moves them once)
  layer->eval();      // so that both ways below see the same vectors
  for (auto& [name, module] : layer->map->named_modules()) {
    if (auto bound = std::dynamic_pointer_cast<nn::LipschitzBound>(module)) {
      ASSERT_GT(bound->sigma(), bound->bound) << name << ": the test needs a bound that shrinks the weight";
    }
  }
  Tensors targets{z};
  for (const auto& p : layer->parameters()) targets.push_back(p);

  const Tensor once = layer->forward(z);
  const Tensors once_grads = autograd::grad({sum(once * w)}, targets);

  // The old way: each iteration's LipschitzBound::forward computes σ and the bounded weight.
  Tensors inputs{layer->map->prepare(z)};
  for (const auto& p : layer->map->parameters()) inputs.push_back(p);
  const auto map = layer->map;
  const auto step = [map](const Tensor& x, const Tensors& in) { return map->step_prepared(x, in[0]); };
  const Tensor each = fixed_point(step, inputs, 1, zeros({3, 2, 6, 8}, {.dtype = kFloat64}), layer->options());
  const Tensors each_grads = autograd::grad({sum(each * w)}, targets);

  EXPECT_TRUE(allclose(once, each, 0.0, 1e-12));
  ASSERT_EQ(once_grads.size(), each_grads.size());
  for (std::size_t i = 0; i < once_grads.size(); ++i) {
    const double scale = max(abs(each_grads[i])).item();
    EXPECT_GT(scale, 0.0) << i;
    EXPECT_TRUE(allclose(once_grads[i], each_grads[i], 0.0, 1e-11 * scale)) << "input " << i;
  }
}

TEST(FixedPointBound, WeightsOncePerSolveMatchFiniteDifferences) {
  const auto layer = bounded_conv_layer();
  Generator gen(23);
  const Tensor z = randn({2, 3, 6, 8}, {.dtype = kFloat64}, &gen).requires_grad_();
  layer->forward(z);
  layer->eval();
  Tensors inputs{z};
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  EXPECT_TRUE(testing::gradcheck([&](const Tensors& in) { return layer->forward(in[0]); }, inputs,
                                 {.atol = 1e-8, .rtol = 1e-6}));
}

// After a solve no bound keeps the solve's weight: it follows a change of W at once.
TEST(FixedPointBound, SolveLeavesNoFixedWeightBehind) {
  const auto layer = bounded_conv_layer();
  Generator gen(24);
  const Tensor z = randn({2, 3, 6, 8}, {.dtype = kFloat64}, &gen);
  layer->forward(z);
  layer->forward(z);
  for (auto& [name, module] : layer->map->named_modules()) {
    if (auto bound = std::dynamic_pointer_cast<nn::LipschitzBound>(module)) {
      const Tensor before = bound->effective_weight();
      Tensor raw = bound->layer->parameters()[0];
      {
        NoGrad no_grad;
        raw.set_data(raw.detach() + randn(raw.shape(), raw.options(), &gen) * 0.1);
      }
      const Tensor after = bound->effective_weight();
      EXPECT_TRUE(allclose(after, bound->bounded_weight(), 0.0, 0.0)) << name;
      EXPECT_FALSE(allclose(after, before, 0.0, 1e-6)) << name << " kept the solve's weight";
    }
  }
}

}  // namespace
}  // namespace fpi
