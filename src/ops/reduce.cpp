// Reductions: sum, mean, max/min, and the compositions built on them (logsumexp, softmax).
#include <algorithm>

#include "ops/op_util.hpp"

namespace fpi {

using backend::ReduceOp;
using ops::backend_of;

namespace {

// The reduced dimensions as flags; an empty list means every dimension.
std::vector<bool> reduced_dims(const Tensor& a, const std::vector<std::int64_t>& dims, const char* op) {
  std::vector<bool> flags(a.dim(), dims.empty());
  for (auto d : dims) {
    const auto w = wrap_dim(d, a.dim(), op);
    FPI_CHECK(!flags[w] || dims.empty(), op, ": dimension ", d, " appears twice");
    flags[w] = true;
  }
  return flags;
}

Shape kept_shape(const Shape& shape, const std::vector<bool>& flags) {
  Shape out = shape;
  for (std::size_t i = 0; i < flags.size(); ++i)
    if (flags[i]) out[i] = 1;
  return out;
}

Shape squeezed_shape(const Shape& shape, const std::vector<bool>& flags) {
  Shape out;
  for (std::size_t i = 0; i < flags.size(); ++i)
    if (!flags[i]) out.push_back(shape[i]);
  return out;
}

Tensor reduce_forward(ReduceOp op, const Tensor& a, const std::vector<bool>& flags, bool keepdim, const char* name) {
  ops::check_defined(a, name, "the input");
  Tensor kept = ops::empty_as(kept_shape(a.shape(), flags), a);
  backend_of(a).reduce(op, kept, a);
  if (keepdim) return kept;
  const Shape shape = squeezed_shape(a.shape(), flags);
  return ops::raw_view(kept, shape, contiguous_strides(shape), 0);
}

// Max and min share their backward: the gradient goes to the elements equal to the result, split
// evenly among ties.
Tensor extremum(ReduceOp op, const Tensor& a, const std::vector<bool>& flags, bool keepdim, const char* name) {
  for (std::size_t i = 0; i < flags.size(); ++i)
    FPI_CHECK(!flags[i] || a.shape()[i] > 0, name, ": cannot reduce over the empty dimension ", i, " of shape ",
              shape_str(a.shape()));
  Tensor y = reduce_forward(op, a, flags, keepdim, name);
  const Shape kept = kept_shape(a.shape(), flags);
  autograd::record(name, {a}, y, {a}, [kept](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor& a = ctx.saved(0);
    const Tensor hit = eq(a, ctx.output().detach().reshape(kept));
    const Tensor count = sum_to(hit, kept);
    return Tensors{g.reshape(kept) / count * hit};
  }, autograd::SaveOutput::Yes);
  return y;
}

}  // namespace

// y = Σ_dims a;  da = expand(g)
Tensor sum(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim) {
  const auto flags = reduced_dims(a, dims, "sum");
  Tensor y = reduce_forward(ReduceOp::Sum, a, flags, keepdim, "sum");
  const Shape shape = a.shape(), kept = kept_shape(a.shape(), flags);
  autograd::record("sum", {a}, y, {}, [shape, kept](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{g.reshape(kept).expand(shape)};
  });
  return y;
}

Tensor sum(const Tensor& a) { return sum(a, {}, false); }

Tensor mean(const Tensor& a, const std::vector<std::int64_t>& dims, bool keepdim) {
  const auto flags = reduced_dims(a, dims, "mean");
  std::int64_t count = 1;
  for (std::size_t i = 0; i < flags.size(); ++i)
    if (flags[i]) count *= a.shape()[i];
  FPI_CHECK(count > 0, "mean: the reduced dimensions of shape ", shape_str(a.shape()), " are empty");
  return sum(a, dims, keepdim) * (1.0 / static_cast<double>(count));
}

Tensor mean(const Tensor& a) { return mean(a, {}, false); }

Tensor max(const Tensor& a) { return extremum(ReduceOp::Max, a, std::vector<bool>(a.dim(), true), false, "max"); }
Tensor min(const Tensor& a) { return extremum(ReduceOp::Min, a, std::vector<bool>(a.dim(), true), false, "min"); }

Tensor max(const Tensor& a, std::int64_t dim, bool keepdim) {
  return extremum(ReduceOp::Max, a, reduced_dims(a, {dim}, "max"), keepdim, "max");
}

Tensor min(const Tensor& a, std::int64_t dim, bool keepdim) {
  return extremum(ReduceOp::Min, a, reduced_dims(a, {dim}, "min"), keepdim, "min");
}

// log Σ exp(a) with the maximum taken out first, so large inputs do not overflow.
Tensor logsumexp(const Tensor& a, std::int64_t dim, bool keepdim) {
  const Tensor shift = max(a, dim, true).detach();
  Tensor y = log(sum(exp(a - shift), {dim}, true)) + shift;
  return keepdim ? y : y.squeeze(dim);
}

Tensor log_softmax(const Tensor& a, std::int64_t dim) { return a - logsumexp(a, dim, true); }
Tensor softmax(const Tensor& a, std::int64_t dim) { return exp(log_softmax(a, dim)); }

// The adjoint of expand: sums leading dimensions away and size-1 dimensions of `shape` down.
Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const std::size_t lead = a.shape().size() - shape.size();
  FPI_CHECK(a.shape().size() >= shape.size(), "sum_to: cannot sum shape ", shape_str(a.shape()), " to ",
            shape_str(shape));
  std::vector<std::int64_t> dims;
  for (std::size_t i = 0; i < a.shape().size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<std::int64_t>(i));
    } else if (shape[i - lead] == 1 && a.shape()[i] != 1) {
      dims.push_back(static_cast<std::int64_t>(i));
    } else {
      FPI_CHECK(shape[i - lead] == a.shape()[i], "sum_to: cannot sum shape ", shape_str(a.shape()), " to ",
                shape_str(shape));
    }
  }
  if (dims.empty()) return a.reshape(shape);
  return sum(a, dims, true).reshape(shape);
}

Tensor norm(const Tensor& a) { return sqrt(sum(square(a))); }

}  // namespace fpi
