// The tensor layer: the handle's metadata, host access, in-place writes and factories. It stands on the
// backend (for fills and copies) and knows nothing of ops or the tape. The methods that record on the
// tape (views, reductions, copies, backward) are the ops layer's: src/ops/tensor_methods.cpp; the
// unrecorded views they are built from are src/raw_tensor.hpp; printing is src/tensor_print.cpp.
#include "fpi/tensor.hpp"

#include <algorithm>
#include <cmath>

#include "backend/backend.hpp"
#include "fpi/generator.hpp"
#include "fpi/grad_mode.hpp"
#include "raw_tensor.hpp"

namespace fpi {

const TensorImpl& Tensor::checked() const {
  FPI_CHECK(impl_, "use of an undefined tensor (default-constructed, or a gradient that was never computed)");
  return *impl_;
}

std::int64_t Tensor::size(std::int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  // No element, no layout to break: strides of empty tensors (from max(size, 1) or a slice) vary.
  if (numel() == 0) return true;
  std::int64_t expected = 1;
  const auto& sh = shape();
  const auto& st = strides();
  for (std::size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const auto& impl = checked();
  // Storage of zero bytes has no address, and null plus an offset is undefined.
  if (!impl.storage->data()) return nullptr;
  return static_cast<char*>(impl.storage->data()) + impl.offset * static_cast<std::int64_t>(dtype_size(impl.dtype));
}

template <class T>
T* Tensor::data() const {
  constexpr DType expected = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  FPI_CHECK(dtype() == expected, "data<", dtype_name(expected), ">() called on a ", dtype_name(dtype()), " tensor");
  FPI_CHECK(device().is_cpu(), "data() needs a CPU tensor, but this one is on ", device().str(),
            "; copy it with .to(fpi::kCPU) first");
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
  constexpr DType wanted = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  Tensor host = *this;
  if (!host.device().is_cpu()) host = detail::raw_copy(host, host.dtype(), kCPU);
  if (host.dtype() != wanted || !host.is_contiguous()) host = detail::raw_copy(host, wanted, kCPU);
  const T* p = host.data<T>();
  return std::vector<T>(p, p + host.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;

double Tensor::item() const {
  FPI_CHECK(numel() == 1, "item(): the tensor has ", numel(), " elements (shape ", shape_str(shape()),
            "), but item() needs exactly one");
  return to_vector<double>()[0];
}

Tensor Tensor::detach() const {
  const auto& impl = checked();
  return detail::raw_view(*this, impl.shape, impl.strides, impl.offset);
}

namespace {
void check_writable(const Tensor& t, const char* op) {
  FPI_CHECK(!(t.requires_grad() && t.is_leaf() && autograd::grad_enabled()), op,
            ": a leaf tensor that requires grad cannot be modified in place while grad mode is on; "
            "do it inside an fpi::NoGrad scope");
  FPI_CHECK(!t.requires_grad() || !autograd::grad_enabled(), op,
            ": in-place writes are not recorded on the tape, so they cannot be applied to a tensor that is part of "
            "a graph; use the out-of-place op or detach() first");
}
}  // namespace

Tensor& Tensor::fill_(double value) {
  check_writable(*this, "fill_");
  backend::backend_of(*this).fill(*this, value);
  impl_->storage->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_writable(*this, "copy_");
  FPI_CHECK(src.defined(), "copy_: the source is an undefined tensor");
  const Shape target = broadcast_shapes(shape(), src.shape(), "copy_");
  FPI_CHECK(target == shape(), "copy_: source of shape ", shape_str(src.shape()), " cannot be broadcast to ",
            shape_str(shape()));
  const Device dev = device().is_cpu() ? src.device() : device();
  backend::backend_for(dev).copy(*this, detail::broadcast_view(src, shape()));
  impl_->storage->bump_version();
  return *this;
}

void Tensor::set_data(const Tensor& source) const {
  checked();
  FPI_CHECK(source.defined(), "set_data: the source is an undefined tensor");
  FPI_CHECK(is_leaf(), "set_data: only a leaf tensor can take new data, not the output of a recorded op");
  FPI_CHECK(!autograd::grad_enabled() || !requires_grad(), "set_data: a tensor that requires grad can take new "
            "data only inside an fpi::NoGrad scope");
  impl_->storage = source.impl()->storage;
  impl_->shape = source.shape();
  impl_->strides = source.strides();
  impl_->offset = source.offset();
  impl_->dtype = source.dtype();
  impl_->grad.reset();
}

Tensor& Tensor::requires_grad_(bool on) {
  FPI_CHECK(is_leaf() || on, "requires_grad_(false) on a non-leaf tensor; use detach() instead");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked().grad ? Tensor(impl_->grad) : Tensor(); }

void Tensor::set_grad(const Tensor& grad) const {
  checked();
  FPI_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: gradient of shape ", shape_str(grad.shape()),
            " for a tensor of shape ", shape_str(shape()));
  impl_->grad = grad.defined() ? grad.impl_ptr() : nullptr;
}

void Tensor::zero_grad() const { checked(), impl_->grad.reset(); }

// ---- factories ------------------------------------------------------------------------------------

Tensor empty(const Shape& shape, TensorOptions options) {
  for (auto d : shape) FPI_CHECK(d >= 0, "empty: negative dimension in shape ", shape_str(shape));
  std::int64_t bytes = 0;
  FPI_CHECK(!__builtin_mul_overflow(shape_numel(shape), static_cast<std::int64_t>(dtype_size(options.dtype)), &bytes),
            "empty: shape ", shape_str(shape), " of ", dtype_name(options.dtype), " needs more bytes than 64 bits hold");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<std::size_t>(bytes), options.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  impl->requires_grad = options.requires_grad;
  return Tensor(std::move(impl));
}

Tensor full(const Shape& shape, double value, TensorOptions options) {
  const bool requires_grad = options.requires_grad;
  options.requires_grad = false;
  Tensor t = empty(shape, options);
  backend::backend_of(t).fill(t, value);
  return t.requires_grad_(requires_grad);
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.options()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.options()); }

namespace {

// A host tensor's values in `options` (dtype, device, requires_grad).
Tensor converted(Tensor host, TensorOptions options) {
  if (host.dtype() != options.dtype) host = detail::raw_copy(host, options.dtype, kCPU);
  if (!options.device.is_cpu()) host = detail::raw_copy(host, options.dtype, options.device);
  return host.requires_grad_(options.requires_grad);
}

// A tensor of `shape` whose element i (in row-major order) is value(i), computed in float64 on the
// host. The host buffer comes from the allocator, so a size that cannot be had is an fpi::Error.
template <class Value>
Tensor computed(const Shape& shape, TensorOptions options, Value value) {
  Tensor host = empty(shape, {.dtype = kFloat64});
  double* p = host.data<double>();
  for (std::int64_t i = 0, n = host.numel(); i < n; ++i) p[i] = value(i);
  return converted(host, options);
}

}  // namespace

Tensor eye(std::int64_t n, TensorOptions options) {
  FPI_CHECK(n >= 0, "eye: negative size ", n);
  return computed({n, n}, options, [n](std::int64_t i) { return i % (n + 1) == 0 ? 1.0 : 0.0; });
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  FPI_CHECK(shape_numel(shape) == static_cast<std::int64_t>(values.size()), "from_vector: ", values.size(),
            " values do not fill shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(values.size() * sizeof(T), kCPU);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  std::copy(values.begin(), values.end(), static_cast<T*>(impl->storage->data()));
  return converted(Tensor(std::move(impl)), options);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<double>&, const Shape&, TensorOptions);

Tensor tensor(std::initializer_list<double> values, TensorOptions options) {
  return from_vector(std::vector<double>(values), options);
}

Tensor arange(double start, double end, double step, TensorOptions options) {
  FPI_CHECK(step != 0.0, "arange: step must be non-zero");
  FPI_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange: start ", start, ", end ", end,
            " and step ", step, " must be finite");
  const double count = std::max(0.0, std::ceil((end - start) / step));
  // Checked before the conversion, which is undefined for a value an int64 cannot hold.
  FPI_CHECK(count < 0x1p63, "arange: [", start, ", ", end, ") in steps of ", step, " has ", count,
            " elements, more than a 64-bit count can hold");
  return computed({static_cast<std::int64_t>(count)}, options,
                  [=](std::int64_t i) { return start + static_cast<double>(i) * step; });
}

Tensor arange(double end, TensorOptions options) { return arange(0.0, end, 1.0, options); }

namespace {
template <class Draw>
Tensor random_tensor(const Shape& shape, TensorOptions options, Draw draw) {
  return computed(shape, options, [&](std::int64_t) { return draw(); });
}
}  // namespace

Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator* generator) {
  Generator& gen = generator ? *generator : default_generator();
  return random_tensor(shape, options, [&] { return low + (high - low) * gen.uniform(); });
}

Tensor rand(const Shape& shape, TensorOptions options, Generator* generator) {
  return uniform(shape, 0.0, 1.0, options, generator);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* generator) {
  Generator& gen = generator ? *generator : default_generator();
  return random_tensor(shape, options, [&] { return gen.normal(); });
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  FPI_CHECK(a.shape() == b.shape(), "allclose: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
            " differ");
  const auto x = a.to_vector<double>();
  const auto y = b.to_vector<double>();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(std::abs(x[i] - y[i]) <= atol + rtol * std::abs(y[i]))) return false;
  return true;
}

}  // namespace fpi
