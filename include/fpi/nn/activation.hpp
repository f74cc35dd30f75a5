// Parameter-free modules: activations, Identity, Flatten and Dropout. They wrap the ops of
// fpi/ops.hpp so they can sit in a Sequential and print like their PyTorch counterparts.
#pragma once

#include <cstdint>

#include "fpi/nn/module.hpp"

namespace fpi::nn {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& x) override;
};

class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& x) override;
};

// log(1 + exp(x)), evaluated without overflow (fpi has no beta or threshold parameters).
class Softplus : public Module {
 public:
  Softplus() : Module("Softplus") {}
  Tensor forward(const Tensor& x) override;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// Merges dimensions start_dim..end_dim into one; the default keeps the batch dimension.
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1)
      : Module("Flatten"), start_dim_(start_dim), end_dim_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  std::int64_t start_dim_, end_dim_;
};

// In training mode zeroes each element with probability p and scales the rest by 1 / (1 - p), drawing
// from the global generator (seed it with fpi::manual_seed); in evaluation mode the identity.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p() const { return p_; }

 private:
  double p_;
};

}  // namespace fpi::nn
