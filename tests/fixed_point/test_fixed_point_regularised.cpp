// The regularised backward (FixedPointOptions::backward_regularization): c = (∂g/∂x)ᵀ c / (1 + λ) + ∇x̂L,
// against a dense solve of ((1 + λ) I − Aᵀ) c = (1 + λ) w for an affine map, its two limits (λ = 0 is
// the implicit backward, large λ the jacobian_free one), a map where I − ∂g/∂x is singular (the exact
// backward refuses it at λ = 0 and solves it at λ > 0), the create_graph path and bad values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "fixed_point_fixtures.hpp"
#include "fpi/fixed_point.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using testing::error_of;
using testing::kF64;
using testing::LinearMap;
using testing::solve_identity_minus;

FixedPointOptions regularised(double lambda, FixedPointBackward mode = FixedPointBackward::Implicit) {
  FixedPointOptions o;
  o.name = "reg";
  o.backward_mode = mode;
  o.backward_regularization = lambda;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 2000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

Tensors linear_map_gradients(const LinearMap& m, const FixedPointOptions& o, bool create_graph = false) {
  const Tensor x = fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, zeros({m.z.size(0), m.A.size(0)}, kF64), o);
  return autograd::grad({sum(x * m.loss_weights())}, {m.A, m.B, m.b, m.z}, {}, {.create_graph = create_graph});
}

// g(x, z) = A x + B z + b: ∂g/∂x = A, so c solves (I − Aᵀ / (1 + λ)) c = w, and the gradients are
// ∇A = Σ c x̂ᵀ, ∇B = Σ c zᵀ, ∇b = Σ c, ∇z = Bᵀ c with that c.
TEST(FixedPointRegularised, MatchesADenseSolveOfTheRegularisedSystem) {
  const LinearMap m(4, 3, 5, 0.7);
  const double lambda = 0.5;
  Tensor c, x_hat;
  {
    NoGrad no_grad;
    c = solve_identity_minus((m.A.t() * (1.0 / (1.0 + lambda))).contiguous(), m.loss_weights());
    x_hat = m.closed_form_solution();
  }
  const Tensors expected{matmul(c.t(), x_hat), matmul(c.t(), m.z.detach()), sum(c, {0}), matmul(c, m.B.detach())};
  for (auto mode : {FixedPointBackward::Implicit, FixedPointBackward::Exact}) {
    const Tensors got = linear_map_gradients(m, regularised(lambda, mode));
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(allclose(got[i], expected[i], 1e-9, 1e-11)) << static_cast<int>(mode) << " " << i << got[i];
  }
  // And it is not the implicit gradient: the term really changes c.
  const Tensors implicit = linear_map_gradients(m, regularised(0.0));
  EXPECT_FALSE(allclose(implicit[2], expected[2], 1e-3, 1e-3));
}

TEST(FixedPointRegularised, ZeroIsTheImplicitBackwardAndLargeApproachesJacobianFree) {
  const LinearMap m(4, 3, 5, 0.7);
  FixedPointOptions plain = regularised(0.0);
  const Tensors implicit = linear_map_gradients(m, plain);
  plain.backward_mode = FixedPointBackward::JacobianFree;
  const Tensors jacobian_free = linear_map_gradients(m, plain);
  FixedPointOptions defaults = regularised(0.0);
  defaults.backward_regularization = FixedPointOptions{}.backward_regularization;
  const Tensors by_default = linear_map_gradients(m, defaults);
  const Tensors large = linear_map_gradients(m, regularised(1e9));
  for (std::size_t i = 0; i < implicit.size(); ++i) {
    EXPECT_EQ(by_default[i].to_vector(), implicit[i].to_vector()) << i;
    EXPECT_TRUE(allclose(large[i], jacobian_free[i], 1e-8, 1e-8)) << i;
    EXPECT_FALSE(allclose(implicit[i], jacobian_free[i], 1e-3, 1e-3)) << i;
  }
}

// g(x, z) = z x + (1 − z) t element-wise, started at t: x̂ = t, ∂g/∂x = diag(z), ∂g/∂t = diag(1 − z).
// Where z = 1 every x is a fixed point and I − ∂g/∂x is singular; the regularised c = (1 + λ) u /
// (1 + λ − z) stays finite there, and ∇t = Σ (1 − z)(1 + λ) u / (1 + λ − z), which is u where z < 1 at
// λ = 0.
TEST(FixedPointRegularised, IsBoundedWhereIMinusTheJacobianIsSingular) {
  const Tensor z = tensor({0.5, 1.0, 0.25, 1.0, 0.75, 0.0}, kF64).reshape({2, 3});
  const Tensor t = tensor({0.3, -1.2, 2.0}, kF64).requires_grad_();
  const Tensor u = tensor({1.0, -2.0, 0.5, 3.0, 0.25, -1.0}, kF64).reshape({2, 3});
  const FixedPointFn g = [&t](const Tensor& x, const Tensor& zz) { return zz * x + (1.0 - zz) * t; };
  const auto t_gradient = [&](const FixedPointOptions& o) {
    const Tensor x = fixed_point(g, z, {t}, t.detach().unsqueeze(0).expand({2, 3}).contiguous(), o);
    return autograd::grad({sum(x * u)}, {t})[0];
  };
  const double lambda = 0.25;
  const Tensor expected = sum((1.0 - z) * u * (1.0 + lambda) / (1.0 + lambda - z), {0});
  EXPECT_TRUE(allclose(t_gradient(regularised(lambda, FixedPointBackward::Exact)), expected, 1e-12, 1e-12));
  EXPECT_TRUE(allclose(t_gradient(regularised(lambda)), expected, 1e-10, 1e-12));
  EXPECT_EQ(error_of([&] { t_gradient(regularised(0.0, FixedPointBackward::Exact)); }),
            "fixed_point 'reg': exact backward: I - (dg/dx)^T is singular for sample 0; g is not a contraction "
            "there");
}

// With create_graph the adjoint is an FPI layer of its own; it must apply the same λ.
TEST(FixedPointRegularised, CreateGraphGivesTheSameGradients) {
  const LinearMap m(3, 2, 4, 0.6);
  const Tensors plain = linear_map_gradients(m, regularised(2.0));
  const Tensors differentiable = linear_map_gradients(m, regularised(2.0), true);
  for (std::size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(differentiable[i].requires_grad()) << i;
    EXPECT_TRUE(allclose(differentiable[i], plain[i], 1e-10, 1e-12)) << i;
  }
}

TEST(FixedPointRegularised, RefusesNegativeOrNonFiniteValues) {
  const LinearMap m(2, 2, 2, 0.5);
  for (double bad : {-1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    const std::string message = error_of([&] { linear_map_gradients(m, regularised(bad)); });
    EXPECT_EQ(message.rfind("fixed_point 'reg': backward_regularization must be finite and >= 0, got ", 0), 0u)
        << message;
  }
}

}  // namespace
}  // namespace fpi
