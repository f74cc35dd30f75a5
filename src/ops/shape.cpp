// Shape ops: views that share storage (reshape of contiguous data, transpose, permute, slice, expand,
// squeeze), and the ops that copy (concat, contiguous, clone, dtype and device conversion). Each view
// op checks its arguments, computes the view's geometry and records itself; the handle is built by the
// tensor layer (src/raw_tensor.hpp). The Tensor methods of the same names forward here
// (src/ops/tensor_methods.cpp).
#include <algorithm>

#include "ops/op_util.hpp"

namespace fpi {

using ops::backend_of;
using ops::raw_view;

namespace {

Shape infer_shape(const Shape& requested, std::int64_t numel, const Shape& from) {
  Shape shape = requested;
  std::int64_t known = 1, infer_at = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FPI_CHECK(infer_at < 0, "reshape: only one dimension can be -1, got ", shape_str(requested));
      infer_at = static_cast<std::int64_t>(i);
    } else {
      FPI_CHECK(shape[i] >= 0, "reshape: invalid size ", shape[i], " in ", shape_str(requested));
      FPI_CHECK(!__builtin_mul_overflow(known, shape[i], &known), "reshape: shape ", shape_str(requested),
                " is invalid for ", shape_str(from), " (", numel, " elements)");
    }
  }
  if (infer_at >= 0) {
    FPI_CHECK(known > 0 && numel % known == 0, "reshape: shape ", shape_str(requested), " is invalid for ",
              shape_str(from), " (", numel, " elements)");
    shape[infer_at] = numel / known;
  }
  FPI_CHECK(shape_numel(shape) == numel, "reshape: shape ", shape_str(requested), " is invalid for ",
            shape_str(from), " (", numel, " elements)");
  return shape;
}

// A view op: `make` builds the view of `a`, `adjoint` maps the output gradient back to a's shape.
template <class Make, class Adjoint>
Tensor view_op(const char* name, const Tensor& a, Make make, Adjoint adjoint) {
  ops::check_defined(a, name, "the input");
  Tensor y = make(a);
  autograd::record(name, {a}, y, {}, [adjoint](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{adjoint(g)};
  });
  return y;
}

}  // namespace

Tensor reshape(const Tensor& a, const Shape& requested) {
  ops::check_defined(a, "reshape", "the input");
  const Shape shape = infer_shape(requested, a.numel(), a.shape());
  const Tensor source = a.contiguous();
  const Shape from = a.shape();
  return view_op(
      "reshape", source, [&](const Tensor& s) { return raw_view(s, shape, contiguous_strides(shape), s.offset()); },
      [from](const Tensor& g) { return g.reshape(from); });
}

Tensor view(const Tensor& a, const Shape& shape) {
  ops::check_defined(a, "view", "the input");
  FPI_CHECK(a.is_contiguous(), "view: the tensor of shape ", shape_str(a.shape()), " with strides ",
            shape_str(a.strides()), " is not contiguous; use reshape() (which copies) instead");
  return reshape(a, shape);
}

Tensor flatten(const Tensor& a, std::int64_t start_dim, std::int64_t end_dim) {
  ops::check_defined(a, "flatten", "the input");
  if (a.dim() == 0) return reshape(a, {1});
  const auto s = wrap_dim(start_dim, a.dim(), "flatten"), e = wrap_dim(end_dim, a.dim(), "flatten");
  FPI_CHECK(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  const Shape& shape = a.shape();
  Shape out(shape.begin(), shape.begin() + s);
  std::int64_t merged = 1;
  for (auto i = s; i <= e; ++i) merged *= shape[i];
  out.push_back(merged);
  out.insert(out.end(), shape.begin() + e + 1, shape.end());
  return reshape(a, out);
}

Tensor permute(const Tensor& a, const std::vector<std::int64_t>& dims) {
  ops::check_defined(a, "permute", "the input");
  FPI_CHECK(static_cast<std::int64_t>(dims.size()) == a.dim(), "permute: got ", dims.size(),
            " dimensions for a tensor of shape ", shape_str(a.shape()));
  std::vector<std::int64_t> inverse(dims.size(), -1);
  Shape shape(dims.size()), strides(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto d = wrap_dim(dims[i], a.dim(), "permute");
    FPI_CHECK(inverse[d] < 0, "permute: dimension ", dims[i], " appears twice");
    inverse[d] = static_cast<std::int64_t>(i);
    shape[i] = a.shape()[d];
    strides[i] = a.strides()[d];
  }
  return view_op(
      "permute", a, [&](const Tensor& s) { return raw_view(s, shape, strides, s.offset()); },
      [inverse](const Tensor& g) { return permute(g, inverse); });
}

Tensor transpose(const Tensor& a, std::int64_t dim0, std::int64_t dim1) {
  ops::check_defined(a, "transpose", "the input");
  std::vector<std::int64_t> dims(a.dim());
  for (std::int64_t i = 0; i < a.dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(dim0, a.dim(), "transpose")], dims[wrap_dim(dim1, a.dim(), "transpose")]);
  return permute(a, dims);
}

// Python slicing semantics: negative bounds count from the end, out-of-range bounds are clipped.
Tensor slice(const Tensor& a, std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step) {
  ops::check_defined(a, "slice", "the input");
  FPI_CHECK(step > 0, "slice: step must be positive, got ", step);
  const auto d = wrap_dim(dim, a.dim(), "slice");
  const std::int64_t n = a.shape()[d];
  const auto clip = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clip(start);
  end = std::max(clip(end), start);
  Shape shape = a.shape(), strides = a.strides();
  // Not (end - start + step - 1) / step, which overflows for a step near the int64 limit.
  shape[d] = end > start ? (end - start - 1) / step + 1 : 0;
  // A stride is only followed between elements, and a step that leaves one element would overflow it.
  if (shape[d] > 1) strides[d] *= step;
  const std::int64_t offset = a.offset() + start * a.strides()[d];
  const Shape from = a.shape();
  Tensor y = raw_view(a, shape, strides, offset);
  autograd::record_part_view(
      "slice", a, y,
      [=](const Tensor& g, const autograd::BackwardContext&) {
        return Tensors{slice_scatter_zeros(g, from, d, start, end, step)};
      },
      [=](const Tensor& whole) { return slice(whole, d, start, end, step); });
  return y;
}

Tensor narrow(const Tensor& a, std::int64_t dim, std::int64_t start, std::int64_t length) {
  ops::check_defined(a, "narrow", "the input");
  const auto d = wrap_dim(dim, a.dim(), "narrow");
  // Compared as length <= size - start, since start + length may overflow.
  FPI_CHECK(start >= 0 && length >= 0 && start <= a.shape()[d] && length <= a.shape()[d] - start, "narrow: start ",
            start, " and length ", length, " are out of range for dimension ", dim, " of size ", a.shape()[d]);
  return slice(a, d, start, start + length);
}

Tensor select(const Tensor& a, std::int64_t dim, std::int64_t index) {
  ops::check_defined(a, "select", "the input");
  const auto d = wrap_dim(dim, a.dim(), "select");
  const std::int64_t n = a.shape()[d];
  FPI_CHECK(index >= -n && index < n, "select: index ", index, " is out of range for dimension ", dim, " of size ", n);
  const std::int64_t i = index < 0 ? index + n : index;
  return squeeze(slice(a, d, i, i + 1), d);
}

// The adjoint of slice: zeros everywhere except the sliced positions, which receive `a`.
Tensor slice_scatter_zeros(const Tensor& a, const Shape& shape, std::int64_t dim, std::int64_t start,
                           std::int64_t end, std::int64_t step) {
  Tensor y = zeros(shape, a.options());
  Shape strides = y.strides();
  Shape part = shape;
  part[dim] = (end - start + step - 1) / step;
  FPI_CHECK(part == a.shape(), "slice_scatter_zeros: a slice of shape ", shape_str(a.shape()),
            " does not fit positions of shape ", shape_str(part));
  const std::int64_t offset = start * strides[dim];
  strides[dim] *= step;
  backend_of(y).copy(raw_view(y, part, strides, offset), a);
  autograd::record("slice_scatter", {a}, y, {}, [=](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{slice(g, dim, start, end, step)};
  });
  return y;
}

Tensor expand(const Tensor& a, const Shape& requested) {
  ops::check_defined(a, "expand", "the input");
  FPI_CHECK(requested.size() >= a.shape().size(), "expand: cannot expand shape ", shape_str(a.shape()), " to ",
            shape_str(requested));
  Shape shape = requested;
  const std::size_t lead = shape.size() - a.shape().size();
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::int64_t have = i < lead ? 1 : a.shape()[i - lead];
    if (shape[i] == -1) {
      FPI_CHECK(i >= lead, "expand: -1 is not allowed for the new leading dimension ", i);
      shape[i] = have;
    }
    FPI_CHECK(have == shape[i] || have == 1, "expand: cannot expand shape ", shape_str(a.shape()), " to ",
              shape_str(requested), " (dimension ", i, ")");
  }
  const Shape from = a.shape();
  return view_op(
      "expand", a, [&](const Tensor& s) {
        const Tensor v = ops::broadcast_view(s, shape);
        return raw_view(v, v.shape(), v.strides(), v.offset());
      },
      [from](const Tensor& g) { return sum_to(g, from); });
}

Tensor unsqueeze(const Tensor& a, std::int64_t dim) {
  ops::check_defined(a, "unsqueeze", "the input");
  const auto d = wrap_dim(dim, a.dim() + 1, "unsqueeze");
  Shape shape = a.shape(), strides = a.strides();
  const std::int64_t stride = d < a.dim() ? a.strides()[d] * a.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  const Shape from = a.shape();
  return view_op(
      "unsqueeze", a, [&](const Tensor& s) { return raw_view(s, shape, strides, s.offset()); },
      [from](const Tensor& g) { return g.reshape(from); });
}

Tensor squeeze(const Tensor& a, std::int64_t dim) {
  ops::check_defined(a, "squeeze", "the input");
  if (a.dim() == 0) return view_op("squeeze", a, [](const Tensor& s) { return s.detach(); }, [](const Tensor& g) { return g; });
  const auto d = wrap_dim(dim, a.dim(), "squeeze");
  FPI_CHECK(a.shape()[d] == 1, "squeeze: dimension ", dim, " of shape ", shape_str(a.shape()), " has size ",
            a.shape()[d], ", not 1");
  Shape shape = a.shape(), strides = a.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  const Shape from = a.shape();
  return view_op(
      "squeeze", a, [&](const Tensor& s) { return raw_view(s, shape, strides, s.offset()); },
      [from](const Tensor& g) { return g.reshape(from); });
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t dim) {
  FPI_CHECK(!tensors.empty(), "concat: no tensors given");
  const Tensor& first = tensors[0];
  ops::check_defined(first, "concat", "tensors[0]");
  const auto d = wrap_dim(dim, first.dim(), "concat");
  Shape shape = first.shape();
  shape[d] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    ops::check_compatible(first, t, "concat");
    FPI_CHECK(t.dim() == first.dim(), "concat: tensors[", i, "] has shape ", shape_str(t.shape()),
              " but tensors[0] has shape ", shape_str(first.shape()));
    for (std::int64_t k = 0; k < t.dim(); ++k)
      FPI_CHECK(k == d || t.shape()[k] == first.shape()[k], "concat: tensors[", i, "] has shape ",
                shape_str(t.shape()), " but tensors[0] has shape ", shape_str(first.shape()),
                "; they may differ only in dimension ", d);
    shape[d] += t.shape()[d];
  }
  Tensor y = ops::empty_as(shape, first);
  std::vector<std::int64_t> bounds{0};
  for (const Tensor& t : tensors) {
    Shape part = shape;
    part[d] = t.shape()[d];
    backend_of(y).copy(raw_view(y, part, y.strides(), bounds.back() * y.strides()[d]), t);
    bounds.push_back(bounds.back() + t.shape()[d]);
  }
  autograd::record("concat", std::span<const Tensor>(tensors), y, {},
                   [d, bounds](const Tensor& g, const autograd::BackwardContext& ctx) {
                     Tensors grads(bounds.size() - 1);
                     for (std::size_t i = 0; i + 1 < bounds.size(); ++i)
                       if (ctx.needs_grad(i)) grads[i] = slice(g, d, bounds[i], bounds[i + 1]);
                     return grads;
                   });
  return y;
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t dim) {
  FPI_CHECK(!tensors.empty(), "stack: no tensors given");
  const auto d = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    FPI_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensors[", i, "] has shape ",
              shape_str(tensors[i].shape()), " but tensors[0] has shape ", shape_str(tensors[0].shape()));
    parts.push_back(tensors[i].unsqueeze(d));
  }
  return concat(parts, d);
}

// ---- copies and conversions ----------------------------------------------------------------------

namespace {
// A copy into a new tensor with the given dtype and device; the gradient converts back.
Tensor copy_op(const char* name, const Tensor& a, DType dtype, Device device) {
  ops::check_defined(a, name, "the input");
  Tensor y = detail::raw_copy(a, dtype, device);
  const DType from_dtype = a.dtype();
  const Device from_device = a.device();
  autograd::record(name, {a}, y, {}, [from_dtype, from_device](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{g.to(from_dtype).to(from_device)};
  });
  return y;
}
}  // namespace

Tensor contiguous(const Tensor& a) {
  ops::check_defined(a, "contiguous", "the input");
  return a.is_contiguous() ? a : copy_op("contiguous", a, a.dtype(), a.device());
}

Tensor clone(const Tensor& a) {
  ops::check_defined(a, "clone", "the input");
  return copy_op("clone", a, a.dtype(), a.device());
}

Tensor to_dtype(const Tensor& a, DType dtype) {
  ops::check_defined(a, "to_dtype", "the input");
  return dtype == a.dtype() ? a : copy_op("to_dtype", a, dtype, a.device());
}

Tensor to_device(const Tensor& a, Device device) {
  ops::check_defined(a, "to_device", "the input");
  return device == a.device() ? a : copy_op("to_device", a, a.dtype(), device);
}

}  // namespace fpi
