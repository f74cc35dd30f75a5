// Internals shared by the FPI layer's forward (forward.cpp) and backward (backward.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "fixed_point/solver.hpp"
#include "fpi/autograd.hpp"

namespace fpi::fixed_point_detail {

// How the state maps to solver rows: one row per sample, or the whole state as one row.
struct Geometry {
  Shape state_shape;
  std::int64_t samples = 1;
  std::int64_t width = 0;
  bool per_sample = true;

  Geometry(const Shape& shape, bool per_sample_rows);
  // The state shape for k of the samples.
  Shape shape_for(std::int64_t k) const;
  Tensor to_rows(const Tensor& x) const { return x.reshape({samples, width}); }
};

// The problem being solved: g, its inputs (the first `batched` share the batch dimension) and options.
struct Problem {
  FixedPointStep g;
  std::size_t batched = 0;
  FixedPointOptions options;
  Geometry geometry;
  std::vector<double> forward_damping;  // per sample, where the forward solve ended
};

// The inputs restricted to a set of samples: the batched ones are gathered again only when the set of
// active samples changes, not on every iteration.
class RestrictedInputs {
 public:
  RestrictedInputs(const Problem& problem, const Tensors& inputs) : problem_(problem), inputs_(inputs) {}
  const Tensors& for_rows(const Rows& rows);

 private:
  const Problem& problem_;
  const Tensors& inputs_;
  Rows rows_;
  Tensors restricted_;
};

// Evaluates g on the given samples of a (k, width) state, checking what g returns.
Tensor evaluate_rows(const Problem& p, const Tensor& x_rows, const Rows& rows, RestrictedInputs& inputs);

// Throws or warns as the layer's on_nonconvergence policy says (callers skip Ignore themselves).
void report_problem(const FixedPointOptions& options, const std::string& message);

// Applies the non-convergence policy to a finished solve (warn, throw or stay quiet).
void report_nonconvergence(const SolveStats& stats, const FixedPointOptions& options, const char* direction);

// Per sample, ‖(∂g/∂x)ᵀ v‖ after `iterations` power iterations from a seeded unit v, with ∂g/∂x taken
// at the rows `x_rows` (S, width) of x̂ (see FixedPointOptions::spectral_radius_iterations).
std::vector<double> estimate_spectral_radius(const Problem& p, const Tensor& x_rows, const Tensors& inputs,
                                             int iterations);

// The gradient self-check (gradient_check.cpp). The rows checked: the first `count` samples whose
// forward solve converged.
Rows gradient_check_rows(const SolveStats& forward, int count);
// Compares input_gradients(c) with input_gradients(c_K), c_K the unrolled reference of `steps` terms
// built from `vjp` ((∂g/∂x)ᵀ v on the checked rows), the incoming gradient u and the per-row damping (k, 1).
GradientCheck compare_with_unrolled(const std::function<Tensor(const Tensor&)>& vjp,
                                    const std::function<Tensor(const Tensor&)>& input_gradients, const Tensor& c,
                                    const Tensor& u, const Tensor& damping, int steps);
void report_gradient_check(const GradientCheck& check, const FixedPointOptions& options);

// Records the FPI node that makes x̂ differentiable w.r.t. `inputs`.
void attach_fixed_point_node(Tensor& x_hat, const Problem& problem, const Tensors& inputs,
                             std::shared_ptr<FixedPointStats> stats);

}  // namespace fpi::fixed_point_detail
