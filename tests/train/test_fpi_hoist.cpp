// A net map whose first dense or conv2d reads concat(z, x) computes that layer's z part once per solve
// (the "hoist" key): the hoisted and the plain map must give the same fixed point and the same gradients
// for z and every parameter, the hoisted one must pass finite-difference checks of first and second
// order, and the split must be refused where it would not be exact.
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
using testing::summary_of;

constexpr TensorOptions kF64{.dtype = kFloat64};

// A small FPI_NN on feature vectors: g = sigmoid(fc2(relu(fc1(concat(z, x))))), z of 7, state of 3.
json dense_model(bool hoist, const char* order = R"(["z", "x"])") {
  return json::parse(std::string(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [3],
     "forward": {"tolerance": 1e-13, "max_iterations": 500},
     "backward": {"tolerance": 1e-13, "max_iterations": 500},
     "map": {"type": "net", "hoist": )") + (hoist ? "true" : "false") + R"(, "layers": [
       {"name": "join", "type": "concat", "inputs": )" + order + R"(},
       {"name": "fc1", "type": "dense", "units": 5},
       {"name": "act1", "type": "relu"},
       {"name": "fc2", "type": "dense", "units": 3},
       {"name": "out", "type": "sigmoid"}]}}]})");
}

// The flow map's shape: g = tanh(deconv(relu(conv(concat(z, x))))), z of 3 channels, state of 2.
// `bound`: both layers carry "lipschitz", so they run as nn::LipschitzBound.
json conv_model(bool hoist, bool bound = false) {
  const std::string lipschitz = bound ? R"(, "lipschitz": 0.9)" : "";
  return json::parse(std::string(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [2, -1, -1],
     "per_sample": false,
     "forward": {"tolerance": 1e-13, "max_iterations": 500},
     "backward": {"tolerance": 1e-13, "max_iterations": 500},
     "map": {"type": "net", "hoist": )") + (hoist ? "true" : "false") + R"(, "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "conv", "type": "conv2d", "channels": 4, "kernel_size": 3, "stride": 2, "padding": 1)" +
                                  lipschitz + R"(},
       {"name": "act", "type": "relu"},
       {"name": "deconv", "type": "conv_transpose2d", "channels": 2, "kernel_size": 4, "stride": 2, "padding": 1)" +
                                  lipschitz + R"(},
       {"name": "bound", "type": "tanh"}]}}]})");
}

std::shared_ptr<GraphModule> build(const json& model, const Shape& input) {
  return testing::build_f64(model, input);
}

void expect_same_as_plain(const json& hoisted, const json& plain, const Shape& input, const Shape& batch) {
  testing::expect_hoisted_same_as_plain(*build(hoisted, input), *build(plain, input), batch);
}

TEST(HoistedNetMap, DenseMapMatchesThePlainMap) {
  expect_same_as_plain(dense_model(true), dense_model(false), {7}, {4, 7});
}

TEST(HoistedNetMap, DenseMapWithXFirstMatchesThePlainMap) {
  expect_same_as_plain(dense_model(true, R"(["x", "z"])"), dense_model(false, R"(["x", "z"])"), {7}, {4, 7});
}

TEST(HoistedNetMap, ConvMapMatchesThePlainMap) {
  expect_same_as_plain(conv_model(true), conv_model(false), {3, -1, -1}, {2, 3, 6, 8});
}

TEST(HoistedNetMap, BoundedConvMapMatchesThePlainMap) {
  expect_same_as_plain(conv_model(true, true), conv_model(false, true), {3, -1, -1}, {2, 3, 6, 8});
}

TEST(HoistedNetMap, PassesFiniteDifferenceChecks) {
  for (const bool conv : {false, true}) {
    // Bounded, in evaluation mode: the bounds' power iteration holds still between evaluations.
    auto graph = conv ? build(conv_model(true, true), {3, -1, -1}) : build(dense_model(true), {7});
    graph->eval();
    Generator gen(9);
    Tensors inputs{randn(conv ? Shape{1, 3, 4, 4} : Shape{2, 7}, kF64, &gen).requires_grad_()};
    for (const auto& p : graph->parameters()) inputs.push_back(p);
    const auto f = [&](const Tensors& in) { return graph->forward({{"features", in[0]}}); };
    EXPECT_TRUE(testing::gradcheck(f, inputs, {.atol = 1e-8, .rtol = 1e-5})) << (conv ? "conv" : "dense");
    EXPECT_TRUE(testing::gradgradcheck(f, inputs, {.atol = 1e-6, .rtol = 1e-4})) << (conv ? "conv" : "dense");
  }
}

TEST(HoistedNetMap, KeepsTheParameterNames) {
  auto a = build(conv_model(true), {3, -1, -1}), b = build(conv_model(false), {3, -1, -1});
  std::vector<std::string> na, nb;
  for (const auto& [name, p] : a->named_parameters()) na.push_back(name);
  for (const auto& [name, p] : b->named_parameters()) nb.push_back(name);
  EXPECT_EQ(na, nb);
  EXPECT_EQ(na.front(), "fpi.map.net.conv.weight");
  auto bounded = build(conv_model(true, true), {3, -1, -1});
  EXPECT_EQ(bounded->named_parameters().front().first, "fpi.map.net.conv.layer.weight");
}

// Where z or the join is read by another layer too, or the join is not the first linear layer's
// input alone, the split would not be exact: the map runs whole.
TEST(HoistedNetMap, StaysWholeWhereTheSplitIsNotExact) {
  const json z_read_twice = json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [3],
     "map": {"type": "net", "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "fc1", "type": "dense", "units": 3},
       {"name": "zfc", "type": "dense", "units": 3, "input": "z"},
       {"name": "sum", "type": "add", "inputs": ["fc1", "zfc"]},
       {"name": "out", "type": "tanh"}]}}]})");
  EXPECT_EQ(summary_of(*build(z_read_twice, {7})).find("hoisted"), std::string::npos);
  const json activation_first = json::parse(R"({"layers": [
    {"name": "fpi", "type": "fixed_point", "input": "features", "state_shape": [3],
     "map": {"type": "net", "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "act", "type": "tanh"},
       {"name": "fc1", "type": "dense", "units": 3}]}}]})");
  EXPECT_EQ(summary_of(*build(activation_first, {7})).find("hoisted"), std::string::npos);
}

}  // namespace
}  // namespace fpi::train
