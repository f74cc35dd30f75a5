// The fixed-point solver's per-sample bookkeeping (src/fixed_point/solver.cpp), written once for both
// backends: src/backend/cpu/solver_rows.cpp and kernels/solver_rows.cu compile this same header, so the
// stopping test, the Picard safeguards, the fallback chain and Anderson's small solves take the same
// decisions on the same numbers on either device. Each sample's state is one row of a float64 table
// that stays on the data's device; the host reads it only when it checks (SolverOptions::check_every).
// It lives beside scalar_ops.hpp for the reason given there: src/ is on every build's include path.
#pragma once

#include <cfloat>
#include <cmath>

#include "backend/scalar_ops.hpp"

namespace fpi::backend {

// The columns of the row state, a contiguous float64 (rows, SolverColumn::Count) tensor. Flags are 0 or
// 1; stages are FallbackStage values; iterations are whole numbers.
struct SolverColumn {
  enum : int {
    Iterations,        // the iteration of the sample's last stopping test
    Residual,          // its relative residual; after a fallback without convergence, the lowest
    Converged,
    Cycled,            // a period-2 cycle was seen at some point
    Stage,             // where in the fallback chain the sample is
    Damping,           // its Picard damping (the safeguards may lower it)
    CycleStreak,
    GrowthReference,   // the growth safeguard's lowest residual since the last halving
    StageStart,        // the iteration the current stage began
    ProgressAt,        // the last iteration the lowest residual halved
    ProgressResidual,
    Lowest,            // the lowest residual seen, any stage
    SingularStreak,    // Anderson's small system was singular this many iterations in a row
    Done,              // the sample has finished: its row is frozen until the host drops it
    ErrorIteration,    // > 0: the iteration at which a norm was not finite
    // Written every iteration, for the tensor updates that follow it:
    Improved,          // the map value has the lowest residual so far: it becomes the best iterate
    Restart,           // the sample entered a fallback stage: it restarts from its best iterate
    TakeLatest,        // the sample finished: its output is this iteration's map value
    TakeBest,          // the sample finished after falling back: its output is its best iterate
    Beta,              // the weight of the new value in this iteration's step
    OneMinusBeta,
    Ridge,             // Anderson's ridge for this row
    Picard,            // Anderson's step is the damped Picard step (the fallback's Picard stage)
    Count
  };
};

// The norms a step reads, columns of a contiguous float64 (rows, NormColumn::Count) tensor: squared
// Euclidean norms over the row of g(x) − x, x, g(x) and x minus the iterate two steps back.
struct NormColumn {
  enum : int { Residual, Iterate, Value, TwoBack, Count };
};

// What every row's step shares: the iteration and the solver's options (fpi::SolverOptions).
struct SolverControl {
  int iteration = 1;
  bool last = false;           // iteration == max_iterations: every active row finishes
  bool anderson = true;
  bool damp_cycles = true;
  bool has_two_back = false;   // NormColumn::TwoBack holds a value (from the third iteration on)
  int min_iterations = 0;
  int stall_window = 0;
  double tolerance = 1e-4;
  double absolute_tolerance = 0.0;
  double damping = 1.0;
  double anderson_ridge = 1e-8;
};

// Iterates whose value two steps ago is this close (relative to the residual) are repeating.
inline constexpr double kCycleRatio = 1e-3;
inline constexpr int kCycleStreak = 3;
inline constexpr double kMinimumDamping = 0.125;
inline constexpr double kGrowthFactor = 4.0;
// The fallback chain (SolverOptions::stall_window). A stage makes progress while its lowest residual
// halves at least once per window.
inline constexpr double kStallProgress = 0.5;
inline constexpr int kSingularStreak = 3;
// Each fallback stage's budget, in windows. Stages mostly end by stalling or converging well before
// it; the budget is what bounds a stage whose residual keeps halving but never reaches the tolerance.
inline constexpr int kStageBudgetWindows = 2;
// The regularised stage's ridge: 10⁶ times the default, large enough that a nearly singular history
// no longer produces wild extrapolations, small enough that the weights still minimise the residual.
inline constexpr double kFallbackRidge = 1e-2;
// The damped Picard stage starts at half the sample's damping; the Picard safeguards (halving on a
// cycle or a growing residual) then apply, down to kFallbackMinimumDamping. On the tests' rotating
// tanh map (window 50), starting at a quarter left 15 of 64 samples at their best iterate, a half 8.
inline constexpr double kFallbackDampingFactor = 0.5;
inline constexpr double kFallbackMinimumDamping = 1.0 / 32.0;

// FallbackStage's values (include/fpi/fixed_point.hpp), which this header cannot include.
inline constexpr double kStageNone = 0, kStageRegularised = 1, kStageDampedPicard = 2, kStageBestIterate = 3;

// x − x is 0 for a finite x and NaN otherwise; std::isfinite has no device overload to rely on.
FPI_HOST_DEVICE inline bool finite(double x) { return x - x == 0.0; }

// The stage after `stage` for a sample that stalled in it; a Picard solve has no Anderson stage.
FPI_HOST_DEVICE inline double next_stage(double stage, bool anderson) {
  if (stage == kStageNone) return anderson ? kStageRegularised : kStageDampedPicard;
  if (stage == kStageRegularised) return kStageDampedPicard;
  return kStageBestIterate;
}

// One iteration's stopping test, safeguards and fallback decisions for one sample: `s` its row of the
// state, `n` its row of the norms. A finished row (Done) only has its per-iteration flags cleared.
FPI_HOST_DEVICE inline void solver_row_step(double* s, const double* n, const SolverControl& c) {
  using C = SolverColumn;
  s[C::Improved] = s[C::Restart] = s[C::TakeLatest] = s[C::TakeBest] = 0.0;
  if (s[C::Done] != 0.0) return;
  const double it = c.iteration;
  const double fn = std::sqrt(n[NormColumn::Residual]), gn = std::sqrt(n[NormColumn::Value]);
  if (!finite(fn) || !finite(gn)) {
    s[C::ErrorIteration] = it;
    s[C::Done] = 1.0;
    return;
  }
  const double scale = max_of(max_of(std::sqrt(n[NormColumn::Iterate]), gn), DBL_MIN);
  double residual = fn / scale;
  const bool absolute = c.absolute_tolerance > 0.0 && fn <= c.absolute_tolerance;
  s[C::Iterations] = it;
  s[C::Residual] = residual;
  if ((residual < c.tolerance || absolute) && c.iteration >= c.min_iterations) {
    s[C::Converged] = s[C::Done] = s[C::TakeLatest] = 1.0;
    return;
  }
  if (c.stall_window > 0) {
    if (residual < s[C::Lowest]) {
      s[C::Lowest] = residual;
      s[C::Improved] = 1.0;
    }
    if (s[C::Lowest] < kStallProgress * s[C::ProgressResidual]) {
      s[C::ProgressResidual] = s[C::Lowest];
      s[C::ProgressAt] = it;
    }
    const bool stalled = it - s[C::ProgressAt] >= c.stall_window || s[C::SingularStreak] >= kSingularStreak;
    const bool spent = s[C::Stage] != kStageNone && it - s[C::StageStart] >= kStageBudgetWindows * c.stall_window;
    if (stalled || spent) {
      s[C::Stage] = next_stage(s[C::Stage], c.anderson);
      if (s[C::Stage] == kStageBestIterate) {
        s[C::Residual] = s[C::Lowest];
        s[C::Done] = s[C::TakeBest] = 1.0;
        return;
      }
      if (s[C::Stage] == kStageDampedPicard)
        s[C::Damping] = max_of(s[C::Damping] * kFallbackDampingFactor, kFallbackMinimumDamping);
      s[C::StageStart] = s[C::ProgressAt] = it;
      s[C::ProgressResidual] = s[C::Lowest];
      s[C::SingularStreak] = s[C::CycleStreak] = 0.0;
      s[C::GrowthReference] = INFINITY;
      s[C::Restart] = 1.0;
    }
  }
  const bool fallback_picard = s[C::Stage] == kStageDampedPicard;
  const bool may_damp = fallback_picard || (!c.anderson && c.damp_cycles);
  const double floor = fallback_picard ? kFallbackMinimumDamping : kMinimumDamping;
  if (c.has_two_back && std::sqrt(n[NormColumn::TwoBack]) <= kCycleRatio * fn) {
    s[C::CycleStreak] += 1.0;
    if (s[C::CycleStreak] >= kCycleStreak) {
      s[C::Cycled] = 1.0;
      s[C::CycleStreak] = 0.0;
      if (may_damp) s[C::Damping] = max_of(s[C::Damping] * 0.5, floor);
    }
  } else {
    s[C::CycleStreak] = 0.0;
  }
  // A residual that keeps growing means a Jacobian eigenvalue beyond −1 (or 1): damping shrinks the
  // step until the damped map contracts.
  if (may_damp && residual > kGrowthFactor * s[C::GrowthReference]) {
    s[C::Damping] = max_of(s[C::Damping] * 0.5, floor);
    s[C::GrowthReference] = residual;
  }
  s[C::GrowthReference] = min_of(s[C::GrowthReference], residual);
  if (c.last) {
    // The cap: a sample leaves with its last map value or, once it has fallen back, its best one.
    s[C::Done] = 1.0;
    if (s[C::Stage] == kStageNone) {
      s[C::TakeLatest] = 1.0;
    } else {
      s[C::Residual] = s[C::Lowest];
      s[C::TakeBest] = 1.0;
    }
    return;
  }
  // Picard steps with the sample's damping; Anderson mixes with the configured one, except in the
  // fallback's damped Picard stage.
  const double beta = c.anderson && !fallback_picard ? c.damping : s[C::Damping];
  s[C::Beta] = beta;
  s[C::OneMinusBeta] = 1.0 - beta;
  s[C::Ridge] = s[C::Stage] == kStageNone ? c.anderson_ridge : max_of(c.anderson_ridge, kFallbackRidge);
  s[C::Picard] = fallback_picard ? 1.0 : 0.0;
}

// Anderson's weights for one sample: α = w / Σw with (H + λ I) w = 1, H (h × h, symmetric positive
// semi-definite, overwritten) its Gram matrix of residuals and λ its ridge relative to H's mean
// diagonal. Gaussian elimination with partial pivoting. A numerically singular system, or a row in the
// damped Picard stage, gets the latest value alone (weight 1 at `latest`); the row's singular streak
// counts the singular systems in a row, which the fallback chain reads.
FPI_HOST_DEVICE inline void anderson_row(double* H, double* w, int h, int latest, double* s) {
  using C = SolverColumn;
  bool singular = false;
  if (s[C::Picard] == 0.0) {
    double trace = 0.0;
    for (int i = 0; i < h; ++i) trace += H[i * h + i];
    const double shift = s[C::Ridge] * max_of(trace / h, DBL_MIN);
    for (int i = 0; i < h; ++i) H[i * h + i] += shift;
    for (int i = 0; i < h; ++i) w[i] = 1.0;
    for (int col = 0; col < h && !singular; ++col) {
      int pivot = col;
      for (int r = col + 1; r < h; ++r)
        if (std::fabs(H[r * h + col]) > std::fabs(H[pivot * h + col])) pivot = r;
      if (!(std::fabs(H[pivot * h + col]) > 0.0)) {
        singular = true;
        break;
      }
      if (pivot != col) {
        for (int k = 0; k < h; ++k) {
          const double t = H[col * h + k];
          H[col * h + k] = H[pivot * h + k];
          H[pivot * h + k] = t;
        }
        const double t = w[col];
        w[col] = w[pivot];
        w[pivot] = t;
      }
      for (int r = col + 1; r < h; ++r) {
        const double factor = H[r * h + col] / H[col * h + col];
        for (int k = col; k < h; ++k) H[r * h + k] -= factor * H[col * h + k];
        w[r] -= factor * w[col];
      }
    }
    if (!singular) {
      for (int r = h - 1; r >= 0; --r) {
        for (int k = r + 1; k < h; ++k) w[r] -= H[r * h + k] * w[k];
        w[r] /= H[r * h + r];
      }
      double total = 0.0;
      for (int i = 0; i < h; ++i) total += w[i];
      singular = !finite(total) || std::fabs(total) < 1e-300;
      for (int i = 0; i < h && !singular; ++i) w[i] /= total;
      for (int i = 0; i < h && !singular; ++i) singular = !finite(w[i]);
    }
  }
  if (s[C::Picard] != 0.0 || singular) {
    for (int i = 0; i < h; ++i) w[i] = i == latest ? 1.0 : 0.0;
  }
  s[C::SingularStreak] = singular ? s[C::SingularStreak] + 1.0 : 0.0;
}

}  // namespace fpi::backend
