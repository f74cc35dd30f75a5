// The FPI layer's forward pass: validate, iterate to the fixed point without recording, record one
// node. The `unrolled` backward mode instead records every iteration (the baseline the paper argues
// against), with converged samples frozen by a mask so they stop changing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "fixed_point/layer.hpp"
#include "fpi/ops.hpp"

namespace fpi {
namespace fixed_point_detail {

Geometry::Geometry(const Shape& shape, bool per_sample_rows) : state_shape(shape), per_sample(per_sample_rows) {
  const std::int64_t numel = shape_numel(shape);
  samples = per_sample && !shape.empty() ? shape[0] : 1;
  width = samples > 0 ? numel / samples : 0;
}

Shape Geometry::shape_for(std::int64_t k) const {
  if (!per_sample) return state_shape;
  Shape shape = state_shape;
  shape[0] = k;
  return shape;
}

const Tensors& RestrictedInputs::for_rows(const Rows& rows) {
  if (!problem_.geometry.per_sample || static_cast<std::int64_t>(rows.size()) == problem_.geometry.samples)
    return inputs_;
  if (rows != rows_) {
    rows_ = rows;
    restricted_ = inputs_;
    for (std::size_t i = 0; i < problem_.batched; ++i)
      if (restricted_[i].defined()) restricted_[i] = take_rows(restricted_[i], rows);
  }
  return restricted_;
}

Tensor evaluate_rows(const Problem& p, const Tensor& x_rows, const Rows& rows, RestrictedInputs& inputs) {
  const std::int64_t k = static_cast<std::int64_t>(rows.size());
  const Tensors& restricted = inputs.for_rows(rows);
  const Tensor x = x_rows.reshape(p.geometry.shape_for(k));
  const Tensor gx = p.g(x, restricted);
  FPI_CHECK(gx.defined() && gx.shape() == x.shape(), "fixed_point '", p.options.name, "': g returned shape ",
            gx.defined() ? shape_str(gx.shape()) : std::string("(undefined)"), " for a state of shape ",
            shape_str(x.shape()), "; g must map the state to its own shape");
  FPI_CHECK(gx.dtype() == x.dtype() && gx.device() == x.device(), "fixed_point '", p.options.name,
            "': g returned a ", dtype_name(gx.dtype()), " tensor on ", gx.device().str(), " for a ",
            dtype_name(x.dtype()), " state on ", x.device().str());
  return gx.reshape({k, p.geometry.width});
}

void report_problem(const FixedPointOptions& options, const std::string& message) {
  if (options.on_nonconvergence == NonConvergencePolicy::Error) throw Error(message);

  // Warnings are rate-limited per layer so that a long training run stays readable.
  constexpr int kMaxWarnings = 10;
  static std::mutex mutex;
  static std::unordered_map<std::string, int> warned;
  std::lock_guard lock(mutex);
  const int count = ++warned[options.name];
  if (count <= kMaxWarnings) std::cerr << "fpi: warning: " << message << '\n';
  if (count == kMaxWarnings)
    std::cerr << "fpi: warning: further non-convergence warnings for '" << options.name << "' are suppressed\n";
}

void report_nonconvergence(const SolveStats& stats, const FixedPointOptions& options, const char* direction) {
  const auto failed = static_cast<std::int64_t>(std::count(stats.converged.begin(), stats.converged.end(), 0));
  if (failed == 0 || options.on_nonconvergence == NonConvergencePolicy::Ignore) return;
  std::ostringstream message;
  message << "fixed_point '" << options.name << "' " << direction << ": " << failed << " of "
          << stats.converged.size() << " sample(s) did not converge in " << stats.max_iterations()
          << " iterations (max relative residual " << stats.max_residual() << ", tolerance "
          << (std::string(direction) == "forward" ? options.forward.tolerance : options.backward.tolerance) << ")";
  if (stats.cycle_count() > 0) message << "; " << stats.cycle_count() << " caught in a period-2 cycle";
  if (stats.fallback_count() > 0)
    message << "; " << stats.fallback_count() << " stalled and fell back, "
            << stats.fallback_count(FallbackStage::BestIterate) << " of them to their best iterate";
  message << ". A contractive g converges: lower its Lipschitz constant (nn::LipschitzBound), use damping or "
             "Anderson, or raise max_iterations.";
  report_problem(options, message.str());
}

namespace {

void report_repelling(const std::vector<double>& radius, const FixedPointOptions& options) {
  const auto repelling = static_cast<std::int64_t>(
      std::count_if(radius.begin(), radius.end(), [](double r) { return !(r < 1.0); }));
  if (repelling == 0 || options.on_nonconvergence == NonConvergencePolicy::Ignore) return;
  std::ostringstream message;
  message << "fixed_point '" << options.name << "' forward: the fixed point of " << repelling << " of "
          << radius.size() << " sample(s) is not attracting: the spectral radius of dg/dx there is estimated at up to "
          << *std::max_element(radius.begin(), radius.end())
          << " (at least 1), so the backward FPI, which assumes a contraction, cannot be trusted there. Lower g's "
             "Lipschitz constant (nn::LipschitzBound).";
  report_problem(options, message.str());
}

}  // namespace

namespace {

void validate_options(const FixedPointOptions& o) {
  validate(o.forward, "fixed_point '" + o.name + "': forward");
  validate(o.backward, "fixed_point '" + o.name + "': backward");
  FPI_CHECK(o.exact_max_state >= 1, "fixed_point '", o.name, "': exact_max_state must be positive");
  FPI_CHECK(std::isfinite(o.backward_regularization) && o.backward_regularization >= 0.0, "fixed_point '", o.name,
            "': backward_regularization must be finite and >= 0, got ", o.backward_regularization);
  FPI_CHECK(o.spectral_radius_iterations >= 0, "fixed_point '", o.name,
            "': spectral_radius_iterations must be 0 (off) or positive, got ", o.spectral_radius_iterations);
  FPI_CHECK(o.gradient_check_every >= 0, "fixed_point '", o.name,
            "': gradient_check_every must be 0 (off) or positive, got ", o.gradient_check_every);
  FPI_CHECK(o.gradient_check_samples >= 1, "fixed_point '", o.name,
            "': gradient_check_samples must be positive, got ", o.gradient_check_samples);
  FPI_CHECK(o.gradient_check_unroll >= 2, "fixed_point '", o.name,
            "': gradient_check_unroll must be at least 2, got ", o.gradient_check_unroll);
  FPI_CHECK(o.gradient_check_max_degrees >= 0.0 && o.gradient_check_max_degrees <= 180.0, "fixed_point '", o.name,
            "': gradient_check_max_degrees must lie in [0, 180], got ", o.gradient_check_max_degrees);
}

void validate_inputs(const Tensors& inputs, std::size_t batched, const Tensor& x0, const FixedPointOptions& o) {
  FPI_CHECK(x0.defined(), "fixed_point '", o.name, "': x0 must be given (it fixes the state's shape)");
  FPI_CHECK(batched <= inputs.size(), "fixed_point '", o.name, "': ", batched, " batched inputs but only ",
            inputs.size(), " inputs");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined()) continue;
    FPI_CHECK(t.device() == x0.device(), "fixed_point '", o.name, "': input ", i, " is on ", t.device().str(),
              " but the state is on ", x0.device().str());
    if (i < batched && o.per_sample) {
      FPI_CHECK(t.dim() >= 1 && x0.dim() >= 1 && t.size(0) == x0.size(0), "fixed_point '", o.name, "': input ", i,
                " of shape ", shape_str(t.shape()), " does not share the batch dimension of the state ",
                shape_str(x0.shape()), " (per-sample convergence needs both to start with the batch; set "
                "per_sample = false to iterate the batch as one vector)");
    }
  }
}

// Records every iteration: x ← x + m ⊙ (g(x) − x), with m the damping for active samples, 1 for the
// step on which a sample converges (it takes g(x), as the implicit path does) and 0 afterwards.
//
// m is decided on the data's device, so the host reads only every check_every iterations (as the
// solver does, SolverOptions::check_every). At a read the host replays its own stopping test on the
// norms of every iteration since the last read, in order: iteration counts, residuals and the error
// for a non-finite value (the first iteration, then the first sample) come out as if it had read
// every iteration. Both tests are the same IEEE operations on the same float64 norms, so they agree;
// the host checks that they did. A finished sample takes steps of weight 0 until the read, which
// leave its value, and the gradient flowing through it, unchanged: each sample stops at the same
// iteration for every check_every, only the recording may run up to check_every − 1 steps longer.
Tensor unrolled_forward(const Problem& p, const Tensors& inputs, const Tensor& x0, FixedPointStats& stats) {
  const SolverOptions& o = p.options.forward;
  FPI_CHECK(o.solver == FixedPointSolver::Picard, "fixed_point '", p.options.name,
            "': the unrolled backward records plain (damped) iterations; set forward.solver to Picard");
  const Geometry& geo = p.geometry;
  const std::int64_t samples = geo.samples;
  const std::string what = "fixed_point '" + p.options.name + "' forward";
  SolveStats& s = stats.forward;
  s = SolveStats{};
  s.ran = true;
  s.iterations.assign(samples, 0);
  s.residuals.assign(samples, 0.0);
  s.converged.assign(samples, 0);
  s.cycled.assign(samples, 0);
  s.fallback_stage.assign(samples, FallbackStage::None);
  const auto started = std::chrono::steady_clock::now();
  Rows all(samples);
  for (std::int64_t i = 0; i < samples; ++i) all[i] = i;
  RestrictedInputs restricted(p, inputs);
  Tensor x = geo.to_rows(x0.detach());
  const int check_every = check_interval(o, x.device());
  const TensorOptions f64{.dtype = kFloat64, .device = x.device()};
  // Per sample on the device: 1 while iterating (the device's view), and the squared norms of f, g(x)
  // and x of each iteration since the last read (3, samples each).
  Tensor device_active = ones({samples}, f64);
  Tensors pending;
  std::vector<char> active(samples, 1);
  // The host's stopping test over the pending iterations, ending at `iteration`; false when no sample
  // is left.
  const auto read = [&](int iteration) {
    const int first = iteration - static_cast<int>(pending.size()) + 1;
    pending.push_back(device_active);
    const std::vector<double> host = concat(pending, 0).to_vector<double>();
    pending.clear();
    for (int k = 0; first + k <= iteration; ++k) {
      const double* norms = host.data() + 3 * k * samples;
      for (std::int64_t j = 0; j < samples; ++j) {
        if (!active[j]) continue;
        const auto [residual, converged] = test_residual(std::sqrt(norms[j]), std::sqrt(norms[2 * samples + j]),
                                                         std::sqrt(norms[samples + j]), first + k, j, o, what);
        s.iterations[j] = first + k;
        s.residuals[j] = residual;
        if (converged) {
          s.converged[j] = 1;
          active[j] = 0;
        }
      }
    }
    const double* device_view = host.data() + host.size() - samples;
    bool any_active = false;
    for (std::int64_t j = 0; j < samples; ++j) {
      FPI_CHECK((device_view[j] != 0.0) == (active[j] != 0), what, ": internal error, the device and the host ",
                "disagree on whether sample ", j, " converged by iteration ", iteration);
      any_active = any_active || active[j];
    }
    return any_active;
  };
  constexpr double kTiny = std::numeric_limits<double>::min(), kHuge = std::numeric_limits<double>::infinity();
  for (int iteration = 1; iteration <= o.max_iterations; ++iteration) {
    const Tensor f = evaluate_rows(p, x, all, restricted) - x;
    const bool last = iteration == o.max_iterations;
    Tensor weight;
    {
      NoGrad no_grad;
      const Tensor norms = stack({sum(square(f), {1}), sum(square(x + f), {1}), sum(square(x), {1})}, 0).to(kFloat64);
      pending.push_back(norms.reshape({-1}));
      // test_residual on the device: ‖f‖ / max(‖x‖, ‖g(x)‖, tiny) < tolerance, or ‖f‖ <= absolute_tolerance.
      const Tensor f_norm = sqrt(norms.select(0, 0));
      const Tensor residual =
          f_norm / clamp(maximum(sqrt(norms.select(0, 2)), sqrt(norms.select(0, 1))), kTiny, kHuge);
      Tensor passed = lt(residual, full_like(residual, o.tolerance));
      if (o.absolute_tolerance > 0.0) passed = maximum(passed, le(f_norm, full_like(f_norm, o.absolute_tolerance)));
      const Tensor converged = iteration >= o.min_iterations ? device_active * passed : zeros_like(passed);
      // 1 on the converging step (and on the last), the damping before it, 0 once finished; each
      // exactly, as the host wrote them before.
      const Tensor step_weight = last ? device_active : converged + (device_active - converged) * o.damping;
      weight = step_weight.to(x.dtype()).reshape({samples, 1});
      device_active = device_active - converged;
    }
    x = x + f * weight;
    if ((last || iteration % check_every == 0) && !read(iteration)) break;
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return x.reshape(geo.state_shape);
}

}  // namespace
}  // namespace fixed_point_detail

using namespace fixed_point_detail;

Tensor fixed_point(const FixedPointStep& g, const Tensors& inputs, std::size_t batched_inputs, const Tensor& x0,
                   const FixedPointOptions& options, std::shared_ptr<FixedPointStats> stats) {
  validate_options(options);
  validate_inputs(inputs, batched_inputs, x0, options);
  if (!stats) stats = std::make_shared<FixedPointStats>();
  stats->layer = options.name;
  stats->backward = SolveStats{};
  stats->spectral_radius.clear();
  stats->gradient_check = GradientCheck{};
  Problem problem{g, batched_inputs, options, Geometry(x0.shape(), options.per_sample), {}};
  const bool recording = autograd::grad_enabled() && autograd::any_requires_grad(std::span<const Tensor>(inputs));

  if (recording && options.backward_mode == FixedPointBackward::Unrolled) {
    Tensor x = unrolled_forward(problem, inputs, x0, *stats);
    report_nonconvergence(stats->forward, options, "forward");
    return x;
  }

  Tensors detached;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    detached.push_back(i < batched_inputs && inputs[i].defined() ? inputs[i].detach() : inputs[i]);
  RestrictedInputs restricted(problem, detached);
  const auto map = [&](const Tensor& x, const Rows& rows) { return evaluate_rows(problem, x, rows, restricted); };
  SolveResult solved = solve(map, problem.geometry.to_rows(x0.detach()), options.forward,
                             "fixed_point '" + options.name + "' forward");
  stats->forward = solved.stats;
  problem.forward_damping = std::move(solved.damping);
  report_nonconvergence(stats->forward, options, "forward");
  if (options.spectral_radius_iterations > 0) {
    stats->spectral_radius = estimate_spectral_radius(problem, solved.x, detached, options.spectral_radius_iterations);
    report_repelling(stats->spectral_radius, options);
  }
  Tensor x_hat = solved.x.reshape(x0.shape());
  if (recording) attach_fixed_point_node(x_hat, problem, inputs, stats);
  return x_hat;
}

Tensor fixed_point(const FixedPointFn& g, const Tensor& z, const std::vector<Tensor>& params, const Tensor& x0,
                   const FixedPointOptions& options, std::shared_ptr<FixedPointStats> stats) {
  FPI_CHECK(g, "fixed_point '", options.name, "': g is empty");
  Tensors inputs{z};
  inputs.insert(inputs.end(), params.begin(), params.end());
  const FixedPointStep step = [g](const Tensor& x, const Tensors& in) { return g(x, in[0]); };
  return fixed_point(step, inputs, 1, x0, options, std::move(stats));
}

}  // namespace fpi
