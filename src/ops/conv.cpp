// Convolution as three bilinear ops that are each other's adjoints:
//   conv       y  = conv(x, w)
//   conv_dx    dx = convᵀ_w(gy)      (gradient w.r.t. the input; also transposed convolution)
//   conv_dw    dw = conv_dw(x, gy)   (gradient w.r.t. the weight)
// Every backward rule is one of the three, so the set is closed under differentiation and conv
// nets have second derivatives (Hessian-vector products for the gradient-descent FPI layer).
#include <algorithm>
#include <limits>

#include "ops/op_util.hpp"

namespace fpi {

using ops::backend_of;

namespace {

// Options come from callers (a padding of 2^62, say), so the sizes are computed in 128 bits, where no
// sum or product of int64 sizes overflows, and must land in [0, INT64_MAX]. 0 means the input is smaller
// than the dilated kernel's reach: truncating division would round a negative room up to one row.
using Wide = __int128;

std::int64_t checked_size(Wide size, const char* op, const char* what) {
  FPI_CHECK(size <= std::numeric_limits<std::int64_t>::max(), op, ": the ", what,
            " is more than a 64-bit size can hold");
  return static_cast<std::int64_t>(std::max<Wide>(size, 0));
}

std::int64_t conv_out_size(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t pad, std::int64_t dil) {
  const Wide room = Wide{in} + Wide{2} * pad - Wide{dil} * (k - 1) - 1;
  return checked_size(room < 0 ? 0 : room / stride + 1, "conv2d", "output size");
}

void check_options(const Conv2dOptions& o, const char* op) {
  FPI_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, op, ": stride must be at least 1, got (", o.stride[0], ", ",
            o.stride[1], ")");
  FPI_CHECK(o.padding[0] >= 0 && o.padding[1] >= 0, op, ": padding must be non-negative, got (", o.padding[0], ", ",
            o.padding[1], ")");
  FPI_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1, op, ": dilation must be at least 1, got (", o.dilation[0],
            ", ", o.dilation[1], ")");
}

// The geometry of conv(x, w) for x of `in_shape` (N, C_in, H, W) and w of `w_shape` (C_out, C_in, kH, kW).
backend::Conv2dDesc describe(const Shape& in_shape, const Shape& w_shape, const Conv2dOptions& o) {
  backend::Conv2dDesc d;
  d.batch = in_shape[0];
  d.in_channels = in_shape[1];
  d.in_h = in_shape[2];
  d.in_w = in_shape[3];
  d.out_channels = w_shape[0];
  d.kernel_h = w_shape[2];
  d.kernel_w = w_shape[3];
  d.stride_h = o.stride[0];
  d.stride_w = o.stride[1];
  d.pad_h = o.padding[0];
  d.pad_w = o.padding[1];
  d.dilation_h = o.dilation[0];
  d.dilation_w = o.dilation[1];
  d.out_h = conv_out_size(d.in_h, d.kernel_h, d.stride_h, d.pad_h, d.dilation_h);
  d.out_w = conv_out_size(d.in_w, d.kernel_w, d.stride_w, d.pad_w, d.dilation_w);
  return d;
}

Shape output_shape(const backend::Conv2dDesc& d) { return {d.batch, d.out_channels, d.out_h, d.out_w}; }

Tensor conv(const Tensor& x, const Tensor& w, const Conv2dOptions& o);
Tensor conv_dx(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dOptions& o);
Tensor conv_dw(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dOptions& o);

// y = conv(x, w);  dx = conv_dx(g, w),  dw = conv_dw(x, g)
Tensor conv(const Tensor& x, const Tensor& w, const Conv2dOptions& o) {
  const auto d = describe(x.shape(), w.shape(), o);
  Tensor y = ops::empty_as(output_shape(d), x);
  backend_of(x).conv2d_forward(x.detach().contiguous(), w.detach().contiguous(), y, d);
  autograd::record("conv2d", {x, w}, y, {x, w}, [o](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &x = ctx.saved(0), &w = ctx.saved(1);
    return Tensors{ctx.needs_grad(0) ? conv_dx(g, w, x.shape(), o) : Tensor(),
                   ctx.needs_grad(1) ? conv_dw(x, g, w.shape(), o) : Tensor()};
  });
  return y;
}

// dx = conv_dx(gy, w), linear in gy and in w;  with incoming gg (x-shaped):
//   d/dgy = conv(gg, w),  d/dw = conv_dw(gg, gy)
Tensor conv_dx(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dOptions& o) {
  const auto d = describe(x_shape, w.shape(), o);
  Tensor dx = ops::empty_as(x_shape, gy);
  backend_of(gy).conv2d_backward_data(gy.detach().contiguous(), w.detach().contiguous(), dx, d);
  autograd::record("conv2d_input_grad", {gy, w}, dx, {gy, w}, [o](const Tensor& gg, const autograd::BackwardContext& ctx) {
    const Tensor &gy = ctx.saved(0), &w = ctx.saved(1);
    return Tensors{ctx.needs_grad(0) ? conv(gg, w, o) : Tensor(),
                   ctx.needs_grad(1) ? conv_dw(gg, gy, w.shape(), o) : Tensor()};
  });
  return dx;
}

// dw = conv_dw(x, gy), linear in x and in gy;  with incoming gg (w-shaped):
//   d/dx = conv_dx(gy, gg),  d/dgy = conv(x, gg)
Tensor conv_dw(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dOptions& o) {
  const auto d = describe(x.shape(), w_shape, o);
  Tensor dw = ops::empty_as(w_shape, x);
  backend_of(x).conv2d_backward_filter(x.detach().contiguous(), gy.detach().contiguous(), dw, d);
  autograd::record("conv2d_weight_grad", {x, gy}, dw, {x, gy}, [o](const Tensor& gg, const autograd::BackwardContext& ctx) {
    const Tensor &x = ctx.saved(0), &gy = ctx.saved(1);
    return Tensors{ctx.needs_grad(0) ? conv_dx(gy, gg, x.shape(), o) : Tensor(),
                   ctx.needs_grad(1) ? conv(x, gg, o) : Tensor()};
  });
  return dw;
}

Tensor add_channel_bias(const Tensor& y, const Tensor& bias, const char* op) {
  if (!bias.defined()) return y;
  ops::check_compatible(y, bias, op);
  FPI_CHECK(bias.dim() == 1 && bias.size(0) == y.size(1), op, ": bias of shape ", shape_str(bias.shape()),
            " does not match ", y.size(1), " output channels");
  return y + bias.reshape({1, -1, 1, 1});
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  ops::check_compatible(x, weight, "conv2d");
  check_options(options, "conv2d");
  FPI_CHECK(options.output_padding == (Size2{0, 0}), "conv2d: output_padding (", options.output_padding[0], ", ",
            options.output_padding[1], ") is conv_transpose2d's; a convolution has none");
  FPI_CHECK(x.dim() == 4, "conv2d: input must be 4-D (N, C, H, W), got ", shape_str(x.shape()));
  FPI_CHECK(weight.dim() == 4, "conv2d: weight must be 4-D (C_out, C_in, kH, kW), got ", shape_str(weight.shape()));
  FPI_CHECK(x.size(1) == weight.size(1), "conv2d: input of shape ", shape_str(x.shape()), " has ", x.size(1),
            " channels but weight of shape ", shape_str(weight.shape()), " expects ", weight.size(1));
  const auto d = describe(x.shape(), weight.shape(), options);
  FPI_CHECK(d.out_h > 0 && d.out_w > 0, "conv2d: input of shape ", shape_str(x.shape()), " is too small for kernel ",
            shape_str(weight.shape()), " with padding (", options.padding[0], ", ", options.padding[1],
            ") and dilation (", options.dilation[0], ", ", options.dilation[1], ")");
  return add_channel_bias(conv(x, weight, options), bias, "conv2d");
}

// The transposed convolution of x with w (C_in, C_out, kH, kW) is the input-gradient of the
// convolution that maps C_out channels to C_in with that same w.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  ops::check_compatible(x, weight, "conv_transpose2d");
  check_options(options, "conv_transpose2d");
  FPI_CHECK(x.dim() == 4, "conv_transpose2d: input must be 4-D (N, C, H, W), got ", shape_str(x.shape()));
  FPI_CHECK(weight.dim() == 4, "conv_transpose2d: weight must be 4-D (C_in, C_out, kH, kW), got ",
            shape_str(weight.shape()));
  FPI_CHECK(x.size(1) == weight.size(0), "conv_transpose2d: input of shape ", shape_str(x.shape()), " has ",
            x.size(1), " channels but weight of shape ", shape_str(weight.shape()), " expects ", weight.size(0));
  const Size2& extra = options.output_padding;
  FPI_CHECK(extra[0] >= 0 && extra[1] >= 0 && extra[0] < std::max(options.stride[0], options.dilation[0]) &&
                extra[1] < std::max(options.stride[1], options.dilation[1]),
            "conv_transpose2d: output_padding (", extra[0], ", ", extra[1], ") must be smaller than stride or dilation");
  const auto out_size = [&](int d) {
    return checked_size(Wide{x.size(2 + d) - 1} * options.stride[d] - Wide{2} * options.padding[d] +
                            Wide{options.dilation[d]} * (weight.size(2 + d) - 1) + extra[d] + 1,
                        "conv_transpose2d", "output size");
  };
  const std::int64_t out_h = out_size(0), out_w = out_size(1);
  FPI_CHECK(out_h > 0 && out_w > 0, "conv_transpose2d: input of shape ", shape_str(x.shape()),
            " gives an empty output with padding (", options.padding[0], ", ", options.padding[1], ")");
  const Shape out_shape{x.size(0), weight.size(1), out_h, out_w};
  // The convolution that maps out_shape back has a natural output of x's size plus floor(output_padding
  // / stride) rows: more than x has when the stride is 1 and the dilation allows output_padding > 0.
  // PyTorch's transposed convolution treats the missing rows as zeros, so x is embedded in zeros of
  // the natural size and every convolution keeps its natural geometry (which cuDNN requires).
  const auto d = describe(out_shape, {weight.size(1), weight.size(0), weight.size(2), weight.size(3)}, options);
  Tensor source = x;
  if (d.out_h > x.size(2)) source = slice_scatter_zeros(source, {x.size(0), x.size(1), d.out_h, x.size(3)}, 2, 0, x.size(2), 1);
  if (d.out_w > x.size(3)) source = slice_scatter_zeros(source, {x.size(0), x.size(1), d.out_h, d.out_w}, 3, 0, x.size(3), 1);
  return add_channel_bias(conv_dx(source, weight, out_shape, options), bias, "conv_transpose2d");
}

}  // namespace fpi
