// JsonObject, the reader behind every config object: each getter's accepted values, its refusals with
// their exact messages, the defaults it fills in and the resolved object finish() hands back.
#include <gtest/gtest.h>

#include "fpi/train/json_reader.hpp"
#include "test_util.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;
using testing::error_of;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

JsonObject layer(const std::string& text) { return JsonObject(json::parse(text), "model.layers[2]"); }

// The message of the ConfigError `f` throws ("(no error)" if none; another exception type fails the test).
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JsonReader, PathsNameTheKey) {
  const JsonObject top(json::object(), "");
  EXPECT_EQ(top.key_path("train"), "train");
  JsonObject nested = layer("{}");
  EXPECT_EQ(nested.path(), "model.layers[2]");
  EXPECT_EQ(nested.key_path("units"), "model.layers[2].units");
}

TEST(JsonReader, RefusesANonObject) {
  EXPECT_EQ(config_error([] { JsonObject(json::parse("[1, 2]"), "train"); }), "train: expected an object, got [1,2]");
  EXPECT_EQ(config_error([] { JsonObject(json::parse("3"), ""); }), "config: expected an object, got 3");
}

TEST(JsonReader, IntegerAcceptsWholeNumbersInRange) {
  JsonObject o = layer(R"({"units": 600, "big": 9223372036854775807, "neg": -3})");
  EXPECT_EQ(o.integer("units", 1, kMax), 600);
  EXPECT_EQ(o.integer("big", 0, kMax), kMax);
  EXPECT_EQ(o.integer("neg", -5, 5), -3);
  EXPECT_EQ(o.integer("absent", 1, 10, 7), 7);
}

TEST(JsonReader, IntegerRefusals) {
  const auto refusal = [](const std::string& value, std::int64_t min, std::int64_t max) {
    return config_error([&] { layer(R"({"units": )" + value + "}").integer("units", min, max); });
  };
  EXPECT_EQ(refusal(R"("abc")", 1, kMax), R"(model.layers[2].units: expected a positive integer, got "abc")");
  EXPECT_EQ(refusal("0", 1, 1000000), "model.layers[2].units: expected an integer from 1 to 1000000, got 0");
  EXPECT_EQ(refusal("-1", 0, kMax), "model.layers[2].units: expected a non-negative integer, got -1");
  EXPECT_EQ(refusal("1", 2, kMax), "model.layers[2].units: expected an integer >= 2, got 1");
  EXPECT_EQ(refusal("1.5", 1, kMax), "model.layers[2].units: expected a positive integer, got 1.5 (integers are "
                                     "written without a decimal point or exponent)");
  EXPECT_EQ(refusal("1e3", 1, kMax), "model.layers[2].units: expected a positive integer, got 1000.0 (integers are "
                                     "written without a decimal point or exponent)");
  EXPECT_EQ(refusal("18446744073709551615", 1, kMax),
            "model.layers[2].units: expected a positive integer, got 18446744073709551615");
  EXPECT_EQ(refusal("null", 1, kMax), "model.layers[2].units: expected a positive integer, got null");
  // A present key is checked even when the getter has a fallback.
  EXPECT_EQ(config_error([] { layer(R"({"units": true})").integer("units", 1, kMax, 5); }),
            "model.layers[2].units: expected a positive integer, got true");
}

TEST(JsonReader, MissingRequiredKeyNamesTheObject) {
  EXPECT_EQ(config_error([] { JsonObject(json::object(), "train").integer("epochs", 1, kMax); }),
            "train: missing required key 'epochs'");
  EXPECT_EQ(config_error([] { JsonObject(json::object(), "").string("name"); }), "config: missing required key 'name'");
  EXPECT_EQ(config_error([] { layer("{}").object("map"); }), "model.layers[2]: missing required key 'map'");
  EXPECT_EQ(config_error([] { layer("{}").raw("map"); }), "model.layers[2]: missing required key 'map'");
}

TEST(JsonReader, NumberAcceptsFiniteValuesInRange) {
  JsonObject o = layer(R"({"a": 0.5, "b": 2, "c": 0, "d": 1e-8})");
  EXPECT_EQ(o.number("a", 0, 0.5), 0.5);
  EXPECT_EQ(o.number("b", 0, 10), 2.0);
  EXPECT_EQ(o.number_in("c", Interval{0, 1, false, true}), 0.0);
  EXPECT_EQ(o.positive_number("d"), 1e-8);
  EXPECT_EQ(o.number("absent", 0, 1, 0.25), 0.25);
  EXPECT_EQ(o.positive_number("absent2", 3.0), 3.0);
  EXPECT_EQ(o.number_in("absent3", Interval{0, 1, false, true}, 0.5), 0.5);
}

TEST(JsonReader, NumberRefusals) {
  const auto refusal = [](const std::string& value, auto read) {
    return config_error([&] {
      JsonObject o = layer(R"({"v": )" + value + "}");
      read(o);
    });
  };
  const auto fraction = [](JsonObject& o) { o.number("v", 0, 0.5); };
  const auto positive = [](JsonObject& o) { o.positive_number("v"); };
  const auto half_open = [](JsonObject& o) { o.number_in("v", Interval{0, 1, false, true}); };
  const auto at_least = [](JsonObject& o) { o.number("v", 0, INFINITY); };
  EXPECT_EQ(refusal("0.75", fraction), "model.layers[2].v: expected a number from 0 to 0.5, got 0.75");
  EXPECT_EQ(refusal(R"("0.1")", fraction), R"(model.layers[2].v: expected a number from 0 to 0.5, got "0.1")");
  EXPECT_EQ(refusal("0", positive), "model.layers[2].v: expected a positive number, got 0");
  EXPECT_EQ(refusal("-1e-3", positive), "model.layers[2].v: expected a positive number, got -0.001");
  EXPECT_EQ(refusal("1", half_open), "model.layers[2].v: expected a number in [0, 1), got 1");
  EXPECT_EQ(refusal("-0.5", at_least), "model.layers[2].v: expected a number >= 0, got -0.5");
  EXPECT_EQ(refusal("[1]", at_least), "model.layers[2].v: expected a number >= 0, got [1]");
  // JSON text cannot hold NaN, but a program building the JSON can.
  EXPECT_EQ(config_error([] { JsonObject(json{{"v", NAN}}, "x").number("v", -INFINITY, INFINITY); }),
            "x.v: expected a finite number, got null");
}

TEST(JsonReader, BooleanStringAndChoice) {
  JsonObject o = layer(R"({"bias": false, "name": "fc1", "mode": "max"})");
  EXPECT_FALSE(o.boolean("bias"));
  EXPECT_TRUE(o.boolean("absent", true));
  EXPECT_EQ(o.string("name"), "fc1");
  EXPECT_EQ(o.string("description", ""), "");
  EXPECT_EQ(o.choice("mode", {"min", "max"}), "max");
  EXPECT_EQ(o.choice("split", {"validation", "test"}, "validation"), "validation");

  EXPECT_EQ(config_error([] { layer(R"({"bias": 1})").boolean("bias"); }),
            "model.layers[2].bias: expected true or false, got 1");
  EXPECT_EQ(config_error([] { layer(R"({"name": 5})").string("name"); }),
            "model.layers[2].name: expected a string, got 5");
  EXPECT_EQ(config_error([] { JsonObject(json::parse(R"({"type": "adm"})"), "optimizer").choice(
                                  "type", {"adam", "adamw", "sgd"}); }),
            R"(optimizer.type: expected one of "adam", "adamw", "sgd", got "adm")");
  EXPECT_EQ(config_error([] { layer(R"({"mode": 1})").choice("mode", {"min", "max"}, "min"); }),
            R"(model.layers[2].mode: expected one of "min", "max", got 1)");
}

TEST(JsonReader, IntegersReadsAnArray) {
  JsonObject o = layer(R"({"state_shape": [1, 40, 40], "empty": []})");
  EXPECT_EQ(o.integers("state_shape", 1, kMax), (std::vector<std::int64_t>{1, 40, 40}));
  EXPECT_TRUE(o.integers("empty", 1, kMax).empty());
  EXPECT_EQ(config_error([] { layer(R"({"s": 3})").integers("s", 1, kMax); }),
            "model.layers[2].s: expected an array of positive integers, got 3");
  EXPECT_EQ(config_error([] { layer(R"({"s": [4, 0]})").integers("s", 1, kMax); }),
            "model.layers[2].s[1]: expected a positive integer, got 0");
  EXPECT_EQ(config_error([] { layer(R"({"s": [2.5]})").integers("s", 1, kMax); }),
            "model.layers[2].s[0]: expected a positive integer, got 2.5 (integers are written without a decimal "
            "point or exponent)");
}

TEST(JsonReader, PairReadsAnIntOrTwo) {
  JsonObject o = layer(R"({"kernel_size": 3, "stride": [1, 2]})");
  EXPECT_EQ(o.pair("kernel_size", 1, kMax), (std::array<std::int64_t, 2>{3, 3}));
  EXPECT_EQ(o.pair("stride", 1, kMax, std::array<std::int64_t, 2>{1, 1}), (std::array<std::int64_t, 2>{1, 2}));
  EXPECT_EQ(o.pair("padding", 0, kMax, std::array<std::int64_t, 2>{0, 0}), (std::array<std::int64_t, 2>{0, 0}));
  EXPECT_EQ(o.pair("dilation", 1, kMax, std::array<std::int64_t, 2>{1, 2}), (std::array<std::int64_t, 2>{1, 2}));
  // Present values resolve as written; a fallback as one int when its two values agree.
  const json resolved = o.finish();
  EXPECT_EQ(resolved["kernel_size"], json(3));
  EXPECT_EQ(resolved["stride"], json::parse("[1, 2]"));
  EXPECT_EQ(resolved["padding"], json(0));
  EXPECT_EQ(resolved["dilation"], json::parse("[1, 2]"));

  const std::string expected = "model.layers[2].k: expected a positive integer or a pair [h, w] of them, got ";
  EXPECT_EQ(config_error([] { layer(R"({"k": [1, 2, 3]})").pair("k", 1, kMax); }), expected + "[1,2,3]");
  EXPECT_EQ(config_error([] { layer(R"({"k": [1, 0]})").pair("k", 1, kMax); }), expected + "[1,0]");
  EXPECT_EQ(config_error([] { layer(R"({"k": "3"})").pair("k", 1, kMax); }), expected + "\"3\"");
  EXPECT_EQ(config_error([] { layer("{}").pair("k", 1, kMax); }), "model.layers[2]: missing required key 'k'");
}

TEST(JsonReader, ObjectsCarryTheirPath) {
  JsonObject root(json::parse(R"({"map": {"type": "net"}, "forward": 3})"), "model.layers[0]");
  JsonObject map = root.object("map");
  EXPECT_EQ(map.path(), "model.layers[0].map");
  EXPECT_EQ(map.string("type"), "net");
  JsonObject backward = root.object("backward", json::object());
  EXPECT_EQ(backward.key_path("tolerance"), "model.layers[0].backward.tolerance");
  EXPECT_EQ(backward.number("tolerance", 0, 1, 1e-4), 1e-4);
  root.resolve("backward", backward.finish());
  EXPECT_EQ(config_error([&] { root.object("forward"); }), "model.layers[0].forward: expected an object, got 3");
}

TEST(JsonReader, FinishRefusesUnknownKeysListingTheKnownOnes) {
  JsonObject o = layer(R"({"units": 3, "unitz": 4})");
  o.integer("units", 1, kMax);
  o.boolean("bias", true);
  EXPECT_EQ(config_error([&] { o.finish(); }), "model.layers[2]: unknown key 'unitz'; expected one of: bias, units");
  JsonObject empty = layer(R"({"p": 1})");
  EXPECT_EQ(config_error([&] { empty.finish(); }), "model.layers[2]: unknown key 'p'; this object takes no keys");
}

TEST(JsonReader, FinishReturnsTheResolvedObject) {
  JsonObject o(json::parse(R"({"$schema": "schema.json", "epochs": 3, "layers": [1], "extra": {"a": 1}})"), "");
  o.ignore("$schema");
  o.integer("epochs", 1, kMax);
  o.integer("batch_size", 1, kMax, 40);
  o.number("lr", 0, 1, 1e-3);
  o.boolean("amsgrad", false);
  o.string("description", "");
  o.choice("split", {"validation", "test"}, "validation");
  o.raw("layers");
  const json* absent = o.raw_optional("clip");
  EXPECT_EQ(absent, nullptr);
  o.resolve("clip", nullptr);
  const json* extra = o.raw_optional("extra");
  ASSERT_NE(extra, nullptr);
  o.resolve("extra", json{{"a", 1}, {"b", 2}});
  const json resolved = o.finish();
  EXPECT_EQ(resolved, json::parse(R"({"epochs": 3, "batch_size": 40, "lr": 0.001, "amsgrad": false,
      "description": "", "split": "validation", "layers": [1], "clip": null, "extra": {"a": 1, "b": 2}})"));
  EXPECT_FALSE(resolved.contains("$schema"));
  // Sorted keys: the resolved text does not depend on the order of the getter calls.
  EXPECT_EQ(resolved.begin().key(), "amsgrad");
}

TEST(JsonReader, RendersLongValuesShort) {
  const json long_array = json(std::vector<int>(100, 7));
  const std::string text = render_json(long_array);
  EXPECT_EQ(text.size(), 60u);
  EXPECT_EQ(text.substr(text.size() - 3), "...");
  EXPECT_EQ(render_json(json("abc")), "\"abc\"");
  EXPECT_EQ(format_number(0.001), "0.001");
  EXPECT_EQ(format_number(1e-8), "1e-08");
  EXPECT_EQ(format_number(255), "255");
}

}  // namespace
}  // namespace fpi::train
