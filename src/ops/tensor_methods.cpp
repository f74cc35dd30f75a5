// Tensor's differentiable methods, defined with the ops layer they belong to. Each is a one-line
// forward, so the op's checks, forward and backward live in one place (shape.cpp, reduce.cpp) and
// x.reshape(s) and fpi::reshape(x, s) cannot drift apart; backward() forwards to the tape.
#include "fpi/ops.hpp"

namespace fpi {

Tensor Tensor::contiguous() const { return fpi::contiguous(*this); }
Tensor Tensor::clone() const { return fpi::clone(*this); }
Tensor Tensor::to(DType dtype) const { return to_dtype(*this, dtype); }
Tensor Tensor::to(Device device) const { return to_device(*this, device); }

Tensor Tensor::reshape(const Shape& shape) const { return fpi::reshape(*this, shape); }
Tensor Tensor::view(const Shape& shape) const { return fpi::view(*this, shape); }
Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  return fpi::flatten(*this, start_dim, end_dim);
}
Tensor Tensor::transpose(std::int64_t dim0, std::int64_t dim1) const { return fpi::transpose(*this, dim0, dim1); }
Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const { return fpi::permute(*this, dims); }
Tensor Tensor::slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step) const {
  return fpi::slice(*this, dim, start, end, step);
}
Tensor Tensor::narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const {
  return fpi::narrow(*this, dim, start, length);
}
Tensor Tensor::select(std::int64_t dim, std::int64_t index) const { return fpi::select(*this, dim, index); }
Tensor Tensor::expand(const Shape& shape) const { return fpi::expand(*this, shape); }
Tensor Tensor::unsqueeze(std::int64_t dim) const { return fpi::unsqueeze(*this, dim); }
Tensor Tensor::squeeze(std::int64_t dim) const { return fpi::squeeze(*this, dim); }

Tensor Tensor::sum() const { return fpi::sum(*this); }
Tensor Tensor::sum(const std::vector<std::int64_t>& dims, bool keepdim) const { return fpi::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return fpi::mean(*this); }
Tensor Tensor::mean(const std::vector<std::int64_t>& dims, bool keepdim) const {
  return fpi::mean(*this, dims, keepdim);
}

void Tensor::backward(const Tensor& grad_output, std::optional<bool> retain_graph, bool create_graph) const {
  autograd::backward({*this}, {grad_output}, retain_graph, create_graph);
}

}  // namespace fpi
