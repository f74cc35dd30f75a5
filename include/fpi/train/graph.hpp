// A model described by a config's "model" section: a list of named layers, each reading named
// sources (data fields, or "x" and "z" inside a fixed-point map) and earlier layers' outputs. The
// graph is an nn::Module whose children are the layers' modules under the layers' names, so state
// dicts read "fc1.weight" and "fpi.map.net.fc1.weight", as a PyTorch module with those attributes would.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fpi/data/dataset.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn/fixed_point.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/tensor.hpp"
#include "fpi/train/json_reader.hpp"

namespace fpi::train {

class GraphModule : public nn::Module {  // type_name "Graph"
 public:
  // One layer, as build_model resolved it.
  struct Node {
    std::string name;
    std::string type;
    std::vector<std::size_t> inputs;  // indices into the value table: sources first, then the layers
    std::function<Tensor(const std::vector<Tensor>&)> apply;
    nn::ModulePtr module;
    Shape output_shape;
    std::string summary;
  };

  // Made by build_model; `output` indexes `nodes`.
  GraphModule(std::vector<std::string> source_names, std::vector<Node> nodes, std::size_t output);

  // The sources the graph reads (data field names for a model; "x", "z" for a map), in first-use order.
  const std::vector<std::string>& source_names() const { return source_names_; }
  Tensor forward(const std::vector<std::pair<std::string, Tensor>>& sources);  // by name; throws on a missing source
  // The same with some layers' outputs given (by index into nodes()) instead of computed. Only what the
  // output still needs runs: the layers that feed given ones alone are skipped, and so may be their sources.
  Tensor forward(const std::vector<std::pair<std::string, Tensor>>& sources,
                 const std::vector<std::pair<std::size_t, Tensor>>& given);
  const std::vector<Node>& nodes() const { return nodes_; }
  // A graph that reads one source is also a single-input module (it can sit in a Sequential); with
  // several sources this throws, naming them.
  Tensor forward(const Tensor& x) override;
  const Shape& output_shape() const;
  // Keras-style summary: one row per layer (nested map layers indented), columns name, type, output shape
  // ("(N, 159)", "?" for -1), parameter count, and for fixed_point layers a second line with map and solver;
  // then totals (parameters, trainable, size in KB or MB at the dtype).
  void print_summary(std::ostream& out) const;
  // Every FixedPointLayer in the graph, nested ones included, with its dotted module name ("fpi", "fpi.map.net.inner").
  std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>> fixed_point_layers() const;

 private:
  struct SummaryRow {
    std::string name, type, shape, params, note;
  };
  void summary_rows(std::vector<SummaryRow>& rows, const std::string& indent) const;

  std::vector<std::string> source_names_;
  std::vector<Node> nodes_;
  std::size_t output_;                 // index into nodes_
  std::vector<std::size_t> last_use_;  // per value (sources, then layers): the last layer that reads it
};

struct BuiltModel {
  std::shared_ptr<GraphModule> module;
  nlohmann::json resolved;  // the model section with every layer's defaults filled in
};

// A graph from an object's "layers" (required) and "output" (default: the last layer), reading `sources`
// (name and per-sample shape); resolves both keys in `object`, whose finish() stays the caller's. A
// fixed_point layer builds its map's network with it ("x" and "z"); so can a custom layer that nests one.
std::shared_ptr<GraphModule> build_graph(JsonObject& object, const std::vector<data::FieldSpec>& sources,
                                         TensorOptions options, Generator& generator);

// `fields`: the data fields the model may read. Every error is a ConfigError naming the place under `path`.
BuiltModel build_model(const nlohmann::json& model, const std::vector<data::FieldSpec>& fields, TensorOptions options,
                       Generator& generator, const std::string& path = "model");

}  // namespace fpi::train
