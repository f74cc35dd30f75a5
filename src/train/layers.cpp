// The built-in layer types of a config's model section: each factory reads its keys, checks its input
// shapes with messages that name the layer's place, and builds the module (docs: models/README.md, the
// format's "Layer objects"). Shapes are per sample; -1 marks a size known only when a batch arrives
// (whole test images), so a factory computes what it can and checks the rest when it runs.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

#include "fpi/nn/activation.hpp"
#include "fpi/nn/contraction.hpp"
#include "fpi/nn/fixed_point.hpp"
#include "fpi/nn/layers.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/registry.hpp"

namespace fpi::train {
namespace {

constexpr std::int64_t kMaxSize = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMaxCount = std::numeric_limits<int>::max();
constexpr double kMaxNumber = std::numeric_limits<double>::max();
constexpr double kUnbounded = std::numeric_limits<double>::infinity();

template <class... Parts>
[[noreturn]] void config_fail(const Parts&... parts) {
  throw ConfigError(detail::concat(parts...));
}

// Two per-sample shapes that may be the same once the unknown sizes are known.
bool compatible(const Shape& a, const Shape& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return false;
  return true;
}

// The known sizes of two compatible shapes.
Shape merge(const Shape& a, const Shape& b) {
  Shape out = a;
  for (std::size_t i = 0; i < out.size(); ++i)
    if (out[i] < 0) out[i] = b[i];
  return out;
}

// A number the short way a summary line wants it: "1e-4" rather than "0.0001", "200" rather than "2e2".
std::string short_number(double value) {
  const std::string plain = format_number(value);
  char buffer[40];
  for (int precision = 0; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*e", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  const std::string text = buffer;
  const std::size_t e = text.find('e');
  const bool negative = text[e + 1] == '-';
  std::string digits = text.substr(e + 2);
  digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size() - 1));
  const std::string scientific = text.substr(0, e) + "e" + (negative ? "-" : "") + digits;
  return scientific.size() < plain.size() ? scientific : plain;
}

// ---- dense, conv2d, conv_transpose2d --------------------------------------------------------------

// "lipschitz": k wraps the layer in nn::LipschitzBound, which keeps its operator norm at or below k (a
// map's layers bounded so that g is a contraction in x).
template <class Layer>
nn::ModulePtr maybe_bounded(std::shared_ptr<Layer> layer, JsonObject& args) {
  if (!args.has("lipschitz")) return layer;
  return std::make_shared<nn::LipschitzBound>(std::move(layer), args.positive_number("lipschitz"));
}

BuiltLayer build_dense(JsonObject& args, const LayerContext& context) {
  const std::int64_t units = args.integer("units", 1, kMaxSize);
  const bool bias = args.boolean("bias", true);
  const Shape& in = context.input_shapes[0];
  if (in.empty() || in.back() < 0)
    config_fail(context.path, ": dense needs a known last input size, got shape ", batch_shape_str(in));
  Shape out = in;
  out.back() = units;
  auto layer = std::make_shared<nn::Linear>(in.back(), units, bias, context.options, context.generator);
  return {maybe_bounded(std::move(layer), args), out, {}, {}};
}

// The keys conv2d and conv_transpose2d share, read and checked against a (C, H, W) input.
nn::Conv2dConfig read_conv(JsonObject& args, const LayerContext& context, const char* type, bool transposed) {
  nn::Conv2dConfig config;
  config.out_channels = args.integer("channels", 1, kMaxSize);
  config.kernel_size = args.pair("kernel_size", 1, kMaxSize);
  config.geometry.stride = args.pair("stride", 1, kMaxSize, Size2{1, 1});
  config.geometry.padding = args.pair("padding", 0, kMaxSize, Size2{0, 0});
  config.geometry.dilation = args.pair("dilation", 1, kMaxSize, Size2{1, 1});
  if (transposed) {
    config.geometry.output_padding = args.pair("output_padding", 0, kMaxSize, Size2{0, 0});
    for (int d = 0; d < 2; ++d)
      if (config.geometry.output_padding[d] >= std::max(config.geometry.stride[d], config.geometry.dilation[d]))
        config_fail(args.key_path("output_padding"), ": expected values smaller than the stride or the dilation (",
                    config.geometry.stride[d], " or ", config.geometry.dilation[d], "), got ",
                    config.geometry.output_padding[d]);
  }
  config.bias = args.boolean("bias", true);
  const Shape& in = context.input_shapes[0];
  if (in.size() != 3)
    config_fail(context.path, ": ", type, " needs a (C, H, W) input, got shape ", batch_shape_str(in));
  if (in[0] < 0) config_fail(context.path, ": ", type, " needs a known channel count, got shape ", batch_shape_str(in));
  config.in_channels = in[0];
  return config;
}

// The output's spatial size for an input size `size` (-1: unknown) in dimension d, 0 when there is no
// room. The sizes come from a config unchecked above, so the arithmetic is done wide.
std::int64_t conv_size(const nn::Conv2dConfig& c, std::int64_t size, int d, bool transposed, const std::string& path) {
  if (size < 0) return -1;
  using Wide = __int128;
  const auto& g = c.geometry;
  const Wide span = Wide{g.dilation[d]} * (c.kernel_size[d] - 1);
  Wide out = 0;
  if (transposed) {
    out = Wide{size - 1} * g.stride[d] - Wide{2} * g.padding[d] + span + g.output_padding[d] + 1;
  } else {
    const Wide room = Wide{size} + Wide{2} * g.padding[d] - span - 1;
    out = room < 0 ? 0 : room / g.stride[d] + 1;
  }
  if (out > std::numeric_limits<std::int32_t>::max()) config_fail(path, ": the output would be too large to hold");
  return out < 0 ? 0 : static_cast<std::int64_t>(out);
}

BuiltLayer build_conv(JsonObject& args, const LayerContext& context, bool transposed) {
  const char* type = transposed ? "conv_transpose2d" : "conv2d";
  const nn::Conv2dConfig config = read_conv(args, context, type, transposed);
  const Shape& in = context.input_shapes[0];
  const Shape out{config.out_channels, conv_size(config, in[1], 0, transposed, context.path),
                  conv_size(config, in[2], 1, transposed, context.path)};
  if ((out[1] != -1 && out[1] < 1) || (out[2] != -1 && out[2] < 1))
    config_fail(context.path, ": ", type, " leaves no output: input ", batch_shape_str(in), " gives ",
                batch_shape_str(out));
  nn::ModulePtr module;
  if (transposed)
    module = maybe_bounded(std::make_shared<nn::ConvTranspose2d>(config, context.options, context.generator), args);
  else
    module = maybe_bounded(std::make_shared<nn::Conv2d>(config, context.options, context.generator), args);
  return {module, out, {}, {}};
}

// ---- parameter-free layers -----------------------------------------------------------------------

template <class M>
LayerType elementwise(const char* description) {
  return {description, 1, 1, [](JsonObject&, const LayerContext& context) {
            return BuiltLayer{std::make_shared<M>(), context.input_shapes[0], {}, {}};
          }};
}

BuiltLayer build_flatten(JsonObject&, const LayerContext& context) {
  const Shape& in = context.input_shapes[0];
  if (in.empty()) config_fail(context.path, ": flatten needs a per-sample input of rank 1 or more, got shape (N)");
  std::int64_t size = 1;
  for (std::int64_t d : in) size = (size < 0 || d < 0) ? -1 : size * d;
  return {std::make_shared<nn::Flatten>(), {size}, {}, {}};
}

BuiltLayer build_dropout(JsonObject& args, const LayerContext& context) {
  const double p = args.number_in("p", {.min = 0.0, .max = 1.0, .max_open = true}, 0.5);
  return {std::make_shared<nn::Dropout>(p), context.input_shapes[0], {}, {}};
}

BuiltLayer build_concat(JsonObject& args, const LayerContext& context) {
  const auto& shapes = context.input_shapes;
  for (const Shape& s : shapes)
    if (s.size() != shapes[0].size())
      config_fail(context.path, ": concat inputs differ in rank: ", batch_shape_str(shapes[0]), " and ",
                  batch_shape_str(s));
  if (shapes[0].empty()) config_fail(context.path, ": concat needs inputs of rank 1 or more, got shape (N)");
  const auto rank = static_cast<std::int64_t>(shapes[0].size());
  const std::int64_t dim = args.integer("dim", 0, rank - 1, 0);
  Shape out = shapes[0];
  for (std::size_t i = 1; i < shapes.size(); ++i) {
    for (std::int64_t d = 0; d < rank; ++d) {
      if (d == dim) continue;
      const std::int64_t a = out[d], b = shapes[i][d];
      if (a >= 0 && b >= 0 && a != b)
        config_fail(context.path, ": concat inputs disagree in dimension ", d + 1, ": ", batch_shape_str(shapes[0]),
                    " and ", batch_shape_str(shapes[i]));
      if (a < 0) out[d] = b;
    }
    out[dim] = (out[dim] < 0 || shapes[i][dim] < 0) ? -1 : out[dim] + shapes[i][dim];
  }
  const auto apply = [dim](const std::vector<Tensor>& inputs) { return concat(inputs, dim + 1); };
  return {nullptr, out, apply, {}};
}

BuiltLayer build_binary(const LayerContext& context, const char* type, bool subtract) {
  const Shape &a = context.input_shapes[0], &b = context.input_shapes[1];
  if (!compatible(a, b))
    config_fail(context.path, ": ", type, " inputs differ in shape: ", batch_shape_str(a), " and ", batch_shape_str(b));
  // The ops would broadcast a size of 1 against an unknown size; the format wants equal shapes.
  const auto apply = [subtract, type](const std::vector<Tensor>& inputs) {
    FPI_CHECK(inputs[0].shape() == inputs[1].shape(), type, " needs inputs of equal shapes, got ",
              shape_str(inputs[0].shape()), " and ", shape_str(inputs[1].shape()));
    return subtract ? inputs[0] - inputs[1] : inputs[0] + inputs[1];
  };
  return {nullptr, merge(a, b), apply, {}};
}

// ---- fixed_point ---------------------------------------------------------------------------------

// Where a map's first linear layer reads concat(z, v) and nothing else reads z or the join, its z part
// is computed once per solve (nn::InputSplit, as nn::NetMap does for a Sequential). A net map's v is x,
// read by nothing else; an energy map's v may be x after layers of one input each (FPI_GD's sigmoid),
// which its step computes from x before W_x·v.
struct InputSplit {
  std::size_t layer = 0;            // the node whose output step_prepared gives
  std::vector<std::size_t> chain;   // the nodes from x to v, in order; empty when v is x
  nn::InputSplit split;
};

// The split of `graph` if it has the shape above; `layers` are the map's resolved layer objects.
std::optional<InputSplit> find_input_split(const GraphModule& graph, const nlohmann::json& layers,
                                           const Shape& z_shape, const Shape& state, bool energy) {
  const auto& names = graph.source_names();
  const auto source = [&](const char* name) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  const std::size_t z = source("z"), x = source("x"), n_sources = names.size();
  if (z == n_sources || x == n_sources) return std::nullopt;
  const auto& nodes = graph.nodes();
  const auto readers = [&](std::size_t value) {
    std::vector<std::size_t> found;
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (std::find(nodes[i].inputs.begin(), nodes[i].inputs.end(), value) != nodes[i].inputs.end())
        found.push_back(i);
    return found;
  };
  const std::vector<std::size_t> join = readers(z);
  if (join.size() != 1) return std::nullopt;
  const GraphModule::Node& concat_node = nodes[join[0]];
  const std::vector<std::size_t> order = concat_node.inputs;
  if (concat_node.type != "concat" || order.size() != 2) return std::nullopt;
  std::size_t v = order[0] == z ? order[1] : order[0];
  if (!energy && (v != x || readers(x) != join)) return std::nullopt;
  std::vector<std::size_t> chain;
  while (v != x) {
    if (v < n_sources || nodes[v - n_sources].inputs.size() != 1) return std::nullopt;
    chain.insert(chain.begin(), v - n_sources);
    v = nodes[v - n_sources].inputs[0];
  }
  const Shape& v_shape = chain.empty() ? state : nodes[chain.back()].output_shape;
  const std::vector<std::size_t> next = readers(n_sources + join[0]);
  if (next.size() != 1 || nodes[next[0]].inputs.size() != 1) return std::nullopt;
  const std::int64_t dim = layers.at(join[0]).at("dim").get<std::int64_t>();
  const std::optional<nn::InputSplit> split = nn::InputSplit::of(nodes[next[0]].module);
  if (!split) return std::nullopt;
  const bool joins_features = split->splits_features() && dim == static_cast<std::int64_t>(v_shape.size()) - 1;
  const bool joins_channels = !split->splits_features() && dim == 0;
  if (!joins_features && !joins_channels) return std::nullopt;
  if (z_shape[dim] < 1 || v_shape[dim] < 1) return std::nullopt;
  InputSplit found{next[0], std::move(chain), *split};
  found.split.set_sizes(z_shape[dim], v_shape[dim], order[0] == z);
  return found;
}

// The map's network reads x and z by name; the graph cannot take concat(z, x) as NetMap's does.
class GraphNetMap : public nn::NetMap {
 public:
  GraphNetMap(std::shared_ptr<GraphModule> graph, std::optional<InputSplit> split)
      : NetMap(graph, 1, false), graph_(std::move(graph)), split_(std::move(split)) {}
  Tensor step(const Tensor& x, const Tensor& z) override { return graph_->forward({{"x", x}, {"z", z}}); }
  Tensor prepare(const Tensor& z) override { return split_ ? split_->split.z_part(z) : z; }
  Tensor step_prepared(const Tensor& x, const Tensor& u) override {
    if (!split_) return step(x, u);
    return graph_->forward({{"x", x}}, {{split_->layer, u + split_->split.x_part(x)}});
  }
  std::string extra_repr() const override { return {}; }
  bool hoisted() const override { return split_.has_value(); }

 private:
  std::shared_ptr<GraphModule> graph_;  // the "net" child, typed
  std::optional<InputSplit> split_;
};

class GraphEnergyMap : public nn::EnergyDescentMap {
 public:
  GraphEnergyMap(std::shared_ptr<GraphModule> graph, double step_size, nn::EnergyReduction reduction,
                 std::optional<InputSplit> split)
      : EnergyDescentMap(graph, step_size, reduction, 1, false),
        graph_(std::move(graph)),
        reduction_(reduction),
        split_(std::move(split)) {}
  Tensor prepare(const Tensor& z) override { return split_ ? split_->split.z_part(z) : z; }
  Tensor step_prepared(const Tensor& x, const Tensor& u) override {
    if (!split_) return step(x, u);
    return descend(x, [&](const Tensor& xv) {
      Tensor v = xv;
      for (std::size_t i : split_->chain) {
        const GraphModule::Node& node = graph_->nodes()[i];
        v = node.apply ? node.apply({v}) : node.module->forward(v);
      }
      return graph_->forward({{"x", xv}}, {{split_->layer, u + split_->split.x_part(v)}});
    });
  }
  bool hoisted() const override { return split_.has_value(); }
  std::string extra_repr() const override {
    std::string text = detail::concat("step_size=", format_number(step_size),
                                      ", reduction=", reduction_ == nn::EnergyReduction::Sum ? "sum" : "mean_square");
    if (proximal_weight != 0.0)
      text += detail::concat(", proximal_weight=", format_number(proximal_weight),
                             ", proximal_center=", format_number(proximal_center));
    return text + (split_ ? ", hoisted" : "");
  }

 protected:
  Tensor network_output(const Tensor& x, const Tensor& z) override { return graph_->forward({{"x", x}, {"z", z}}); }

 private:
  std::shared_ptr<GraphModule> graph_;
  nn::EnergyReduction reduction_;
  std::optional<InputSplit> split_;
};

const std::vector<std::string> kSolvers{"anderson", "picard"};
const std::vector<std::string> kBackwardModes{"implicit", "unrolled", "jacobian_free", "exact"};
const std::vector<std::string> kPolicies{"ignore", "warn", "error"};

// A "forward" or "backward" solver object; absent, every field takes fpi::SolverOptions' default.
SolverOptions read_solver(JsonObject& args, const std::string& key) {
  const SolverOptions defaults;
  JsonObject object = args.object(key, nlohmann::json::object());
  SolverOptions s;
  s.solver =
      object.choice("solver", kSolvers, "anderson") == "picard" ? FixedPointSolver::Picard : FixedPointSolver::Anderson;
  s.tolerance = object.number("tolerance", 0.0, kMaxNumber, defaults.tolerance);
  s.absolute_tolerance = object.number("absolute_tolerance", 0.0, kMaxNumber, defaults.absolute_tolerance);
  if (s.tolerance == 0.0 && s.absolute_tolerance == 0.0)
    config_fail(object.key_path("tolerance"),
                ": 0 turns the relative test off, so absolute_tolerance must be above 0; with neither no sample could "
                "ever stop");
  s.max_iterations = static_cast<int>(object.integer("max_iterations", 1, kMaxCount, defaults.max_iterations));
  s.min_iterations = static_cast<int>(object.integer("min_iterations", 0, kMaxCount, defaults.min_iterations));
  if (s.min_iterations > s.max_iterations)
    config_fail(object.key_path("min_iterations"), ": expected at most max_iterations (", s.max_iterations, "), got ",
                s.min_iterations);
  s.damping = object.number_in("damping", {.min = 0.0, .max = 1.0, .min_open = true}, defaults.damping);
  s.damp_cycles = object.boolean("damp_cycles", defaults.damp_cycles);
  s.anderson_history = static_cast<int>(object.integer("anderson_history", 1, 1000, defaults.anderson_history));
  s.anderson_ridge = object.number("anderson_ridge", 0.0, kMaxNumber, defaults.anderson_ridge);
  s.stall_window = static_cast<int>(object.integer("stall_window", 0, kMaxCount, defaults.stall_window));
  s.check_every = static_cast<int>(object.integer("check_every", 0, kMaxCount, defaults.check_every));
  args.resolve(key, object.finish());
  return s;
}

// The "gradient_check" object: fpi::FixedPointOptions::gradient_check_every and its companions; off
// (every = 0) when absent.
void read_gradient_check(JsonObject& args, FixedPointOptions& options) {
  JsonObject object = args.object("gradient_check", nlohmann::json::object());
  options.gradient_check_every = static_cast<int>(object.integer("every", 0, kMaxCount, 0));
  options.gradient_check_samples =
      static_cast<int>(object.integer("samples", 1, kMaxCount, options.gradient_check_samples));
  options.gradient_check_unroll = static_cast<int>(object.integer("unroll", 2, kMaxCount, options.gradient_check_unroll));
  options.gradient_check_max_degrees =
      object.number("max_degrees", 0.0, 180.0, options.gradient_check_max_degrees);
  args.resolve("gradient_check", object.finish());
}

std::string solver_text(const SolverOptions& s) {
  return detail::concat(s.solver == FixedPointSolver::Picard ? "picard" : "anderson", " tol ",
                        short_number(s.tolerance), " max ", s.max_iterations);
}

// state_shape as given: sizes >= 1, or -1 for "the input's size in this dimension".
Shape read_state_shape(JsonObject& args, const Shape& z_shape) {
  const std::vector<std::int64_t> state = args.integers("state_shape", -1, kMaxSize);
  const auto refuse = [&] {
    config_fail(args.key_path("state_shape"), ": expected a non-empty array of integers >= 1 or -1, got ",
                render_json(nlohmann::json(state)));
  };
  if (state.empty()) refuse();
  bool takes_input = false;
  for (std::int64_t d : state) {
    if (d == 0) refuse();
    takes_input = takes_input || d < 0;
  }
  if (takes_input && state.size() != z_shape.size())
    config_fail(args.key_path("state_shape"), ": -1 takes the input's size, so the state needs the input's rank (",
                z_shape.size(), "), got ", render_json(nlohmann::json(state)), " for input ", batch_shape_str(z_shape));
  return state;
}

BuiltLayer build_fixed_point(JsonObject& args, const LayerContext& context) {
  const Shape& z_shape = context.input_shapes[0];
  const Shape given_state = read_state_shape(args, z_shape);
  Shape state = given_state;
  for (std::size_t d = 0; d < state.size(); ++d)
    if (state[d] < 0) state[d] = z_shape[d];

  JsonObject map_args = args.object("map");
  const std::string map_type = map_args.choice("type", {"net", "energy"});
  double step_size = 0.0, proximal = 0.0;
  auto reduction = nn::EnergyReduction::MeanSquare;
  if (map_type == "energy") {
    step_size = map_args.positive_number("step_size");
    if (map_args.choice("reduction", {"mean_square", "sum"}, "mean_square") == "sum")
      reduction = nn::EnergyReduction::Sum;
    proximal = map_args.number("proximal", 0.0, kUnbounded, 0.0);
  }
  // The starting state's value; the proximal term pulls toward it, so one number says where both are.
  const double initial_state = args.number("initial_state", -kUnbounded, kUnbounded, 0.0);
  const bool hoist = map_args.boolean("hoist", true);
  auto graph = build_graph(map_args, {{"x", state}, {"z", z_shape}}, context.options, *context.generator);
  nlohmann::json resolved_map = map_args.finish();
  std::shared_ptr<nn::FixedPointMap> map;
  std::string summary = "map " + map_type;
  if (map_type == "net") {
    if (!compatible(graph->output_shape(), state))
      config_fail(map_args.path(), ": the map's output has shape ", batch_shape_str(graph->output_shape()),
                  " but the state has shape ", batch_shape_str(state));
    std::optional<InputSplit> split;
    if (hoist) split = find_input_split(*graph, resolved_map.at("layers"), z_shape, state, false);
    if (split) summary += detail::concat(" (", graph->nodes()[split->layer].name, "'s z part hoisted)");
    map = std::make_shared<GraphNetMap>(graph, std::move(split));
  } else {
    std::optional<InputSplit> split;
    if (hoist) split = find_input_split(*graph, resolved_map.at("layers"), z_shape, state, true);
    summary += detail::concat(" step ", short_number(step_size), " ",
                              reduction == nn::EnergyReduction::Sum ? "sum" : "mean_square");
    if (proximal > 0.0) summary += detail::concat(" proximal ", short_number(proximal));
    if (split) summary += detail::concat(" (", graph->nodes()[split->layer].name, "'s z part hoisted)");
    auto energy_map = std::make_shared<GraphEnergyMap>(graph, step_size, reduction, std::move(split));
    energy_map->proximal_weight = proximal;
    energy_map->proximal_center = initial_state;
    map = energy_map;
  }
  args.resolve("map", std::move(resolved_map));

  FixedPointOptions options;
  options.name = context.name;
  options.forward = read_solver(args, "forward");
  options.backward = read_solver(args, "backward");
  const std::string backward_mode = args.choice("backward_mode", kBackwardModes, "implicit");
  options.backward_mode = backward_mode == "unrolled"        ? FixedPointBackward::Unrolled
                          : backward_mode == "jacobian_free" ? FixedPointBackward::JacobianFree
                          : backward_mode == "exact"         ? FixedPointBackward::Exact
                                                             : FixedPointBackward::Implicit;
  options.backward_regularization = args.number("backward_regularization", 0.0, kUnbounded, 0.0);
  const std::string policy = args.choice("on_nonconvergence", kPolicies, "ignore");
  options.on_nonconvergence = policy == "warn"    ? NonConvergencePolicy::Warn
                              : policy == "error" ? NonConvergencePolicy::Error
                                                  : NonConvergencePolicy::Ignore;
  options.per_sample = args.boolean("per_sample", true);
  read_gradient_check(args, options);

  summary += detail::concat(", forward ", solver_text(options.forward), ", backward ", backward_mode);
  if (options.backward_mode == FixedPointBackward::Implicit)
    summary += detail::concat(" ", solver_text(options.backward));
  if (options.backward_regularization > 0.0)
    summary += detail::concat(" regularised ", short_number(options.backward_regularization));
  if (initial_state != 0.0) summary += detail::concat(", start ", short_number(initial_state));

  auto layer = std::make_shared<nn::FixedPointLayer>(map, given_state, options);
  layer->set_initial_value(initial_state);
  BuiltLayer built{layer, state, {}, summary};
  if (std::find(given_state.begin(), given_state.end(), -1) != given_state.end()) {
    // The layer's own zeros would need every size: the starting state takes the -1 sizes from z.
    built.apply = [layer, given_state](const std::vector<Tensor>& inputs) {
      const Tensor& z = inputs[0];
      Shape x0{z.size(0)};
      for (std::size_t d = 0; d < given_state.size(); ++d)
        x0.push_back(given_state[d] < 0 ? z.size(static_cast<std::int64_t>(d) + 1) : given_state[d]);
      return layer->forward(z, full(x0, layer->initial_value(), z.options()));
    };
  }
  return built;
}

}  // namespace

// Declared in registry.cpp, whose table starts with these.
std::vector<std::pair<std::string, LayerType>> builtin_layer_types() {
  const auto any = -1;
  return {
      {"dense", {"a fully connected layer (nn::Linear) over the last dimension", 1, 1, build_dense}},
      {"conv2d",
       {"a 2-D convolution (nn::Conv2d) of a (C, H, W) input", 1, 1,
        [](JsonObject& args, const LayerContext& context) { return build_conv(args, context, false); }}},
      {"conv_transpose2d",
       {"a 2-D transposed convolution (nn::ConvTranspose2d) of a (C, H, W) input", 1, 1,
        [](JsonObject& args, const LayerContext& context) { return build_conv(args, context, true); }}},
      {"relu", elementwise<nn::ReLU>("max(x, 0)")},
      {"sigmoid", elementwise<nn::Sigmoid>("1 / (1 + exp(-x))")},
      {"tanh", elementwise<nn::Tanh>("tanh(x)")},
      {"softplus", elementwise<nn::Softplus>("log(1 + exp(x))")},
      {"identity", elementwise<nn::Identity>("x, unchanged")},
      {"flatten", {"merges every per-sample dimension into one", 1, 1, build_flatten}},
      {"dropout", {"zeroes elements with probability p while training", 1, 1, build_dropout}},
      {"concat", {"joins its inputs along a per-sample dimension", 2, any, build_concat}},
      {"add",
       {"inputs[0] + inputs[1]", 2, 2,
        [](JsonObject&, const LayerContext& context) { return build_binary(context, "add", false); }}},
      {"subtract",
       {"inputs[0] - inputs[1]", 2, 2,
        [](JsonObject&, const LayerContext& context) { return build_binary(context, "subtract", true); }}},
      {"fixed_point",
       {"the fixed point x = g(x, z) of a map sub-network (nn::FixedPointLayer)", 1, 1, build_fixed_point}},
  };
}

}  // namespace fpi::train
