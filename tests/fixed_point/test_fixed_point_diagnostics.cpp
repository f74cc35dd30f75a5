// What the FPI layer reports about a solve it cannot vouch for: a non-converged solve shows in the
// stats whatever the policy, and the optional spectral-radius estimate flags a fixed point that
// Anderson found but that is not attracting (g(x) = 2x + z has x̂ = −z, a repeller).
#include <gtest/gtest.h>

#include "fpi/fixed_point.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;

// g(x, z) = slope · x + z on a batch of 3 samples of width 4; its Jacobian is slope · I.
Tensor solve_linear(double slope, fpi::FixedPointOptions options, const std::shared_ptr<fpi::FixedPointStats>& stats) {
  fpi::Generator gen(5);
  const Tensor z = fpi::randn({3, 4}, {.dtype = fpi::kFloat64}, &gen);
  const auto g = [slope](const Tensor& x, const Tensor& zz) { return x * slope + zz; };
  return fpi::fixed_point(g, z, {}, fpi::zeros_like(z), options, stats);
}

TEST(FixedPointDiagnostics, ANonConvergedSolveShowsInTheStatsUnderIgnore) {
  fpi::FixedPointOptions options;
  options.forward.solver = fpi::FixedPointSolver::Picard;
  options.forward.max_iterations = 5;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Ignore;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  EXPECT_NO_THROW(solve_linear(2.0, options, stats));
  EXPECT_EQ(stats->forward.converged_fraction(), 0.0);
  EXPECT_EQ(stats->forward.max_iterations(), 5);
  EXPECT_TRUE(stats->spectral_radius.empty()) << "the estimate is off by default";
}

TEST(FixedPointDiagnostics, SpectralRadiusOfAContractionIsBelowOne) {
  fpi::FixedPointOptions options;
  options.spectral_radius_iterations = 5;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  EXPECT_NO_THROW(solve_linear(0.5, options, stats));
  ASSERT_EQ(stats->spectral_radius.size(), 3u);
  for (double r : stats->spectral_radius) EXPECT_NEAR(r, 0.5, 1e-12);
}

TEST(FixedPointDiagnostics, ARepellingFixedPointFoundByAndersonIsFlagged) {
  fpi::FixedPointOptions options;  // Anderson solves the linear map exactly, repeller or not
  options.spectral_radius_iterations = 5;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Ignore;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  fpi::Generator gen(5);
  const Tensor z = fpi::randn({3, 4}, {.dtype = fpi::kFloat64}, &gen);
  const Tensor x = solve_linear(2.0, options, stats);
  EXPECT_EQ(stats->forward.converged_fraction(), 1.0);
  EXPECT_TRUE(fpi::allclose(x, -z, 1e-6, 1e-8)) << "x̂ = −z";
  ASSERT_EQ(stats->spectral_radius.size(), 3u);
  for (double r : stats->spectral_radius) EXPECT_NEAR(r, 2.0, 1e-12);

  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  try {
    solve_linear(2.0, options, stats);
    FAIL() << "a repelling fixed point must be reported under the Error policy";
  } catch (const fpi::Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 of 3 sample(s) is not attracting"), std::string::npos) << e.what();
  }
}

TEST(FixedPointDiagnostics, ANegativeIterationCountIsRefused) {
  fpi::FixedPointOptions options;
  options.spectral_radius_iterations = -1;
  EXPECT_THROW(solve_linear(0.5, options, nullptr), fpi::Error);
}

}  // namespace
