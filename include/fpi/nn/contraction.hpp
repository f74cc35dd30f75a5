// Contraction helpers. An FPI layer's map must be a contraction in x (Lipschitz constant below 1) for
// the forward iteration and the backward FPI to converge (the paper's Theorem 1 and Proposition 1).
// For g = net(concat(z, x)) with 1-Lipschitz activations (ReLU, tanh, sigmoid/4…), the product of the
// layers' operator norms bounds that constant; these helpers estimate the norms and keep them bounded.
#pragma once

#include <memory>

#include "fpi/generator.hpp"
#include "fpi/nn/layers.hpp"

namespace fpi::nn {

// Largest singular value of a 2-D matrix, by power iteration on WᵀW.
double spectral_norm(const Tensor& matrix, int iterations = 100, Generator* generator = nullptr);
double spectral_norm(const Linear& layer, int iterations = 100, Generator* generator = nullptr);
// Operator norm of the convolution (without bias) as a linear map on (C_in, height, width) inputs,
// padding included, by power iteration with the convolution and its adjoint.
double spectral_norm(const Conv2d& layer, std::int64_t height, std::int64_t width, int iterations = 100,
                     Generator* generator = nullptr);
// The same for a transposed convolution on (C_in, height, width) inputs; its adjoint is conv2d.
double spectral_norm(const ConvTranspose2d& layer, std::int64_t height, std::int64_t width, int iterations = 100,
                     Generator* generator = nullptr);

// Wraps a Linear, a Conv2d or a ConvTranspose2d and uses the weight W · min(1, k / σ(W)) instead of W,
// so that the layer's Lipschitz constant stays at or below k (spectral normalisation that only ever shrinks).
// σ = uᵀ W v comes from vectors u, v kept as buffers and refined by one power-iteration step per
// update(); the gradient flows through σ as in PyTorch's spectral_norm. Outside an FPI layer, forward()
// in training mode updates first; inside one, the FixedPointLayer updates once per forward call so the
// map stays fixed while its fixed point is sought.
// The buffers "u" and "v" are registered empty and sized when first used, from the weight as it is
// then; so they travel in the state dict and with to() like any buffer, and a state dict that holds
// them sized gives them its shape when loaded into a LipschitzBound that has not run yet.
class LipschitzBound : public Module {
 public:
  LipschitzBound(std::shared_ptr<Linear> layer, double bound);
  // A (transposed) convolution's norm depends on the input size; the vectors are sized on the first input seen
  // (and re-initialised if it changes): v has the shape (1, C_in, H, W) of one input sample.
  LipschitzBound(std::shared_ptr<Conv2d> layer, double bound);
  LipschitzBound(std::shared_ptr<ConvTranspose2d> layer, double bound);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  // One power-iteration step (several on the first call); no gradient.
  void update();
  // Sizes the vectors for inputs of this shape, batch first, as the first forward() would. A caller that
  // applies effective_weight() itself (a map that splits the layer's input) calls this first.
  void size_vectors(const Shape& input_shape) { ensure_vectors(input_shape); }
  // The current estimate of the wrapped weight's norm σ(W).
  double sigma() const;
  // The weight the layer applies: the one given to use_weight() while there is one, else bounded_weight().
  Tensor effective_weight() const;
  // W · min(1, k / σ(W)), computed now (a convolution of one sample for σ and a read of σ to the host).
  Tensor bounded_weight() const;
  // Whether the vectors are sized, so that bounded_weight() can be computed.
  bool ready() const { return vectors_sized(); }
  // Makes the layer apply `weight` (the value of bounded_weight(), or a stand-in for it) until called
  // with an undefined tensor, and not update meanwhile. Within one fixed-point solve the weight does
  // not change, so the FixedPointLayer computes it once and hands it to every iteration, as an input of
  // the solve so that gradients still reach W through σ.
  void use_weight(Tensor weight) { fixed_weight_ = std::move(weight); }
  void set_auto_update(bool on) { auto_update_ = on; }
  // The wrapped layer's own weight W.
  const Tensor& wrapped_weight() const { return weight(); }

  ModulePtr layer;
  double bound;

 private:
  // Registers the wrapped layer (one of linear_, conv_, transposed_, already set) and the empty vectors.
  void attach(ModulePtr wrapped);
  Tensor apply(const Tensor& v, const Tensor& weight) const;
  Tensor apply_adjoint(const Tensor& u, const Tensor& weight) const;
  Tensor sigma_tensor() const;
  void ensure_vectors(const Shape& input_shape);
  bool vectors_sized() const { return v_.numel() > 0; }
  // The shape of one input sample that v stands for.
  Shape sample_shape() const { return Shape(v_.shape().begin() + 1, v_.shape().end()); }

  const Tensor& weight() const;

  std::shared_ptr<Linear> linear_;
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<ConvTranspose2d> transposed_;
  bool auto_update_ = true;
  // The registered buffers; update() gives them new storage (set_data) rather than writing in place,
  // so a graph that saved the previous σ keeps the values it used.
  Tensor u_, v_;
  Tensor fixed_weight_;  // undefined unless use_weight() set one
};

}  // namespace fpi::nn
