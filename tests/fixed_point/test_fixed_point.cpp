// The FPI layer against closed forms (linear maps, quadratic energies), finite differences, the
// unrolled loop and the exact Jacobian solve; plus per-sample stopping, solvers, memory and policies.
#include <gtest/gtest.h>

#include "fixed_point_fixtures.hpp"
#include "fpi/fixed_point.hpp"
#include "fpi/optim.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

using testing::ContractiveMlp;
using testing::LinearMap;
using testing::dense_solve;

FixedPointOptions precise(FixedPointSolver solver = FixedPointSolver::Anderson) {
  FixedPointOptions o;
  o.forward.solver = solver;
  o.backward.solver = solver;
  o.forward.tolerance = o.backward.tolerance = 1e-13;
  o.forward.max_iterations = o.backward.max_iterations = 2000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// Test 1: g(x, z) = A x + B z + b with ‖A‖ < 1. x̂ = (I − A)⁻¹(Bz + b), and with c = (I − Aᵀ)⁻¹ ∂L/∂x̂
// per sample (eq. 10): ∇A = Σ c x̂ᵀ, ∇B = Σ c zᵀ, ∇b = Σ c, ∇z = Bᵀ c (eqs. 9, 11).
TEST(FixedPoint, LinearMapMatchesTheClosedForm) {
  for (auto solver : {FixedPointSolver::Picard, FixedPointSolver::Anderson}) {
    LinearMap m(4, 3, 5, 0.7);
    const auto stats = std::make_shared<FixedPointStats>();
    const Tensor x_hat = fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, zeros({5, 4}, {.dtype = kFloat64}),
                                     precise(solver), stats);
    EXPECT_TRUE(allclose(x_hat, m.closed_form_solution(), 1e-10, 1e-12));
    const Tensor w = m.loss_weights();
    sum(x_hat * w).backward();
    const auto expected = m.closed_form_gradients(w);
    EXPECT_TRUE(allclose(m.A.grad(), expected.A, 1e-9, 1e-11)) << m.A.grad() << expected.A;
    EXPECT_TRUE(allclose(m.B.grad(), expected.B, 1e-9, 1e-11));
    EXPECT_TRUE(allclose(m.b.grad(), expected.b, 1e-9, 1e-11));
    EXPECT_TRUE(allclose(m.z.grad(), expected.z, 1e-9, 1e-11));
    EXPECT_EQ(stats->forward.converged_fraction(), 1.0);
    EXPECT_EQ(stats->backward.converged_fraction(), 1.0);
  }
}

// Test 2: a contractive MLP in float64; gradients through the layer against finite differences, the
// unrolled loop and the exact solve.
TEST(FixedPoint, MlpGradientsMatchFiniteDifferences) {
  ContractiveMlp g(3, 4, 6);
  const auto layer = [&](const Tensors& in) {
    return fixed_point(g.fn(), in[0], {in[1], in[2], in[3]}, zeros({in[0].size(0), 3}, {.dtype = kFloat64}),
                       precise());
  };
  EXPECT_TRUE(testing::gradcheck(layer, {g.z, g.W1, g.b1, g.W2}, {.atol = 1e-9, .rtol = 1e-6}));
}

TEST(FixedPoint, ImplicitBackwardAgreesWithUnrolledAndExact) {
  ContractiveMlp g(3, 4, 6);
  const Tensor w = g.loss_weights();
  const auto gradients = [&](FixedPointBackward mode, FixedPointSolver solver) {
    FixedPointOptions o = precise(solver);
    o.backward_mode = mode;
    const Tensor x = fixed_point(g.fn(), g.z, g.params(), zeros({6, 3}, {.dtype = kFloat64}), o);
    Tensors wrt{g.z};
    for (const auto& p : g.params()) wrt.push_back(p);
    return autograd::grad({sum(x * w)}, wrt);
  };
  const Tensors implicit = gradients(FixedPointBackward::Implicit, FixedPointSolver::Anderson);
  const Tensors unrolled = gradients(FixedPointBackward::Unrolled, FixedPointSolver::Picard);
  const Tensors exact = gradients(FixedPointBackward::Exact, FixedPointSolver::Anderson);
  const Tensors picard = gradients(FixedPointBackward::Implicit, FixedPointSolver::Picard);
  for (std::size_t i = 0; i < implicit.size(); ++i) {
    EXPECT_TRUE(allclose(implicit[i], unrolled[i], 1e-8, 1e-10)) << i << implicit[i] << unrolled[i];
    EXPECT_TRUE(allclose(implicit[i], exact[i], 1e-10, 1e-12)) << i;
    EXPECT_TRUE(allclose(implicit[i], picard[i], 1e-10, 1e-12)) << i;
  }
}

TEST(FixedPoint, JacobianFreeIgnoresTheJacobian) {
  LinearMap m(3, 2, 4, 0.5);
  FixedPointOptions o = precise();
  o.backward_mode = FixedPointBackward::JacobianFree;
  const Tensor w = m.loss_weights();
  const Tensor x = fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, zeros({4, 3}, {.dtype = kFloat64}), o);
  const Tensor gb = autograd::grad({sum(x * w)}, {m.b})[0];
  EXPECT_TRUE(allclose(gb, sum(w, {0}), 1e-12, 1e-12));
}

// The gradient of the gradient: the backward pass is itself differentiable (create_graph).
TEST(FixedPoint, SecondOrderGradientsMatchFiniteDifferences) {
  ContractiveMlp g(2, 3, 3);
  const auto layer = [&](const Tensors& in) {
    return fixed_point(g.fn(), in[0], {in[1], in[2], in[3]}, zeros({in[0].size(0), 2}, {.dtype = kFloat64}),
                       precise());
  };
  EXPECT_TRUE(testing::gradgradcheck(layer, {g.z, g.W1, g.b1, g.W2}, {.atol = 1e-7, .rtol = 1e-5}));
}

TEST(FixedPoint, SecondOrderThroughANonLeafInput) {
  ContractiveMlp g(2, 3, 3);
  const auto layer = [&](const Tensors& in) {
    const Tensor z = tanh(in[0]) * 1.5;  // z has a history, so the layer must not differentiate through it twice
    return fixed_point(g.fn(), z, {in[1], in[2], in[3]}, zeros({in[0].size(0), 2}, {.dtype = kFloat64}), precise());
  };
  EXPECT_TRUE(testing::gradgradcheck(layer, {g.z, g.W1, g.b1, g.W2}, {.atol = 1e-7, .rtol = 1e-5}));
}

// Test 3: g(x, z) = x − γ ∇ₓE with E = ½ xᵀQx − xᵀWz: x̂ = Q⁻¹Wz, ∂L/∂z = WᵀQ⁻¹ w, ∂L/∂W = Q⁻¹ w zᵀ
// (summed over samples), with Hessian-vector products in the backward pass.
TEST(FixedPoint, GradientDescentOnAQuadraticEnergy) {
  testing::QuadraticEnergy e(4, 3, 5);
  const Tensor x_hat = fixed_point(e.fn(0.2), e.z, {e.W}, zeros({5, 4}, {.dtype = kFloat64}), precise());
  EXPECT_TRUE(allclose(x_hat, e.solution(), 1e-10, 1e-12));
  const Tensor w = e.loss_weights();
  sum(x_hat * w).backward();
  const Tensor q_inv_w = e.q_inverse_times(w);
  EXPECT_TRUE(allclose(e.z.grad(), matmul(q_inv_w, e.W), 1e-9, 1e-11));
  EXPECT_TRUE(allclose(e.W.grad(), matmul(q_inv_w.t(), e.z), 1e-9, 1e-11));
}

// Test 4.
TEST(FixedPoint, ResultDoesNotDependOnTheStartingPoint) {
  ContractiveMlp g(3, 4, 6);
  Generator gen(5);
  const Tensor a = fixed_point(g.fn(), g.z, g.params(), zeros({6, 3}, {.dtype = kFloat64}), precise());
  const Tensor b = fixed_point(g.fn(), g.z, g.params(), randn({6, 3}, {.dtype = kFloat64}, &gen) * 10.0, precise());
  EXPECT_TRUE(allclose(a, b, 1e-10, 1e-12));
}

TEST(FixedPoint, AndersonNeedsFewerIterationsThanPicard) {
  LinearMap m(16, 4, 8, 0.95);
  const auto iterations = [&](FixedPointSolver solver) {
    FixedPointOptions o = precise(solver);
    o.forward.tolerance = 1e-8;
    const auto stats = std::make_shared<FixedPointStats>();
    NoGrad no_grad;
    fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, zeros({8, 16}, {.dtype = kFloat64}), o, stats);
    return stats->forward.mean_iterations();
  };
  const double picard = iterations(FixedPointSolver::Picard), anderson = iterations(FixedPointSolver::Anderson);
  EXPECT_GT(picard, 100.0);
  EXPECT_LT(anderson * 3, picard) << "anderson " << anderson << " picard " << picard;
}

TEST(FixedPoint, BackwardFpiConvergesOnRandomContractions) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    ContractiveMlp g(5, 8, 4, seed);
    FixedPointOptions o = precise(FixedPointSolver::Picard);
    const auto stats = std::make_shared<FixedPointStats>();
    const Tensor x = fixed_point(g.fn(), g.z, g.params(), zeros({4, 5}, {.dtype = kFloat64}), o, stats);
    sum(x * g.loss_weights()).backward();
    EXPECT_EQ(stats->backward.converged_fraction(), 1.0) << "seed " << seed;
    EXPECT_LE(stats->backward.max_iterations(), stats->forward.max_iterations() + 5) << "seed " << seed;
  }
}

TEST(FixedPoint, SamplesStopIndependently) {
  // Sample 0 has a tiny contraction factor, sample 1 a slow one: they must stop at different counts,
  // and a converged sample must not move while the other keeps iterating.
  const Tensor z = tensor({1.0, 1.0}, {.dtype = kFloat64}).reshape({2, 1});
  const Tensor rate = tensor({0.01, 0.9}, {.dtype = kFloat64}).reshape({2, 1});
  const FixedPointFn g = [&](const Tensor& x, const Tensor& zz) {
    const Tensor r = x.size(0) == 2 ? rate : rate.slice(0, 1, 2);
    return x * r + zz;
  };
  FixedPointOptions o = precise(FixedPointSolver::Picard);
  o.forward.tolerance = 1e-10;
  const auto stats = std::make_shared<FixedPointStats>();
  const Tensor x = fixed_point(g, z, {}, zeros({2, 1}, {.dtype = kFloat64}), o, stats);
  EXPECT_LT(stats->forward.iterations[0] * 5, stats->forward.iterations[1]);
  EXPECT_NEAR(x.to_vector<double>()[0], 1.0 / 0.99, 1e-9);
  EXPECT_NEAR(x.to_vector<double>()[1], 10.0, 1e-8);
}

// Test 5: implicit memory is flat in the iteration count; unrolled grows with it.
TEST(FixedPoint, ImplicitMemoryDoesNotGrowWithIterations) {
  ContractiveMlp g(32, 64, 16);
  const auto peak = [&](int iterations, FixedPointBackward mode) {
    FixedPointOptions o;
    o.forward.solver = FixedPointSolver::Picard;
    o.forward.tolerance = 1e-300;
    o.forward.min_iterations = o.forward.max_iterations = iterations;
    o.backward.max_iterations = 50;
    o.backward_mode = mode;
    o.on_nonconvergence = NonConvergencePolicy::Ignore;
    const Tensor x0 = zeros({16, 32}, {.dtype = kFloat64});
    const Tensor w = g.loss_weights();
    reset_allocator_stats();
    const std::size_t before = allocator_stats().bytes_in_use;
    {
      const Tensor x = fixed_point(g.fn(), g.z, g.params(), x0, o);
      autograd::grad({sum(x * w)}, g.params());
    }
    return allocator_stats().peak_bytes_in_use - before;
  };
  const double implicit10 = peak(10, FixedPointBackward::Implicit);
  const double implicit1000 = peak(1000, FixedPointBackward::Implicit);
  EXPECT_NEAR(implicit1000 / implicit10, 1.0, 0.05) << implicit10 << " vs " << implicit1000;
  const double unrolled10 = peak(10, FixedPointBackward::Unrolled);
  const double unrolled100 = peak(100, FixedPointBackward::Unrolled);
  EXPECT_GT(unrolled100, 5 * unrolled10);
  EXPECT_GT(unrolled10, implicit10);
}

// Test 6: a g that is not contractive; a NaN.
TEST(FixedPoint, NonConvergenceFollowsThePolicy) {
  const Tensor z = ones({3, 2}, {.dtype = kFloat64});
  const FixedPointFn expanding = [](const Tensor& x, const Tensor& zz) { return x * 1.5 + zz; };
  FixedPointOptions o;
  o.name = "expanding";
  o.forward.solver = FixedPointSolver::Picard;
  o.forward.max_iterations = 20;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  try {
    fixed_point(expanding, z, {}, zeros({3, 2}, {.dtype = kFloat64}), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'expanding' forward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 of 3"), std::string::npos) << e.what();
  }
  o.on_nonconvergence = NonConvergencePolicy::Warn;
  ::testing::internal::CaptureStderr();
  const auto stats = std::make_shared<FixedPointStats>();
  fixed_point(expanding, z, {}, zeros({3, 2}, {.dtype = kFloat64}), o, stats);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("warning"), std::string::npos);
  EXPECT_NE(warning.find("'expanding'"), std::string::npos) << warning;
  EXPECT_EQ(stats->forward.converged_fraction(), 0.0);
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  ::testing::internal::CaptureStderr();
  fixed_point(expanding, z, {}, zeros({3, 2}, {.dtype = kFloat64}), o);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(FixedPoint, NanIsAlwaysAnErrorNamingTheLayer) {
  const Tensor z = tensor({1.0, -1.0}, {.dtype = kFloat64}).reshape({2, 1});
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return sqrt(zz) + x * 0.5; };
  FixedPointOptions o;
  o.name = "rooty";
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  try {
    fixed_point(g, z, {}, zeros({2, 1}, {.dtype = kFloat64}), o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'rooty'"), std::string::npos) << message;
    EXPECT_NE(message.find("iteration 1"), std::string::npos) << message;
    EXPECT_NE(message.find("sample 1"), std::string::npos) << message;
  }
}

TEST(FixedPoint, PeriodTwoCyclesAreDetectedAndDampedAway) {
  // g(x) = z − x has Jacobian −I: plain iteration from 0 alternates z, 0, z, ... forever.
  const Tensor z = ones({4, 3}, {.dtype = kFloat64});
  const FixedPointFn flip = [](const Tensor& x, const Tensor& zz) { return zz - x; };
  FixedPointOptions o;
  o.forward.solver = FixedPointSolver::Picard;
  o.forward.damp_cycles = false;
  o.forward.max_iterations = 50;
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  auto stats = std::make_shared<FixedPointStats>();
  fixed_point(flip, z, {}, zeros({4, 3}, {.dtype = kFloat64}), o, stats);
  EXPECT_EQ(stats->forward.converged_fraction(), 0.0);
  EXPECT_EQ(stats->forward.cycle_count(), 4);

  o.forward.damp_cycles = true;
  stats = std::make_shared<FixedPointStats>();
  const Tensor damped = fixed_point(flip, z, {}, zeros({4, 3}, {.dtype = kFloat64}), o, stats);
  EXPECT_EQ(stats->forward.converged_fraction(), 1.0);
  EXPECT_EQ(stats->forward.cycle_count(), 4);
  EXPECT_TRUE(allclose(damped, z * 0.5, 1e-4, 1e-6));

  o.forward.solver = FixedPointSolver::Anderson;
  stats = std::make_shared<FixedPointStats>();
  fixed_point(flip, z, {}, zeros({4, 3}, {.dtype = kFloat64}), o, stats);
  EXPECT_EQ(stats->forward.converged_fraction(), 1.0);
}

TEST(FixedPoint, BadArgumentsAreRejected) {
  LinearMap m(3, 2, 4, 0.5);
  FixedPointOptions o;
  o.name = "bad";
  o.forward.damping = 1.5;
  EXPECT_THROW(fixed_point(m.fn(), m.z, {}, zeros({4, 3}, {.dtype = kFloat64}), o), Error);
  o = FixedPointOptions{};
  try {
    fixed_point(m.fn(), m.z, {}, zeros({5, 3}, {.dtype = kFloat64}), o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos) << e.what();
  }
  const FixedPointFn wrong_shape = [](const Tensor& x, const Tensor&) { return x.sum({1}); };
  EXPECT_THROW(fixed_point(wrong_shape, m.z, {}, zeros({4, 3}, {.dtype = kFloat64}), o), Error);
  EXPECT_THROW(fixed_point(m.fn(), m.z, {}, Tensor(), o), Error);
}

TEST(FixedPoint, WholeBatchModeIteratesOneVector) {
  LinearMap m(3, 2, 4, 0.6);
  FixedPointOptions o = precise();
  o.per_sample = false;
  const auto stats = std::make_shared<FixedPointStats>();
  const Tensor x = fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, zeros({4, 3}, {.dtype = kFloat64}), o, stats);
  EXPECT_EQ(stats->forward.iterations.size(), 1u);
  EXPECT_TRUE(allclose(x, m.closed_form_solution(), 1e-10, 1e-12));
  sum(x * m.loss_weights()).backward();
  EXPECT_TRUE(allclose(m.A.grad(), m.closed_form_gradients(m.loss_weights()).A, 1e-9, 1e-11));
}

// Test 7: Linear -> FPI layer -> Linear learns a regression end to end (gradients reach the first
// linear layer through z).
TEST(FixedPoint, TrainsEndToEnd) {
  Generator gen(21);
  const TensorOptions f64{.dtype = kFloat64, .requires_grad = true};
  Tensor W_in = randn({6, 4}, f64, &gen) * 0.3, W_out = randn({1, 6}, f64, &gen) * 0.3;
  Tensor A = randn({6, 6}, f64, &gen) * 0.05;
  for (Tensor* t : {&W_in, &W_out, &A}) *t = t->detach().requires_grad_();
  const Tensor inputs = randn({64, 4}, {.dtype = kFloat64}, &gen);
  const Tensor targets = tanh(matmul(inputs, randn({4, 1}, {.dtype = kFloat64}, &gen) * 1.5));
  const FixedPointFn g = [&](const Tensor& x, const Tensor& z) { return tanh(linear(x, A) + z); };
  FixedPointOptions o;
  o.forward.tolerance = o.backward.tolerance = 1e-8;
  double first = 0.0, last = 0.0;
  optim::Adam adam({W_in, W_out, A}, {.lr = 0.03});
  for (int step = 0; step < 150; ++step) {
    adam.zero_grad();
    const Tensor z = linear(inputs, W_in);
    const Tensor x = fixed_point(g, z, {A}, zeros({64, 6}, {.dtype = kFloat64}), o);
    const Tensor loss = mse_loss(linear(x, W_out), targets);
    loss.backward();
    adam.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  EXPECT_LT(last * 10, first) << first << " -> " << last;
}

}  // namespace
}  // namespace fpi
