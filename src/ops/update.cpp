// In-place optimizer updates and scaling: argument checks, one fused backend call, version bumps.
// Nothing is recorded, so there is no backward here; see fpi/ops.hpp.
#include "ops/op_util.hpp"

namespace fpi {

using ops::backend_of;

namespace {

// An in-place write is not recorded on the tape, so it must not reach a tensor a graph may hold.
void check_writable(const Tensor& t, const char* op, const char* what) {
  FPI_CHECK(!(t.requires_grad() && autograd::grad_enabled()), op, ": ", what, " (shape ", shape_str(t.shape()),
            ") requires grad and grad mode is on; in-place updates are not recorded, so run them inside an "
            "fpi::NoGrad scope");
}

// The fused kernels walk the parameter, its gradient and its state as flat arrays of one type.
void check_param(const Tensor& param, const char* op) {
  ops::check_defined(param, op, "the parameter");
  FPI_CHECK(param.is_contiguous(), op, ": the parameter (shape ", shape_str(param.shape()),
            ") is not contiguous; the fused update needs contiguous tensors");
  check_writable(param, op, "the parameter");
}

void check_like_param(const Tensor& t, const Tensor& param, const char* op, const char* what) {
  ops::check_defined(t, op, what);
  FPI_CHECK(t.dtype() == param.dtype() && t.device() == param.device(), op, ": ", what, " is ",
            dtype_name(t.dtype()), " on ", t.device().str(), " but the parameter is ", dtype_name(param.dtype()),
            " on ", param.device().str());
  FPI_CHECK(t.shape() == param.shape(), op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the parameter has ", shape_str(param.shape()));
  FPI_CHECK(t.is_contiguous(), op, ": ", what, " (shape ", shape_str(t.shape()),
            ") is not contiguous; the fused update needs contiguous tensors");
}

void check_state(const Tensor& t, const Tensor& param, const char* op, const char* what) {
  check_like_param(t, param, op, what);
  check_writable(t, op, what);
}

void bump_version(const Tensor& t) { t.impl()->storage->bump_version(); }

}  // namespace

void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamStep& step) {
  constexpr const char* op = "adam_update_";
  check_param(param, op);
  check_like_param(grad, param, op, "the gradient");
  check_state(exp_avg, param, op, "exp_avg");
  check_state(exp_avg_sq, param, op, "exp_avg_sq");
  if (step.amsgrad) check_state(max_exp_avg_sq, param, op, "max_exp_avg_sq");
  FPI_CHECK(step.step >= 1, op, ": the step count starts at 1, got ", step.step);
  backend_of(param).adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step);
  bump_version(param);
  bump_version(exp_avg);
  bump_version(exp_avg_sq);
  if (step.amsgrad) bump_version(max_exp_avg_sq);
}

void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStep& step) {
  constexpr const char* op = "sgd_update_";
  check_param(param, op);
  check_like_param(grad, param, op, "the gradient");
  const bool with_momentum = step.momentum != 0.0;
  if (with_momentum) check_state(momentum_buffer, param, op, "the momentum buffer");
  backend_of(param).sgd_update(param, grad, momentum_buffer, step);
  bump_version(param);
  if (with_momentum) bump_version(momentum_buffer);
}

void scale_(const Tensor& t, double factor) {
  ops::check_defined(t, "scale_", "the tensor");
  check_writable(t, "scale_", "the tensor");
  backend_of(t).unary(backend::UnaryOp::MulScalar, t, t, factor);
  bump_version(t);
}

}  // namespace fpi
