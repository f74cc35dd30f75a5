// The parametric layers: Linear, Conv2d, ConvTranspose2d. Each keeps PyTorch's parameter names and
// layouts (weight (out, in) for Linear, (C_out, C_in, kH, kW) for Conv2d, (C_in, C_out, kH, kW) for
// ConvTranspose2d) and PyTorch's default initialisation, so checkpoints and first losses compare.
#pragma once

#include <cstdint>

#include "fpi/generator.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/ops.hpp"

namespace fpi::nn {

// y = x Wᵀ + b over the last dimension of x.
class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, TensorOptions options = {},
         Generator* generator = nullptr);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  // weight ~ kaiming_uniform_(a = √5), i.e. U(±1/√in_features); bias ~ U(±1/√in_features).
  void reset_parameters(Generator* generator = nullptr);

  std::int64_t in_features() const { return in_features_; }
  std::int64_t out_features() const { return out_features_; }

  Tensor weight;  // (out_features, in_features)
  Tensor bias;    // (out_features), undefined without bias

 private:
  std::int64_t in_features_, out_features_;
};

// A convolution layer's shape: its channels, kernel and bias, and the geometry the op takes (stride,
// padding, dilation; output_padding for ConvTranspose2d alone). Conv2d and ConvTranspose2d share it.
struct Conv2dConfig {
  std::int64_t in_channels = 0;
  std::int64_t out_channels = 0;
  Size2 kernel_size{1, 1};
  Conv2dOptions geometry;
  bool bias = true;
};

// 2-D cross-correlation of an (N, C_in, H, W) input.
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dConfig& config, TensorOptions options = {}, Generator* generator = nullptr);
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride = 1,
         std::int64_t padding = 0, std::int64_t dilation = 1, bool bias = true, TensorOptions options = {},
         Generator* generator = nullptr);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  // weight ~ U(±1/√fan_in), bias ~ U(±1/√fan_in), fan_in = C_in·kH·kW.
  void reset_parameters(Generator* generator = nullptr);
  const Conv2dConfig& config() const { return config_; }

  Tensor weight;  // (C_out, C_in, kH, kW)
  Tensor bias;    // (C_out), undefined without bias

 private:
  Conv2dConfig config_;
};

// The adjoint of Conv2d with the same geometry (the "deconvolution" of decoders).
class ConvTranspose2d : public Module {
 public:
  explicit ConvTranspose2d(const Conv2dConfig& config, TensorOptions options = {}, Generator* generator = nullptr);
  ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                  std::int64_t stride = 1, std::int64_t padding = 0, std::int64_t output_padding = 0,
                  std::int64_t dilation = 1, bool bias = true, TensorOptions options = {},
                  Generator* generator = nullptr);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  // As PyTorch: fan_in is taken from weight.size(1) = C_out, so weight and bias ~ U(±1/√(C_out·kH·kW)).
  void reset_parameters(Generator* generator = nullptr);
  const Conv2dConfig& config() const { return config_; }

  Tensor weight;  // (C_in, C_out, kH, kW)
  Tensor bias;    // (C_out), undefined without bias

 private:
  Conv2dConfig config_;
};

}  // namespace fpi::nn
