// Per-sample fixed-point solver: Picard with (adaptive) damping, and Anderson acceleration, with a
// per-sample fallback chain for samples that stall (SolverOptions::stall_window).
//
// Anderson (type II, Walker & Ni 2011): with the last h iterates x_i and values g_i = g(x_i) of one
// sample, and residuals f_i = g_i − x_i, find weights α (Σα = 1) minimising ‖Σ α_i f_i‖² + λ‖α‖²,
// then step to Σ α_i (β g_i + (1 − β) x_i). Each sample solves its own h×h system, so samples mix
// only their own history.
#include "fixed_point/solver.hpp"

#include <chrono>
#include <cmath>
#include <limits>

#include "fpi/ops.hpp"

namespace fpi::fixed_point_detail {
namespace {

std::vector<std::pair<std::int64_t, std::int64_t>> runs(const Rows& rows) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (std::size_t i = 0; i < rows.size();) {
    std::size_t j = i + 1;
    while (j < rows.size() && rows[j] == rows[j - 1] + 1) ++j;
    out.emplace_back(rows[i], static_cast<std::int64_t>(j - i));
    i = j;
  }
  return out;
}

// α = w / Σw with (H + λ I) w = 1, H symmetric positive semi-definite of size h. Gaussian
// elimination with partial pivoting; an empty result means the system was numerically singular.
std::vector<double> anderson_weights(std::vector<double> H, int h, double ridge) {
  double trace = 0.0;
  for (int i = 0; i < h; ++i) trace += H[i * h + i];
  const double shift = ridge * std::max(trace / h, std::numeric_limits<double>::min());
  for (int i = 0; i < h; ++i) H[i * h + i] += shift;
  std::vector<double> w(h, 1.0);
  for (int col = 0; col < h; ++col) {
    int pivot = col;
    for (int r = col + 1; r < h; ++r)
      if (std::abs(H[r * h + col]) > std::abs(H[pivot * h + col])) pivot = r;
    if (!(std::abs(H[pivot * h + col]) > 0.0)) return {};
    if (pivot != col) {
      for (int c = 0; c < h; ++c) std::swap(H[col * h + c], H[pivot * h + c]);
      std::swap(w[col], w[pivot]);
    }
    for (int r = col + 1; r < h; ++r) {
      const double factor = H[r * h + col] / H[col * h + col];
      for (int c = col; c < h; ++c) H[r * h + c] -= factor * H[col * h + c];
      w[r] -= factor * w[col];
    }
  }
  for (int r = h - 1; r >= 0; --r) {
    for (int c = r + 1; c < h; ++c) w[r] -= H[r * h + c] * w[c];
    w[r] /= H[r * h + r];
  }
  double total = 0.0;
  for (double v : w) total += v;
  if (!std::isfinite(total) || std::abs(total) < 1e-300) return {};
  for (double& v : w) v /= total;
  for (double v : w)
    if (!std::isfinite(v)) return {};
  return w;
}

// The last `history` iterates and map values of every active sample, as ring buffers (k, m, n).
class AndersonHistory {
 public:
  AndersonHistory(int history, const Tensor& like) : capacity_(history) {
    const Shape shape{like.size(0), history, like.size(1)};
    xs_ = zeros(shape, like.options());
    gs_ = zeros(shape, like.options());
  }

  void push(const Tensor& x, const Tensor& gx) {
    xs_.select(1, next_).copy_(x);
    gs_.select(1, next_).copy_(gx);
    latest_ = next_;
    next_ = (next_ + 1) % capacity_;
    count_ = std::min(count_ + 1, capacity_);
  }

  // How one row steps when the rows do not all step alike (the fallback chain): its ridge, its β,
  // and whether it takes a damped Picard step (the latest value alone) instead of Anderson's.
  struct RowMix {
    double ridge;
    double beta;
    bool picard;
  };

  // `mix` empty: every row takes Anderson's step with `beta` and `ridge`. `singular` receives, per row,
  // whether its small system was singular.
  Tensor step(const Tensor& x, const Tensor& f, double beta, double ridge, const std::vector<RowMix>& mix,
              std::vector<char>& singular) const {
    const std::int64_t k = x.size(0);
    singular.assign(k, 0);
    Tensor betas;
    if (!mix.empty()) {
      std::vector<double> row_beta(k);
      for (std::int64_t r = 0; r < k; ++r) row_beta[r] = mix[r].beta;
      betas = from_vector(row_beta, Shape{k, 1}, x.options());
    }
    if (count_ < 2) return mix.empty() ? x + f * beta : x + f * betas;
    const Tensor xs = xs_.slice(1, 0, count_), gs = gs_.slice(1, 0, count_);
    const Tensor fs = gs - xs;
    const auto gram = matmul(fs, fs.transpose(1, 2)).to_vector<double>();
    std::vector<double> alpha(k * count_);
    for (std::int64_t r = 0; r < k; ++r) {
      std::vector<double> w;
      if (mix.empty() || !mix[r].picard) {
        const std::vector<double> block(gram.begin() + r * count_ * count_,
                                        gram.begin() + (r + 1) * count_ * count_);
        w = anderson_weights(block, count_, mix.empty() ? ridge : mix[r].ridge);
        singular[r] = w.empty();
      }
      if (w.empty()) {
        // A singular system (e.g. repeated iterates), or a damped Picard row: the latest value alone.
        w.assign(count_, 0.0);
        w[latest_] = 1.0;
      }
      std::copy(w.begin(), w.end(), alpha.begin() + r * count_);
    }
    const Tensor weights = from_vector(alpha, Shape{k, 1, count_}, x.options());
    Tensor mixed;
    if (!mix.empty())
      mixed = gs * betas.unsqueeze(2) + xs * (1.0 - betas).unsqueeze(2);
    else
      mixed = beta == 1.0 ? gs : gs * beta + xs * (1.0 - beta);
    return matmul(weights, mixed).reshape({k, x.size(1)});
  }

  void keep(const Rows& positions) {
    xs_ = take_rows(xs_, positions);
    gs_ = take_rows(gs_, positions);
  }

 private:
  int capacity_;
  int count_ = 0, next_ = 0, latest_ = 0;
  Tensor xs_, gs_;
};

// Iterates whose value two steps ago is this close (relative to the residual) are repeating.
constexpr double kCycleRatio = 1e-3;
constexpr int kCycleStreak = 3;
constexpr double kMinimumDamping = 0.125;
constexpr double kGrowthFactor = 4.0;

// The fallback chain (SolverOptions::stall_window). A stage makes progress while its lowest residual
// halves at least once per window.
constexpr double kStallProgress = 0.5;
constexpr int kSingularStreak = 3;
// Each fallback stage's budget, in windows. Stages mostly end by stalling or converging well before
// it; the budget is what bounds a stage whose residual keeps halving but never reaches the tolerance.
constexpr int kStageBudgetWindows = 2;
// The regularised stage's ridge: 10⁶ times the default, large enough that a nearly singular history
// no longer produces wild extrapolations, small enough that the weights still minimise the residual.
constexpr double kFallbackRidge = 1e-2;
// The damped Picard stage starts at half the sample's damping; the Picard safeguards (halving on a
// cycle or a growing residual) then apply, down to kFallbackMinimumDamping. On the tests' rotating
// tanh map (window 50), starting at a quarter left 15 of 64 samples at their best iterate, a half 8.
constexpr double kFallbackDampingFactor = 0.5;
constexpr double kFallbackMinimumDamping = 1.0 / 32.0;

// The stage after `stage` for a sample that stalled in it; a Picard solve has no Anderson stage.
FallbackStage next_stage(FallbackStage stage, bool anderson) {
  switch (stage) {
    case FallbackStage::None: return anderson ? FallbackStage::RegularisedAnderson : FallbackStage::DampedPicard;
    case FallbackStage::RegularisedAnderson: return FallbackStage::DampedPicard;
    default: return FallbackStage::BestIterate;
  }
}

}  // namespace

Tensor take_rows(const Tensor& t, const Rows& rows) {
  if (static_cast<std::int64_t>(rows.size()) == t.size(0) && (rows.empty() || rows.back() == t.size(0) - 1))
    return t;
  std::vector<Tensor> parts;
  for (const auto& [start, length] : runs(rows)) parts.push_back(t.slice(0, start, start + length));
  if (parts.size() == 1) return parts[0].contiguous();
  return concat(parts, 0);
}

void put_rows(const Tensor& dst, const Rows& rows, const Tensor& src) {
  std::int64_t at = 0;
  for (const auto& [start, length] : runs(rows)) {
    dst.slice(0, start, start + length).copy_(src.slice(0, at, at + length));
    at += length;
  }
}

void validate(const SolverOptions& o, const std::string& where) {
  FPI_CHECK(o.tolerance > 0.0, where, ": tolerance must be positive, got ", o.tolerance);
  FPI_CHECK(o.max_iterations >= 1, where, ": max_iterations must be at least 1, got ", o.max_iterations);
  FPI_CHECK(o.min_iterations >= 0 && o.min_iterations <= o.max_iterations, where, ": min_iterations (",
            o.min_iterations, ") must lie in [0, max_iterations = ", o.max_iterations, "]");
  FPI_CHECK(o.damping > 0.0 && o.damping <= 1.0, where, ": damping must lie in (0, 1], got ", o.damping);
  FPI_CHECK(o.anderson_history >= 1, where, ": anderson_history must be at least 1, got ", o.anderson_history);
  FPI_CHECK(o.anderson_ridge >= 0.0, where, ": anderson_ridge must be non-negative, got ", o.anderson_ridge);
  FPI_CHECK(std::isfinite(o.absolute_tolerance) && o.absolute_tolerance >= 0.0, where,
            ": absolute_tolerance must be a finite number >= 0 (0 = off), got ", o.absolute_tolerance);
  FPI_CHECK(o.stall_window >= 0, where, ": stall_window must be 0 (no fallback) or positive, got ", o.stall_window);
}

ResidualTest test_residual(double f_norm, double x_norm, double gx_norm, int iteration, std::int64_t sample,
                           const SolverOptions& options, const std::string& what) {
  FPI_CHECK(std::isfinite(f_norm) && std::isfinite(gx_norm), what, ": iteration ", iteration,
            " produced a non-finite value (NaN or Inf) in sample ", sample,
            "; the map is diverging or its input holds NaN (check its Lipschitz constant, the learning rate and "
            "the data)");
  const double residual = f_norm / std::max({x_norm, gx_norm, std::numeric_limits<double>::min()});
  const bool absolute = options.absolute_tolerance > 0.0 && f_norm <= options.absolute_tolerance;
  return {residual, (residual < options.tolerance || absolute) && iteration >= options.min_iterations};
}

SolveResult solve(const ActiveMap& map, const Tensor& x0, const SolverOptions& options, const std::string& what,
                  const std::vector<double>& initial_damping) {
  NoGrad no_grad;
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t samples = x0.size(0);
  SolveResult result;
  SolveStats& stats = result.stats;
  stats.ran = true;
  stats.iterations.assign(samples, 0);
  stats.residuals.assign(samples, std::numeric_limits<double>::infinity());
  stats.converged.assign(samples, 0);
  stats.cycled.assign(samples, 0);
  result.x = x0.detach().clone();
  result.damping = initial_damping.empty() ? std::vector<double>(samples, options.damping) : initial_damping;
  FPI_CHECK(static_cast<std::int64_t>(result.damping.size()) == samples, what, ": ", result.damping.size(),
            " damping values for ", samples, " samples");

  // What the Picard safeguards and the fallback chain track for each active sample.
  struct RowState {
    std::int64_t sample;
    int cycle_streak = 0;
    double best_residual = std::numeric_limits<double>::infinity();  // the growth safeguard's reference
    FallbackStage stage = FallbackStage::None;
    int stage_start = 0;       // the iteration the current stage began
    int progress_at = 0;       // the last iteration the lowest residual halved
    double progress_residual = std::numeric_limits<double>::infinity();
    double lowest = std::numeric_limits<double>::infinity();  // the lowest residual seen, any stage
    int singular_streak = 0;
  };
  std::vector<RowState> rows;
  for (std::int64_t i = 0; i < samples; ++i) rows.push_back({i});
  const auto samples_of = [&rows](const Rows& positions) {
    Rows out;
    for (auto j : positions) out.push_back(rows[j].sample);
    return out;
  };
  Tensor x = result.x.clone(), one_back, two_back;
  const bool anderson = options.solver == FixedPointSolver::Anderson;
  std::unique_ptr<AndersonHistory> history;
  if (anderson) history = std::make_unique<AndersonHistory>(options.anderson_history, x);
  const int window = options.stall_window;
  stats.fallback_stage.assign(samples, FallbackStage::None);
  // Each sample's map value of lowest residual, what a sample at the end of the chain returns.
  Tensor best;
  if (window > 0) best = empty_like(result.x);
  bool chained = false;  // some active row has left stage None, so the rows no longer step alike
  std::vector<char> singular;

  for (int iteration = 1; iteration <= options.max_iterations && !rows.empty(); ++iteration) {
    const std::int64_t k = static_cast<std::int64_t>(rows.size());
    Rows active(k);
    for (std::int64_t j = 0; j < k; ++j) active[j] = rows[j].sample;
    const Tensor gx = map(x, active);
    const Tensor f = gx - x;
    std::vector<Tensor> norms{sum(square(f), {1}), sum(square(x), {1}), sum(square(gx), {1})};
    if (two_back.defined()) norms.push_back(sum(square(x - two_back), {1}));
    const auto host = concat(norms, 0).to_vector<double>();

    Rows keep, done, improved, restart;
    for (std::int64_t j = 0; j < k; ++j) {
      RowState& row = rows[j];
      const double fn = std::sqrt(host[j]);
      const auto [residual, converged] =
          test_residual(fn, std::sqrt(host[k + j]), std::sqrt(host[2 * k + j]), iteration, row.sample, options, what);
      stats.iterations[row.sample] = iteration;
      stats.residuals[row.sample] = residual;
      if (converged) {
        stats.converged[row.sample] = 1;
        done.push_back(j);
        continue;
      }
      if (window > 0) {
        if (residual < row.lowest) {
          row.lowest = residual;
          improved.push_back(j);
        }
        if (row.lowest < kStallProgress * row.progress_residual) {
          row.progress_residual = row.lowest;
          row.progress_at = iteration;
        }
        const bool stalled = iteration - row.progress_at >= window || row.singular_streak >= kSingularStreak;
        const bool spent =
            row.stage != FallbackStage::None && iteration - row.stage_start >= kStageBudgetWindows * window;
        if (stalled || spent) {
          row.stage = next_stage(row.stage, anderson);
          stats.fallback_stage[row.sample] = row.stage;
          chained = true;
          if (row.stage == FallbackStage::BestIterate) {
            stats.residuals[row.sample] = row.lowest;
            done.push_back(j);
            continue;
          }
          if (row.stage == FallbackStage::DampedPicard) {
            result.damping[row.sample] =
                std::max(result.damping[row.sample] * kFallbackDampingFactor, kFallbackMinimumDamping);
          }
          row.stage_start = row.progress_at = iteration;
          row.progress_residual = row.lowest;
          row.singular_streak = row.cycle_streak = 0;
          row.best_residual = std::numeric_limits<double>::infinity();
          restart.push_back(j);
        }
      }
      keep.push_back(j);
      double& damping = result.damping[row.sample];
      const bool fallback_picard = row.stage == FallbackStage::DampedPicard;
      const bool may_damp = fallback_picard || (!anderson && options.damp_cycles);
      const double floor = fallback_picard ? kFallbackMinimumDamping : kMinimumDamping;
      if (norms.size() == 4 && std::sqrt(host[3 * k + j]) <= kCycleRatio * fn) {
        if (++row.cycle_streak >= kCycleStreak) {
          stats.cycled[row.sample] = 1;
          row.cycle_streak = 0;
          if (may_damp) damping = std::max(damping * 0.5, floor);
        }
      } else {
        row.cycle_streak = 0;
      }
      // A residual that keeps growing means a Jacobian eigenvalue beyond −1 (or 1): damping shrinks
      // the step until the damped map contracts.
      if (may_damp && residual > kGrowthFactor * row.best_residual) {
        damping = std::max(damping * 0.5, floor);
        row.best_residual = residual;
      }
      row.best_residual = std::min(row.best_residual, residual);
    }
    if (!improved.empty()) put_rows(best, samples_of(improved), take_rows(gx, improved));

    // Samples leave with their last map value, or, once they have fallen back, their best one.
    const auto finish = [&](const Rows& positions) {
      Rows latest, fallen;
      for (auto j : positions) {
        if (rows[j].stage == FallbackStage::None || stats.converged[rows[j].sample]) {
          latest.push_back(j);
        } else {
          fallen.push_back(j);
          stats.residuals[rows[j].sample] = rows[j].lowest;
        }
      }
      if (!latest.empty()) put_rows(result.x, samples_of(latest), take_rows(gx, latest));
      if (!fallen.empty()) put_rows(result.x, samples_of(fallen), take_rows(best, samples_of(fallen)));
    };
    if (!done.empty()) finish(done);
    if (iteration == options.max_iterations || keep.empty()) {
      if (!keep.empty()) finish(keep);
      break;
    }

    Tensor next;
    if (anderson) {
      history->push(x, gx);
      std::vector<AndersonHistory::RowMix> mix;
      if (chained) {
        for (const RowState& row : rows)
          mix.push_back({row.stage == FallbackStage::None ? options.anderson_ridge
                                                          : std::max(options.anderson_ridge, kFallbackRidge),
                         row.stage == FallbackStage::DampedPicard ? result.damping[row.sample] : options.damping,
                         row.stage == FallbackStage::DampedPicard});
      }
      next = history->step(x, f, options.damping, options.anderson_ridge, mix, singular);
      for (std::int64_t j = 0; j < k; ++j) rows[j].singular_streak = singular[j] ? rows[j].singular_streak + 1 : 0;
    } else {
      std::vector<double> beta(k);
      for (std::int64_t j = 0; j < k; ++j) beta[j] = result.damping[rows[j].sample];
      next = x + f * from_vector(beta, Shape{k, 1}, x.options());
    }
    // A sample entering a fallback stage starts it from its best iterate, not from where it stalled.
    if (!restart.empty()) put_rows(next, restart, take_rows(best, samples_of(restart)));

    // The iterates one and two steps back, for cycle detection, restricted to the rows that go on.
    Tensor previous = x, before_previous = one_back;
    if (!done.empty()) {
      next = take_rows(next, keep);
      if (history) history->keep(keep);
      previous = take_rows(previous, keep);
      if (before_previous.defined()) before_previous = take_rows(before_previous, keep);
      std::vector<RowState> kept;
      for (auto j : keep) kept.push_back(rows[j]);
      rows = std::move(kept);
    }
    two_back = before_previous;
    one_back = previous;
    x = next;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace fpi::fixed_point_detail
