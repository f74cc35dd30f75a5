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
#include "ops/solver_rows.hpp"

namespace fpi::fixed_point_detail {

using ops::SolverColumn;

// The backend's row state stores stages as numbers it cannot take from fpi/fixed_point.hpp.
static_assert(backend::kStageNone == static_cast<double>(FallbackStage::None) &&
              backend::kStageRegularised == static_cast<double>(FallbackStage::RegularisedAnderson) &&
              backend::kStageDampedPicard == static_cast<double>(FallbackStage::DampedPicard) &&
              backend::kStageBestIterate == static_cast<double>(FallbackStage::BestIterate));

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

// The last `history` map values and residuals f = g(x) − x of every active sample, as ring buffers
// (k, m, n). The residuals are kept rather than the iterates: the least-squares problem needs them, and
// the step Σ α_i (β g_i + (1 − β) x_i) is Σ α_i g_i − (1 − β) Σ α_i f_i, two products with the weights
// instead of a mixed copy of the whole history.
class AndersonHistory {
 public:
  AndersonHistory(int history, const Tensor& like) : capacity_(history) {
    const Shape shape{like.size(0), history, like.size(1)};
    gs_ = zeros(shape, like.options());
    fs_ = zeros(shape, like.options());
  }

  void push(const Tensor& gx, const Tensor& f) {
    gs_.select(1, next_).copy_(gx);
    fs_.select(1, next_).copy_(f);
    latest_ = next_;
    next_ = (next_ + 1) % capacity_;
    count_ = std::min(count_ + 1, capacity_);
  }

  // The next iterate of every row: Σ α_i (β g_i + (1 − β) x_i) with each row's β, ridge and stage from
  // `state` (SolverColumn), its small system solved on the device; a row whose system is singular, or
  // that is in the damped Picard stage, takes the latest value alone.
  Tensor step(const Tensor& x, const Tensor& f, const Tensor& state) const {
    const std::int64_t k = x.size(0);
    const Tensor beta = column(state, SolverColumn::Beta, x.dtype());
    if (count_ < 2) return x + f * beta;
    const Tensor gs = gs_.slice(1, 0, count_), fs = fs_.slice(1, 0, count_);
    const Tensor weights =
        ops::anderson_weights(matmul(fs, fs.transpose(1, 2)), state, latest_).to(x.dtype()).reshape({k, 1, count_});
    const Tensor one_minus_beta = column(state, SolverColumn::OneMinusBeta, x.dtype());
    return (matmul(weights, gs) - matmul(weights, fs) * one_minus_beta.unsqueeze(2)).reshape({k, x.size(1)});
  }

  void keep(const Rows& positions) {
    gs_ = take_rows(gs_, positions);
    fs_ = take_rows(fs_, positions);
  }

  // Column `c` of the row state as a (rows, 1) tensor of `dtype`.
  static Tensor column(const Tensor& state, int c, DType dtype) {
    return state.slice(1, c, c + 1).to(dtype).contiguous();
  }

 private:
  int capacity_;
  int count_ = 0, next_ = 0, latest_ = 0;
  Tensor gs_, fs_;
};

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
  FPI_CHECK(o.max_iterations >= 1, where, ": max_iterations must be at least 1, got ", o.max_iterations);
  FPI_CHECK(o.min_iterations >= 0 && o.min_iterations <= o.max_iterations, where, ": min_iterations (",
            o.min_iterations, ") must lie in [0, max_iterations = ", o.max_iterations, "]");
  FPI_CHECK(o.damping > 0.0 && o.damping <= 1.0, where, ": damping must lie in (0, 1], got ", o.damping);
  FPI_CHECK(o.anderson_history >= 1, where, ": anderson_history must be at least 1, got ", o.anderson_history);
  FPI_CHECK(o.anderson_ridge >= 0.0, where, ": anderson_ridge must be non-negative, got ", o.anderson_ridge);
  FPI_CHECK(std::isfinite(o.absolute_tolerance) && o.absolute_tolerance >= 0.0, where,
            ": absolute_tolerance must be a finite number >= 0 (0 = off), got ", o.absolute_tolerance);
  FPI_CHECK(std::isfinite(o.tolerance) && o.tolerance >= 0.0, where,
            ": tolerance must be a finite number >= 0 (0 = no relative test), got ", o.tolerance);
  FPI_CHECK(o.tolerance > 0.0 || o.absolute_tolerance > 0.0, where,
            ": tolerance and absolute_tolerance are both 0, so no sample could ever stop; set one of them above 0");
  FPI_CHECK(o.check_every >= 0, where, ": check_every must be 0 (automatic) or positive, got ", o.check_every);
  FPI_CHECK(o.stall_window >= 0, where, ": stall_window must be 0 (no fallback) or positive, got ", o.stall_window);
}

void raise_nonfinite(int iteration, std::int64_t sample, const std::string& what) {
  fail(what, ": iteration ", iteration, " produced a non-finite value (NaN or Inf) in sample ", sample,
       "; the map is diverging or its input holds NaN (check its Lipschitz constant, the learning rate and the data)");
}

ResidualTest test_residual(double f_norm, double x_norm, double gx_norm, int iteration, std::int64_t sample,
                           const SolverOptions& options, const std::string& what) {
  if (!std::isfinite(f_norm) || !std::isfinite(gx_norm)) raise_nonfinite(iteration, sample, what);
  const double residual = f_norm / std::max({x_norm, gx_norm, std::numeric_limits<double>::min()});
  const bool absolute = options.absolute_tolerance > 0.0 && f_norm <= options.absolute_tolerance;
  return {residual, (residual < options.tolerance || absolute) && iteration >= options.min_iterations};
}

namespace {

// The host's copy of the row state, read at a check.
class HostRows {
 public:
  explicit HostRows(const Tensor& state) : values_(state.to_vector<double>()) {}
  double at(std::int64_t row, int column) const { return values_[row * SolverColumn::Count + column]; }

 private:
  std::vector<double> values_;
};

// The row state of `samples` rows, each starting at its damping, on x0's device.
Tensor initial_state(const Tensor& x0, const SolverOptions& options, const std::vector<double>& initial_damping) {
  const std::int64_t samples = x0.size(0);
  const TensorOptions f64{DType::Float64, x0.device()};
  Tensor state = zeros({samples, SolverColumn::Count}, f64);
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (int c : {SolverColumn::Residual, SolverColumn::GrowthReference, SolverColumn::ProgressResidual,
                SolverColumn::Lowest})
    state.select(1, c).fill_(inf);
  if (initial_damping.empty())
    state.select(1, SolverColumn::Damping).fill_(options.damping);
  else
    state.select(1, SolverColumn::Damping).copy_(from_vector(initial_damping, Shape{samples}, f64));
  return state;
}

}  // namespace

int check_interval(const SolverOptions& options, Device device) {
  if (options.check_every > 0) return options.check_every;
  return ops::host_reads_are_free(device) ? 1 : kDeviceCheckEvery;
}

// Every iteration runs on the data's device: the map, the norms, one fused step of every row's
// bookkeeping (ops::solver_rows_step_), masked row copies and Anderson's small solves. A row that
// finishes is frozen (its iterate no longer moves and its output is set aside) until the next check,
// where the host reads the row state once, records the finished rows and drops them from the batch.
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
  stats.fallback_stage.assign(samples, FallbackStage::None);
  FPI_CHECK(initial_damping.empty() || static_cast<std::int64_t>(initial_damping.size()) == samples, what, ": ",
            initial_damping.size(), " damping values for ", samples, " samples");
  result.x = x0.detach().clone();
  result.damping = initial_damping.empty() ? std::vector<double>(samples, options.damping) : initial_damping;
  if (samples == 0) return result;

  const bool anderson = options.solver == FixedPointSolver::Anderson;
  const int window = options.stall_window;
  const int check_every = check_interval(options, x0.device());
  Rows active(samples);
  for (std::int64_t i = 0; i < samples; ++i) active[i] = i;
  Tensor state = initial_state(x0, options, initial_damping);
  Tensor x = result.x.clone(), one_back, two_back;
  // Each row's output once it has finished, and (with the fallback chain) its map value of lowest
  // residual, what a row at the end of the chain returns.
  Tensor out = empty_like(x), best;
  if (window > 0) best = empty_like(x);
  std::unique_ptr<AndersonHistory> history;
  if (anderson) history = std::make_unique<AndersonHistory>(options.anderson_history, x);
  ops::SolverControl control{.anderson = anderson,
                             .damp_cycles = options.damp_cycles,
                             .min_iterations = options.min_iterations,
                             .stall_window = window,
                             .tolerance = options.tolerance,
                             .absolute_tolerance = options.absolute_tolerance,
                             .damping = options.damping,
                             .anderson_ridge = options.anderson_ridge};

  // Reads the row state: raises the first non-finite norm, records the finished rows and keeps the
  // others. Returns whether any row is left.
  const auto check = [&] {
    const HostRows host(state);
    const std::int64_t k = static_cast<std::int64_t>(active.size());
    int error_iteration = 0;
    std::int64_t error_sample = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const int at = static_cast<int>(host.at(j, SolverColumn::ErrorIteration));
      if (at > 0 && (error_iteration == 0 || at < error_iteration)) {
        error_iteration = at;
        error_sample = active[j];
      }
    }
    if (error_iteration > 0) raise_nonfinite(error_iteration, error_sample, what);
    Rows done, keep, done_samples, kept_samples;
    for (std::int64_t j = 0; j < k; ++j) {
      if (host.at(j, SolverColumn::Done) == 0.0) {
        keep.push_back(j);
        kept_samples.push_back(active[j]);
        continue;
      }
      const std::int64_t sample = active[j];
      stats.iterations[sample] = static_cast<int>(host.at(j, SolverColumn::Iterations));
      stats.residuals[sample] = host.at(j, SolverColumn::Residual);
      stats.converged[sample] = host.at(j, SolverColumn::Converged) != 0.0;
      stats.cycled[sample] = host.at(j, SolverColumn::Cycled) != 0.0;
      stats.fallback_stage[sample] = static_cast<FallbackStage>(static_cast<int>(host.at(j, SolverColumn::Stage)));
      result.damping[sample] = host.at(j, SolverColumn::Damping);
      done.push_back(j);
      done_samples.push_back(sample);
    }
    if (done.empty()) return true;
    put_rows(result.x, done_samples, take_rows(out, done));
    if (keep.empty()) return false;
    for (Tensor* t : {&x, &one_back, &two_back, &out, &best, &state})
      if (t->defined()) *t = take_rows(*t, keep);
    if (history) history->keep(keep);
    active = std::move(kept_samples);
    return true;
  };

  for (int iteration = 1;; ++iteration) {
    const Tensor gx = map(x, active);
    const Tensor f = gx - x;
    const Tensor cycle = two_back.defined() ? sum(square(x - two_back), {1}) : zeros({x.size(0)}, x.options());
    const Tensor norms = stack({sum(square(f), {1}), sum(square(x), {1}), sum(square(gx), {1}), cycle}, 1);
    control.iteration = iteration;
    control.last = iteration == options.max_iterations;
    control.has_two_back = two_back.defined();
    ops::solver_rows_step_(state, norms.to(DType::Float64).contiguous(), control);
    if (window > 0) ops::copy_rows_where_(best, gx, state, SolverColumn::Improved);
    ops::copy_rows_where_(out, gx, state, SolverColumn::TakeLatest);
    if (window > 0) ops::copy_rows_where_(out, best, state, SolverColumn::TakeBest);
    if (control.last) {
      check();
      break;
    }

    Tensor next;
    if (anderson) {
      history->push(gx, f);
      next = history->step(x, f, state);
    } else {
      next = x + f * AndersonHistory::column(state, SolverColumn::Beta, x.dtype());
    }
    // A row entering a fallback stage starts it from its best iterate, not from where it stalled; a
    // finished row stays where it was, so its map value stays finite until the host drops it.
    if (window > 0) ops::copy_rows_where_(next, best, state, SolverColumn::Restart);
    ops::copy_rows_where_(next, x, state, SolverColumn::Done);
    two_back = one_back;
    one_back = x;
    x = next;
    if (iteration % check_every == 0 && !check()) break;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace fpi::fixed_point_detail
