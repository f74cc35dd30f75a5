// The fixed_point layer's keys for where its solve starts and how its gradient is regularised:
// backward_regularization, initial_state and the energy map's proximal term, read from a model section
// into the built layer, resolved with their defaults, and refused by name when out of range.
#include <gtest/gtest.h>

#include <sstream>

#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "test_util.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;
using testing::error_of;

const std::vector<data::FieldSpec> kFields{{"features", {6}}, {"labels", {4}}};

json fpi_gd_model() {
  return json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [4],
     "map": {"type": "energy", "step_size": 0.5, "layers": [
       {"name": "probs", "type": "sigmoid", "input": "x"},
       {"name": "join", "type": "concat", "inputs": ["z", "probs"]},
       {"name": "fc", "type": "dense", "units": 5},
       {"name": "act", "type": "relu"}]}}]})");
}

BuiltModel build(const json& model) {
  Generator generator(13);
  return build_model(model, kFields, {.dtype = kFloat64}, generator);
}

TEST(FixedPointStartKeys, DefaultToThePlainLayer) {
  const BuiltModel built = build(fpi_gd_model());
  const json& layer = built.resolved["layers"][0];
  EXPECT_EQ(layer["backward_regularization"], 0.0);
  EXPECT_EQ(layer["initial_state"], 0.0);
  EXPECT_EQ(layer["map"]["proximal"], 0.0);
  const auto fpi = built.module->fixed_point_layers()[0].second;
  EXPECT_EQ(fpi->options().backward_regularization, 0.0);
  EXPECT_EQ(fpi->initial_value(), 0.0);
  EXPECT_EQ(std::dynamic_pointer_cast<nn::EnergyDescentMap>(fpi->map)->proximal_weight, 0.0);
}

TEST(FixedPointStartKeys, ReachTheLayerAndItsMap) {
  json model = fpi_gd_model();
  model["layers"][0]["backward_regularization"] = 0.5;
  model["layers"][0]["initial_state"] = -4.0;
  model["layers"][0]["map"]["proximal"] = 0.1;
  const BuiltModel built = build(model);
  const auto fpi = built.module->fixed_point_layers()[0].second;
  EXPECT_EQ(fpi->options().backward_regularization, 0.5);
  EXPECT_EQ(fpi->initial_value(), -4.0);
  const auto map = std::dynamic_pointer_cast<nn::EnergyDescentMap>(fpi->map);
  ASSERT_TRUE(map);
  EXPECT_EQ(map->proximal_weight, 0.1);
  EXPECT_EQ(map->proximal_center, -4.0);
  std::ostringstream summary;
  built.module->print_summary(summary);
  EXPECT_NE(summary.str().find("map energy step 0.5 mean_square proximal 0.1 (fc's z part hoisted), forward anderson "
                               "tol 1e-4 max 200, backward implicit anderson tol 1e-4 max 200 regularised 0.5, "
                               "start -4"),
            std::string::npos)
      << summary.str();
  // The proximal term pins the fixed point near the start where the network's energy is flat: with
  // the network's weights at zero E = (μ/2)‖x − x0‖², whose minimiser is x0 itself.
  for (auto& [name, p] : built.module->named_parameters()) {
    NoGrad no_grad;
    p.fill_(0.0);
  }
  const Tensor out = built.module->forward({{"features", ones({2, 6}, {.dtype = kFloat64})}});
  EXPECT_TRUE(allclose(out, full({2, 4}, -4.0, {.dtype = kFloat64}), 1e-12, 1e-12)) << out;
}

TEST(FixedPointStartKeys, RefuseBadValuesByName) {
  const auto message = [](const char* key, const json& value, bool in_map) {
    json model = fpi_gd_model();
    (in_map ? model["layers"][0]["map"] : model["layers"][0])[key] = value;
    return error_of([&] { build(model); });
  };
  EXPECT_EQ(message("backward_regularization", -0.5, false),
            "model.layers[0].backward_regularization: expected a number >= 0, got -0.5");
  EXPECT_EQ(message("initial_state", "prior", false),
            "model.layers[0].initial_state: expected a finite number, got \"prior\"");
  EXPECT_EQ(message("proximal", -1, true), "model.layers[0].map.proximal: expected a number >= 0, got -1");
  json net = json::parse(R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "features",
    "state_shape": [4], "map": {"type": "net", "proximal": 1, "layers": [{"name": "o", "type": "identity",
    "input": "x"}]}}]})");
  EXPECT_EQ(error_of([&] { build(net); }).rfind("model.layers[0].map: unknown key 'proximal'", 0), 0u);
}

}  // namespace
}  // namespace fpi::train
