// Building a model from its config section, and running it. Each layer names the values it reads (sources,
// earlier layers); the build resolves the names once, checks every shape per sample before any batch
// exists, and leaves a flat list of nodes that forward walks in order, dropping each value after its last
// reader so that evaluation without a tape holds few activations at once.
#include "fpi/train/graph.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <ostream>

#include "fpi/train/registry.hpp"

namespace fpi::train {
namespace {

template <class... Parts>
[[noreturn]] void config_fail(const Parts&... parts) {
  throw ConfigError(detail::concat(parts...));
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

bool valid_layer_name(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// "1292359" → "1,292,359".
std::string grouped(std::int64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::int64_t count_parameters(const nn::Module& module) {
  std::int64_t n = 0;
  for (const Tensor& p : module.parameters()) n += p.numel();
  return n;
}

// The graphs nested in a layer's module (a fixed_point layer's map network), outermost only: each prints
// its own nested ones.
void nested_graphs(const nn::Module& module, std::vector<const GraphModule*>& out) {
  for (const auto& [name, child] : module.named_children()) {
    if (const auto* graph = dynamic_cast<const GraphModule*>(child.get()))
      out.push_back(graph);
    else
      nested_graphs(*child, out);
  }
}

void collect_fixed_point(const nn::Module& module, const std::string& prefix,
                         std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>>& out) {
  for (const auto& [name, child] : module.named_children()) {
    const std::string dotted = prefix.empty() ? name : prefix + "." + name;
    if (auto layer = std::dynamic_pointer_cast<nn::FixedPointLayer>(child)) out.emplace_back(dotted, layer);
    collect_fixed_point(*child, dotted, out);
  }
}

// Where a layer's input comes from while the graph is being built: a source (by its index among the
// sources used so far) or an earlier layer.
struct Ref {
  bool source;
  std::size_t index;
};

// The names a layer reads, with the JSON path of each for errors, and whether "inputs" was used.
struct InputNames {
  std::vector<std::string> names, paths;
  bool as_list = false;
};

InputNames read_input_names(JsonObject& layer, std::size_t position, const std::string& previous,
                            const std::vector<data::FieldSpec>& sources) {
  InputNames in;
  if (layer.has("input") && layer.has("inputs")) config_fail(layer.path(), ": give \"input\" or \"inputs\", not both");
  if (layer.has("input")) {
    in.names.push_back(layer.string("input"));
    in.paths.push_back(layer.key_path("input"));
  } else if (layer.has("inputs")) {
    const nlohmann::json& list = layer.raw("inputs");
    const bool strings = list.is_array() && !list.empty() &&
                         std::all_of(list.begin(), list.end(), [](const auto& v) { return v.is_string(); });
    if (!strings)
      config_fail(layer.key_path("inputs"), ": expected a non-empty array of layer or source names, got ",
                  render_json(list));
    for (std::size_t k = 0; k < list.size(); ++k) {
      in.names.push_back(list[k].get<std::string>());
      in.paths.push_back(layer.key_path("inputs") + "[" + std::to_string(k) + "]");
    }
    in.as_list = true;
  } else if (position == 0) {
    std::vector<std::string> names;
    for (const auto& s : sources) names.push_back(s.name);
    config_fail(layer.path(), ": the first layer needs an \"input\"; it can read ", join(names));
  } else {
    in.names.push_back(previous);
    in.paths.push_back(layer.key_path("input"));
  }
  return in;
}

void check_input_count(const JsonObject& layer, const std::string& type, const LayerType& spec, const InputNames& in) {
  const auto n = static_cast<int>(in.names.size());
  if (n >= spec.min_inputs && (spec.max_inputs == -1 || n <= spec.max_inputs)) return;
  std::string wanted;
  if (spec.max_inputs == -1)
    wanted = detail::concat(spec.min_inputs, " or more inputs");
  else if (spec.min_inputs == spec.max_inputs)
    wanted = detail::concat(spec.min_inputs == 1 ? "1 input" : std::to_string(spec.min_inputs) + " inputs");
  else
    wanted = detail::concat(spec.min_inputs, " to ", spec.max_inputs, " inputs");
  const bool given = layer.has("input") || layer.has("inputs");
  if (!given) config_fail(layer.path(), ": ", type, " takes ", wanted, "; give them as \"inputs\"");
  config_fail(layer.key_path(in.as_list ? "inputs" : "input"), ": ", type, " takes ", wanted, ", got ", n);
}

}  // namespace

GraphModule::GraphModule(std::vector<std::string> source_names, std::vector<Node> nodes, std::size_t output)
    : Module("Graph"), source_names_(std::move(source_names)), nodes_(std::move(nodes)), output_(output) {
  FPI_CHECK(output_ < nodes_.size(), "Graph: output index ", output_, " is out of range for ", nodes_.size(),
            " layers");
  const std::size_t values = source_names_.size() + nodes_.size();
  last_use_.assign(values, 0);
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    for (std::size_t input : nodes_[i].inputs) {
      FPI_CHECK(input < source_names_.size() + i, "Graph: layer '", nodes_[i].name, "' reads value ", input,
                ", which is not computed before it");
      last_use_[input] = i;
    }
    if (nodes_[i].module) register_module(nodes_[i].name, nodes_[i].module);
  }
}

Tensor GraphModule::forward(const Tensor& x) {
  FPI_CHECK(source_names_.size() == 1, "Graph::forward(x): the graph reads ", source_names_.size(),
            " sources; pass them by name");
  return forward({{source_names_[0], x}});
}

Tensor GraphModule::forward(const std::vector<std::pair<std::string, Tensor>>& sources) { return forward(sources, {}); }

Tensor GraphModule::forward(const std::vector<std::pair<std::string, Tensor>>& sources,
                            const std::vector<std::pair<std::size_t, Tensor>>& given) {
  const std::size_t n_sources = source_names_.size();
  const std::size_t output = n_sources + output_;
  std::vector<Tensor> values(n_sources + nodes_.size());
  std::vector<char> is_given(nodes_.size(), 0);
  for (const auto& [index, value] : given) {
    FPI_CHECK(index < nodes_.size(), "Graph: given layer index ", index, " is out of range for ", nodes_.size(),
              " layers");
    is_given[index] = 1;
    values[n_sources + index] = value;
  }
  std::vector<char> needed(values.size(), 0);
  needed[output] = 1;
  for (std::size_t i = nodes_.size(); i-- > 0;)
    if (needed[n_sources + i] && !is_given[i])
      for (std::size_t input : nodes_[i].inputs) needed[input] = 1;
  for (std::size_t k = 0; k < n_sources; ++k) {
    if (!needed[k]) continue;
    const auto& name = source_names_[k];
    const auto it = std::find_if(sources.begin(), sources.end(), [&](const auto& s) { return s.first == name; });
    if (it == sources.end()) {
      std::vector<std::string> names;
      for (const auto& s : sources) names.push_back(s.first);
      fail("Graph: missing source '", name, "'; given: ", names.empty() ? "none" : join(names));
    }
    values[k] = it->second;
  }
  std::vector<Tensor> inputs;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (is_given[i] || !needed[n_sources + i]) continue;
    const Node& node = nodes_[i];
    inputs.clear();
    for (std::size_t input : node.inputs) inputs.push_back(values[input]);
    // Sizes unknown at build time are checked by the ops only; their errors are placed at the layer here.
    try {
      values[n_sources + i] = node.apply ? node.apply(inputs) : node.module->forward(inputs[0]);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      fail("layer '", node.name, "' (", node.type, "): ", e.what());
    }
    for (std::size_t input : node.inputs)
      if (last_use_[input] == i && input != output) values[input] = Tensor();
  }
  return values[output];
}

const Shape& GraphModule::output_shape() const { return nodes_[output_].output_shape; }

void GraphModule::summary_rows(std::vector<SummaryRow>& rows, const std::string& indent) const {
  for (const Node& node : nodes_) {
    rows.push_back({indent + node.name, node.type, batch_shape_str(node.output_shape),
                    node.module ? grouped(count_parameters(*node.module)) : "0", node.summary});
    if (!node.module) continue;
    std::vector<const GraphModule*> inner;
    nested_graphs(*node.module, inner);
    for (const GraphModule* graph : inner) graph->summary_rows(rows, indent + "  ");
  }
}

void GraphModule::print_summary(std::ostream& out) const {
  std::vector<SummaryRow> rows{{"Layer", "Type", "Output shape", "Params", ""}};
  summary_rows(rows, "");
  std::size_t widths[3] = {0, 0, 0};
  for (const SummaryRow& row : rows) {
    widths[0] = std::max(widths[0], row.name.size());
    widths[1] = std::max(widths[1], row.type.size());
    widths[2] = std::max(widths[2], row.shape.size());
  }
  const auto pad = [](const std::string& s, std::size_t width) { return s + std::string(width - s.size() + 2, ' '); };
  std::size_t total_width = widths[0] + widths[1] + widths[2] + 6;
  for (const SummaryRow& row : rows)
    total_width = std::max(total_width, widths[0] + widths[1] + widths[2] + 6 + row.params.size());
  const std::string rule(total_width, '=');
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const SummaryRow& row = rows[r];
    out << pad(row.name, widths[0]) << pad(row.type, widths[1]) << pad(row.shape, widths[2]) << row.params << '\n';
    if (!row.note.empty()) {
      const std::size_t depth = row.name.find_first_not_of(' ');
      out << std::string(depth + 4, ' ') << row.note << '\n';
    }
    if (r == 0) out << rule << '\n';
  }
  out << rule << '\n';
  std::int64_t total = 0, trainable = 0;
  const std::vector<Tensor> params = parameters();
  for (const Tensor& p : params) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  std::int64_t bytes = 0;
  for (const Tensor& p : params) bytes += p.numel() * static_cast<std::int64_t>(dtype_size(p.dtype()));
  char size[32];
  if (bytes < 1024 * 1024)
    std::snprintf(size, sizeof size, "%.2f KB", static_cast<double>(bytes) / 1024.0);
  else
    std::snprintf(size, sizeof size, "%.2f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  out << "Total params: " << grouped(total) << '\n'
      << "Trainable params: " << grouped(trainable) << '\n'
      << "Parameter size: " << size;
  if (!params.empty()) out << " (" << dtype_name(params.front().dtype()) << ")";
  out << '\n';
}

std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>> GraphModule::fixed_point_layers() const {
  std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>> out;
  collect_fixed_point(*this, "", out);
  return out;
}

std::shared_ptr<GraphModule> build_graph(JsonObject& object, const std::vector<data::FieldSpec>& sources,
                                         TensorOptions options, Generator& generator) {
  const std::string layers_path = object.key_path("layers");
  const nlohmann::json& layers = object.raw("layers");
  if (!layers.is_array() || layers.empty())
    config_fail(layers_path, ": expected a non-empty array of layer objects, got ", render_json(layers));
  const auto layer_path = [&](std::size_t i) { return layers_path + "[" + std::to_string(i) + "]"; };

  // Where each name is first defined, so that reading a later layer gets its own message.
  std::map<std::string, std::size_t> defined_at;
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (layers[i].is_object() && layers[i].contains("name") && layers[i]["name"].is_string())
      defined_at.emplace(layers[i]["name"].get<std::string>(), i);
  std::vector<std::string> source_names;
  for (const auto& s : sources) source_names.push_back(s.name);

  std::vector<std::string> used_sources;
  std::vector<GraphModule::Node> nodes;
  std::vector<std::vector<Ref>> refs;
  std::map<std::string, std::size_t> node_index;
  nlohmann::json resolved_layers = nlohmann::json::array();
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string path = layer_path(i);
    if (!layers[i].is_object()) config_fail(path, ": expected a layer object, got ", render_json(layers[i]));
    JsonObject layer(layers[i], path);
    const std::string name = layer.string("name");
    if (!valid_layer_name(name))
      config_fail(layer.key_path("name"), ": expected a name matching ^[A-Za-z_][A-Za-z0-9_]*$, got \"", name, "\"");
    if (std::find(source_names.begin(), source_names.end(), name) != source_names.end())
      config_fail(layer.key_path("name"), ": '", name, "' is the name of a source (", join(source_names),
                  "); a layer needs a name of its own");
    if (const auto it = node_index.find(name); it != node_index.end())
      config_fail(layer.key_path("name"), ": duplicate layer name '", name, "' (first used at ", layer_path(it->second),
                  ")");
    const std::string type = layer.string("type");
    const LayerType* spec = find_layer_type(type);
    if (!spec)
      config_fail(layer.key_path("type"), ": unknown layer type '", type, "'; known types: ", join(layer_types()));

    const InputNames in = read_input_names(layer, i, i > 0 ? nodes.back().name : "", sources);
    check_input_count(layer, type, *spec, in);
    LayerContext context{path, {}, options, &generator, name};
    std::vector<Ref> layer_refs;
    for (std::size_t k = 0; k < in.names.size(); ++k) {
      const std::string& input = in.names[k];
      if (const auto it = node_index.find(input); it != node_index.end()) {
        layer_refs.push_back({false, it->second});
        context.input_shapes.push_back(nodes[it->second].output_shape);
        continue;
      }
      const auto source = std::find_if(sources.begin(), sources.end(), [&](const auto& s) { return s.name == input; });
      if (source != sources.end()) {
        auto used = std::find(used_sources.begin(), used_sources.end(), input);
        if (used == used_sources.end()) used = used_sources.insert(used_sources.end(), input);
        layer_refs.push_back({true, static_cast<std::size_t>(used - used_sources.begin())});
        context.input_shapes.push_back(source->shape);
        continue;
      }
      if (const auto later = defined_at.find(input); later != defined_at.end() && later->second >= i)
        config_fail(in.paths[k], ": '", input, "' is ", later->second == i ? "this layer itself" : "defined later",
                    " (", layer_path(later->second), "); a layer may only read sources and earlier layers");
      std::vector<std::string> available = source_names;
      for (const auto& node : nodes) available.push_back(node.name);
      config_fail(in.paths[k], ": no layer or source is called '", input, "'; available: ", join(available));
    }

    nlohmann::json args_json = layers[i];
    for (const char* key : {"name", "type", "input", "inputs"}) args_json.erase(key);
    JsonObject args(args_json, path);
    BuiltLayer built;
    try {
      built = spec->build(args, context);
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      config_fail(path, ": ", e.what());
    }
    FPI_CHECK(built.module || built.apply, "layer type '", type, "' built neither a module nor an apply function (",
              path, ")");
    nlohmann::json resolved = args.finish();
    resolved["name"] = name;
    resolved["type"] = type;
    if (in.as_list)
      resolved["inputs"] = in.names;
    else
      resolved["input"] = in.names[0];
    resolved_layers.push_back(std::move(resolved));

    node_index.emplace(name, nodes.size());
    nodes.push_back({.name = name,
                     .type = type,
                     .inputs = {},
                     .apply = std::move(built.apply),
                     .module = std::move(built.module),
                     .output_shape = std::move(built.output_shape),
                     .summary = std::move(built.summary)});
    refs.push_back(std::move(layer_refs));
  }

  const std::string output = object.string("output", nodes.back().name);
  const auto out = node_index.find(output);
  if (out == node_index.end()) {
    std::vector<std::string> names;
    for (const auto& node : nodes) names.push_back(node.name);
    config_fail(object.key_path("output"), ": no layer is called '", output, "'; layers: ", join(names));
  }
  object.resolve("layers", std::move(resolved_layers));

  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const Ref& ref : refs[i]) nodes[i].inputs.push_back(ref.source ? ref.index : used_sources.size() + ref.index);
  return std::make_shared<GraphModule>(std::move(used_sources), std::move(nodes), out->second);
}

BuiltModel build_model(const nlohmann::json& model, const std::vector<data::FieldSpec>& fields, TensorOptions options,
                       Generator& generator, const std::string& path) {
  if (!model.is_object()) config_fail(path, ": expected an object with \"layers\", got ", render_json(model));
  JsonObject object(model, path);
  auto graph = build_graph(object, fields, options, generator);
  return {graph, object.finish()};
}

}  // namespace fpi::train
