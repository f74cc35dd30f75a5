// Differentiable operations. Each is recorded on the tape when an input requires grad, and each
// backward rule is itself written with these ops, so gradients of gradients work. Binary ops follow
// NumPy broadcasting; operands must share dtype and device (fpi never converts silently).
//
// Ops and the tape (fpi/autograd.hpp) are one layer: an op records itself on the tape, and the tape's
// backward rules are ops, which is what makes gradients of gradients possible. They include each other
// and nothing above them; below them are the backend and the tensor.
//
// Where each lives (forward and backward side by side):
//   src/ops/elementwise.cpp  arithmetic, activations, comparisons
//   src/ops/reduce.cpp       sum, mean, max, logsumexp, softmax, sum_to
//   src/ops/shape.cpp        views, reshape, concat, stack, copies and conversions
//   src/ops/linalg.cpp       matmul, linear, solve
//   src/ops/conv.cpp         conv2d, conv_transpose2d and their adjoints
//   src/ops/loss.cpp         mse, bce, bce_with_logits, cross_entropy
//   src/ops/update.cpp       adam_update_, sgd_update_, scale_ (in place, for optimizers)
//   src/ops/tensor_methods.cpp  Tensor's differentiable methods (x.reshape(…) and the like) and
//                               backward(): one-line forwards to these functions and to the tape
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "fpi/autograd.hpp"
#include "fpi/tensor.hpp"
#include "fpi/update_steps.hpp"

namespace fpi {

// ---- element-wise arithmetic -----------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor rsub(const Tensor& a, double b);  // b - a
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor square(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor reciprocal(const Tensor& a);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
// min(max(a, low), high); the gradient passes where low <= a <= high.
Tensor clamp(const Tensor& a, double low, double high);

// ---- activations -------------------------------------------------------------------------------
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor softplus(const Tensor& a);

// ---- not differentiable: results carry no gradient ---------------------------------------------
Tensor sign(const Tensor& a);
Tensor step(const Tensor& a);  // 1 where a > 0 else 0
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor isfinite_mask(const Tensor& a);  // 1 where finite else 0
bool all_finite(const Tensor& a);

// ---- reductions (dims may be negative; an empty dims list means all dimensions) -----------------
Tensor sum(const Tensor& a);
Tensor sum(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim = false);
// The gradient of max is shared equally among tied maxima.
Tensor max(const Tensor& a);
Tensor max(const Tensor& a, std::int64_t dim, bool keepdim = false);
Tensor min(const Tensor& a);
Tensor min(const Tensor& a, std::int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& a, std::int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& a, std::int64_t dim);
Tensor log_softmax(const Tensor& a, std::int64_t dim);
// Sums a broadcast result back to `shape`: the adjoint of expand.
Tensor sum_to(const Tensor& a, const Shape& shape);
// Euclidean norm of all elements.
Tensor norm(const Tensor& a);

// ---- shape ---------------------------------------------------------------------------------------
Tensor reshape(const Tensor& a, const Shape& shape);  // one dimension may be -1
// reshape that refuses to copy: `a` must be contiguous.
Tensor view(const Tensor& a, const Shape& shape);
Tensor flatten(const Tensor& a, std::int64_t start_dim = 0, std::int64_t end_dim = -1);
Tensor transpose(const Tensor& a, std::int64_t dim0, std::int64_t dim1);
Tensor permute(const Tensor& a, const std::vector<std::int64_t>& dims);
Tensor slice(const Tensor& a, std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1);
// slice without clipping: [start, start + length) must lie inside dimension `dim`.
Tensor narrow(const Tensor& a, std::int64_t dim, std::int64_t start, std::int64_t length);
// Index `index` of dimension `dim` (negative counts from the end), which the result no longer has.
Tensor select(const Tensor& a, std::int64_t dim, std::int64_t index);
Tensor expand(const Tensor& a, const Shape& shape);
Tensor unsqueeze(const Tensor& a, std::int64_t dim);
Tensor squeeze(const Tensor& a, std::int64_t dim);
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t dim);
// A zero tensor of `shape` with `a` written at [start:end:step] along `dim`: the adjoint of slice.
Tensor slice_scatter_zeros(const Tensor& a, const Shape& shape, std::int64_t dim, std::int64_t start,
                           std::int64_t end, std::int64_t step);
// Copies; each returns `a` itself where nothing would change, as the Tensor methods do.
Tensor contiguous(const Tensor& a);
Tensor clone(const Tensor& a);  // always a new copy
Tensor to_dtype(const Tensor& a, DType dtype);
Tensor to_device(const Tensor& a, Device device);

// ---- linear algebra ------------------------------------------------------------------------------
// (…, m, k) @ (…, k, n) with broadcast batch dimensions; both operands need at least 2 dimensions.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (…, in) @ weight (out, in)^T + bias (out); bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// X with A X = B for A (…, n, n) and B (…, n, k), broadcast batch dimensions, as torch.linalg.solve;
// an fpi::Error names the batch index of a singular A.
Tensor solve(const Tensor& a, const Tensor& b);

// ---- convolution ---------------------------------------------------------------------------------
using Size2 = std::array<std::int64_t, 2>;  // (height, width)
// The geometry of a 2-D convolution: the one description the ops, the layers (nn::Conv2dConfig) and
// the contraction helpers share. output_padding is conv_transpose2d's alone: the rows and columns its
// output gains at the bottom and right, each smaller than the stride or the dilation.
struct Conv2dOptions {
  Size2 stride{1, 1};
  Size2 padding{0, 0};
  Size2 dilation{1, 1};
  Size2 output_padding{0, 0};
};
// x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out) or undefined; output_padding must be 0.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const Conv2dOptions& options = {});
// x (N, C_in, H, W), weight (C_in, C_out, kH, kW) as in PyTorch; the output size is
// (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        const Conv2dOptions& options = {});

// ---- losses (mean over all elements unless stated) -----------------------------------------------
Tensor mse_loss(const Tensor& input, const Tensor& target);
// Binary cross-entropy on probabilities; each log is clamped at -100 as in PyTorch.
Tensor bce_loss(const Tensor& input, const Tensor& target);
Tensor bce_with_logits_loss(const Tensor& logits, const Tensor& target);
// logits (N, C). target either (N) class indices stored as whole numbers, or (N, C) probabilities.
// Mean over the batch.
Tensor cross_entropy_loss(const Tensor& logits, const Tensor& target);

// ---- in-place updates for optimizers and gradient clipping (src/ops/update.cpp) ---------------------
// Not differentiable and never recorded: like Tensor::fill_ they refuse, while grad mode is on, a
// tensor that requires grad, so an optimizer runs them under NoGrad. Each bumps the storage version of
// every tensor it writes, so a graph that saved one of them fails on backward instead of using new values.
// Writes param, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq (undefined without it). Every
// tensor is contiguous, with the parameter's dtype, device and shape.
void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const Tensor& max_exp_avg_sq, const AdamStep& step);
// Writes param and, with momentum, momentum_buffer (undefined without momentum). Every tensor is
// contiguous, with the parameter's dtype, device and shape.
void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStep& step);
// t *= factor, for any strides.
void scale_(const Tensor& t, double factor);

// ---- operators -----------------------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
inline Tensor operator/(double a, const Tensor& b) { return mul(reciprocal(b), a); }

}  // namespace fpi
