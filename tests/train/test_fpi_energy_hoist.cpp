// An energy map (FPI_GD) whose first dense or conv2d reads concat(z, v), v being x or x after layers of
// one input each (the Bibtex config's sigmoid), computes that layer's z part once per solve (the map's
// "hoist" key, as for a net map): hoisted and plain must give the same fixed point and the same gradients
// for z and every parameter, the hoisted one must pass finite differences of first and second order,
// and the split must be refused where it would not be exact.
#include <gtest/gtest.h>

#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "gradcheck.hpp"
#include "hoist_testing.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;

constexpr TensorOptions kF64{.dtype = kFloat64};

// The fixed_point layer around an energy map's `layers`; the proximal term keeps the fixed point unique
// and the implicit backward well posed where relu switches units off.
json energy_model(bool hoist, const std::string& layers, const std::string& state = "[3]",
                  const std::string& reduction = "mean_square") {
  return json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": )" + state + R"(,
     "per_sample": false, "initial_state": -0.5,
     "forward": {"tolerance": 1e-13, "max_iterations": 1000},
     "backward": {"tolerance": 1e-13, "max_iterations": 1000},
     "map": {"type": "energy", "step_size": 0.5, "proximal": 1.0, "reduction": ")" + reduction +
                     R"(", "hoist": )" + (hoist ? "true" : "false") + R"(, "layers": )" + layers + "}}]}");
}

// The Bibtex FPI_GD's map, small: E = mean(relu(fc(concat(z, sigmoid(x))))²), z of 7, state of 3.
const std::string kBibtexShape = R"([
  {"name": "probs", "type": "sigmoid", "input": "x"},
  {"name": "join", "type": "concat", "inputs": ["z", "probs"]},
  {"name": "fc", "type": "dense", "units": 6},
  {"name": "act", "type": "relu"}])";

// x itself, joined first, two layers of one input between x and the join.
const std::string kXFirst = R"([
  {"name": "join", "type": "concat", "inputs": ["x", "z"]},
  {"name": "fc", "type": "dense", "units": 6},
  {"name": "act", "type": "tanh"}])";
const std::string kLongChain = R"([
  {"name": "t", "type": "tanh", "input": "x"},
  {"name": "s", "type": "softplus"},
  {"name": "join", "type": "concat", "inputs": ["z", "s"]},
  {"name": "fc", "type": "dense", "units": 6, "lipschitz": 0.9},
  {"name": "act", "type": "relu"}])";

// Channels: E = Σ tanh(conv(concat(z, x))) over a (2, H, W) state, z of 3 channels.
const std::string kConv = R"([
  {"name": "join", "type": "concat", "inputs": ["z", "x"]},
  {"name": "conv", "type": "conv2d", "channels": 4, "kernel_size": 3, "padding": 1},
  {"name": "act", "type": "tanh"}])";

std::shared_ptr<GraphModule> build(const json& model, const Shape& input) {
  return testing::build_f64(model, input);
}

bool hoisted(const GraphModule& graph) {
  return std::dynamic_pointer_cast<nn::EnergyDescentMap>(graph.fixed_point_layers().at(0).second->map)->hoisted();
}

void expect_same_as_plain(const json& hoisted_model, const json& plain_model, const Shape& input,
                          const Shape& batch) {
  auto a = build(hoisted_model, input), b = build(plain_model, input);
  ASSERT_TRUE(hoisted(*a));
  ASSERT_FALSE(hoisted(*b));
  testing::expect_hoisted_same_as_plain(*a, *b, batch);
  const auto& stats = a->fixed_point_layers().at(0).second->stats();
  EXPECT_EQ(stats.forward.converged_fraction(), 1.0);
  EXPECT_EQ(stats.backward.converged_fraction(), 1.0);
}

TEST(HoistedEnergyMap, BibtexShapeMatchesThePlainMap) {
  expect_same_as_plain(energy_model(true, kBibtexShape), energy_model(false, kBibtexShape), {7}, {4, 7});
}

// Summed, relu would make ∇ₓE piecewise constant; this energy takes tanh.
TEST(HoistedEnergyMap, SumReductionMatchesThePlainMap) {
  expect_same_as_plain(energy_model(true, kXFirst, "[3]", "sum"), energy_model(false, kXFirst, "[3]", "sum"), {7},
                       {4, 7});
}

TEST(HoistedEnergyMap, XJoinedFirstMatchesThePlainMap) {
  expect_same_as_plain(energy_model(true, kXFirst), energy_model(false, kXFirst), {7}, {4, 7});
}

TEST(HoistedEnergyMap, BoundedLayerAfterALongerChainMatchesThePlainMap) {
  expect_same_as_plain(energy_model(true, kLongChain), energy_model(false, kLongChain), {7}, {4, 7});
}

TEST(HoistedEnergyMap, ConvMapMatchesThePlainMap) {
  expect_same_as_plain(energy_model(true, kConv, "[2, -1, -1]", "sum"),
                       energy_model(false, kConv, "[2, -1, -1]", "sum"), {3, -1, -1}, {2, 3, 4, 5});
}

TEST(HoistedEnergyMap, PassesFiniteDifferenceChecks) {
  auto graph = build(energy_model(true, kBibtexShape), {7});
  ASSERT_TRUE(hoisted(*graph));
  Generator gen(9);
  Tensors inputs{randn({2, 7}, kF64, &gen).requires_grad_()};
  for (const auto& p : graph->parameters()) inputs.push_back(p);
  const auto f = [&](const Tensors& in) { return graph->forward({{"features", in[0]}}); };
  EXPECT_TRUE(testing::gradcheck(f, inputs, {.atol = 1e-8, .rtol = 1e-5}));
  EXPECT_TRUE(testing::gradgradcheck(f, inputs, {.atol = 1e-6, .rtol = 1e-4}));
}

TEST(HoistedEnergyMap, HoistIsOnByDefaultAndResolved) {
  json model = energy_model(true, kBibtexShape);
  model["layers"][0]["map"].erase("hoist");
  Generator generator(5);
  const BuiltModel built = build_model(model, {{"features", {7}}}, kF64, generator);
  EXPECT_TRUE(hoisted(*built.module));
  EXPECT_EQ(built.resolved["layers"][0]["map"]["hoist"], true);
  EXPECT_EQ(build_model(energy_model(false, kBibtexShape), {{"features", {7}}}, kF64, generator)
                .resolved["layers"][0]["map"]["hoist"],
            false);
}

// Where z is read by another layer too, or v comes from a layer of two inputs, the split would not be
// exact (or v could not be computed from x alone): the map runs whole.
TEST(HoistedEnergyMap, StaysWholeWhereTheSplitIsNotExact) {
  const std::string z_read_twice = R"([
    {"name": "join", "type": "concat", "inputs": ["z", "x"]},
    {"name": "fc", "type": "dense", "units": 3},
    {"name": "zfc", "type": "dense", "units": 3, "input": "z"},
    {"name": "sum", "type": "add", "inputs": ["fc", "zfc"]}])";
  EXPECT_FALSE(hoisted(*build(energy_model(true, z_read_twice), {7})));
  const std::string two_input_chain = R"([
    {"name": "doubled", "type": "add", "inputs": ["x", "x"]},
    {"name": "join", "type": "concat", "inputs": ["z", "doubled"]},
    {"name": "fc", "type": "dense", "units": 3}])";
  EXPECT_FALSE(hoisted(*build(energy_model(true, two_input_chain), {7})));
  const std::string activation_first = R"([
    {"name": "join", "type": "concat", "inputs": ["z", "x"]},
    {"name": "act", "type": "tanh"},
    {"name": "fc", "type": "dense", "units": 3}])";
  EXPECT_FALSE(hoisted(*build(energy_model(true, activation_first), {7})));
}

}  // namespace
}  // namespace fpi::train
