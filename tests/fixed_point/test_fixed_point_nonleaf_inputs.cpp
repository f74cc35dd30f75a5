// Unbatched inputs (parameters) with a history of their own: W' = tanh(W) passed to the FPI layer
// together with W, or W' also used after the layer. The first-order backward must differentiate g
// partially w.r.t. W' and leave W' → W to the outer backward; walking W's graph inside the layer's
// backward counted W's gradient twice and freed the graph the outer backward still needed.
// Checked in float64 against finite differences and against the unrolled backward.
#include <gtest/gtest.h>

#include "fixed_point_fixtures.hpp"
#include "fpi/fixed_point.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

using testing::ContractiveMlp;

FixedPointOptions precise(FixedPointBackward mode) {
  FixedPointOptions o;
  o.forward.solver = o.backward.solver =
      mode == FixedPointBackward::Unrolled ? FixedPointSolver::Picard : FixedPointSolver::Anderson;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 2000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  o.backward_mode = mode;
  return o;
}

// g(x; z, W1', b1, W2, W1) = W2 tanh(W1' [z, x] + b1) + mean(W1) / 10: W1' enters as a non-leaf
// input and W1, upstream of it, as an input of its own. |tanh a| <= |a| keeps g a contraction.
const FixedPointStep kStep = [](const Tensor& x, const Tensors& in) {
  return linear(tanh(linear(concat({in[0], x}, 1), in[1], in[2])), in[3]) + mean(in[4]) * 0.1;
};

// The layer on the leaves {z, W1, b1, W2}, W1' = tanh(W1) computed inside.
Tensor layer(const Tensors& leaves, FixedPointBackward mode) {
  const Tensor w1_derived = tanh(leaves[1]);
  return fixed_point(kStep, {leaves[0], w1_derived, leaves[2], leaves[3], leaves[1]}, 1,
                     zeros({leaves[0].size(0), 3}, {.dtype = kFloat64}), precise(mode));
}

Tensors leaves_of(const ContractiveMlp& g) { return {g.z, g.W1, g.b1, g.W2}; }

TEST(FixedPointNonLeafInputs, UpstreamLeafAlsoPassedMatchesFiniteDifferences) {
  ContractiveMlp g(3, 4, 5);
  for (auto mode : {FixedPointBackward::Implicit, FixedPointBackward::Exact})
    EXPECT_TRUE(testing::gradcheck([&](const Tensors& in) { return layer(in, mode); }, leaves_of(g),
                                   {.atol = 1e-9, .rtol = 1e-6}));
}

// W1' also feeds the loss after the layer, so the outer backward runs tanh's node after the layer's.
TEST(FixedPointNonLeafInputs, InputAlsoUsedDownstreamMatchesFiniteDifferences) {
  ContractiveMlp g(3, 4, 5);
  const auto f = [](const Tensors& in) {
    const Tensor w1_derived = tanh(in[1]);
    const Tensor x = fixed_point(kStep, {in[0], w1_derived, in[2], in[3], in[1]}, 1,
                                 zeros({in[0].size(0), 3}, {.dtype = kFloat64}), precise(FixedPointBackward::Implicit));
    return concat({x.reshape({-1}), (w1_derived * 0.5).reshape({-1})}, 0);
  };
  EXPECT_TRUE(testing::gradcheck(f, leaves_of(g), {.atol = 1e-9, .rtol = 1e-6}));
}

// A chain of non-leaf inputs, W1'' = 0.9 W1' with W1' = tanh(W1), both passed (W1'' in W1's slot).
TEST(FixedPointNonLeafInputs, ChainOfNonLeafInputsMatchesFiniteDifferences) {
  ContractiveMlp g(3, 4, 5);
  const auto f = [](const Tensors& in) {
    const Tensor w1_derived = tanh(in[1]);
    return fixed_point(kStep, {in[0], w1_derived * 0.9, in[2], in[3], w1_derived}, 1,
                       zeros({in[0].size(0), 3}, {.dtype = kFloat64}), precise(FixedPointBackward::Implicit));
  };
  EXPECT_TRUE(testing::gradcheck(f, leaves_of(g), {.atol = 1e-9, .rtol = 1e-6}));
}

TEST(FixedPointNonLeafInputs, ImplicitAgreesWithUnrolled) {
  ContractiveMlp g(3, 4, 6);
  const Tensor w = g.loss_weights();
  const auto gradients = [&](FixedPointBackward mode) {
    return autograd::grad({sum(layer(leaves_of(g), mode) * w)}, leaves_of(g));
  };
  const Tensors implicit = gradients(FixedPointBackward::Implicit);
  const Tensors unrolled = gradients(FixedPointBackward::Unrolled);
  ASSERT_EQ(implicit.size(), unrolled.size());
  for (std::size_t i = 0; i < implicit.size(); ++i)
    EXPECT_TRUE(allclose(implicit[i], unrolled[i], 1e-8, 1e-10)) << i << implicit[i] << unrolled[i];
}

// backward() accumulates into .grad: the same value grad() returns, once.
TEST(FixedPointNonLeafInputs, BackwardAccumulatesEachLeafOnce) {
  ContractiveMlp g(3, 4, 6);
  const Tensor w = g.loss_weights();
  const Tensors expected =
      autograd::grad({sum(layer(leaves_of(g), FixedPointBackward::Unrolled) * w)}, leaves_of(g));
  sum(layer(leaves_of(g), FixedPointBackward::Implicit) * w).backward();
  const Tensors leaves = leaves_of(g);
  for (std::size_t i = 0; i < leaves.size(); ++i)
    EXPECT_TRUE(allclose(leaves[i].grad(), expected[i], 1e-8, 1e-10)) << i << leaves[i].grad() << expected[i];
}

// The create_graph path already used stand-ins; its first-order result must agree with the plain path.
TEST(FixedPointNonLeafInputs, CreateGraphPathAgrees) {
  ContractiveMlp g(3, 4, 6);
  const Tensor w = g.loss_weights();
  const Tensors plain = autograd::grad({sum(layer(leaves_of(g), FixedPointBackward::Implicit) * w)}, leaves_of(g));
  const Tensors differentiable = autograd::grad({sum(layer(leaves_of(g), FixedPointBackward::Implicit) * w)},
                                                leaves_of(g), {}, {.create_graph = true});
  for (std::size_t i = 0; i < plain.size(); ++i)
    EXPECT_TRUE(allclose(plain[i], differentiable[i], 1e-9, 1e-11)) << i;
}

}  // namespace
}  // namespace fpi
