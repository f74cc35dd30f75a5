// SolverOptions::check_every: how often the host reads the solve's per-sample state must change
// nothing but when finished samples leave the batch. Outputs, per-sample iterations, converged flags,
// fallback stages and gradients are compared across check_every ∈ {1, 3, 16} for Picard and Anderson,
// FPI_NN and FPI_GD maps, float32 and float64, on a map that sends samples down the fallback chain,
// and on maps that produce NaN or Inf, which must still raise the same error.
//
// Between checks a finished row stays in the batch (masked), so the map sees other batch sizes than
// with check_every 1; OpenBLAS's GEMM rounds the rows of its remainder tiles differently at different
// sizes, so a map built on matrix products agrees to rounding only: there outputs, gradients and
// residuals are compared to a relative 1e-12 (float64) or 1e-5 (float32) and the decisions (iterations,
// convergence, cycles, stages) exactly. A map whose rows do not depend on the batch size (element-wise
// products and row sums) shows that the solver itself is exact: everything is compared bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "fixed_point/solver.hpp"
#include "fixed_point_fixtures.hpp"
#include "fpi/nn.hpp"

namespace fpi {
namespace {

using testing::kF64;

using testing::SmallMap;

struct Outcome {
  Tensor x;
  Tensors gradients;  // of <x, w> with respect to z and every parameter
  FixedPointStats stats;
};

Outcome run(SmallMap kind, FixedPointSolver solver, DType dtype, int check_every) {
  const auto layer = testing::small_fpi_layer(kind, solver, dtype, check_every);
  Generator gen(5);
  // Rows of different scales converge after different numbers of iterations.
  const Tensor scale = from_vector(std::vector<double>{0.1, 3.0, 0.5, 2.0, 1.0, 4.0, 0.2, 1.5, 2.5, 0.05, 3.5, 0.8},
                                   Shape{12, 1}, kF64);
  const Tensor z = (randn({12, 6}, kF64, &gen) * scale).to(dtype);
  const Tensor w = randn({12, 5}, kF64, &gen).to(dtype);
  Tensors results = testing::output_and_gradients(*layer, z, w);
  Outcome r;
  r.x = results.front();
  r.gradients.assign(results.begin() + 1, results.end());
  r.stats = layer->stats();
  return r;
}

// Decisions exactly; values bit for bit where `rtol` is 0.
void expect_same_solve(const SolveStats& a, const SolveStats& b, double rtol, const std::string& what) {
  ASSERT_EQ(a.iterations.size(), b.iterations.size()) << what;
  for (std::size_t i = 0; i < a.iterations.size(); ++i) {
    const std::string sample = what + ", sample " + std::to_string(i);
    EXPECT_EQ(a.iterations[i], b.iterations[i]) << sample;
    EXPECT_EQ(a.converged[i], b.converged[i]) << sample;
    EXPECT_EQ(a.cycled[i], b.cycled[i]) << sample;
    EXPECT_EQ(a.fallback_stage[i], b.fallback_stage[i]) << sample;
    // A residual is a difference of nearly equal values: rounding in x moves it relatively far more.
    const double residual_rtol = rtol == 0.0 ? 0.0 : 0.05;
    EXPECT_LE(std::abs(a.residuals[i] - b.residuals[i]), residual_rtol * std::abs(b.residuals[i])) << sample;
  }
}

void expect_same_run(const Outcome& a, const Outcome& b, double rtol, const std::string& what) {
  EXPECT_TRUE(allclose(a.x, b.x, rtol, rtol)) << what << ": output";
  ASSERT_EQ(a.gradients.size(), b.gradients.size());
  for (std::size_t i = 0; i < a.gradients.size(); ++i)
    EXPECT_TRUE(allclose(a.gradients[i], b.gradients[i], rtol, rtol)) << what << ": gradient " << i;
  expect_same_solve(a.stats.forward, b.stats.forward, rtol, what + ": forward");
  expect_same_solve(a.stats.backward, b.stats.backward, rtol, what + ": backward");
}

struct Case {
  SmallMap kind;
  FixedPointSolver solver;
  DType dtype;
};

class CheckEvery : public ::testing::TestWithParam<Case> {};

TEST_P(CheckEvery, OutputsIterationsAndGradientsDoNotDependOnIt) {
  const auto [kind, solver, dtype] = GetParam();
  const Outcome every = run(kind, solver, dtype, 1);
  // The rows must really finish at different iterations, or masking between checks is not exercised.
  const auto& its = every.stats.forward.iterations;
  ASSERT_NE(*std::min_element(its.begin(), its.end()), *std::max_element(its.begin(), its.end()));
  EXPECT_EQ(every.stats.forward.converged_fraction(), 1.0);
  const double rtol = dtype == kFloat64 ? 1e-12 : 1e-5;
  for (int check_every : {3, 16})
    expect_same_run(run(kind, solver, dtype, check_every), every, rtol, "check_every " + std::to_string(check_every));
  // 0 means 1 on the CPU: the same batches, so the same bits.
  expect_same_run(run(kind, solver, dtype, 0), every, 0.0, "check_every 0");
}

INSTANTIATE_TEST_SUITE_P(
    Maps, CheckEvery,
    ::testing::Values(Case{SmallMap::Net, FixedPointSolver::Picard, kFloat64},
                      Case{SmallMap::Net, FixedPointSolver::Anderson, kFloat64},
                      Case{SmallMap::Net, FixedPointSolver::Picard, kFloat32},
                      Case{SmallMap::Net, FixedPointSolver::Anderson, kFloat32},
                      Case{SmallMap::Energy, FixedPointSolver::Anderson, kFloat64},
                      Case{SmallMap::Energy, FixedPointSolver::Anderson, kFloat32}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.kind == SmallMap::Net ? "FpiNn" : "FpiGd") +
             (info.param.solver == FixedPointSolver::Picard ? "Picard" : "Anderson") +
             (info.param.dtype == kFloat32 ? "F32" : "F64");
    });

// g(x, z) = 2 U tanh(x) + z, U orthogonal: Anderson stalls on some rows, so the fallback chain runs
// (the map of test_fixed_point_fallback.cpp). U tanh(x) is written as a broadcast product and a row
// sum, whose rows do not depend on the batch size, so every check interval must give the same bits.
TEST(CheckEveryFallback, TheFallbackChainTakesTheSameStepsForEveryCheckInterval) {
  constexpr std::int64_t d = 10, batch = 64;
  Generator gen(1);
  const Tensor q = matmul(testing::householder(d, gen), testing::householder(d, gen)) * 2.0;
  const Tensor z = randn({batch, d}, kF64, &gen).requires_grad_();
  const FixedPointFn g = [&](const Tensor& x, const Tensor& zz) { return sum(tanh(x).unsqueeze(1) * q, {2}) + zz; };
  const Tensor w = randn({batch, d}, kF64, &gen);
  const auto solve_with = [&](int check_every, std::shared_ptr<FixedPointStats> stats) {
    FixedPointOptions o;
    o.forward.max_iterations = o.backward.max_iterations = 2000;
    o.forward.stall_window = o.backward.stall_window = 50;
    o.forward.check_every = o.backward.check_every = check_every;
    o.on_nonconvergence = NonConvergencePolicy::Ignore;
    const Tensor x = fixed_point(g, z, {}, zeros({batch, d}, kF64), o, stats);
    return std::make_pair(x.detach(), autograd::grad({sum(x * w)}, {z})[0]);
  };
  const auto reference_stats = std::make_shared<FixedPointStats>();
  const auto reference = solve_with(1, reference_stats);
  const SolveStats& s = reference_stats->forward;
  ASSERT_GT(s.fallback_count(), 0) << "no sample fell back";
  ASSERT_GT(s.fallback_count(FallbackStage::DampedPicard) + s.fallback_count(FallbackStage::BestIterate), 0);
  for (int check_every : {3, 16}) {
    const auto stats = std::make_shared<FixedPointStats>();
    const auto [x, grad] = solve_with(check_every, stats);
    const std::string what = "check_every " + std::to_string(check_every);
    EXPECT_TRUE(allclose(x, reference.first, 0.0, 0.0)) << what;
    EXPECT_TRUE(allclose(grad, reference.second, 0.0, 0.0)) << what;
    expect_same_solve(stats->forward, s, 0.0, what + ": forward");
    expect_same_solve(stats->backward, reference_stats->backward, 0.0, what + ": backward");
  }
}

// Returns the error message of a forward solve of g from zeros, or "" when it does not throw.
std::string solve_error(const FixedPointFn& g, const Tensor& z, FixedPointSolver solver, int check_every) {
  FixedPointOptions o;
  o.name = "f";
  o.forward.solver = solver;
  o.forward.check_every = check_every;
  o.forward.max_iterations = 500;
  o.forward.stall_window = 0;
  try {
    fixed_point(g, z, {}, zeros(z.shape(), kF64), o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CheckEveryErrors, ANaNInTheInputRaisesTheSameErrorForEveryCheckInterval) {
  std::vector<double> values(4 * 3, 0.5);
  values[2 * 3 + 1] = std::nan("");
  const Tensor z = from_vector(values, Shape{4, 3}, kF64);
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return x * 0.5 + zz; };
  const std::string expected =
      "fixed_point 'f' forward: iteration 1 produced a non-finite value (NaN or Inf) in sample 2";
  for (auto solver : {FixedPointSolver::Picard, FixedPointSolver::Anderson})
    for (int check_every : {1, 3, 16})
      EXPECT_NE(solve_error(g, z, solver, check_every).find(expected), std::string::npos)
          << check_every << ": " << solve_error(g, z, solver, check_every);
}

TEST(CheckEveryErrors, ADivergingSampleIsNamedAtTheIterationItOverflowsForEveryCheckInterval) {
  // x ← x + β (g(x) − x) with g(x) = 10 x + z: Picard grows |x| about tenfold per step (the safeguards
  // halve β down to 1/8, which still expands) until it overflows. Sample 1 starts the growth sooner.
  const Tensor z = from_vector(std::vector<double>{0.0, 1e10, 0.0, 1.0}, Shape{4, 1}, kF64);
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return x * 10.0 + zz; };
  const std::string reference = solve_error(g, z, FixedPointSolver::Picard, 1);
  ASSERT_NE(reference.find("produced a non-finite value (NaN or Inf) in sample 1"), std::string::npos) << reference;
  for (int check_every : {3, 16}) EXPECT_EQ(solve_error(g, z, FixedPointSolver::Picard, check_every), reference);
}

TEST(CheckEveryOptions, ANegativeIntervalIsRejectedAndZeroIsOneOnTheCpu) {
  FixedPointOptions o;
  o.name = "f";
  o.forward.check_every = -1;
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return x * 0.5 + zz; };
  try {
    fixed_point(g, zeros({2, 2}, kF64), {}, zeros({2, 2}, kF64), o);
    ADD_FAILURE() << "a negative check_every was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fixed_point 'f': forward: check_every must be 0 (automatic) or positive"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(fixed_point_detail::check_interval(SolverOptions{}, kCPU), 1);
  EXPECT_EQ(fixed_point_detail::check_interval(SolverOptions{.check_every = 5}, kCPU), 5);
}

}  // namespace
}  // namespace fpi
