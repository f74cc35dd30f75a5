// The unrolled backward's recorded loop decides each sample's step on the device and reads the host
// every SolverOptions::check_every iterations. How often it reads must change nothing: outputs,
// gradients, per-sample iterations, residuals and convergence are compared bit for bit across
// check_every 1, 3 and 4 (every row is evaluated on every iteration, so no batch size changes), with
// damping, min_iterations, an absolute tolerance and a max_iterations that stops some samples; and a
// map that overflows must raise the same error naming the same iteration and sample.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "fixed_point_fixtures.hpp"
#include "fpi/fixed_point.hpp"

namespace fpi {
namespace {

using testing::ContractiveMlp;

struct Setting {
  double damping = 1.0;
  int min_iterations = 0;
  double absolute_tolerance = 0.0;
  int max_iterations = 500;
};

FixedPointOptions unrolled(const Setting& setting, int check_every) {
  FixedPointOptions o;
  o.backward_mode = FixedPointBackward::Unrolled;
  o.forward.solver = FixedPointSolver::Picard;
  o.forward.tolerance = 1e-12;
  o.forward.damping = setting.damping;
  o.forward.min_iterations = setting.min_iterations;
  o.forward.absolute_tolerance = setting.absolute_tolerance;
  o.forward.max_iterations = setting.max_iterations;
  o.forward.check_every = check_every;
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  return o;
}

struct Outcome {
  Tensor x;
  Tensors gradients;
  SolveStats stats;
};

Outcome run(const Setting& setting, int check_every) {
  ContractiveMlp g(3, 5, 8);
  // Rows of different scales converge after different numbers of iterations.
  const Tensor scale = from_vector(std::vector<double>{0.01, 3.0, 0.3, 1.0, 5.0, 0.1, 2.0, 0.05}, Shape{8, 1},
                                   testing::kF64);
  const Tensor z = (g.z * scale).detach().requires_grad_();
  const auto stats = std::make_shared<FixedPointStats>();
  Outcome r;
  r.x = fixed_point(g.fn(), z, g.params(), zeros({8, 3}, {.dtype = kFloat64}), unrolled(setting, check_every), stats);
  Tensors wrt{z};
  for (const auto& p : g.params()) wrt.push_back(p);
  r.gradients = autograd::grad({sum(r.x * g.loss_weights())}, wrt);
  r.x = r.x.detach();
  r.stats = stats->forward;
  return r;
}

void expect_identical(const Outcome& a, const Outcome& b, const std::string& what) {
  EXPECT_TRUE(allclose(a.x, b.x, 0.0, 0.0)) << what << ": output";
  ASSERT_EQ(a.gradients.size(), b.gradients.size());
  for (std::size_t i = 0; i < a.gradients.size(); ++i)
    EXPECT_TRUE(allclose(a.gradients[i], b.gradients[i], 0.0, 0.0)) << what << ": gradient " << i;
  EXPECT_EQ(a.stats.iterations, b.stats.iterations) << what;
  EXPECT_EQ(a.stats.residuals, b.stats.residuals) << what;
  EXPECT_EQ(a.stats.converged, b.stats.converged) << what;
}

TEST(FixedPointUnrolledCheckEvery, ResultsDoNotDependOnIt) {
  const std::vector<std::pair<std::string, Setting>> settings{
      {"plain", {}},
      {"damped", {.damping = 0.7}},
      {"min_iterations", {.min_iterations = 10}},
      {"absolute_tolerance", {.absolute_tolerance = 1e-6}},
      {"max_iterations", {.max_iterations = 10}},
  };
  for (const auto& [name, setting] : settings) {
    const Outcome every = run(setting, 1);
    // The rows must finish at different iterations (some not at all under max_iterations), or
    // deciding the steps between reads is not exercised.
    const auto& its = every.stats.iterations;
    EXPECT_NE(*std::min_element(its.begin(), its.end()), *std::max_element(its.begin(), its.end())) << name;
    if (name == "max_iterations")
      EXPECT_LT(every.stats.converged_fraction(), 1.0);
    else
      EXPECT_EQ(every.stats.converged_fraction(), 1.0) << name;
    for (int check_every : {3, 4}) expect_identical(every, run(setting, check_every), name + ", check_every " +
                                                                                      std::to_string(check_every));
  }
}

// g(x, z) = 2x + z overflows first in the sample of largest z: iteration and sample named as with
// check_every 1, even when the overflow happens between reads.
TEST(FixedPointUnrolledCheckEvery, NonFiniteValuesRaiseTheSameError) {
  const Tensor z = from_vector(std::vector<double>{1.0, 1e100, 1e140}, Shape{3, 1}, testing::kF64).requires_grad_();
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return x * 2.0 + zz; };
  const auto message = [&](int check_every) {
    try {
      fixed_point(g, z, {}, zeros({3, 1}, {.dtype = kFloat64}), unrolled({}, check_every));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string every = message(1);
  EXPECT_NE(every.find("produced a non-finite value (NaN or Inf) in sample 2"), std::string::npos) << every;
  for (int check_every : {3, 4, 64}) EXPECT_EQ(message(check_every), every) << check_every;
}

}  // namespace
}  // namespace fpi
