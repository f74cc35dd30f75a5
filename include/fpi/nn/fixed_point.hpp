// The FPI layer as a module, and the paper's two kinds of map (Section 3.5):
//   FPI_NN  NetMap:            g(x, z) = net(concat(z, x))
//   FPI_GD  EnergyDescentMap:  g(x, z) = x − γ ∇ₓE(x, z; θ)
// A FixedPointLayer can sit anywhere in a network, several to a network; its output is the fixed
// point x̂ of its map for the input z (see fpi/fixed_point.hpp for the solver and the backward pass).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "fpi/fixed_point.hpp"
#include "fpi/nn/module.hpp"

namespace fpi::nn {

// One step g(x, z; θ) of a fixed-point iteration; θ are this module's parameters.
// A map may split g(x, z) = h(x, u(z)) so that the part of g that depends on z alone is computed once
// per solve instead of once per iteration: FixedPointLayer records u = prepare(z) on the tape as
// ordinary ops (so gradients reach z and θ through it) and iterates step_prepared(x, u). Without a
// split, u is z.
class FixedPointMap : public Module {
 public:
  using Module::Module;
  virtual Tensor step(const Tensor& x, const Tensor& z) = 0;
  virtual Tensor prepare(const Tensor& z) { return z; }
  // Must equal step(x, z) for u = prepare(z).
  virtual Tensor step_prepared(const Tensor& x, const Tensor& u) { return step(x, u); }
};

class Linear;
class Conv2d;
class LipschitzBound;

// A Linear or a Conv2d (or a LipschitzBound of one) whose input is concat(z, x) along its input
// dimension (features, channels): W·[z; x] + b = (W_z·z + b) + W_x·x, so W_z·z + b can be computed
// once per solve and each iteration needs W_x·x alone. W_z and W_x are narrowed views of the layer's
// one weight (the bounded weight when bounded), so names, checkpoints and the optimizer see no change.
class InputSplit {
 public:
  // A split of `layer`, or nothing when it is of another type.
  static std::optional<InputSplit> of(const ModulePtr& layer);
  // Where z and x lie in the layer's input: z_size then x_size, or x first.
  void set_sizes(std::int64_t z_size, std::int64_t x_size, bool z_first);
  std::int64_t input_size() const;  // the layer's whole input along the split dimension
  bool splits_features() const { return linear_ != nullptr; }

  // W_z·z + b. A bound's vectors are sized for the whole input first, as an unsplit call would.
  Tensor z_part(const Tensor& z) const;
  // W_x·x.
  Tensor x_part(const Tensor& x) const;

 private:
  Tensor apply(const Tensor& input, std::int64_t offset, std::int64_t size, bool with_bias) const;

  std::shared_ptr<Linear> linear_;
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<LipschitzBound> bound_;
  std::int64_t z_offset_ = 0, z_size_ = 0, x_offset_ = 0, x_size_ = 0;
};

// g(x, z) = net(concat(z, x)) with the concatenation along `dim` (1: features for (N, F) states,
// channels for (N, C, H, W) images). net must map back to the state's shape.
// With `hoist` (the default), when net is a Sequential whose first module is a Linear or a Conv2d (or
// a LipschitzBound of one), that layer's z part is computed once per solve (InputSplit, prepare()).
class NetMap : public FixedPointMap {
 public:
  explicit NetMap(ModulePtr net, std::int64_t dim = 1, bool hoist = true);
  Tensor step(const Tensor& x, const Tensor& z) override;
  Tensor prepare(const Tensor& z) override;
  Tensor step_prepared(const Tensor& x, const Tensor& u) override;
  std::string extra_repr() const override;
  // Whether the first layer's z part is computed once per solve.
  virtual bool hoisted() const { return split_.has_value(); }

  ModulePtr net;

 private:
  std::int64_t dim_;
  std::optional<InputSplit> split_;
  bool use_split_ = false;  // whether the last prepare() split (the split fits the input's shape)
};

// How the energy network's output becomes one energy per sample.
enum class EnergyReduction {
  Sum,         // E = Σ net(concat(z, x)) over each sample's elements
  MeanSquare,  // E = mean(net(concat(z, x))²) per sample (the paper's Bibtex FPI_GD)
};

// g(x, z) = x − γ ∇ₓE(x, z), E = reduction(net(concat(z, x))). The gradient is taken with autograd
// inside g, so g is a gradient-descent step on any differentiable energy; its backward pass uses
// Hessian-vector products. The map is a contraction when γ is below 2 / (the largest curvature of E).
// With `hoist` (the default) a Sequential net whose first module is a Linear or a Conv2d (or a
// LipschitzBound of one) has that layer's z part computed once per solve, as NetMap does: each
// iteration computes W_x·x and ∇ₓE alone.
class EnergyDescentMap : public FixedPointMap {
 public:
  EnergyDescentMap(ModulePtr net, double step_size, EnergyReduction reduction = EnergyReduction::MeanSquare,
                   std::int64_t dim = 1, bool hoist = true);
  // One energy per sample, shape (N).
  Tensor energy(const Tensor& x, const Tensor& z);
  Tensor step(const Tensor& x, const Tensor& z) override;
  Tensor prepare(const Tensor& z) override;
  Tensor step_prepared(const Tensor& x, const Tensor& u) override;
  std::string extra_repr() const override;
  // Whether the first layer's z part is computed once per solve.
  virtual bool hoisted() const { return split_.has_value(); }

  ModulePtr net;
  double step_size;
  // A proximal term, off at 0: E + (μ/2)‖x − proximal_center‖² per sample, μ = proximal_weight. It
  // makes ∇²E ⪰ μI, so the fixed point is unique and I − ∂g/∂x = γ∇²E is invertible even where the
  // network's energy is flat (an FPI_GD over relu units that switch off). It changes the model: the
  // fixed point is no longer a minimiser of the network's energy alone.
  double proximal_weight = 0.0;
  double proximal_center = 0.0;

 protected:
  // The energy network's output for (x, z), by default net(concat(z, x)). A map that hands x and z to
  // its network another way (a config's sub-graph reads them by name) overrides this alone, so the
  // gradient step and its reduction exist once.
  virtual Tensor network_output(const Tensor& x, const Tensor& z);
  // x − γ∇ₓE(x) for E the reduction of output(x): the step a map that hoists its own way (a config's
  // sub-graph) takes from its prepared u.
  Tensor descend(const Tensor& x, const std::function<Tensor(const Tensor&)>& output);

 private:
  Tensor reduce(const Tensor& out, const Tensor& x) const;

  EnergyReduction reduction_;
  std::int64_t dim_;
  std::optional<InputSplit> split_;
  bool use_split_ = false;  // whether the last prepare() split (the split fits the input's shape)
};

// x̂ = FixedPoint(z): iterates the map from a constant state of shape (N, state_shape...), zeros
// unless set_initial_value says otherwise, to its fixed point.
class FixedPointLayer : public Module {
 public:
  // `state_shape` is one sample's state (e.g. {159} or {1, 40, 40}); the batch comes from z.
  FixedPointLayer(std::shared_ptr<FixedPointMap> map, Shape state_shape, FixedPointOptions options = {});

  Tensor forward(const Tensor& z) override;
  // Starts from x0 (N, state_shape...) instead of the constant state. x0 receives no gradient.
  Tensor forward(const Tensor& z, const Tensor& x0);
  std::string extra_repr() const override;

  // Diagnostics of the last call: the forward solve at once, the backward solve once it has run.
  const FixedPointStats& stats() const { return *stats_; }
  // Writable for whoever restores a run: the count of backward passes spaces the gradient checks.
  FixedPointStats& stats() { return *stats_; }
  FixedPointOptions& options() { return options_; }
  const Shape& state_shape() const { return state_shape_; }
  // The value of every element of the starting state of forward(z). Where g has many fixed points
  // (FPI_GD on a flat energy) the start decides which one the solve finds: sparse labels are better
  // started at their prior's logit than at 0, where every probability is 1/2.
  double initial_value() const { return initial_value_; }
  void set_initial_value(double value);

  std::shared_ptr<FixedPointMap> map;

 private:
  Shape state_shape_;
  double initial_value_ = 0.0;
  FixedPointOptions options_;
  std::shared_ptr<FixedPointStats> stats_;
};

}  // namespace fpi::nn
