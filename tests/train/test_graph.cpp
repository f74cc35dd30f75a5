// The model graph built from a config's model section: the paper's two Bibtex models (FPI_NN and
// FPI_GD) against the same models built by hand with the same weights, the state-dict names checkpoints
// use, the summary `fpi validate` prints, a state whose size comes from the input image, and the exact
// message of each kind of bad model section.
#include <gtest/gtest.h>

#include <sstream>

#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/registry.hpp"
#include "test_util.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;
using testing::error_of;

constexpr TensorOptions kF64{.dtype = kFloat64};
const std::vector<data::FieldSpec> kBibtexFields{{"features", {1836}}, {"labels", {159}}};

// The FPI_NN example of the format: one fixed_point layer whose map is a two-layer network on [z, x].
json fpi_nn_model() {
  return json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [159],
     "map": {"type": "net", "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "fc1", "type": "dense", "units": 600},
       {"name": "act1", "type": "relu"},
       {"name": "fc2", "type": "dense", "units": 159},
       {"name": "out", "type": "sigmoid"}]}}]})");
}

// FPI_GD: gradient descent on E = mean(relu(fc([z, sigmoid(x)]))²), then a sigmoid.
json fpi_gd_model() {
  return json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [159],
     "map": {"type": "energy", "step_size": 1, "layers": [
       {"name": "probs", "type": "sigmoid", "input": "x"},
       {"name": "join", "type": "concat", "inputs": ["z", "probs"]},
       {"name": "fc", "type": "dense", "units": 512},
       {"name": "act", "type": "relu"}]}},
    {"name": "out", "type": "sigmoid"}]})");
}

BuiltModel build(const json& model, const std::vector<data::FieldSpec>& fields = kBibtexFields) {
  Generator generator(11);
  return build_model(model, fields, kF64, generator);
}

std::vector<std::string> keys(const nn::StateDict& state) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : state) names.push_back(name);
  return names;
}

// The graph's state dict under the hand-built model's names.
nn::StateDict renamed(const nn::StateDict& state, const std::vector<std::pair<std::string, std::string>>& names) {
  nn::StateDict out;
  for (const auto& [from, to] : names) {
    const auto it = std::find_if(state.begin(), state.end(), [&](const auto& entry) { return entry.first == from; });
    EXPECT_NE(it, state.end()) << from;
    if (it != state.end()) out.emplace_back(to, it->second);
  }
  return out;
}

FixedPointOptions layer_options() {
  FixedPointOptions options;
  options.name = "fpi";
  options.on_nonconvergence = NonConvergencePolicy::Ignore;
  return options;
}

void expect_same_values(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  EXPECT_EQ(actual.to_vector(), expected.to_vector()) << what;
}

TEST(ModelGraph, BibtexFpiNnHasPyTorchStateDictNames) {
  const BuiltModel model = build(fpi_nn_model());
  EXPECT_EQ(keys(model.module->state_dict()),
            (std::vector<std::string>{"fpi.map.net.fc1.weight", "fpi.map.net.fc1.bias", "fpi.map.net.fc2.weight",
                                      "fpi.map.net.fc2.bias"}));
  EXPECT_EQ(model.module->source_names(), std::vector<std::string>{"features"});
  EXPECT_EQ(model.module->output_shape(), Shape{159});
  const auto layers = model.module->fixed_point_layers();
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].first, "fpi");
  EXPECT_EQ(layers[0].second->options().name, "fpi");
  EXPECT_EQ(layers[0].second->options().on_nonconvergence, NonConvergencePolicy::Ignore);
}

TEST(ModelGraph, AGraphOfOneSourceIsASingleInputModule) {
  const BuiltModel model = build(fpi_nn_model());
  const Tensor features = rand({3, 1836}, {.dtype = kFloat64});
  nn::Module& module = *model.module;
  EXPECT_EQ(module.forward(features).to_vector<double>(),
            model.module->forward({{"features", features}}).to_vector<double>());
  const BuiltModel two_sources =
      build(json::parse(R"({"layers": [{"name": "sum", "type": "add", "inputs": ["a", "b"]}]})"),
            {{"a", {2}}, {"b", {2}}});
  EXPECT_THROW(two_sources.module->forward(ones({1, 2})), Error);
}

TEST(ModelGraph, BibtexFpiNnMatchesTheHandBuiltLayer) {
  // Both hoist fc1's z part (the config's default and NetMap's) through the same nn::InputSplit, so the
  // two agree bit for bit (test_fpi_hoist.cpp compares hoisted and unhoisted maps).
  const BuiltModel model = build(fpi_nn_model());
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(1995, 600, true, kF64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(600, 159, true, kF64), std::make_shared<nn::Sigmoid>()});
  auto reference =
      std::make_shared<nn::FixedPointLayer>(std::make_shared<nn::NetMap>(net), Shape{159}, layer_options());
  reference->load_state_dict(renamed(model.module->state_dict(), {{"fpi.map.net.fc1.weight", "map.net.0.weight"},
                                                                  {"fpi.map.net.fc1.bias", "map.net.0.bias"},
                                                                  {"fpi.map.net.fc2.weight", "map.net.2.weight"},
                                                                  {"fpi.map.net.fc2.bias", "map.net.2.bias"}}));
  Generator generator(5);
  const Tensor z = rand({3, 1836}, kF64, &generator);
  const Tensor out = model.module->forward({{"features", z}});
  const Tensor expected = reference->forward(z);
  expect_same_values(out, expected, "output");
  EXPECT_EQ(model.module->fixed_point_layers()[0].second->stats().forward.iterations,
            reference->stats().forward.iterations);

  // The implicit backward pass sees the same map, so the weights get the same gradients.
  const Tensor weights = rand({3, 159}, kF64, &generator);
  sum(out * weights).backward();
  sum(expected * weights).backward();
  const auto graph_fc1 = model.module->named_parameters()[0].second;
  expect_same_values(graph_fc1.grad(), net->at<nn::Linear>(0)->weight.grad(), "fc1 weight gradient");
}

// The hand-built FPI_GD energy network: it receives concat(z, x) from EnergyDescentMap and applies the
// sigmoid to the x part itself, as the config's "probs" layer does.
class SigmoidOfStateEnergy : public nn::Module {
 public:
  SigmoidOfStateEnergy() : Module("SigmoidOfStateEnergy") {
    fc = register_module("fc", std::make_shared<nn::Linear>(1995, 512, true, kF64));
  }
  Tensor forward(const Tensor& zx) override {
    const Tensor z = zx.narrow(1, 0, 1836), x = zx.narrow(1, 1836, 159);
    return relu(fc->forward(concat({z, sigmoid(x)}, 1)));
  }
  std::shared_ptr<nn::Linear> fc;
};

TEST(ModelGraph, BibtexFpiGdMatchesTheHandBuiltEnergyDescent) {
  // Bit for bit needs the same sums: the hoisted map adds W_z·z + b and W_x·σ(x) in another order
  // (tests/train/test_fpi_energy_hoist.cpp compares the two within 1e-11).
  json unhoisted = fpi_gd_model();
  unhoisted["layers"][0]["map"]["hoist"] = false;
  const BuiltModel model = build(unhoisted);
  EXPECT_EQ(keys(model.module->state_dict()),
            (std::vector<std::string>{"fpi.map.net.fc.weight", "fpi.map.net.fc.bias"}));
  auto energy = std::make_shared<SigmoidOfStateEnergy>();
  auto reference = std::make_shared<nn::FixedPointLayer>(
      std::make_shared<nn::EnergyDescentMap>(energy, 1.0, nn::EnergyReduction::MeanSquare), Shape{159},
      layer_options());
  reference->load_state_dict(renamed(model.module->state_dict(), {{"fpi.map.net.fc.weight", "map.net.fc.weight"},
                                                                  {"fpi.map.net.fc.bias", "map.net.fc.bias"}}));
  Generator generator(6);
  const Tensor z = rand({2, 1836}, kF64, &generator);
  const Tensor out = model.module->forward({{"features", z}});
  const Tensor expected = sigmoid(reference->forward(z));
  expect_same_values(out, expected, "output");

  sum(out).backward();
  sum(expected).backward();
  expect_same_values(model.module->named_parameters()[0].second.grad(), energy->fc->weight.grad(),
                     "fc weight gradient");
}

TEST(ModelGraph, ResolvesTheFixedPointDefaults) {
  const json layer = build(fpi_nn_model()).resolved["layers"][0];
  const json solver = json::parse(R"({"solver": "anderson", "tolerance": 0.0001, "absolute_tolerance": 0.0,
    "max_iterations": 200, "min_iterations": 0, "damping": 1.0, "damp_cycles": true, "anderson_history": 5,
    "anderson_ridge": 1e-8, "stall_window": 100, "check_every": 0})");
  EXPECT_EQ(layer["forward"], solver);
  EXPECT_EQ(layer["backward"], solver);
  EXPECT_EQ(layer["backward_mode"], "implicit");
  EXPECT_EQ(layer["on_nonconvergence"], "ignore");
  EXPECT_EQ(layer["per_sample"], true);
  EXPECT_EQ(layer["map"]["output"], "out");
  EXPECT_EQ(layer["map"]["layers"][1],
            json({{"name", "fc1"}, {"type", "dense"}, {"input", "join"}, {"units", 600}, {"bias", true}}));
  EXPECT_EQ(build(fpi_gd_model()).resolved["layers"][0]["map"]["reduction"], "mean_square");

  // The resolved section builds the same model again: it alone reproduces the run.
  const BuiltModel again = build(build(fpi_nn_model()).resolved);
  EXPECT_EQ(again.resolved, build(fpi_nn_model()).resolved);
}

TEST(ModelGraph, ReadsSolverSettings) {
  json model = fpi_nn_model();
  model["layers"][0]["forward"] = {{"solver", "picard"}, {"tolerance", 1e-6}, {"max_iterations", 50}, {"damping", 0.5}};
  model["layers"][0]["backward_mode"] = "unrolled";
  model["layers"][0]["on_nonconvergence"] = "error";
  model["layers"][0]["per_sample"] = false;
  const auto layer = build(model).module->fixed_point_layers()[0].second;
  EXPECT_EQ(layer->options().forward.solver, FixedPointSolver::Picard);
  EXPECT_EQ(layer->options().forward.tolerance, 1e-6);
  EXPECT_EQ(layer->options().forward.max_iterations, 50);
  EXPECT_EQ(layer->options().forward.damping, 0.5);
  EXPECT_EQ(layer->options().backward.solver, FixedPointSolver::Anderson);
  EXPECT_EQ(layer->options().backward_mode, FixedPointBackward::Unrolled);
  EXPECT_EQ(layer->options().on_nonconvergence, NonConvergencePolicy::Error);
  EXPECT_FALSE(layer->options().per_sample);
}

// A denoiser's fixed point over whole images: the state takes its height and width from the input,
// and a nested fixed_point layer inside the map is found by its dotted module name.
TEST(ModelGraph, StateShapeTakesUnknownSizesFromTheInput) {
  const json model = json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "noisy", "state_shape": [1, -1, -1],
     "forward": {"max_iterations": 5}, "backward": {"max_iterations": 5},
     "map": {"type": "net", "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "conv", "type": "conv2d", "channels": 1, "kernel_size": 3, "padding": 1},
       {"name": "inner", "type": "fixed_point", "state_shape": [-1, -1, -1],
        "forward": {"max_iterations": 5}, "backward": {"max_iterations": 5},
        "map": {"type": "net", "layers": [
          {"name": "mix", "type": "add", "inputs": ["x", "z"]},
          {"name": "squash", "type": "tanh"}]}},
       {"name": "out", "type": "sigmoid"}]}},
    {"name": "residual", "type": "subtract", "inputs": ["noisy", "fpi"]}]})");
  const BuiltModel built = build(model, {{"noisy", {1, -1, -1}}, {"clean", {1, -1, -1}}});
  EXPECT_EQ(built.module->output_shape(), (Shape{1, -1, -1}));
  const auto layers = built.module->fixed_point_layers();
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].first, "fpi");
  EXPECT_EQ(layers[1].first, "fpi.map.net.inner");
  EXPECT_EQ(layers[0].second->state_shape(), (Shape{1, -1, -1}));
  Generator generator(2);
  EXPECT_EQ(built.module->forward({{"noisy", rand({1, 1, 6, 7}, kF64, &generator)}}).shape(), (Shape{1, 1, 6, 7}));
  EXPECT_EQ(error_of([&] {
              built.module->forward({{"clean", rand({1, 1, 6, 7}, kF64)}});
            }),
            "Graph: missing source 'noisy'; given: clean");
}

TEST(ModelGraph, RuntimeShapeErrorsNameTheLayer) {
  const BuiltModel model = build(json::parse(R"({"layers": [{"name": "join", "type": "add", "inputs": ["a", "b"]}]})"),
                                 {{"a", {1, -1, -1}}, {"b", {1, -1, -1}}});
  EXPECT_EQ(error_of([&] { model.module->forward({{"a", zeros({1, 1, 4, 4})}, {"b", zeros({1, 1, 4, 5})}}); }),
            "layer 'join' (add): add needs inputs of equal shapes, got [1, 1, 4, 4] and [1, 1, 4, 5]");
  // A size of 1 is not broadcast either: the format asks for equal shapes.
  EXPECT_EQ(error_of([&] { model.module->forward({{"a", zeros({2, 1, 4, 4})}, {"b", zeros({2, 1, 1, 4})}}); }),
            "layer 'join' (add): add needs inputs of equal shapes, got [2, 1, 4, 4] and [2, 1, 1, 4]");
}

TEST(ModelGraph, PrintsASummary) {
  std::ostringstream out;
  build(fpi_nn_model()).module->print_summary(out);
  // fc1: 1995·600 + 600 = 1,197,600; fc2: 600·159 + 159 = 95,559; 8 bytes each.
  EXPECT_EQ(out.str(),
            "Layer   Type         Output shape  Params\n"
            "============================================\n"
            "fpi     fixed_point  (N, 159)      1,293,159\n"
            "    map net (fc1's z part hoisted), forward anderson tol 1e-4 max 200, backward implicit anderson tol 1e-4 "
            "max 200\n"
            "  join  concat       (N, 1995)     0\n"
            "  fc1   dense        (N, 600)      1,197,600\n"
            "  act1  relu         (N, 600)      0\n"
            "  fc2   dense        (N, 159)      95,559\n"
            "  out   sigmoid      (N, 159)      0\n"
            "============================================\n"
            "Total params: 1,293,159\n"
            "Trainable params: 1,293,159\n"
            "Parameter size: 9.87 MB (float64)\n");
}

TEST(ModelGraph, SummarisesEnergyMapsAndUnknownSizes) {
  const json model = json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [159],
     "forward": {"solver": "picard", "tolerance": 1e-6, "max_iterations": 50}, "backward_mode": "jacobian_free",
     "map": {"type": "energy", "step_size": 0.5, "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "fc1", "type": "dense", "units": 6}]}},
    {"name": "conv", "type": "conv2d", "input": "img", "channels": 3, "kernel_size": 3}]})");
  Generator generator(0);
  const BuiltModel built = build_model(model, {{"features", {18}}, {"img", {1, -1, -1}}}, {}, generator);
  std::ostringstream out;
  built.module->print_summary(out);
  // fc1: 177·6 + 6 = 1,068; conv: 3·1·3·3 + 3 = 30; 4 bytes each.
  EXPECT_EQ(out.str(),
            "Layer   Type         Output shape  Params\n"
            "=========================================\n"
            "fpi     fixed_point  (N, 159)      1,068\n"
            "    map energy step 0.5 mean_square (fc1's z part hoisted), forward picard tol 1e-6 max 50, backward "
            "jacobian_free\n"
            "  join  concat       (N, 177)      0\n"
            "  fc1   dense        (N, 6)        1,068\n"
            "conv    conv2d       (N, 3, ?, ?)  30\n"
            "=========================================\n"
            "Total params: 1,098\n"
            "Trainable params: 1,098\n"
            "Parameter size: 4.29 KB (float32)\n");
}

struct BadModel {
  std::string model;
  std::string message;
};

TEST(ModelGraph, RefusesBadModelsNamingThePlace) {
  const std::vector<data::FieldSpec> fields{
      {"features", {1836}}, {"labels", {159}}, {"noisy", {1, -1, -1}}, {"wide", {2, 4, 4}}, {"tall", {3, 4, 5}}};
  std::string known;
  for (const auto& type : layer_types()) known += (known.empty() ? "" : ", ") + type;
  const std::string fpi_head = R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "features",
    "state_shape": [159], "map": {"type": "net", "layers": [{"name": "join", "type": "concat", "inputs": ["z", "x"]},)";
  const std::vector<BadModel> cases{
      {R"({"layers": [{"name": "fc", "type": "dens", "input": "features", "units": 3}]})",
       "model.layers[0].type: unknown layer type 'dens'; known types: " + known},
      {R"({"layers": [{"name": "fc", "type": "dense", "input": "features", "units": 3, "unitz": 4}]})",
       "model.layers[0]: unknown key 'unitz'; expected one of: bias, units"},
      {R"({"layers": [{"name": "fc", "type": "dense", "input": "features"}]})",
       "model.layers[0]: missing required key 'units'"},
      {R"({"layers": [{"name": "fc", "type": "dense", "input": "features", "units": "abc"}]})",
       "model.layers[0].units: expected a positive integer, got \"abc\""},
      {R"({"layers": [{"name": "a", "type": "relu", "input": "features"}, {"name": "b", "type": "relu", "input": "c"},
                      {"name": "c", "type": "relu"}]})",
       "model.layers[1].input: 'c' is defined later (model.layers[2]); a layer may only read sources and earlier "
       "layers"},
      {R"({"layers": [{"name": "a", "type": "relu", "input": "features"}, {"name": "b", "type": "add",
                       "inputs": ["a", "fc9"]}]})",
       "model.layers[1].inputs[1]: no layer or source is called 'fc9'; available: features, labels, noisy, wide, tall, "
       "a"},
      {R"({"layers": [{"name": "a", "type": "relu", "input": "features"}, {"name": "a", "type": "tanh"}]})",
       "model.layers[1].name: duplicate layer name 'a' (first used at model.layers[0])"},
      {R"({"layers": [{"name": "fc", "type": "dense", "input": "noisy", "units": 3}]})",
       "model.layers[0]: dense needs a known last input size, got shape (N, 1, ?, ?)"},
      {R"({"layers": [{"name": "ab", "type": "concat", "inputs": ["wide", "tall"]}]})",
       "model.layers[0]: concat inputs disagree in dimension 3: (N, 2, 4, 4) and (N, 3, 4, 5)"},
      {fpi_head + R"({"name": "fc", "type": "dense", "units": 158}]}}]})",
       "model.layers[0].map: the map's output has shape (N, 158) but the state has shape (N, 159)"},
      {fpi_head + R"({"name": "fc", "type": "dense", "input": "features", "units": 159}]}}]})",
       "model.layers[0].map.layers[1].input: no layer or source is called 'features'; available: x, z, join"},
      {fpi_head + R"({"name": "x", "type": "dense", "units": 159}]}}]})",
       "model.layers[0].map.layers[1].name: 'x' is the name of a source (x, z); a layer needs a name of its own"},
      {R"({"layers": [{"name": "fpi", "type": "fixed_point", "inputs": ["features", "labels"], "state_shape": [159],
                       "map": {"type": "net", "layers": [{"name": "o", "type": "identity", "input": "x"}]}}]})",
       "model.layers[0].inputs: fixed_point takes 1 input, got 2"},
      {R"({"layers": [{"name": "fc", "type": "dense", "units": 3}]})",
       "model.layers[0]: the first layer needs an \"input\"; it can read features, labels, noisy, wide, tall"},
      {R"({"layers": [{"name": "fc", "type": "dense", "input": "features", "inputs": ["features"], "units": 3}]})",
       "model.layers[0]: give \"input\" or \"inputs\", not both"},
      {R"({"layers": [{"name": "labels", "type": "relu", "input": "features"}]})",
       "model.layers[0].name: 'labels' is the name of a source (features, labels, noisy, wide, tall); a layer needs a "
       "name "
       "of its own"},
      {R"({"layers": [{"name": "2fc", "type": "relu", "input": "features"}]})",
       "model.layers[0].name: expected a name matching ^[A-Za-z_][A-Za-z0-9_]*$, got \"2fc\""},
      {R"({"layers": [{"name": "both", "type": "concat", "input": "features"}]})",
       "model.layers[0].input: concat takes 2 or more inputs, got 1"},
      {R"({"layers": [{"name": "a", "type": "relu", "input": "features"}, {"name": "b", "type": "add"}]})",
       "model.layers[1]: add takes 2 inputs; give them as \"inputs\""},
      {R"({"layers": [{"name": "a", "type": "relu", "input": "features"}], "output": "b"})",
       "model.output: no layer is called 'b'; layers: a"},
      {R"({"layers": []})", "model.layers: expected a non-empty array of layer objects, got []"},
      {R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [159, 0],
                       "map": {"type": "net", "layers": [{"name": "o", "type": "identity", "input": "x"}]}}]})",
       "model.layers[0].state_shape: expected a non-empty array of integers >= 1 or -1, got [159,0]"},
      {R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [-1, 3],
                       "map": {"type": "net", "layers": [{"name": "o", "type": "identity", "input": "x"}]}}]})",
       "model.layers[0].state_shape: -1 takes the input's size, so the state needs the input's rank (1), got [-1,3] "
       "for input (N, 1836)"},
      {R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [159],
                       "forward": {"damping": 0},
                       "map": {"type": "net", "layers": [{"name": "o", "type": "identity", "input": "x"}]}}]})",
       "model.layers[0].forward.damping: expected a number in (0, 1], got 0"},
      {R"({"layers": [{"name": "d", "type": "dropout", "input": "features", "p": 1}]})",
       "model.layers[0].p: expected a number in [0, 1), got 1"},
      {R"({"layers": [{"name": "c", "type": "conv2d", "input": "features", "channels": 2, "kernel_size": 3}]})",
       "model.layers[0]: conv2d needs a (C, H, W) input, got shape (N, 1836)"},
      {R"({"layers": [{"name": "c", "type": "conv2d", "input": "wide", "channels": 2, "kernel_size": 5}]})",
       "model.layers[0]: conv2d leaves no output: input (N, 2, 4, 4) gives (N, 2, 0, 0)"},
      {R"([1, 2])", "model: expected an object with \"layers\", got [1,2]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    EXPECT_EQ(error_of([&] { build(json::parse(c.model), fields); }), c.message);
  }
}

}  // namespace
}  // namespace fpi::train
