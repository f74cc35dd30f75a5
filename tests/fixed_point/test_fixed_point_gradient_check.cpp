// The gradient self-check: the layer's gradient against the unrolled reference agrees for the implicit
// backward, and is flagged for backward passes that are wrong on purpose (one that ignores ∂g/∂x, one
// cut off after two iterations).
#include <gtest/gtest.h>

#include "fixed_point_fixtures.hpp"
#include "fpi/fixed_point.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;
using fpi::testing::ContractiveMlp;
using fpi::testing::LinearMap;

fpi::FixedPointOptions checked_every(int every) {
  fpi::FixedPointOptions options;
  options.name = "checked";
  options.forward.tolerance = 1e-12;
  options.backward.tolerance = 1e-12;
  options.gradient_check_every = every;
  return options;
}

// One forward and backward pass of the linear map's layer with the loss <w, x̂>.
void linear_pass(const LinearMap& m, const fpi::FixedPointOptions& options,
                 const std::shared_ptr<fpi::FixedPointStats>& stats) {
  const Tensor x = fpi::fixed_point(m.fn(), m.z, {m.A, m.B, m.b}, fpi::zeros({m.z.size(0), m.A.size(0)}, m.z.options()),
                                    options, stats);
  fpi::sum(x * m.loss_weights()).backward();
}

TEST(FixedPointGradientCheck, TheImplicitGradientAgreesWithTheUnrolledOne) {
  const ContractiveMlp m(6, 10, 5);
  fpi::FixedPointOptions options = checked_every(1);
  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  const Tensor x = fpi::fixed_point(m.fn(), m.z, m.params(), fpi::zeros_like(m.z), options, stats);
  EXPECT_NO_THROW(fpi::sum(x * m.loss_weights()).backward());
  const fpi::GradientCheck& check = stats->gradient_check;
  ASSERT_TRUE(check.ran);
  EXPECT_EQ(check.samples, 4) << "gradient_check_samples defaults to 4 of the 5 samples";
  EXPECT_TRUE(check.reference_settled);
  EXPECT_LT(check.angle_degrees, 1e-3);
  EXPECT_LT(check.relative_error, 1e-8);
}

TEST(FixedPointGradientCheck, ABackwardThatIgnoresTheJacobianIsFlagged) {
  const LinearMap m(5, 3, 4, 0.8);
  fpi::FixedPointOptions options = checked_every(1);
  options.backward_mode = fpi::FixedPointBackward::JacobianFree;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Ignore;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  linear_pass(m, options, stats);
  EXPECT_TRUE(stats->gradient_check.reference_settled);
  EXPECT_GT(stats->gradient_check.angle_degrees, options.gradient_check_max_degrees);

  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  try {
    linear_pass(m, options, stats);
    FAIL() << "a gradient far from the reference must be reported under the Error policy";
  } catch (const fpi::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fixed_point 'checked' backward: on 4 sample(s) the gradient is"),
              std::string::npos)
        << e.what();
  }
}

TEST(FixedPointGradientCheck, ABackwardSolveCutShortIsFlagged) {
  const LinearMap m(5, 3, 4, 0.9);
  fpi::FixedPointOptions options = checked_every(1);
  options.backward.solver = fpi::FixedPointSolver::Picard;
  options.backward.max_iterations = 2;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Ignore;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  linear_pass(m, options, stats);
  EXPECT_EQ(stats->backward.converged_fraction(), 0.0);
  EXPECT_TRUE(stats->gradient_check.reference_settled);
  EXPECT_GT(stats->gradient_check.relative_error, 0.05);
  EXPECT_GT(stats->gradient_check.angle_degrees, 1.0);
}

TEST(FixedPointGradientCheck, TheReferenceUsesTheDampingTheForwardConvergedUnder) {
  // g(x) = −1.5 x + z: plain steps diverge, β = 0.5 gives the contraction x ↦ −0.25 x + z/2.
  fpi::Generator gen(9);
  const Tensor z = fpi::randn({3, 4}, {.dtype = fpi::kFloat64}, &gen).requires_grad_();
  fpi::FixedPointOptions options = checked_every(1);
  options.forward.solver = options.backward.solver = fpi::FixedPointSolver::Picard;
  options.forward.damping = 0.5;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  const auto g = [](const Tensor& x, const Tensor& zz) { return x * -1.5 + zz; };
  const Tensor x = fpi::fixed_point(g, z, {}, fpi::zeros_like(z), options, stats);
  fpi::sum(x).backward();
  EXPECT_TRUE(stats->gradient_check.reference_settled);
  EXPECT_LT(stats->gradient_check.angle_degrees, 1e-3);
  EXPECT_TRUE(fpi::allclose(z.grad(), fpi::full_like(z, 0.4), 1e-9, 1e-9)) << "dx̂/dz = 1 / 2.5";
}

TEST(FixedPointGradientCheck, AnUnsettledReferenceIsRecordedButNotReported) {
  // g(x) = 2x + z: Anderson finds the repeller x̂ = −z and the exact backward its gradient, but the
  // unrolled series grows without bound, so the check cannot judge.
  fpi::Generator gen(5);
  const Tensor z = fpi::randn({3, 4}, {.dtype = fpi::kFloat64}, &gen).requires_grad_();
  fpi::FixedPointOptions options = checked_every(1);
  options.backward_mode = fpi::FixedPointBackward::Exact;
  options.on_nonconvergence = fpi::NonConvergencePolicy::Error;
  auto stats = std::make_shared<fpi::FixedPointStats>();
  const auto g = [](const Tensor& x, const Tensor& zz) { return x * 2.0 + zz; };
  const Tensor x = fpi::fixed_point(g, z, {}, fpi::zeros_like(z), options, stats);
  EXPECT_NO_THROW(fpi::sum(x).backward());
  EXPECT_TRUE(stats->gradient_check.ran);
  EXPECT_FALSE(stats->gradient_check.reference_settled);
  EXPECT_TRUE(fpi::allclose(z.grad(), fpi::full_like(z, -1.0), 1e-9, 1e-9));
}

TEST(FixedPointGradientCheck, ChecksAreSpacedByTheBackwardPassesOfOneStatsObject) {
  const LinearMap m(4, 3, 2, 0.5);
  const fpi::FixedPointOptions options = checked_every(3);
  auto stats = std::make_shared<fpi::FixedPointStats>();
  std::vector<bool> ran;
  for (int pass = 0; pass < 7; ++pass) {
    linear_pass(m, options, stats);
    ran.push_back(stats->gradient_check.ran);
  }
  EXPECT_EQ(ran, (std::vector<bool>{true, false, false, true, false, false, true}));
  EXPECT_EQ(stats->backward_passes, 7);
  EXPECT_EQ(stats->gradient_check.samples, 2) << "a batch smaller than gradient_check_samples is checked whole";
}

TEST(FixedPointGradientCheck, IsOffByDefault) {
  const LinearMap m(4, 3, 2, 0.5);
  auto stats = std::make_shared<fpi::FixedPointStats>();
  linear_pass(m, {}, stats);
  EXPECT_FALSE(stats->gradient_check.ran);
}

TEST(FixedPointGradientCheck, BadOptionsAreRefusedByName) {
  const LinearMap m(4, 3, 2, 0.5);
  const auto refused = [&](auto&& change, const std::string& option) {
    fpi::FixedPointOptions options;
    change(options);
    try {
      linear_pass(m, options, nullptr);
      ADD_FAILURE() << option << " was accepted";
    } catch (const fpi::Error& e) {
      EXPECT_NE(std::string(e.what()).find(option), std::string::npos) << e.what();
    }
  };
  refused([](auto& o) { o.gradient_check_every = -1; }, "gradient_check_every");
  refused([](auto& o) { o.gradient_check_samples = 0; }, "gradient_check_samples");
  refused([](auto& o) { o.gradient_check_unroll = 1; }, "gradient_check_unroll");
  refused([](auto& o) { o.gradient_check_max_degrees = -1.0; }, "gradient_check_max_degrees");
}

}  // namespace
