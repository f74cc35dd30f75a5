// Finite-difference gradient checks. Inputs are perturbed one element at a time through their host
// pointers (they are contiguous float64 CPU leaves), so every evaluation reruns the whole function.
#include "gradcheck.hpp"

#include <cmath>
#include <sstream>

namespace fpi::testing {
namespace {

Tensor weighted_sum(const Tensor& y, const Tensor& w) { return sum(y * w); }

double& element(const Tensor& t, std::int64_t i) { return t.data<double>()[i]; }

Tensor zeros_if_undefined(const Tensor& g, const Tensor& like) { return g.defined() ? g : zeros_like(like); }

void check_inputs(const Tensors& inputs) {
  for (const auto& t : inputs) {
    FPI_CHECK(t.dtype() == kFloat64 && t.is_contiguous() && t.is_leaf(),
              "gradcheck: inputs must be contiguous float64 leaves");
  }
}

// Central differences of scalar(inputs) w.r.t. every element of every input in `wrt`.
Tensors numeric_gradient(const std::function<double()>& scalar, const Tensors& wrt, double eps) {
  Tensors result;
  for (const auto& t : wrt) {
    Tensor g = zeros_like(t.detach());
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const double saved = element(t, i);
      element(t, i) = saved + eps;
      const double plus = scalar();
      element(t, i) = saved - eps;
      const double minus = scalar();
      element(t, i) = saved;
      element(g, i) = (plus - minus) / (2 * eps);
    }
    result.push_back(g);
  }
  return result;
}

::testing::AssertionResult compare(const Tensors& analytic, const Tensors& numeric, const GradcheckOptions& o,
                                   const char* what) {
  for (std::size_t k = 0; k < analytic.size(); ++k) {
    const auto a = analytic[k].to_vector<double>();
    const auto n = numeric[k].to_vector<double>();
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!(std::abs(a[i] - n[i]) <= o.atol + o.rtol * std::abs(n[i]))) {
        return ::testing::AssertionFailure() << what << ": input " << k << " element " << i << ": analytic " << a[i]
                                             << " vs numeric " << n[i] << " (diff " << std::abs(a[i] - n[i]) << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

Tensors differentiable(const Tensors& inputs) {
  Tensors out;
  for (const auto& t : inputs)
    if (t.requires_grad()) out.push_back(t);
  return out;
}

}  // namespace

::testing::AssertionResult gradcheck(const Fn& f, const Tensors& inputs, GradcheckOptions options) {
  check_inputs(inputs);
  const Tensors wrt = differentiable(inputs);
  Generator gen(options.seed);
  const Tensor y = f(inputs);
  const Tensor w = randn(y.shape(), {.dtype = kFloat64}, &gen);
  const Tensors analytic_raw = autograd::grad({weighted_sum(y, w)}, wrt, {}, {.allow_unused = true});
  Tensors analytic;
  for (std::size_t k = 0; k < wrt.size(); ++k) analytic.push_back(zeros_if_undefined(analytic_raw[k], wrt[k]));
  const auto scalar = [&] {
    NoGrad no_grad;
    return weighted_sum(f(inputs), w).item();
  };
  return compare(analytic, numeric_gradient(scalar, wrt, options.eps), options, "first order");
}

::testing::AssertionResult gradgradcheck(const Fn& f, const Tensors& inputs, GradcheckOptions options) {
  check_inputs(inputs);
  const Tensors wrt = differentiable(inputs);
  Generator gen(options.seed);
  const Tensor y_shape_probe = [&] {
    NoGrad no_grad;
    return f(inputs);
  }();
  const Tensor w = randn(y_shape_probe.shape(), {.dtype = kFloat64, .requires_grad = true}, &gen);
  Tensors v;
  for (const auto& t : wrt) v.push_back(randn(t.shape(), {.dtype = kFloat64}, &gen));

  // <∂<f(x), w>/∂x, v> as a differentiable scalar.
  const auto inner = [&](bool create_graph) {
    const Tensor y = f(inputs);
    const Tensors g = autograd::grad({y}, wrt, {w}, {.create_graph = create_graph, .allow_unused = true});
    Tensor total = scalar_tensor(0.0, {.dtype = kFloat64});
    for (std::size_t k = 0; k < wrt.size(); ++k)
      if (g[k].defined()) total = total + sum(g[k] * v[k]);
    return total;
  };

  Tensors targets = wrt;
  targets.push_back(w);
  const Tensor t = inner(true);
  Tensors analytic;
  if (t.requires_grad()) {
    const Tensors raw = autograd::grad({t}, targets, {}, {.allow_unused = true});
    for (std::size_t k = 0; k < targets.size(); ++k) analytic.push_back(zeros_if_undefined(raw[k], targets[k]));
  } else {
    for (const auto& target : targets) analytic.push_back(zeros_like(target.detach()));
  }
  const auto scalar = [&] { return inner(false).item(); };
  return compare(analytic, numeric_gradient(scalar, targets, options.eps), options, "second order");
}

}  // namespace fpi::testing
