// The fixed-point solver's backend primitives (backend/solver_rows.hpp, through ops/solver_rows.hpp):
// Anderson's small solves with their singular fallback, one iteration's bookkeeping of a row, and the
// masked row copy, on the CPU against hand-worked values; and the CUDA kernels against the CPU on
// random batches (skipped, with the reason, where no GPU can be used).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "cuda_testing.hpp"
#include "fpi/generator.hpp"
#include "ops/solver_rows.hpp"

namespace fpi {
namespace {

using ops::NormColumn;
using ops::SolverColumn;

constexpr TensorOptions kF64{.dtype = kFloat64};

// `rows` fresh row states: residuals and references at infinity, damping 1, as the solver starts them.
Tensor fresh_state(std::int64_t rows) {
  Tensor state = zeros({rows, SolverColumn::Count}, kF64);
  for (int c : {SolverColumn::Residual, SolverColumn::GrowthReference, SolverColumn::ProgressResidual,
                SolverColumn::Lowest})
    state.select(1, c).fill_(std::numeric_limits<double>::infinity());
  state.select(1, SolverColumn::Damping).fill_(1.0);
  return state;
}

double at(const Tensor& state, std::int64_t row, int column) {
  return state.to_vector<double>()[row * SolverColumn::Count + column];
}

TEST(SolverRows, AndersonWeightsSolveTheRidgeSystemAndFallBackOnASingularOne) {
  // Row 0: H = diag(1, 4), so w = H⁻¹1 = (1, 1/4) and α = (0.8, 0.2). Row 1: H = 0, singular. Row 2:
  // a damped Picard row, which takes the latest value whatever H is.
  const Tensor gram = from_vector(std::vector<double>{1, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0, 4}, Shape{3, 2, 2}, kF64);
  Tensor state = fresh_state(3);
  state.select(1, SolverColumn::Ridge).fill_(0.0);
  state.select(1, SolverColumn::Picard).narrow(0, 2, 1).fill_(1.0);
  state.select(1, SolverColumn::SingularStreak).narrow(0, 2, 1).fill_(2.0);
  const auto w = ops::anderson_weights(gram, state, 1).to_vector<double>();
  EXPECT_DOUBLE_EQ(w[0], 0.8);
  EXPECT_DOUBLE_EQ(w[1], 0.2);
  EXPECT_EQ(w[2], 0.0);
  EXPECT_EQ(w[3], 1.0);
  EXPECT_EQ(w[4], 0.0);
  EXPECT_EQ(w[5], 1.0);
  EXPECT_EQ(at(state, 0, SolverColumn::SingularStreak), 0.0);
  EXPECT_EQ(at(state, 1, SolverColumn::SingularStreak), 1.0);
  EXPECT_EQ(at(state, 2, SolverColumn::SingularStreak), 0.0) << "a Picard row's system is not solved";
  ops::anderson_weights(gram, state, 1);
  EXPECT_EQ(at(state, 1, SolverColumn::SingularStreak), 2.0) << "singular systems in a row are counted";
  // The Gram matrices are the caller's: the elimination works on a copy.
  EXPECT_EQ(gram.to_vector<double>()[3], 4.0);
}

TEST(SolverRows, AStepConvergesFinishesAndFlagsNonFiniteRows) {
  Tensor state = fresh_state(3);
  // Row 0: ‖f‖ = 1e-3 against ‖x‖ = ‖g‖ = 1, below the tolerance 1e-2. Row 1: ‖f‖ = 1, not converged.
  // Row 2: ‖g(x)‖ is infinite.
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor norms = from_vector(std::vector<double>{1e-6, 1, 1, 0, 1, 1, 1, 0, 1, 1, inf, 0}, Shape{3, 4}, kF64);
  ops::SolverControl control{.iteration = 7, .anderson = false, .tolerance = 1e-2, .damping = 0.5};
  ops::solver_rows_step_(state, norms, control);
  EXPECT_EQ(at(state, 0, SolverColumn::Converged), 1.0);
  EXPECT_EQ(at(state, 0, SolverColumn::Done), 1.0);
  EXPECT_EQ(at(state, 0, SolverColumn::TakeLatest), 1.0);
  EXPECT_EQ(at(state, 0, SolverColumn::Iterations), 7.0);
  EXPECT_DOUBLE_EQ(at(state, 0, SolverColumn::Residual), 1e-3);
  EXPECT_EQ(at(state, 1, SolverColumn::Done), 0.0);
  EXPECT_EQ(at(state, 1, SolverColumn::Residual), 1.0);
  EXPECT_EQ(at(state, 1, SolverColumn::Beta), 1.0) << "Picard steps with the row's own damping";
  EXPECT_EQ(at(state, 1, SolverColumn::OneMinusBeta), 0.0);
  EXPECT_EQ(at(state, 2, SolverColumn::ErrorIteration), 7.0);
  EXPECT_EQ(at(state, 2, SolverColumn::Done), 1.0);
  // A finished row is frozen: the next step clears its flags and changes nothing else.
  const auto before = state.to_vector<double>();
  control.iteration = 8;
  control.last = true;
  ops::solver_rows_step_(state, norms, control);
  const auto after = state.to_vector<double>();
  EXPECT_EQ(after[SolverColumn::TakeLatest], 0.0);
  EXPECT_EQ(after[SolverColumn::Iterations], before[SolverColumn::Iterations]);
  EXPECT_EQ(after[SolverColumn::Count + SolverColumn::Done], 1.0) << "the cap finishes every active row";
  EXPECT_EQ(after[SolverColumn::Count + SolverColumn::TakeLatest], 1.0);
}

TEST(SolverRows, CopyRowsWhereCopiesTheMarkedRowsOnly) {
  Tensor state = fresh_state(3);
  state.select(1, SolverColumn::Restart).narrow(0, 1, 1).fill_(1.0);
  const Tensor dst = zeros({3, 2}), src = ones({3, 2});
  ops::copy_rows_where_(dst, src, state, SolverColumn::Restart);
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{0, 0, 1, 1, 0, 0}));
}

class CudaSolverRows : public testing::CudaTest {};

// Random row states and norms through every branch (converged, stalled, cycling, growing, finished).
std::pair<Tensor, Tensor> random_rows(std::int64_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> values = fresh_state(rows).to_vector<double>(), norms(rows * NormColumn::Count);
  for (std::int64_t r = 0; r < rows; ++r) {
    double* s = values.data() + r * SolverColumn::Count;
    s[SolverColumn::Lowest] = u(rng);
    s[SolverColumn::GrowthReference] = 0.1 * u(rng);
    s[SolverColumn::Stage] = std::floor(3.0 * u(rng));
    s[SolverColumn::ProgressAt] = std::floor(40.0 * u(rng));
    s[SolverColumn::StageStart] = std::floor(40.0 * u(rng));
    s[SolverColumn::CycleStreak] = std::floor(3.0 * u(rng));
    s[SolverColumn::SingularStreak] = std::floor(4.0 * u(rng));
    s[SolverColumn::Done] = u(rng) < 0.2 ? 1.0 : 0.0;
    s[SolverColumn::Damping] = 0.1 + u(rng);
    for (int c = 0; c < NormColumn::Count; ++c) norms[r * NormColumn::Count + c] = 1e-3 * u(rng) * u(rng);
  }
  return {from_vector(values, Shape{rows, SolverColumn::Count}, kF64),
          from_vector(norms, Shape{rows, NormColumn::Count}, kF64)};
}

TEST_F(CudaSolverRows, AStepMatchesTheCpuExactly) {
  const auto [state, norms] = random_rows(1000, 8);
  for (bool anderson : {false, true}) {
    const ops::SolverControl control{.iteration = 60, .anderson = anderson, .has_two_back = true,
                                     .stall_window = 20, .tolerance = 1e-2};
    const Tensor cpu = state.clone(), gpu = state.to(testing::kGpu);
    ops::solver_rows_step_(cpu, norms, control);
    ops::solver_rows_step_(gpu, norms.to(testing::kGpu), control);
    EXPECT_TRUE(testing::matches_cpu(gpu, cpu, 0.0)) << (anderson ? "anderson" : "picard");
  }
}

TEST_F(CudaSolverRows, AndersonWeightsMatchTheCpu) {
  Generator gen(9);
  for (int h : {1, 3, 5, 10}) {
    const Tensor f = randn({500, h, 7}, kF64, &gen);
    Tensor gram = matmul(f, f.transpose(1, 2));
    gram.narrow(0, 0, 10).zero_();  // singular systems
    Tensor state = fresh_state(500);
    state.select(1, SolverColumn::Ridge).fill_(1e-8);
    state.select(1, SolverColumn::Picard).narrow(0, 10, 10).fill_(1.0);
    const Tensor gpu_state = state.to(testing::kGpu);
    const Tensor cpu = ops::anderson_weights(gram, state, h - 1);
    const Tensor gpu = ops::anderson_weights(gram.to(testing::kGpu), gpu_state, h - 1);
    // The device contracts multiply-adds into FMAs, so the weights agree to rounding.
    EXPECT_TRUE(testing::matches_cpu(gpu, cpu, 1e-9)) << "h = " << h;
    EXPECT_TRUE(testing::matches_cpu(gpu_state, state, 0.0)) << "h = " << h;
  }
}

TEST_F(CudaSolverRows, CopyRowsWhereMatchesTheCpu) {
  Generator gen(10);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor state = random_rows(300, 11).first;
    const Tensor src = randn({300, 33}, TensorOptions{.dtype = dtype}, &gen);
    const Tensor dst = zeros({300, 33}, TensorOptions{.dtype = dtype});
    const Tensor gpu = dst.to(testing::kGpu);
    ops::copy_rows_where_(dst, src, state, SolverColumn::Done);
    ops::copy_rows_where_(gpu, src.to(testing::kGpu), state.to(testing::kGpu), SolverColumn::Done);
    EXPECT_TRUE(testing::matches_cpu(gpu, dst, 0.0));
  }
}

}  // namespace
}  // namespace fpi
