// fpi::solve (src/ops/linalg.cpp) and the backends' batched dense solve beneath it: solutions of known
// and random systems with broadcast batches, float64 finite-difference gradients to first and second
// order, the errors for singular and mismatched systems, and the CUDA solve against the CPU's (skipped
// without a GPU).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cuda_testing.hpp"
#include "fpi/generator.hpp"
#include "gradcheck.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using testing::error_of;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The identity plus a small random matrix: far from singular, so finite differences stay accurate.
Tensor well_conditioned(const Shape& shape, TensorOptions options, Generator& gen) {
  return (randn(shape, options, &gen) * 0.3 + eye(shape.back(), options)).detach();
}

struct SolveCase {
  Shape a, b, x;
};

// Unbatched, batched, and broadcast either way.
const std::vector<SolveCase> kCases = {
    {{4, 4}, {4, 3}, {4, 3}},
    {{2, 3, 5, 5}, {2, 3, 5, 2}, {2, 3, 5, 2}},
    {{3, 1, 4, 4}, {2, 4, 1}, {3, 2, 4, 1}},
    {{3, 3}, {2, 3, 2}, {2, 3, 2}},
};

TEST(Solve, DiagonalSystemIsExact) {
  const Tensor a = tensor({2.0, 0.0, 0.0, 4.0}, {.dtype = kFloat64}).reshape({2, 2});
  const Tensor b = tensor({1.0, 3.0, 1.0, -2.0}, {.dtype = kFloat64}).reshape({2, 2});
  EXPECT_EQ(solve(a, b).to_vector<double>(), (std::vector<double>{0.5, 1.5, 0.25, -0.5}));
}

TEST(Solve, SolutionsSatisfyTheSystems) {
  Generator gen(11);
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const SolveCase& c : kCases) {
      const Tensor a = well_conditioned(c.a, {.dtype = dtype}, gen);
      const Tensor b = randn(c.b, {.dtype = dtype}, &gen);
      const Tensor x = solve(a, b);
      EXPECT_EQ(x.shape(), c.x) << shape_str(c.a);
      EXPECT_EQ(x.dtype(), dtype);
      const double tolerance = dtype == kFloat32 ? 1e-5 : 1e-13;
      EXPECT_TRUE(allclose(matmul(a, x), b.expand(c.x), tolerance, tolerance)) << shape_str(c.a) << " " << dtype;
    }
  }
}

TEST(Solve, EmptySystems) {
  EXPECT_EQ(solve(zeros({0, 0}), zeros({0, 2})).shape(), (Shape{0, 2}));
  EXPECT_EQ(solve(zeros({0, 3, 3}), zeros({0, 3, 2})).shape(), (Shape{0, 3, 2}));
  EXPECT_EQ(solve(eye(3), zeros({3, 0})).shape(), (Shape{3, 0}));
}

// dX = A⁻¹ (dB − dA X): the rule is checked against central differences for A and B, and its own
// derivative (second order) likewise, broadcast batches included so that sum_to is exercised.
TEST(Solve, GradientsMatchFiniteDifferences) {
  Generator gen(12);
  const auto fn = [](const Tensors& x) { return solve(x[0], x[1]); };
  for (const SolveCase& c : kCases) {
    const Tensor a = well_conditioned(c.a, {.dtype = kFloat64}, gen).requires_grad_();
    const Tensor b = randn(c.b, {.dtype = kFloat64}, &gen).requires_grad_();
    EXPECT_TRUE(testing::gradcheck(fn, {a, b})) << shape_str(c.a) << " " << shape_str(c.b);
    EXPECT_TRUE(testing::gradgradcheck(fn, {a, b})) << shape_str(c.a) << " " << shape_str(c.b);
  }
}

TEST(Solve, GradientOfOneOperandAlone) {
  Generator gen(13);
  const Tensor a = well_conditioned({3, 3}, {.dtype = kFloat64}, gen);
  const Tensor b = randn({3, 2}, {.dtype = kFloat64}, &gen).requires_grad_();
  EXPECT_TRUE(testing::gradcheck([&](const Tensors& x) { return solve(a, x[0]); }, {b}));
  const Tensor a_leaf = a.clone().requires_grad_();
  EXPECT_TRUE(testing::gradgradcheck([&](const Tensors& x) { return solve(x[0], b.detach()); }, {a_leaf}));
}

TEST(Solve, SingularSystemsAreNamedByBatchIndex) {
  for (DType dtype : {kFloat32, kFloat64}) {
    const TensorOptions options{.dtype = dtype};
    const Tensor rank_one = tensor({1.0, 2.0, 2.0, 4.0}, options).reshape({2, 2});
    const Tensor b = ones({2, 1}, options);
    EXPECT_EQ(error_of([&] { solve(rank_one, b); }),
              "solve: A is singular: its LU factorisation has an exactly zero pivot");
    const Tensor one_bad = stack({eye(2, options), rank_one, eye(2, options) * 3.0}, 0);
    EXPECT_EQ(error_of([&] { solve(one_bad, b); }),
              "solve: A is singular at batch index [1]: its LU factorisation has an exactly zero pivot");
    const Tensor two_bad = stack({eye(2, options), zeros({2, 2}, options), rank_one}, 0).reshape({1, 3, 2, 2});
    EXPECT_EQ(error_of([&] { solve(two_bad, b); }),
              "solve: A is singular at batch index [0, 1] (and in 1 more of the batch [1, 3]): its LU "
              "factorisation has an exactly zero pivot");
  }
}

TEST(Solve, RejectsMismatchedOperands) {
  EXPECT_TRUE(contains(error_of([] { solve(zeros({3, 4}), zeros({3, 1})); }), "A must be square matrices"));
  EXPECT_TRUE(contains(error_of([] { solve(zeros({3}), zeros({3, 1})); }), "A must be square matrices"));
  EXPECT_TRUE(contains(error_of([] { solve(eye(3), zeros({3})); }), "unsqueeze a vector first"));
  EXPECT_TRUE(contains(error_of([] { solve(eye(3), zeros({4, 1})); }), "does not match A of shape [3, 3]"));
  EXPECT_TRUE(contains(error_of([] { solve(zeros({2, 3, 3}), zeros({4, 3, 1})); }), "solve"));
  EXPECT_TRUE(contains(error_of([] { solve(eye(3), zeros({3, 1}, {.dtype = kFloat64})); }), "dtype mismatch"));
}

class CudaSolve : public testing::CudaTest {};

TEST_F(CudaSolve, SolutionsAndGradientsMatchTheCpu) {
  Generator gen(14);
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const SolveCase& c : kCases) {
      const Tensor a = well_conditioned(c.a, {.dtype = dtype}, gen);
      const Tensor b = randn(c.b, {.dtype = dtype}, &gen);
      const Tensor w = randn(c.x, {.dtype = dtype}, &gen);
      const auto run = [&](Device device) {
        const Tensor ad = a.to(device).requires_grad_(), bd = b.to(device).requires_grad_();
        const Tensor x = solve(ad, bd);
        Tensors out = autograd::grad({sum(x * w.to(device))}, {ad, bd});
        out.insert(out.begin(), x.detach());
        return out;
      };
      const Tensors cpu = run(kCPU), gpu = run(testing::kGpu);
      for (std::size_t i = 0; i < cpu.size(); ++i)
        EXPECT_TRUE(testing::matches_cpu(gpu[i], cpu[i])) << shape_str(c.a) << " " << dtype << " result " << i;
    }
  }
}

TEST_F(CudaSolve, SingularSystemsAreNamedAsOnTheCpu) {
  const Tensor rank_one = tensor({1.0, 2.0, 2.0, 4.0}).reshape({2, 2});
  const Tensor a = stack({eye(2), eye(2), rank_one}, 0);
  const Tensor b = ones({2, 1});
  const std::string expected = error_of([&] { solve(a, b); });
  EXPECT_TRUE(contains(expected, "batch index [2]")) << expected;
  EXPECT_EQ(error_of([&] { solve(a.to(testing::kGpu), b.to(testing::kGpu)); }), expected);
}

}  // namespace
}  // namespace fpi
