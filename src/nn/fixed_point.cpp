// FixedPointLayer and the FPI_NN / FPI_GD maps.
#include "fpi/nn/fixed_point.hpp"

#include <cmath>

#include "fpi/nn/contraction.hpp"
#include "fpi/ops.hpp"

namespace fpi::nn {

NetMap::NetMap(ModulePtr net_module, std::int64_t dim) : FixedPointMap("NetMap"), dim_(dim) {
  FPI_CHECK(net_module, "NetMap: the network is null");
  net = register_module("net", std::move(net_module));
}

Tensor NetMap::step(const Tensor& x, const Tensor& z) { return net->forward(concat({z, x}, dim_)); }

std::string NetMap::extra_repr() const { return detail::concat("dim=", dim_); }

EnergyDescentMap::EnergyDescentMap(ModulePtr net_module, double step, EnergyReduction reduction, std::int64_t dim)
    : FixedPointMap("EnergyDescentMap"), step_size(step), reduction_(reduction), dim_(dim) {
  FPI_CHECK(net_module, "EnergyDescentMap: the energy network is null");
  FPI_CHECK(step > 0.0, "EnergyDescentMap: step_size must be positive, got ", step);
  net = register_module("net", std::move(net_module));
}

Tensor EnergyDescentMap::network_output(const Tensor& x, const Tensor& z) {
  return net->forward(concat({z, x}, dim_));
}

Tensor EnergyDescentMap::energy(const Tensor& x, const Tensor& z) {
  const Tensor out = network_output(x, z);
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

// ∇ₓE needs a graph even inside the solver's no-grad loop; it is made differentiable (for the
// backward pass's Hessian-vector products) only when the caller is recording.
Tensor EnergyDescentMap::step(const Tensor& x, const Tensor& z) {
  const bool differentiable = autograd::grad_enabled();
  Tensor gradient;
  {
    EnableGrad enable;
    const Tensor xv = x.requires_grad() ? x : x.detach().requires_grad_();
    gradient = autograd::grad({sum(energy(xv, z))}, {xv}, {}, {.create_graph = differentiable})[0];
  }
  return x - gradient * step_size;
}

std::string EnergyDescentMap::extra_repr() const {
  std::string text = detail::concat("step_size=", step_size,
                                    ", reduction=", reduction_ == EnergyReduction::Sum ? "sum" : "mean_square",
                                    ", dim=", dim_);
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

Tensor FixedPointLayer::forward(const Tensor& z, const Tensor& x0) {
  // A bound's power iteration moves its estimate; it must not move while one fixed point is sought.
  if (is_training()) {
    for (auto& [name, module] : map->named_modules())
      if (auto bound = std::dynamic_pointer_cast<LipschitzBound>(module)) bound->update();
  }
  // Fresh stats per call, so that a graph still waiting for its backward keeps its own; the count of
  // backward passes carries over because it spaces the gradient checks.
  const std::int64_t backward_passes = stats_->backward_passes;
  stats_ = std::make_shared<FixedPointStats>();
  stats_->backward_passes = backward_passes;
  Tensors inputs{map->prepare(z)};
  for (const auto& p : map->parameters()) inputs.push_back(p);
  const auto step = [m = map](const Tensor& x, const Tensors& in) { return m->step_prepared(x, in[0]); };
  return fixed_point(step, inputs, 1, x0.detach(), options_, stats_);
}

std::string FixedPointLayer::extra_repr() const {
  return detail::concat("name=", options_.name, ", state_shape=", shape_str(state_shape_));
}

}  // namespace fpi::nn
