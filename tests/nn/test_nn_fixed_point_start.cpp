// Where an FPI layer starts and what pins its fixed point: FixedPointLayer's initial value, and the
// proximal term of EnergyDescentMap (E + (μ/2)‖x − x0‖²) against a closed form, finite differences
// and the exact backward; bad values refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "fpi/nn.hpp"
#include "gradcheck.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using nn::FixedPointLayer;
using testing::error_of;

constexpr TensorOptions kF64{.dtype = kFloat64};

FixedPointOptions precise() {
  FixedPointOptions o;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 1000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// Every state is a fixed point: the layer returns where it started.
class StayPut final : public nn::FixedPointMap {
 public:
  StayPut() : FixedPointMap("StayPut") {}
  Tensor step(const Tensor& x, const Tensor&) override { return x; }
};

TEST(FixedPointStart, TheInitialValueIsWhereTheSolveStarts) {
  FixedPointLayer layer(std::make_shared<StayPut>(), Shape{3}, precise());
  const Tensor z = zeros({2, 5}, kF64);
  EXPECT_EQ(layer.forward(z).to_vector(), std::vector<double>(6, 0.0));
  layer.set_initial_value(-4.18);
  EXPECT_EQ(layer.initial_value(), -4.18);
  EXPECT_EQ(layer.forward(z).to_vector(), std::vector<double>(6, -4.18));
  EXPECT_EQ(error_of([&] { layer.set_initial_value(std::numeric_limits<double>::quiet_NaN()); }),
            "FixedPointLayer 'fixed_point': the initial value must be finite, got nan");
  EXPECT_EQ(layer.initial_value(), -4.18);
}

// E = w·[z, x] + b (reduction sum) + (μ/2)‖x − x0‖²: ∇ₓE = w_x + μ (x − x0), so x̂ = x0 − w_x / μ for
// every sample. Without the proximal term this energy has no minimiser at all.
TEST(FixedPointStart, ProximalTermOfALinearEnergyHasAClosedFormFixedPoint) {
  Generator gen(21);
  auto fc = std::make_shared<nn::Linear>(4 + 3, 1, true, kF64, &gen);
  auto map = std::make_shared<nn::EnergyDescentMap>(fc, 0.3, nn::EnergyReduction::Sum);
  map->proximal_weight = 2.0;
  map->proximal_center = -1.5;
  FixedPointLayer layer(map, Shape{3}, precise());
  layer.set_initial_value(-1.5);
  const Tensor z = randn({2, 4}, kF64, &gen);
  const Tensor x_hat = layer.forward(z);
  const Tensor w_x = fc->weight.detach().slice(1, 4, 7).reshape({1, 3});
  EXPECT_TRUE(allclose(x_hat, (w_x * (-1.0 / 2.0) - 1.5).expand({2, 3}), 1e-11, 1e-12)) << x_hat;

  const Tensor x = randn({2, 3}, kF64, &gen);
  const Tensor expected = sum(linear(concat({z, x}, 1), fc->weight.detach(), fc->bias.detach()), {1}) +
                          sum(square(x + 1.5), {1}) * 1.0;
  EXPECT_TRUE(allclose(map->energy(x, z), expected, 1e-12, 1e-12));
}

// A tanh energy network, pinned by a proximal term strong enough to make E strongly convex: the
// layer's gradients against finite differences and against the exact backward. The last layer has no
// bias: a constant added to E moves no fixed point and would get no gradient.
TEST(FixedPointStart, ProximalEnergyGradientsMatchFiniteDifferencesAndTheExactSolve) {
  Generator gen(22);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(3 + 2, 4, true, kF64, &gen), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(4, 1, false, kF64, &gen)});
  auto map = std::make_shared<nn::EnergyDescentMap>(net, 0.25, nn::EnergyReduction::Sum);
  map->proximal_weight = 2.0;
  map->proximal_center = 0.5;
  auto layer = std::make_shared<FixedPointLayer>(map, Shape{2}, precise());
  layer->set_initial_value(0.5);
  const Tensor z = randn({3, 3}, kF64, &gen).requires_grad_();
  Tensors inputs{z};
  for (const auto& p : layer->parameters()) inputs.push_back(p);
  EXPECT_TRUE(testing::gradcheck([&](const Tensors& in) { return layer->forward(in[0]); }, inputs,
                                 {.atol = 1e-8, .rtol = 1e-5}));
  const Tensor w = randn({3, 2}, kF64, &gen);
  const auto gradients = [&](FixedPointBackward mode) {
    layer->options().backward_mode = mode;
    return autograd::grad({sum(layer->forward(z) * w)}, inputs);
  };
  const Tensors implicit = gradients(FixedPointBackward::Implicit), exact = gradients(FixedPointBackward::Exact);
  for (std::size_t i = 0; i < implicit.size(); ++i) EXPECT_TRUE(allclose(implicit[i], exact[i], 1e-9, 1e-11)) << i;
}

TEST(FixedPointStart, RefusesANegativeProximalWeight) {
  Generator gen(23);
  auto map = std::make_shared<nn::EnergyDescentMap>(std::make_shared<nn::Linear>(2, 1, true, kF64, &gen), 0.5,
                                                    nn::EnergyReduction::Sum);
  map->proximal_weight = -1.0;
  EXPECT_EQ(error_of([&] { map->energy(zeros({1, 1}, kF64), zeros({1, 1}, kF64)); }),
            "EnergyDescentMap: proximal_weight must be finite and >= 0 and proximal_center finite, got -1 and 0");
}

}  // namespace
}  // namespace fpi
