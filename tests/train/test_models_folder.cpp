// The models/ folder: every config loads and builds, the embedded schema is models/schema.json, and
// models/README.md, the schema and the loader agree on every key.
//
// README convention (what the parser below reads): each key table is preceded by a line
// `<!-- keys: LOCATION -->` and has rows "| `key` | type | default | description |". LOCATION is
// "config" (the top level), a top-level section ("model", "loss", "train", "eval", "checkpoint"), or the
// name of a schema definition ("data_toy", "optimizer_sgd", "schedule_cosine", "layer" for the keys
// every layer has, "layer_dense" for a layer type's own keys, "map_net", "solver", "gradient_check").
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "fpi/train/config.hpp"
#include "fpi/train/graph.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kModels = fs::path(FPI_SOURCE_DIR) / "models";
const std::set<std::string> kLayerCommon = {"name", "type", "input", "inputs"};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<fs::path> model_configs() {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(kModels))
    if (entry.path().extension() == ".json" && entry.path().filename() != "schema.json") paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  return paths;
}

// The README's key tables: location -> key -> the default column.
using Tables = std::map<std::string, std::map<std::string, std::string>>;

Tables readme_tables() {
  const std::regex marker(R"(^<!-- keys: ([a-z0-9_]+) -->$)");
  const std::regex row(R"(^\| `([^`]+)` \| (.*?[^\\]) \| (.*?[^\\]) \| (.+) \|$)");
  Tables tables;
  std::istringstream in(read_file(kModels / "README.md"));
  std::string line, location;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, marker)) {
      location = m[1];
      EXPECT_EQ(tables.count(location), 0u) << "two tables for " << location;
      tables[location];
    } else if (line.starts_with("| `") && !location.empty()) {
      EXPECT_TRUE(std::regex_match(line, m, row)) << "malformed key row: " << line;
      EXPECT_EQ(tables[location].count(m[1]), 0u) << location << " documents " << m[1] << " twice";
      tables[location][m[1]] = m[3];
    } else if (!line.starts_with("|")) {
      location.clear();
    }
  }
  return tables;
}

const json& schema_json() {
  static const json schema = json::parse(config_schema());
  return schema;
}

// The schema object that lists the keys of `location`.
const json& schema_at(const std::string& location) {
  const json& schema = schema_json();
  if (location == "config") return schema;
  if (schema["properties"].contains(location)) return schema["properties"][location];
  if (location == "layer") return schema["definitions"]["layer_custom"];
  return schema["definitions"].at(location);
}

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

std::set<std::string> without_common(std::set<std::string> keys) {
  for (const std::string& k : kLayerCommon) keys.erase(k);
  return keys;
}

std::set<std::string> readme_keys(const Tables& tables, const std::string& location) {
  std::set<std::string> keys;
  if (tables.count(location))
    for (const auto& [key, value] : tables.at(location)) keys.insert(key);
  return keys;
}

TEST(ModelsFolder, EmbeddedSchemaIsTheFile) {
  EXPECT_EQ(config_schema(), read_file(kModels / "schema.json"));
  EXPECT_EQ(schema_json()["$schema"], "http://json-schema.org/draft-07/schema#");
}

TEST(ModelsFolder, EveryConfigLoadsAndBuilds) {
  const std::vector<fs::path> paths = model_configs();
  EXPECT_EQ(paths.size(), 10u);
  for (const fs::path& path : paths) {
    SCOPED_TRACE(path.string());
    RunConfig config = load_config(path.string());
    EXPECT_EQ(config.name, path.stem().string());
    EXPECT_NE(read_file(path).find("\"$schema\": \"schema.json\""), std::string::npos);
    Generator generator(config.seed);
    const BuiltModel model =
        build_model(config.model, data_fields(config), TensorOptions{config.dtype}, generator);
    ASSERT_NE(model.module, nullptr);
    config.set_resolved_model(model.resolved);
    // The resolved config is complete: read again, it resolves to itself.
    const RunConfig again = parse_config(config.resolved, "resolved");
    EXPECT_EQ(again.resolved, config.resolved);
  }
}

TEST(ModelsFolder, ReadmeTablesAreTheSchema) {
  const Tables tables = readme_tables();
  ASSERT_GE(tables.size(), 20u);
  for (const auto& [location, rows] : tables) {
    SCOPED_TRACE(location);
    const json& object = schema_at(location);
    const std::set<std::string> schema_keys = keys_of(object.at("properties"));
    const std::set<std::string> documented = readme_keys(tables, location);
    if (location.starts_with("layer_")) {
      EXPECT_EQ(documented, without_common(schema_keys));
    } else {
      EXPECT_EQ(documented, schema_keys);
    }
    // A default written as JSON is the schema's default.
    for (const auto& [key, column] : rows) {
      if (column.size() < 2 || column.front() != '`' || column.back() != '`') continue;
      const json& property = object["properties"][key];
      ASSERT_TRUE(property.contains("default")) << key << " has a default in the README only";
      EXPECT_EQ(json::parse(column.substr(1, column.size() - 2)), property["default"]) << key;
    }
  }
  // Vice versa: every object of the schema that takes keys has its table (a layer type needs one only
  // when it has keys of its own).
  for (const auto& [name, definition] : schema_json()["definitions"].items()) {
    // Objects that branch on their "type" are documented per branch.
    if (!definition.contains("properties") || definition.contains("allOf")) continue;
    if (name.starts_with("layer_") && name != "layer_custom") {
      if (without_common(keys_of(definition["properties"])).empty()) continue;
      EXPECT_EQ(tables.count(name), 1u) << name << " is not documented";
    } else if (name != "layer_custom") {
      EXPECT_EQ(tables.count(name), 1u) << name << " is not documented";
    }
  }
  for (const char* section : {"config", "model", "loss", "train", "eval", "checkpoint", "layer"})
    EXPECT_EQ(tables.count(section), 1u) << section << " is not documented";
}

// Resolves `config` and returns the keys of the resolved object at `pointer`.
std::set<std::string> resolved_keys(const json& config, const std::string& pointer) {
  return keys_of(parse_config(config, "test").resolved.at(json::json_pointer(pointer)));
}

TEST(ModelsFolder, ReadmeKeysAreTheLoadersKeys) {
  const Tables tables = readme_tables();
  json config = json::parse(read_file(kModels / "toy_feedforward.json"));
  std::set<std::string> top = readme_keys(tables, "config");
  top.erase("$schema");  // accepted and left out of the resolved config
  EXPECT_EQ(resolved_keys(config, ""), top);
  // The model section resolves in build_model (ReadmeLayerKeysAreTheGraphsKeys).
  for (const char* section : {"loss", "train", "eval", "checkpoint"})
    EXPECT_EQ(resolved_keys(config, std::string("/") + section), readme_keys(tables, section)) << section;

  for (const char* type : {"adam", "adamw", "sgd"}) {
    json c = config;
    c["optimizer"] = {{"type", type}};
    EXPECT_EQ(resolved_keys(c, "/optimizer"), readme_keys(tables, std::string("optimizer_") + type)) << type;
  }
  const std::map<std::string, json> schedules = {{"constant", {{"type", "constant"}}},
                                                 {"multistep", {{"type", "multistep"}, {"milestones", {2}}}},
                                                 {"cosine", {{"type", "cosine"}, {"t_max", 3}}}};
  for (const auto& [type, schedule] : schedules) {
    json c = config;
    c["schedule"] = schedule;
    EXPECT_EQ(resolved_keys(c, "/schedule"), readme_keys(tables, "schedule_" + type)) << type;
  }
  const std::map<std::string, std::string> targets = {
      {"bibtex", "labels"}, {"denoising", "clean"}, {"flow", "flow"}, {"toy", "target"}};
  for (const auto& [type, target] : targets) {
    json c = config;
    c["data"] = {{"type", type}};
    c["loss"]["target"] = target;
    EXPECT_EQ(resolved_keys(c, "/data"), readme_keys(tables, std::string("data_") + type)) << type;
  }
}

TEST(ModelsFolder, ReadmeLayerKeysAreTheGraphsKeys) {
  const Tables tables = readme_tables();
  // One model per layer family over (1, H, W) images and one over vectors; build_model resolves every
  // layer with its defaults, so the resolved keys are the keys the factories read ("lipschitz", which
  // has no default, given).
  const json images = json::parse(R"({"layers": [
    {"name": "c", "type": "conv2d", "input": "noisy", "channels": 2, "kernel_size": 3, "padding": 1, "lipschitz": 2},
    {"name": "t", "type": "conv_transpose2d", "channels": 1, "kernel_size": 3, "padding": 1, "lipschitz": 2}]})");
  const json vectors = json::parse(R"({"layers": [
    {"name": "d", "type": "dense", "input": "input", "units": 10, "lipschitz": 2},
    {"name": "p", "type": "dropout"},
    {"name": "j", "type": "concat", "inputs": ["input", "p"]},
    {"name": "nn", "type": "fixed_point", "input": "input", "state_shape": [-1],
     "map": {"type": "net", "layers": [{"name": "g", "type": "dense", "input": "x", "units": 10}]}},
    {"name": "gd", "type": "fixed_point", "input": "input", "state_shape": [10],
     "map": {"type": "energy", "step_size": 0.1,
             "layers": [{"name": "e", "type": "dense", "input": "x", "units": 4}]}}]})");
  Generator generator(0);
  const json from_images =
      build_model(images, {{"noisy", {1, -1, -1}}, {"clean", {1, -1, -1}}}, {}, generator).resolved;
  const json from_vectors = build_model(vectors, {{"input", {10}}, {"target", {10}}}, {}, generator).resolved;
  const auto specific = [&](const json& layer) { return without_common(keys_of(layer)); };
  EXPECT_EQ(specific(from_images["layers"][0]), readme_keys(tables, "layer_conv2d"));
  EXPECT_EQ(specific(from_images["layers"][1]), readme_keys(tables, "layer_conv_transpose2d"));
  EXPECT_EQ(specific(from_vectors["layers"][0]), readme_keys(tables, "layer_dense"));
  EXPECT_EQ(specific(from_vectors["layers"][1]), readme_keys(tables, "layer_dropout"));
  EXPECT_EQ(specific(from_vectors["layers"][2]), readme_keys(tables, "layer_concat"));
  const json& fixed_point = from_vectors["layers"][3];
  EXPECT_EQ(specific(fixed_point), readme_keys(tables, "layer_fixed_point"));
  EXPECT_EQ(keys_of(fixed_point["map"]), readme_keys(tables, "map_net"));
  EXPECT_EQ(keys_of(fixed_point["forward"]), readme_keys(tables, "solver"));
  EXPECT_EQ(keys_of(fixed_point["backward"]), readme_keys(tables, "solver"));
  EXPECT_EQ(keys_of(fixed_point["gradient_check"]), readme_keys(tables, "gradient_check"));
  EXPECT_EQ(keys_of(from_vectors["layers"][4]["map"]), readme_keys(tables, "map_energy"));
  EXPECT_EQ(keys_of(from_vectors), readme_keys(tables, "model"));
}

}  // namespace
}  // namespace fpi::train
