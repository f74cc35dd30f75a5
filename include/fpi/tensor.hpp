// Tensor: a cheap handle to a strided view (shape, strides, offset, dtype) of a device Storage, plus
// the autograd metadata that lets it take part in the tape. Copying a Tensor copies the handle: both
// copies see the same data and the same gradient, as in PyTorch.
//
// The class is the tensor layer's (src/tensor.cpp), except the methods marked "ops layer" below: they
// record on the tape, so they are shorthands for the ops in fpi/ops.hpp, defined in
// src/ops/tensor_methods.cpp (x.reshape(s) is fpi::reshape(x, s)).
#pragma once

#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <vector>

#include "fpi/core.hpp"
#include "fpi/storage.hpp"

namespace fpi {

namespace autograd {
class Node;
}
class Generator;

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  std::int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;  // null for leaves
  std::shared_ptr<TensorImpl> grad;
  std::weak_ptr<autograd::Node> grad_accumulator;  // leaves only; created on first use in a graph
};

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = kCPU;
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

  // Metadata.
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  std::int64_t offset() const { return checked().offset; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t size(std::int64_t d) const;
  std::int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_contiguous() const;
  TensorOptions options() const { return {dtype(), device(), false}; }

  // Data access. data<T>() checks the dtype and that the tensor lives on the CPU.
  void* raw_data() const;
  template <class T>
  T* data() const;
  double item() const;
  template <class T = double>
  std::vector<T> to_vector() const;

  // Copies and conversions (ops layer; recorded on the tape). detach() makes no copy and is not recorded.
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor detach() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // In-place writes. They are not recorded; they refuse a leaf that requires grad while grad mode is
  // on (as PyTorch does) and bump the storage version so a stale saved tensor is detected.
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);
  // Makes this handle's TensorImpl show `source`'s data (storage, shape, strides, offset, dtype), so
  // every handle copied from this one sees the change; the gradient is dropped and requires_grad kept.
  // Only for leaves, outside grad mode: nn::Module::to() converts parameters users already hold with it.
  void set_data(const Tensor& source) const;

  // Views and shape changes (ops layer; views share storage).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor transpose(std::int64_t dim0, std::int64_t dim1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;

  // Reductions as methods, for readability at call sites (ops layer).
  Tensor sum() const;
  Tensor sum(const std::vector<std::int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<std::int64_t>& dims, bool keepdim = false) const;

  // Autograd.
  bool requires_grad() const { return checked().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return checked().grad_fn; }
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  // Drops the accumulated gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() const;
  // Accumulates d(this)/d(leaf) into every leaf's .grad. A non-scalar tensor needs `grad_output`.
  // The graph's saved tensors are freed unless `retain_graph` (which defaults to `create_graph`).
  // Ops layer: autograd::backward({*this}, …).
  void backward(const Tensor& grad_output = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;

 private:
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

// PyTorch's repr style; defined in src/tensor_print.cpp because it names the grad_fn.
std::ostream& operator<<(std::ostream& out, const Tensor& t);

// Factories.
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor scalar_tensor(double value, TensorOptions options = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {});
Tensor arange(double end, TensorOptions options = {});
// Uniform on [low, high); `generator` defaults to the global one (see manual_seed).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator* generator = nullptr);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);
Tensor eye(std::int64_t n, TensorOptions options = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);

// Builds a tensor from host values; the shape defaults to 1-D of the vector's length.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options);
template <class T>
Tensor from_vector(const std::vector<T>& values, TensorOptions options = {}) {
  return from_vector(values, Shape{static_cast<std::int64_t>(values.size())}, options);
}
Tensor tensor(std::initializer_list<double> values, TensorOptions options = {});

// |a - b| <= atol + rtol * |b| elementwise, with equal shapes; NaNs are never close.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace fpi
