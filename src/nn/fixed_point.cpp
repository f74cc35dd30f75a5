// FixedPointLayer and the FPI_NN / FPI_GD maps.
#include "fpi/nn/fixed_point.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "fpi/nn/contraction.hpp"
#include "fpi/nn/layers.hpp"
#include "fpi/nn/sequential.hpp"
#include "fpi/ops.hpp"

namespace fpi::nn {

std::optional<InputSplit> InputSplit::of(const ModulePtr& layer) {
  InputSplit split;
  ModulePtr inner = layer;
  split.bound_ = std::dynamic_pointer_cast<LipschitzBound>(layer);
  if (split.bound_) inner = split.bound_->layer;
  split.linear_ = std::dynamic_pointer_cast<Linear>(inner);
  split.conv_ = std::dynamic_pointer_cast<Conv2d>(inner);
  if (!split.linear_ && !split.conv_) return std::nullopt;
  return split;
}

void InputSplit::set_sizes(std::int64_t z_size, std::int64_t x_size, bool z_first) {
  z_size_ = z_size;
  x_size_ = x_size;
  z_offset_ = z_first ? 0 : x_size;
  x_offset_ = z_first ? z_size : 0;
}

std::int64_t InputSplit::input_size() const {
  return linear_ ? linear_->in_features() : conv_->config().in_channels;
}

Tensor InputSplit::z_part(const Tensor& z) const {
  if (bound_) {
    Shape whole = z.shape();
    whole[linear_ ? whole.size() - 1 : 1] = z_size_ + x_size_;
    bound_->size_vectors(whole);
  }
  return apply(z, z_offset_, z_size_, true);
}

Tensor InputSplit::x_part(const Tensor& x) const { return apply(x, x_offset_, x_size_, false); }

Tensor InputSplit::apply(const Tensor& input, std::int64_t offset, std::int64_t size, bool with_bias) const {
  const Tensor weight = bound_ ? bound_->effective_weight() : linear_ ? linear_->weight : conv_->weight;
  const Tensor& bias = linear_ ? linear_->bias : conv_->bias;
  const Tensor part = narrow(weight, 1, offset, size);
  const Tensor b = with_bias ? bias : Tensor();
  if (linear_) return linear(input, part, b);
  return conv2d(input, part, b, conv_->config().geometry);
}

namespace {

// The split of a Sequential's first module, when `hoist` asks for it and the module splits.
std::optional<InputSplit> leading_split(const ModulePtr& net, std::int64_t dim, bool hoist) {
  const auto sequential = std::dynamic_pointer_cast<Sequential>(net);
  if (!hoist || !sequential || sequential->size() == 0) return std::nullopt;
  std::optional<InputSplit> split = InputSplit::of((*sequential)[0]);
  if (split && !split->splits_features() && dim != 1) split.reset();  // a Conv2d splits its channels
  return split;
}

// Whether `split` fits an input z concatenated along `dim`: a Linear splits the last dimension, which
// the concatenation must be along. The layer's rank is the same at every call, so what prepare()
// finds holds for its solve's steps too. Sizes the split for z when it fits.
bool fit_split(std::optional<InputSplit>& split, const Tensor& z, std::int64_t dim, const char* map) {
  if (!split || (split->splits_features() && dim != z.dim() - 1 && dim != -1)) return false;
  const std::int64_t z_size = z.size(dim);
  FPI_CHECK(z_size < split->input_size(), map, ": z has ", z_size, " entries along dimension ", dim,
            " but the first layer reads ", split->input_size(), " of z and x together");
  split->set_sizes(z_size, split->input_size() - z_size, true);
  return true;
}

// The net's modules after the first, applied to h.
Tensor rest_of(const Module& net, Tensor h) {
  const auto& sequential = static_cast<const Sequential&>(net);
  for (std::size_t i = 1; i < sequential.size(); ++i) h = sequential[i]->forward(h);
  return h;
}

}  // namespace

NetMap::NetMap(ModulePtr net_module, std::int64_t dim, bool hoist) : FixedPointMap("NetMap"), dim_(dim) {
  FPI_CHECK(net_module, "NetMap: the network is null");
  net = register_module("net", std::move(net_module));
  split_ = leading_split(net, dim, hoist);
}

Tensor NetMap::step(const Tensor& x, const Tensor& z) { return net->forward(concat({z, x}, dim_)); }

Tensor NetMap::prepare(const Tensor& z) {
  use_split_ = fit_split(split_, z, dim_, "NetMap");
  return use_split_ ? split_->z_part(z) : z;
}

Tensor NetMap::step_prepared(const Tensor& x, const Tensor& u) {
  if (!use_split_) return step(x, u);
  return rest_of(*net, u + split_->x_part(x));
}

std::string NetMap::extra_repr() const { return detail::concat("dim=", dim_, hoisted() ? ", hoisted" : ""); }

EnergyDescentMap::EnergyDescentMap(ModulePtr net_module, double step, EnergyReduction reduction, std::int64_t dim,
                                   bool hoist)
    : FixedPointMap("EnergyDescentMap"), step_size(step), reduction_(reduction), dim_(dim) {
  FPI_CHECK(net_module, "EnergyDescentMap: the energy network is null");
  FPI_CHECK(step > 0.0, "EnergyDescentMap: step_size must be positive, got ", step);
  net = register_module("net", std::move(net_module));
  split_ = leading_split(net, dim, hoist);
}

Tensor EnergyDescentMap::network_output(const Tensor& x, const Tensor& z) {
  return net->forward(concat({z, x}, dim_));
}

Tensor EnergyDescentMap::reduce(const Tensor& out, const Tensor& x) const {
  FPI_CHECK(out.dim() >= 1 && out.size(0) == x.size(0), "EnergyDescentMap: the energy network returned shape ",
            shape_str(out.shape()), " for a batch of ", x.size(0));
  const Tensor per_sample = out.reshape({out.size(0), -1});
  const Tensor e = reduction_ == EnergyReduction::Sum ? sum(per_sample, {1}) : mean(square(per_sample), {1});
  if (proximal_weight == 0.0) return e;
  FPI_CHECK(proximal_weight > 0.0 && std::isfinite(proximal_weight) && std::isfinite(proximal_center),
            "EnergyDescentMap: proximal_weight must be finite and >= 0 and proximal_center finite, got ",
            proximal_weight, " and ", proximal_center);
  return e + sum(square(x.reshape({x.size(0), -1}) - proximal_center), {1}) * (0.5 * proximal_weight);
}

Tensor EnergyDescentMap::energy(const Tensor& x, const Tensor& z) { return reduce(network_output(x, z), x); }

// ∇ₓE needs a graph even inside the solver's no-grad loop; it is made differentiable (for the
// backward pass's Hessian-vector products) only when the caller is recording.
Tensor EnergyDescentMap::descend(const Tensor& x, const std::function<Tensor(const Tensor&)>& output) {
  const bool differentiable = autograd::grad_enabled();
  Tensor gradient;
  {
    EnableGrad enable;
    const Tensor xv = x.requires_grad() ? x : x.detach().requires_grad_();
    gradient = autograd::grad({sum(reduce(output(xv), xv))}, {xv}, {}, {.create_graph = differentiable})[0];
  }
  return x - gradient * step_size;
}

Tensor EnergyDescentMap::step(const Tensor& x, const Tensor& z) {
  return descend(x, [&](const Tensor& xv) { return network_output(xv, z); });
}

Tensor EnergyDescentMap::prepare(const Tensor& z) {
  use_split_ = fit_split(split_, z, dim_, "EnergyDescentMap");
  return use_split_ ? split_->z_part(z) : z;
}

Tensor EnergyDescentMap::step_prepared(const Tensor& x, const Tensor& u) {
  if (!use_split_) return step(x, u);
  return descend(x, [&](const Tensor& xv) { return rest_of(*net, u + split_->x_part(xv)); });
}

std::string EnergyDescentMap::extra_repr() const {
  std::string text = detail::concat("step_size=", step_size,
                                    ", reduction=", reduction_ == EnergyReduction::Sum ? "sum" : "mean_square",
                                    ", dim=", dim_, hoisted() ? ", hoisted" : "");
  if (proximal_weight != 0.0)
    text += detail::concat(", proximal_weight=", proximal_weight, ", proximal_center=", proximal_center);
  return text;
}

FixedPointLayer::FixedPointLayer(std::shared_ptr<FixedPointMap> map_module, Shape state_shape,
                                 FixedPointOptions options)
    : Module("FixedPointLayer"),
      state_shape_(std::move(state_shape)),
      options_(std::move(options)),
      stats_(std::make_shared<FixedPointStats>()) {
  FPI_CHECK(map_module, "FixedPointLayer '", options_.name, "': the map is null");
  map = register_module("map", std::move(map_module));
  for (auto& [name, module] : map->named_modules())
    if (auto bound = std::dynamic_pointer_cast<LipschitzBound>(module)) bound->set_auto_update(false);
}

Tensor FixedPointLayer::forward(const Tensor& z) {
  FPI_CHECK(z.defined() && z.dim() >= 1, "FixedPointLayer '", options_.name, "': the input must have a batch dimension");
  Shape shape{z.size(0)};
  shape.insert(shape.end(), state_shape_.begin(), state_shape_.end());
  return forward(z, full(shape, initial_value_, z.options()));
}

void FixedPointLayer::set_initial_value(double value) {
  FPI_CHECK(std::isfinite(value), "FixedPointLayer '", options_.name, "': the initial value must be finite, got ",
            value);
  initial_value_ = value;
}

namespace {

using Bounds = std::vector<std::shared_ptr<LipschitzBound>>;

// Has `bounds` apply `weights` from `first` on while it lives.
class BoundWeights {
 public:
  BoundWeights(const Bounds& bounds, const Tensors& weights, std::size_t first) : bounds_(bounds) {
    for (std::size_t i = 0; i < bounds.size(); ++i) bounds[i]->use_weight(weights[first + i]);
  }
  ~BoundWeights() {
    for (const auto& bound : bounds_) bound->use_weight(Tensor());
  }
  BoundWeights(const BoundWeights&) = delete;
  BoundWeights& operator=(const BoundWeights&) = delete;

 private:
  const Bounds& bounds_;
};

}  // namespace

Tensor FixedPointLayer::forward(const Tensor& z, const Tensor& x0) {
  // A bound's power iteration moves its estimate; it must not move while one fixed point is sought.
  // So its weight is fixed for the solve too: computed once here and given to every iteration as an
  // input of the solve, through which the gradient reaches W and σ. A bound whose vectors wait for
  // the first input's size computes its weight in each iteration of this first solve.
  Bounds bounds;
  for (auto& [name, module] : map->named_modules()) {
    if (auto bound = std::dynamic_pointer_cast<LipschitzBound>(module)) {
      if (is_training()) bound->update();
      if (bound->ready()) bounds.push_back(bound);
    }
  }
  // Fresh stats per call, so that a graph still waiting for its backward keeps its own; the count of
  // backward passes carries over because it spaces the gradient checks.
  const std::int64_t backward_passes = stats_->backward_passes;
  stats_ = std::make_shared<FixedPointStats>();
  stats_->backward_passes = backward_passes;
  Tensors weights;
  for (const auto& bound : bounds) weights.push_back(bound->bounded_weight());
  Tensors inputs;
  {
    const BoundWeights fixed(bounds, weights, 0);
    inputs.push_back(map->prepare(z));
  }
  // A bounded layer's raw W reaches the solve only through its bounded weight: given as an input too,
  // the solve's backward would follow the bounded weight's graph to W itself (and free it) and W
  // would get its gradient twice.
  const auto replaced = [&](const Tensor& p) {
    return std::any_of(bounds.begin(), bounds.end(), [&](const auto& b) { return b->wrapped_weight().is_same(p); });
  };
  for (const auto& p : map->parameters())
    if (!replaced(p)) inputs.push_back(p);
  const std::size_t first = inputs.size();
  inputs.insert(inputs.end(), weights.begin(), weights.end());
  const auto step = [m = map, bounds, first](const Tensor& x, const Tensors& in) {
    const BoundWeights fixed(bounds, in, first);
    return m->step_prepared(x, in[0]);
  };
  return fixed_point(step, inputs, 1, x0.detach(), options_, stats_);
}

std::string FixedPointLayer::extra_repr() const {
  return detail::concat("name=", options_.name, ", state_shape=", shape_str(state_shape_));
}

}  // namespace fpi::nn
