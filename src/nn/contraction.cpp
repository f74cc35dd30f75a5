// Power-iteration norm estimates and the LipschitzBound wrapper.
#include "fpi/nn/contraction.hpp"

#include "fpi/ops.hpp"

namespace fpi::nn {
namespace {

Tensor normalized(const Tensor& t) { return t / (norm(t).item() + 1e-30); }

// The adjoint of conv2d maps back to exactly (H, W): the output padding makes up what the stride rounded off.
Tensor conv_adjoint(const Tensor& u, const Tensor& weight, const Conv2dConfig& c, std::int64_t height,
                    std::int64_t width) {
  Conv2dOptions adjoint = c.geometry;
  const Size2 target{height, width};
  for (int d = 0; d < 2; ++d) {
    const std::int64_t rounded = (u.size(2 + d) - 1) * adjoint.stride[d] - 2 * adjoint.padding[d] +
                                 adjoint.dilation[d] * (c.kernel_size[d] - 1) + 1;
    adjoint.output_padding[d] = target[d] - rounded;
  }
  return conv_transpose2d(u, weight, Tensor(), adjoint);
}

// The adjoint of conv_transpose2d is conv2d with the same weight and geometry; the output padding only
// added rows and columns that conv2d's stride skips, so it maps back to the input's size.
Tensor transposed_adjoint(const Tensor& u, const Tensor& weight, const Conv2dConfig& c) {
  Conv2dOptions adjoint = c.geometry;
  adjoint.output_padding = {0, 0};
  return conv2d(u, weight, Tensor(), adjoint);
}

constexpr int kFirstUpdateSteps = 30;
constexpr std::uint64_t kVectorSeed = 0x11b5;

}  // namespace

double spectral_norm(const Tensor& matrix, int iterations, Generator* generator) {
  FPI_CHECK(matrix.dim() == 2, "spectral_norm: expected a 2-D matrix, got shape ", shape_str(matrix.shape()));
  NoGrad no_grad;
  Generator local(kVectorSeed);
  const Tensor w = matrix.detach();
  Tensor v = normalized(randn({w.size(1), 1}, w.options(), generator ? generator : &local));
  for (int i = 0; i < iterations; ++i) v = normalized(matmul(w.t(), matmul(w, v)));
  return norm(matmul(w, v)).item();
}

double spectral_norm(const Linear& layer, int iterations, Generator* generator) {
  return spectral_norm(layer.weight, iterations, generator);
}

double spectral_norm(const Conv2d& layer, std::int64_t height, std::int64_t width, int iterations, Generator* generator) {
  NoGrad no_grad;
  Generator local(kVectorSeed);
  const Conv2dConfig& c = layer.config();
  const Tensor w = layer.weight.detach();
  Tensor v = normalized(randn({1, c.in_channels, height, width}, w.options(), generator ? generator : &local));
  for (int i = 0; i < iterations; ++i) v = normalized(conv_adjoint(conv2d(v, w, Tensor(), c.geometry), w, c, height, width));
  return norm(conv2d(v, w, Tensor(), c.geometry)).item();
}

double spectral_norm(const ConvTranspose2d& layer, std::int64_t height, std::int64_t width, int iterations,
                     Generator* generator) {
  NoGrad no_grad;
  Generator local(kVectorSeed);
  const Conv2dConfig& c = layer.config();
  const Tensor w = layer.weight.detach();
  Tensor v = normalized(randn({1, c.in_channels, height, width}, w.options(), generator ? generator : &local));
  for (int i = 0; i < iterations; ++i)
    v = normalized(transposed_adjoint(conv_transpose2d(v, w, Tensor(), c.geometry), w, c));
  return norm(conv_transpose2d(v, w, Tensor(), c.geometry)).item();
}

LipschitzBound::LipschitzBound(std::shared_ptr<Linear> wrapped, double k)
    : Module("LipschitzBound"), bound(k), linear_(std::move(wrapped)) {
  attach(linear_);
}

LipschitzBound::LipschitzBound(std::shared_ptr<Conv2d> wrapped, double k)
    : Module("LipschitzBound"), bound(k), conv_(std::move(wrapped)) {
  attach(conv_);
}

LipschitzBound::LipschitzBound(std::shared_ptr<ConvTranspose2d> wrapped, double k)
    : Module("LipschitzBound"), bound(k), transposed_(std::move(wrapped)) {
  attach(transposed_);
}

void LipschitzBound::attach(ModulePtr wrapped) {
  FPI_CHECK(wrapped, "LipschitzBound: the layer is null");
  FPI_CHECK(bound > 0.0, "LipschitzBound: the bound must be positive, got ", bound);
  layer = register_module("layer", std::move(wrapped));
  u_ = register_buffer("u", empty({0}, weight().options()));
  v_ = register_buffer("v", empty({0}, weight().options()));
}

const Tensor& LipschitzBound::weight() const {
  return linear_ ? linear_->weight : conv_ ? conv_->weight : transposed_->weight;
}

Tensor LipschitzBound::apply(const Tensor& v, const Tensor& weight) const {
  if (linear_) return linear(v, weight);
  if (conv_) return conv2d(v, weight, Tensor(), conv_->config().geometry);
  return conv_transpose2d(v, weight, Tensor(), transposed_->config().geometry);
}

Tensor LipschitzBound::apply_adjoint(const Tensor& u, const Tensor& weight) const {
  if (linear_) return matmul(u, weight);
  if (conv_) return conv_adjoint(u, weight, conv_->config(), v_.size(2), v_.size(3));
  return transposed_adjoint(u, weight, transposed_->config());
}

void LipschitzBound::ensure_vectors(const Shape& input_shape) {
  const Tensor& w = weight();
  const Shape sample = linear_ ? Shape{w.size(1)} : Shape(input_shape.begin() + 1, input_shape.end());
  if (vectors_sized() && sample == sample_shape() && v_.dtype() == w.dtype() && v_.device() == w.device()) return;
  NoGrad no_grad;
  Generator gen(kVectorSeed);
  Shape shape{1};
  shape.insert(shape.end(), sample.begin(), sample.end());
  v_.set_data(normalized(randn(shape, w.options(), &gen)));
  u_.set_data(normalized(apply(v_, w.detach())));
  for (int i = 1; i < kFirstUpdateSteps; ++i) update();
}

void LipschitzBound::update() {
  if (!vectors_sized()) {
    if (!linear_) return;  // a convolution's vectors wait for the first input's size
    ensure_vectors({});
  }
  NoGrad no_grad;
  const Tensor w = weight().detach();
  v_.set_data(normalized(apply_adjoint(u_, w)));
  u_.set_data(normalized(apply(v_, w)));
}

// σ reads detached handles: they keep this step's storage when update() gives the buffers new data.
Tensor LipschitzBound::sigma_tensor() const {
  const Tensor& w = weight();
  return sum(u_.detach() * apply(v_.detach(), w));
}

double LipschitzBound::sigma() const {
  FPI_CHECK(vectors_sized(), "LipschitzBound: sigma() before the first forward or update()");
  NoGrad no_grad;
  return sigma_tensor().item();
}

Tensor LipschitzBound::effective_weight() const { return fixed_weight_.defined() ? fixed_weight_ : bounded_weight(); }

Tensor LipschitzBound::bounded_weight() const {
  const Tensor& w = weight();
  FPI_CHECK(vectors_sized(), "LipschitzBound: effective_weight() before the first forward or update()");
  const Tensor s = sigma_tensor();
  if (s.item() <= bound) return w;
  return w * (reciprocal(s) * bound);
}

Tensor LipschitzBound::forward(const Tensor& x) {
  ensure_vectors(x.shape());
  if (auto_update_ && !fixed_weight_.defined() && is_training() && autograd::grad_enabled()) update();
  const Tensor w = effective_weight();
  if (linear_) return linear(x, w, linear_->bias);
  if (conv_) return conv2d(x, w, conv_->bias, conv_->config().geometry);
  return conv_transpose2d(x, w, transposed_->bias, transposed_->config().geometry);
}

std::string LipschitzBound::extra_repr() const { return detail::concat("bound=", bound); }

}  // namespace fpi::nn
