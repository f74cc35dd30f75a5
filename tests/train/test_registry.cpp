// The layer registry: the built-in types, each built from JSON with the output shape it reports and the
// shape a forward pass really gives, the defaults they resolve to, registration's refusals, and a layer
// type registered from here and then used from a config like a built-in one.
#include <gtest/gtest.h>

#include "fpi/generator.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/registry.hpp"
#include "test_util.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;
using testing::error_of;

constexpr TensorOptions kF64{.dtype = kFloat64};

// One layer of `type` with `args` reading the field "in" of per-sample shape `in`.
BuiltModel one_layer(const std::string& type, json args, const Shape& in) {
  args["name"] = "layer";
  args["type"] = type;
  args["input"] = "in";
  Generator generator(7);
  return build_model({{"layers", json::array({args})}}, {{"in", in}}, kF64, generator);
}

// The batch shape a forward pass gives for a batch of `batch` samples of per-sample shape `in`.
Shape forward_shape(const BuiltModel& model, std::int64_t batch, const Shape& in) {
  Shape shape{batch};
  shape.insert(shape.end(), in.begin(), in.end());
  Generator generator(3);
  return model.module->forward({{"in", randn(shape, kF64, &generator)}}).shape();
}

TEST(LayerRegistry, ListsTheBuiltInTypesSorted) {
  const std::vector<std::string> expected{
      "add",     "concat",   "conv2d", "conv_transpose2d", "dense",    "dropout",  "fixed_point",
      "flatten", "identity", "relu",   "sigmoid",          "softplus", "subtract", "tanh"};
  std::vector<std::string> builtins;
  for (const auto& type : layer_types())
    if (std::find(expected.begin(), expected.end(), type) != expected.end()) builtins.push_back(type);
  EXPECT_EQ(builtins, expected);
  const auto types = layer_types();
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));
  ASSERT_NE(find_layer_type("concat"), nullptr);
  EXPECT_EQ(find_layer_type("concat")->min_inputs, 2);
  EXPECT_EQ(find_layer_type("concat")->max_inputs, -1);
  EXPECT_EQ(find_layer_type("dens"), nullptr);
}

struct ShapeCase {
  std::string type;
  json args;
  Shape in;
  Shape out;
};

TEST(LayerRegistry, BuildsEachSingleInputTypeWithTheShapeItComputes) {
  const std::vector<ShapeCase> cases{
      {"dense", {{"units", 7}}, {5}, {7}},
      {"dense", {{"units", 3}, {"bias", false}}, {2, 4}, {2, 3}},
      {"conv2d", {{"channels", 4}, {"kernel_size", 3}, {"padding", 1}}, {2, 9, 8}, {4, 9, 8}},
      {"conv2d", {{"channels", 2}, {"kernel_size", {3, 1}}, {"stride", 2}, {"dilation", {1, 2}}}, {1, 9, 8}, {2, 4, 4}},
      {"conv_transpose2d",
       {{"channels", 3}, {"kernel_size", 3}, {"stride", 2}, {"output_padding", 1}},
       {2, 4, 5},
       {3, 10, 12}},
      {"relu", json::object(), {3, 2}, {3, 2}},
      {"sigmoid", json::object(), {4}, {4}},
      {"tanh", json::object(), {4}, {4}},
      {"softplus", json::object(), {4}, {4}},
      {"identity", json::object(), {1, 2, 3}, {1, 2, 3}},
      {"flatten", json::object(), {2, 3, 4}, {24}},
      {"dropout", {{"p", 0.25}}, {6}, {6}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type + " " + c.args.dump());
    const BuiltModel model = one_layer(c.type, c.args, c.in);
    EXPECT_EQ(model.module->output_shape(), c.out);
    Shape batch_out{3};
    batch_out.insert(batch_out.end(), c.out.begin(), c.out.end());
    EXPECT_EQ(forward_shape(model, 3, c.in), batch_out);
  }
}

TEST(LayerRegistry, ResolvesEveryDefault) {
  const json dense = one_layer("dense", {{"units", 2}}, {3}).resolved["layers"][0];
  EXPECT_EQ(dense, json({{"name", "layer"}, {"type", "dense"}, {"input", "in"}, {"units", 2}, {"bias", true}}));
  const json conv = one_layer("conv_transpose2d", {{"channels", 2}, {"kernel_size", 3}}, {1, 4, 4}).resolved;
  EXPECT_EQ(conv["layers"][0], json({{"name", "layer"},
                                     {"type", "conv_transpose2d"},
                                     {"input", "in"},
                                     {"channels", 2},
                                     {"kernel_size", 3},
                                     {"stride", 1},
                                     {"padding", 0},
                                     {"dilation", 1},
                                     {"output_padding", 0},
                                     {"bias", true}}));
  EXPECT_EQ(conv["output"], "layer");
  EXPECT_EQ(one_layer("dropout", json::object(), {3}).resolved["layers"][0]["p"], 0.5);
}

TEST(LayerRegistry, MultiInputTypesCombineTheirInputs) {
  Generator generator(1);
  const json layers = json::array({
      {{"name", "both"}, {"type", "concat"}, {"inputs", {"a", "b"}}},
      {{"name", "sum"}, {"type", "add"}, {"inputs", {"a", "a"}}},
      {{"name", "diff"}, {"type", "subtract"}, {"inputs", {"sum", "a"}}},
      {{"name", "stacked"}, {"type", "concat"}, {"inputs", {"img", "img", "img"}}, {"dim", 1}},
  });
  const BuiltModel model = build_model({{"layers", layers}, {"output", "diff"}},
                                       {{"a", {3}}, {"b", {2}}, {"img", {1, 2, 5}}}, kF64, generator);
  const Tensor a = randn({4, 3}, kF64, &generator);
  const Tensor out = model.module->forward({{"a", a}, {"b", randn({4, 2}, kF64)}, {"img", randn({4, 1, 2, 5}, kF64)}});
  // (a + a) - a = a, up to the rounding of the sum, which doubling does not do.
  EXPECT_EQ(out.to_vector(), a.to_vector());
  EXPECT_EQ(model.resolved["layers"][0]["dim"], 0);
  EXPECT_EQ(model.module->source_names(), (std::vector<std::string>{"a", "b", "img"}));
}

TEST(LayerRegistry, RefusesBadRegistrations) {
  const LayerType valid{"copies its input", 1, 1, [](JsonObject&, const LayerContext& context) {
                          return BuiltLayer{nullptr, context.input_shapes[0], [](const auto& in) { return in[0]; }, {}};
                        }};
  EXPECT_EQ(error_of([&] { register_layer("dense", valid); }),
            "register_layer: layer type 'dense' is already registered");
  EXPECT_EQ(error_of([&] { register_layer("my-layer", valid); }),
            "register_layer: type 'my-layer' may only use letters, digits and '_'");
  EXPECT_EQ(error_of([&] {
              register_layer("nothing", LayerType{"no factory", 1, 1, nullptr});
            }),
            "register_layer: type 'nothing' has no build function");
  LayerType backwards = valid;
  backwards.min_inputs = 3;
  backwards.max_inputs = 2;
  EXPECT_EQ(error_of([&] { register_layer("backwards", backwards); }),
            "register_layer: type 'backwards' has max_inputs 2 below min_inputs 3 (use -1 for any number)");
  EXPECT_EQ(find_layer_type("backwards"), nullptr);
}

// A custom type as a program would add it: y = factor · x, with a key of its own.
TEST(LayerRegistry, ACustomTypeIsUsableFromJson) {
  if (!find_layer_type("scale")) {
    register_layer("scale",
                   {"multiplies its input by factor", 1, 1, [](JsonObject& args, const LayerContext& context) {
                      const double factor = args.number("factor", -10.0, 10.0, 2.0);
                      const auto apply = [factor](const std::vector<Tensor>& in) { return in[0] * factor; };
                      return BuiltLayer{nullptr, context.input_shapes[0], apply, "factor " + std::to_string(factor)};
                    }});
  }
  const auto types = layer_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "scale"), types.end());

  const BuiltModel model = one_layer("scale", {{"factor", 3}}, {2});
  const Tensor x = tensor({1.0, -2.0}, kF64).reshape({1, 2});
  EXPECT_EQ(model.module->forward({{"in", x}}).to_vector(), (std::vector<double>{3.0, -6.0}));
  EXPECT_EQ(one_layer("scale", json::object(), {2}).resolved["layers"][0]["factor"], 2.0);
  EXPECT_EQ(error_of([] {
              one_layer("scale", {{"factr", 3}}, {2});
            }),
            "model.layers[0]: unknown key 'factr'; expected one of: factor");
  EXPECT_EQ(error_of([] {
              one_layer("scale", {{"factor", 11}}, {2});
            }),
            "model.layers[0].factor: expected a number from -10 to 10, got 11");
}

// A factory that fails with a plain fpi::Error (here: a module's own check) still gives a ConfigError
// naming the layer's place, so the CLI reports it as a config problem.
TEST(LayerRegistry, FactoryErrorsBecomeConfigErrorsNamingTheLayer) {
  if (!find_layer_type("picky")) {
    register_layer("picky", {"refuses every input", 1, 1, [](JsonObject&, const LayerContext&) -> BuiltLayer {
                               fail("picky: inputs are never good enough");
                             }});
  }
  const auto build = [] { one_layer("picky", json::object(), {2}); };
  EXPECT_THROW(build(), ConfigError);
  EXPECT_EQ(error_of(build), "model.layers[0]: picky: inputs are never good enough");
}

}  // namespace
}  // namespace fpi::train
