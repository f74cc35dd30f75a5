// The layer types a config's model section can name. Each type is a factory that reads its own keys
// from the layer object, checks its input shapes and returns a module plus how to apply it. The
// built-in types (dense, conv2d, fixed_point, ...) are registered on first use; programs add their own
// with register_layer before building a model, and those are then usable from JSON like the built-ins.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/ops.hpp"  // a layer's apply function is written in ops; its authors should not hunt for them
#include "fpi/tensor.hpp"
#include "fpi/train/json_reader.hpp"

namespace fpi::train {

struct LayerContext {
  std::string path;                 // "model.layers[2]": prefix for errors
  std::vector<Shape> input_shapes;  // per-sample shapes of the inputs (batch dim excluded), -1 where a size varies
  TensorOptions options;            // dtype (CPU) of the parameters; the trainer moves the model to its device later
  Generator* generator = nullptr;   // every parameter initialisation draws from it, in layer order
  std::string name;                 // the layer's name (a fixed_point layer names its diagnostics with it)
};

struct BuiltLayer {
  // May be a parameter-free module; registered in the graph under the layer name. Null for a layer that is
  // only a function of its inputs (concat, add), which then sets `apply`.
  nn::ModulePtr module;
  Shape output_shape;  // per-sample, -1 where a size varies
  // Applies the layer to its inputs (batch first, one per input). Left empty: module->forward(inputs[0]).
  std::function<Tensor(const std::vector<Tensor>& inputs)> apply;
  std::string summary;  // extra text for `fpi validate` (a fixed_point layer: its map type, solvers)
};

struct LayerType {
  std::string description;             // one line
  int min_inputs = 1, max_inputs = 1;  // max -1: any number
  // `args` is the layer object minus name/type/input/inputs; the factory reads its keys from it (finish() is
  // called by the graph after build, so unknown keys are refused for every type, custom ones included).
  std::function<BuiltLayer(JsonObject& args, const LayerContext& context)> build;
};

// Throws fpi::Error if the type exists or is invalid (bad name, no build function, bad input counts).
void register_layer(const std::string& type, LayerType layer);
const LayerType* find_layer_type(const std::string& type);  // null when unknown
std::vector<std::string> layer_types();                     // sorted

// A per-sample shape as messages and summaries show it, batch first: "(N, 1, ?, ?)" for {1, -1, -1}.
std::string batch_shape_str(const Shape& per_sample);

}  // namespace fpi::train
