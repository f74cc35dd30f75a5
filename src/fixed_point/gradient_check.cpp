// The gradient self-check (FixedPointOptions::gradient_check_every): the gradient the layer hands on
// for a few samples against a reference that does not go through the backward solver.
//
// The reference is what backpropagating through K recorded steps of the damped map
// x ← x + β (g(x) − x) from x̂ gives: c_K = β Σ_{t<K} Mᵗ u with M = (1 − β) I + β (∂g/∂x)ᵀ and u = ∇x̂L.
// It is summed here from K vector-Jacobian products at x̂ without a tape, so its memory does not grow
// with K; it shares g's derivatives with the layer and nothing else (no solver, stopping test, Anderson
// history or backward mode). When M is a contraction, c_K tends to (I − (∂g/∂x)ᵀ)⁻¹ u, the gradient
// the backward FPI is meant to find.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>

#include "fixed_point/layer.hpp"
#include "fpi/grad_mode.hpp"
#include "fpi/ops.hpp"

namespace fpi::fixed_point_detail {
namespace {

// A reference that still moves by this much between K/2 and K terms has not converged.
constexpr double kSettledChange = 1e-2;

double l2_norm(const Tensor& v) { return v.numel() == 0 ? 0.0 : std::sqrt(sum(square(v)).item()); }

}  // namespace

Rows gradient_check_rows(const SolveStats& forward, int count) {
  Rows rows;
  for (std::size_t i = 0; i < forward.converged.size() && static_cast<int>(rows.size()) < count; ++i)
    if (forward.converged[i]) rows.push_back(static_cast<std::int64_t>(i));
  return rows;
}

GradientCheck compare_with_unrolled(const std::function<Tensor(const Tensor&)>& vjp,
                                    const std::function<Tensor(const Tensor&)>& input_gradients, const Tensor& c,
                                    const Tensor& u, const Tensor& damping, int steps) {
  NoGrad no_grad;
  Tensor term = damping * u;
  Tensor reference = term;
  Tensor half_way = term;
  for (int t = 1; t < steps; ++t) {
    term = term + damping * (vjp(term) - term);
    reference = reference + term;
    if (t == steps / 2 - 1) half_way = reference;
  }
  GradientCheck check;
  check.ran = true;
  check.samples = c.size(0);
  check.reference_settled = std::isfinite(l2_norm(reference)) &&
                            l2_norm(reference - half_way) <= kSettledChange * std::max(l2_norm(reference), 1e-300);
  const Tensor layer = input_gradients(c).to(kFloat64);
  const Tensor expected = input_gradients(reference).to(kFloat64);
  const double layer_norm = l2_norm(layer), expected_norm = l2_norm(expected);
  if (layer_norm == 0.0 && expected_norm == 0.0) return check;
  const double cosine = layer_norm > 0.0 && expected_norm > 0.0
                            ? sum(layer * expected).item() / (layer_norm * expected_norm)
                            : 0.0;
  check.angle_degrees = std::acos(std::clamp(cosine, -1.0, 1.0)) * 180.0 / std::numbers::pi;
  check.relative_error = expected_norm > 0.0 ? l2_norm(layer - expected) / expected_norm
                                             : std::numeric_limits<double>::infinity();
  return check;
}

void report_gradient_check(const GradientCheck& check, const FixedPointOptions& options) {
  if (!check.ran || !check.reference_settled || !(check.angle_degrees > options.gradient_check_max_degrees) ||
      options.on_nonconvergence == NonConvergencePolicy::Ignore)
    return;
  std::ostringstream message;
  message << "fixed_point '" << options.name << "' backward: on " << check.samples
          << " sample(s) the gradient is " << check.angle_degrees << " degrees from the unrolled reference "
          << "(relative error " << check.relative_error << ", gradient_check_max_degrees "
          << options.gradient_check_max_degrees
          << "). The backward FPI is not giving the implicit gradient: check that its solve converges "
             "(backward.max_iterations, backward.tolerance) and that backward_mode is implicit.";
  report_problem(options, message.str());
}

}  // namespace fpi::fixed_point_detail
