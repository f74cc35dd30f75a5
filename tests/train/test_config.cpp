// Loading run configs: the defaults a minimal config resolves to, a table of bad configs with the exact
// first line of each error (schema errors and the reader's own checks), JSON syntax errors with their
// line and column, --set overrides, and the optimizer and schedule factories.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include "fpi/train/config.hpp"
#include "test_util.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;

// The smallest valid config: every optional key absent.
json minimal_config() {
  return json::parse(R"({
    "name": "t",
    "data": {"type": "toy"},
    "model": {"layers": [{"name": "fc", "type": "dense", "input": "input", "units": 10}]},
    "loss": {"type": "mse", "target": "target"},
    "optimizer": {"type": "adam"},
    "train": {"epochs": 1, "batch_size": 10}
  })");
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// The first line of the ConfigError parse_config throws for `config`, or "(no error)".
std::string config_error(const json& config) {
  try {
    parse_config(config, "bad.json");
  } catch (const ConfigError& e) {
    return first_line(e.what());
  }
  return "(no error)";
}

// A file in the temporary directory that lives as long as the object.
class TempConfig {
 public:
  explicit TempConfig(const std::string& text) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("fpi_test_config_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".json"))
                .string();
    std::ofstream(path_, std::ios::binary) << text;
  }
  ~TempConfig() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Config, MinimalConfigResolvesEveryDefault) {
  const RunConfig c = parse_config(minimal_config(), "minimal.json");
  EXPECT_EQ(c.name, "t");
  EXPECT_EQ(c.data_type, "toy");
  EXPECT_EQ(std::get<data::ToyOptions>(c.data).dim, 10);
  EXPECT_EQ(c.optimizer.lr, 1e-3);
  EXPECT_EQ(c.schedule.type, "constant");
  EXPECT_FALSE(c.train.clip_grad_norm.has_value());
  EXPECT_EQ(c.eval.batch_size, 10);  // train.batch_size
  EXPECT_EQ(c.eval.mode, "min");
  EXPECT_EQ(c.metrics, std::vector<std::string>{"loss"});
  const json expected = json::parse(R"({
    "name": "t", "description": "", "seed": 0, "device": "cpu", "dtype": "float32",
    "data": {"type": "toy", "dim": 10, "train_size": 2000, "validation_size": 500, "test_size": 1000,
             "input_scale": 2.0, "seed": 0},
    "model": {"layers": [{"name": "fc", "type": "dense", "input": "input", "units": 10}]},
    "loss": {"type": "mse", "target": "target"},
    "metrics": ["loss"],
    "optimizer": {"type": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0,
                  "amsgrad": false},
    "schedule": {"type": "constant"},
    "train": {"epochs": 1, "batch_size": 10, "clip_grad_norm": null},
    "eval": {"split": "validation", "every": 1, "metric": "loss", "mode": "min", "batch_size": 10,
             "threshold": 0.5},
    "checkpoint": {"every": 1}
  })");
  EXPECT_EQ(c.resolved, expected) << c.resolved.dump(2);
  // The resolved config is itself a valid config that resolves to itself.
  EXPECT_EQ(parse_config(c.resolved, "resolved.json").resolved, c.resolved);
}

TEST(Config, DefaultsDependOnTheChoices) {
  json config = minimal_config();
  config["optimizer"] = {{"type", "adamw"}};
  config["data"] = {{"type", "bibtex"}};
  config["loss"] = {{"type", "bce"}, {"target", "labels"}};
  config["metrics"] = {"f1"};
  config["eval"] = {{"metric", "f1"}, {"batch_size", 100}};
  config["schedule"] = {{"type", "cosine"}, {"t_max", 5}};
  const RunConfig c = parse_config(config, "c.json");
  EXPECT_EQ(c.optimizer.weight_decay, 1e-2);
  EXPECT_EQ(c.eval.mode, "max");
  EXPECT_EQ(c.eval.batch_size, 100);
  EXPECT_EQ(c.metrics, (std::vector<std::string>{"loss", "f1"}));  // loss is always computed
  EXPECT_EQ(c.resolved["schedule"], json::parse(R"({"type": "cosine", "t_max": 5, "eta_min": 0.0})"));
  EXPECT_EQ(c.resolved["data"]["validation_fraction"], 0.1);
  EXPECT_EQ(std::get<data::BibtexOptions>(c.data).dir, "data/bibtex");

  config["optimizer"] = {{"type", "sgd"}, {"momentum", 0.9}};
  config["dtype"] = "float64";
  const RunConfig s = parse_config(config, "c.json");
  EXPECT_EQ(s.optimizer.lr, 1e-2);
  EXPECT_EQ(s.optimizer.momentum, 0.9);
  EXPECT_EQ(s.dtype, kFloat64);
  EXPECT_EQ(std::get<data::BibtexOptions>(s.data).dtype, kFloat64);
  EXPECT_EQ(s.resolved["optimizer"],
            json::parse(R"({"type": "sgd", "lr": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0,
                            "nesterov": false})"));
}

struct BadConfig {
  std::string what;
  std::function<void(json&)> edit;
  std::string error;  // the first line
};

TEST(Config, BadConfigsNameThePlace) {
  const std::vector<BadConfig> table = {
      {"unknown top-level key", [](json& c) { c["epochs"] = 3; },
       "bad.json: config: unknown key 'epochs'; expected one of: $schema, checkpoint, data, description, device, "
       "dtype, eval, loss, metrics, model, name, optimizer, schedule, seed, train"},
      {"unknown key in train", [](json& c) { c["train"]["shuffle"] = true; },
       "bad.json: train: unknown key 'shuffle'; expected one of: batch_size, clip_grad_norm, epochs"},
      {"unknown key in data", [](json& c) { c["data"]["dimension"] = 3; },
       "bad.json: data: unknown key 'dimension'; expected one of: dim, input_scale, seed, test_size, train_size, "
       "type, validation_size"},
      {"key of another optimizer", [](json& c) { c["optimizer"] = {{"type", "sgd"}, {"betas", {0.9, 0.99}}}; },
       "bad.json: optimizer: unknown key 'betas'; expected one of: dampening, lr, momentum, nesterov, type, "
       "weight_decay"},
      {"unknown key in eval", [](json& c) { c["eval"] = {{"metrc", "loss"}}; },
       "bad.json: eval: unknown key 'metrc'; expected one of: batch_size, every, metric, mode, split, threshold"},
      {"unknown key in a schedule", [](json& c) { c["schedule"] = {{"type", "cosine"}, {"t_max", 3}, {"gamma", 1}}; },
       "bad.json: schedule: unknown key 'gamma'; expected one of: eta_min, t_max, type"},
      {"unknown key in model", [](json& c) { c["model"]["outputs"] = "fc"; },
       "bad.json: model: unknown key 'outputs'; expected one of: layers, output"},
      {"unknown key in a layer", [](json& c) { c["model"]["layers"][0]["unitz"] = 3; },
       "bad.json: model.layers[0]: unknown key 'unitz'; expected one of: bias, input, inputs, lipschitz, name, type, units"},
      {"unknown key in a solver",
       [](json& c) {
         c["model"]["layers"][0] = json::parse(R"({"name": "f", "type": "fixed_point", "input": "input",
             "state_shape": [-1], "forward": {"tol": 1},
             "map": {"type": "net", "layers": [{"name": "g", "type": "dense", "input": "x", "units": 10}]}})");
       },
       "bad.json: model.layers[0].forward: unknown key 'tol'; expected one of: absolute_tolerance, anderson_history, "
       "anderson_ridge, check_every, damp_cycles, damping, max_iterations, min_iterations, solver, stall_window, "
       "tolerance"},
      {"negative absolute tolerance",
       [](json& c) {
         c["model"]["layers"][0] = json::parse(R"({"name": "f", "type": "fixed_point", "input": "input",
             "state_shape": [-1], "forward": {"absolute_tolerance": -1e-3},
             "map": {"type": "net", "layers": [{"name": "g", "type": "dense", "input": "x", "units": 10}]}})");
       },
       "bad.json: model.layers[0].forward.absolute_tolerance: expected a number >= 0, got -0.001"},
      {"negative stall window",
       [](json& c) {
         c["model"]["layers"][0] = json::parse(R"({"name": "f", "type": "fixed_point", "input": "input",
             "state_shape": [-1], "backward": {"stall_window": -5},
             "map": {"type": "net", "layers": [{"name": "g", "type": "dense", "input": "x", "units": 10}]}})");
       },
       "bad.json: model.layers[0].backward.stall_window: expected a non-negative integer, got -5"},
      {"unknown key in a map layer",
       [](json& c) {
         c["model"]["layers"][0] = json::parse(R"({"name": "f", "type": "fixed_point", "input": "input",
             "state_shape": [-1],
             "map": {"type": "net", "layers": [{"name": "g", "type": "relu", "input": "x", "p": 1}]}})");
       },
       "bad.json: model.layers[0].map.layers[0]: unknown key 'p'; expected one of: input, inputs, name, type"},
      {"name of a wrong type", [](json& c) { c["name"] = 5; },
       "bad.json: name: expected a string matching ^[A-Za-z0-9_.-]+$, got 5"},
      {"name with a space", [](json& c) { c["name"] = "my run"; },
       "bad.json: name: expected a string matching ^[A-Za-z0-9_.-]+$, got \"my run\""},
      {"epochs as a string", [](json& c) { c["train"]["epochs"] = "3"; },
       "bad.json: train.epochs: expected a positive integer, got \"3\""},
      {"epochs zero", [](json& c) { c["train"]["epochs"] = 0; },
       "bad.json: train.epochs: expected a positive integer, got 0"},
      {"batch size not whole", [](json& c) { c["train"]["batch_size"] = 1.5; },
       "bad.json: train.batch_size: expected an integer from 1 to 1000000, got 1.5 (integers are written without a "
       "decimal point or exponent)"},
      {"negative seed", [](json& c) { c["seed"] = -1; }, "bad.json: seed: expected a non-negative integer, got -1"},
      {"bad device", [](json& c) { c["device"] = "gpu"; },
       "bad.json: device: expected a string matching ^(cpu|cuda|cuda:[0-9]+|auto)$, got \"gpu\""},
      {"bad dtype", [](json& c) { c["dtype"] = "float16"; },
       "bad.json: dtype: expected one of \"float32\", \"float64\", got \"float16\""},
      {"zero learning rate", [](json& c) { c["optimizer"]["lr"] = 0; },
       "bad.json: optimizer.lr: expected a positive number, got 0"},
      {"beta of 1", [](json& c) { c["optimizer"]["betas"] = {0.9, 1.0}; },
       "bad.json: optimizer.betas[1]: expected a number in [0, 1), got 1.0"},
      {"one beta", [](json& c) { c["optimizer"]["betas"] = {0.9}; },
       "bad.json: optimizer.betas: expected an array of 2 items, each a number in [0, 1), got [0.9]"},
      {"clip norm as a string", [](json& c) { c["train"]["clip_grad_norm"] = "1"; },
       "bad.json: train.clip_grad_norm: expected a positive number or null, got \"1\""},
      {"validation fraction too large",
       [](json& c) {
         c["data"] = {{"type", "bibtex"}, {"validation_fraction", 0.6}};
         c["loss"]["target"] = "labels";
       },
       "bad.json: data.validation_fraction: expected a number from 0 to 0.5, got 0.6"},
      {"sigma zero", [](json& c) { c["data"] = {{"type", "denoising"}, {"sigma", 0}}; },
       "bad.json: data.sigma: expected a number in (0, 255], got 0"},
      {"dropout p of 1",
       [](json& c) { c["model"]["layers"].push_back({{"name", "drop"}, {"type", "dropout"}, {"p", 1}}); },
       "bad.json: model.layers[1].p: expected a number in [0, 1), got 1"},
      {"kernel size 0",
       [](json& c) {
         c["model"]["layers"][0] = {{"name", "c"}, {"type", "conv2d"}, {"channels", 4}, {"kernel_size", 0}};
       },
       "bad.json: model.layers[0].kernel_size: expected a positive integer or an array of 2 items, each a positive "
       "integer, got 0"},
      {"input and inputs", [](json& c) { c["model"]["layers"][0]["inputs"] = {"input"}; },
       "bad.json: model.layers[0]: give 'input' or 'inputs', not both"},
      {"missing name", [](json& c) { c.erase("name"); }, "bad.json: config: missing required key 'name'"},
      {"missing epochs", [](json& c) { c["train"].erase("epochs"); }, "bad.json: train: missing required key 'epochs'"},
      {"missing loss target", [](json& c) { c["loss"].erase("target"); },
       "bad.json: loss: missing required key 'target'"},
      {"missing data type", [](json& c) { c["data"] = json::object(); }, "bad.json: data: missing required key 'type'"},
      {"missing milestones", [](json& c) { c["schedule"] = {{"type", "multistep"}}; },
       "bad.json: schedule: missing required key 'milestones'"},
      {"missing layer name", [](json& c) { c["model"]["layers"][0].erase("name"); },
       "bad.json: model.layers[0]: missing required key 'name'"},
      {"empty layer list", [](json& c) { c["model"]["layers"] = json::array(); },
       "bad.json: model.layers: expected an array of at least 1 item, each an object, got []"},
      {"unknown optimizer", [](json& c) { c["optimizer"]["type"] = "adm"; },
       "bad.json: optimizer.type: expected one of \"adam\", \"adamw\", \"sgd\", got \"adm\""},
      {"unknown loss", [](json& c) { c["loss"]["type"] = "l2"; },
       "bad.json: loss.type: expected one of \"bce\", \"bce_with_logits\", \"mse\", got \"l2\""},
      {"unknown eval split", [](json& c) { c["eval"] = {{"split", "train"}}; },
       "bad.json: eval.split: expected one of \"validation\", \"test\", got \"train\""},
      {"unknown metric", [](json& c) { c["metrics"] = {"loss", "accuracy"}; },
       "bad.json: metrics[1]: expected one of \"loss\", \"mse\", \"psnr\", \"f1\", \"epe\", got \"accuracy\""},
      {"metric listed twice", [](json& c) { c["metrics"] = {"mse", "mse"}; },
       "bad.json: metrics: expected an array of distinct items, each one of \"loss\", \"mse\", \"psnr\", \"f1\", "
       "\"epe\", got [\"mse\",\"mse\"]"},
      {"eval metric not computed", [](json& c) { c["eval"] = {{"metric", "mse"}}; },
       "bad.json: eval.metric: expected one of the configured metrics (\"loss\"), got \"mse\"; add it to \"metrics\""},
      {"f1 on the toy data", [](json& c) { c["metrics"] = {"loss", "f1"}; },
       "bad.json: metrics[1]: \"f1\" does not apply to data.type \"toy\" (f1 needs bibtex)"},
      {"psnr on the toy data", [](json& c) { c["metrics"] = {"psnr"}; },
       "bad.json: metrics[0]: \"psnr\" does not apply to data.type \"toy\" (psnr needs denoising)"},
      {"loss target not a field", [](json& c) { c["loss"]["target"] = "labels"; },
       "bad.json: loss.target: expected a field of data.type \"toy\" (one of \"input\", \"target\"), got \"labels\""},
      {"milestones not increasing", [](json& c) { c["schedule"] = {{"type", "multistep"}, {"milestones", {5, 3}}}; },
       "bad.json: schedule.milestones: expected a non-empty array of increasing epochs, got [5,3]"},
      {"milestone 0", [](json& c) { c["schedule"] = {{"type", "multistep"}, {"milestones", {0}}}; },
       "bad.json: schedule.milestones[0]: expected a positive integer, got 0"},
      {"not an object", [](json& c) { c = json::array(); }, "bad.json: config: expected an object, got []"},
  };
  ASSERT_GE(table.size(), 25u);
  for (const BadConfig& row : table) {
    json config = minimal_config();
    row.edit(config);
    EXPECT_EQ(config_error(config), row.error) << row.what;
  }
}

// eval.threshold: a number in [0, 1], or "tune" where a validation split and the f1 metric exist to tune
// it on; everything else is refused naming the key.
TEST(Config, EvalThresholdIsANumberOrTune) {
  json config = minimal_config();
  config["data"] = {{"type", "bibtex"}};
  config["loss"] = {{"type", "bce"}, {"target", "labels"}};
  config["metrics"] = {"f1"};
  EXPECT_EQ(parse_config(config, "c.json").eval.threshold, 0.5);
  EXPECT_FALSE(parse_config(config, "c.json").eval.tune_threshold);
  config["eval"] = {{"threshold", 0.3}};
  EXPECT_EQ(parse_config(config, "c.json").eval.threshold, 0.3);
  config["eval"] = {{"threshold", "tune"}, {"metric", "f1"}};
  const RunConfig tuned = parse_config(config, "c.json");
  EXPECT_TRUE(tuned.eval.tune_threshold);
  EXPECT_EQ(tuned.resolved["eval"]["threshold"], "tune");
  EXPECT_EQ(parse_config(tuned.resolved, "resolved.json").resolved, tuned.resolved);

  const std::vector<std::pair<json, std::string>> bad = {
      {1.5, "bad.json: eval.threshold: expected a number from 0 to 1 or \"tune\", got 1.5"},
      {-0.1, "bad.json: eval.threshold: expected a number from 0 to 1 or \"tune\", got -0.1"},
      {"best", "bad.json: eval.threshold: expected a number from 0 to 1 or \"tune\", got \"best\""},
  };
  for (const auto& [value, error] : bad) {
    config["eval"] = {{"threshold", value}};
    EXPECT_EQ(config_error(config), error) << value.dump();
  }
  config["eval"] = {{"threshold", "tune"}, {"split", "test"}};
  EXPECT_EQ(config_error(config),
            "bad.json: eval.threshold: \"tune\" chooses the threshold on the validation split, but eval.split is "
            "\"test\"");
  config = minimal_config();
  config["eval"] = {{"threshold", "tune"}};
  EXPECT_EQ(config_error(config),
            "bad.json: eval.threshold: \"tune\" chooses the threshold of the f1 metric; add \"f1\" to \"metrics\"");
}

TEST(Config, SchemaErrorsAreListedOnePerLine) {
  json config = minimal_config();
  config["train"] = {{"epochs", 0}, {"batch_size", 0}};
  config["seed"] = "x";
  const std::string message = testing::error_of([&] { parse_config(config, "bad.json"); });
  EXPECT_NE(message.find("bad.json: seed: expected a non-negative integer, got \"x\""), std::string::npos) << message;
  EXPECT_NE(message.find("bad.json: train.epochs: expected a positive integer, got 0"), std::string::npos) << message;
  EXPECT_NE(message.find("bad.json: train.batch_size: expected an integer from 1 to 1000000, got 0"),
            std::string::npos)
      << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2) << message;

  // At most ten are listed.
  json many = minimal_config();
  many["seed"] = "x";
  many["name"] = 1;
  many["device"] = 1;
  many["dtype"] = 1;
  many["description"] = 1;
  many["train"] = {{"epochs", 0}, {"batch_size", 0}};
  many["data"] = {{"type", "toy"}, {"dim", 0}, {"train_size", 0}, {"validation_size", 0}, {"test_size", 0},
                  {"input_scale", 0}, {"seed", -1}};
  const std::string long_message = testing::error_of([&] { parse_config(many, "bad.json"); });
  EXPECT_EQ(std::count(long_message.begin(), long_message.end(), '\n'), 10) << long_message;
  EXPECT_NE(long_message.find("bad.json: ... and 3 more"), std::string::npos) << long_message;
}

std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const TempConfig file(text);
  try {
    load_config(file.path(), overrides);
  } catch (const ConfigError& e) {
    std::string message = first_line(e.what());
    // The temporary path varies; the tests compare what follows it.
    EXPECT_EQ(message.rfind(file.path() + ": ", 0), 0u) << message;
    return message.substr(std::min(message.size(), file.path().size() + 2));
  }
  return "(no error)";
}

TEST(Config, JsonSyntaxErrorsGiveLineAndColumn) {
  EXPECT_EQ(load_error("{\n  \"name\": \"t\",\n  }\n"),
            "line 3, column 3: syntax error while parsing object key - unexpected '}'; expected string literal");
  EXPECT_EQ(load_error("{\"name\": tru}"),
            "line 1, column 13: syntax error while parsing value - invalid literal; last read: '\"name\": tru}'");
  EXPECT_EQ(load_error(""), "line 1, column 1: syntax error while parsing value - unexpected end of input; expected "
                            "'[', '{', or a literal");
  const std::string missing = testing::error_of([] { load_config("/nonexistent/run.json"); });
  EXPECT_EQ(missing, "/nonexistent/run.json: cannot open the config file");
  const std::string directory = std::filesystem::temp_directory_path().string();
  EXPECT_EQ(testing::error_of([&] { load_config(directory); }), directory + ": is a directory, not a config file");
}

TEST(Config, OverridesEditTheConfigBeforeValidation) {
  const TempConfig file(minimal_config().dump());
  const RunConfig c = load_config(file.path(), {"train.epochs=3", "data.input_scale=0.5", "name=renamed",
                                                "model.layers[0].units=20", "eval={\"split\": \"test\"}",
                                                "train.clip_grad_norm=2"});
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(std::get<data::ToyOptions>(c.data).input_scale, 0.5);
  EXPECT_EQ(c.name, "renamed");  // not JSON, so a string
  EXPECT_EQ(c.model["layers"][0]["units"], 20);
  EXPECT_EQ(c.resolved["model"]["layers"][0]["units"], 20);
  EXPECT_EQ(c.train.clip_grad_norm, 2.0);
  EXPECT_EQ(c.eval.split, "test");
  // A new key is allowed where the parent exists, and validated like any other.
  EXPECT_EQ(load_config(file.path(), {"data.dim=4"}).resolved["data"]["dim"], 4);
}

TEST(Config, BadOverridesNameTheOverride) {
  const std::string text = minimal_config().dump();
  EXPECT_EQ(load_error(text, {"train.epochs"}), "--set train.epochs: expected key.path=value");
  EXPECT_EQ(load_error(text, {"train..epochs=3"}),
            "--set train..epochs=3: malformed key path 'train..epochs' (empty key); expected keys joined by '.' with "
            "[N] for an array element, e.g. model.layers[0].units");
  EXPECT_EQ(load_error(text, {"model.layers[x].units=3"}),
            "--set model.layers[x].units=3: malformed key path 'model.layers[x].units' (bad [index]); expected keys "
            "joined by '.' with [N] for an array element, e.g. model.layers[0].units");
  EXPECT_EQ(load_error(text, {"=3"}),
            "--set =3: malformed key path '' (empty key); expected keys joined by '.' with [N] for an array element, "
            "e.g. model.layers[0].units");
  EXPECT_EQ(load_error(text, {"name.first=x"}), "--set name.first=x: 'name' is not an object, got \"t\"");
  EXPECT_EQ(load_error(text, {"train[0]=1"}),
            "--set train[0]=1: 'train' is not an array, got {\"batch_size\":10,\"epochs\":1}");
  EXPECT_EQ(load_error(text, {"model.layers[3].units=5"}),
            "--set model.layers[3].units=5: index 3 is out of range: 'model.layers' has 1 elements");
  EXPECT_EQ(load_error(text, {"train.schedule.type=cosine"}),
            "--set train.schedule.type=cosine: 'train.schedule' does not exist in the config");
  EXPECT_EQ(load_error(text, {"train.epochs=0"}), "train.epochs: expected a positive integer, got 0");
  EXPECT_EQ(load_error(text, {"train.epoch=3"}),
            "train: unknown key 'epoch'; expected one of: batch_size, clip_grad_norm, epochs");
  // Found by tools/fuzz/config.cpp: what a user typed is echoed with its control characters escaped,
  // so an error cannot drive the terminal or break the one-line-per-problem rule.
  EXPECT_EQ(load_error(text, {"t\x1b.x\n=1"}), "--set t\\x1b.x\\x0a=1: 't\\x1b' does not exist in the config");
  EXPECT_EQ(load_error(text, {"train.ep\toch=3"}),
            "train: unknown key 'ep\\x09och'; expected one of: batch_size, clip_grad_norm, epochs");
}

TEST(Config, DataFieldsNeedNoData) {
  json config = minimal_config();
  config["data"]["dim"] = 4;
  EXPECT_EQ(data_fields(parse_config(config, "c.json")).at(1).shape, (Shape{4}));
  config["data"] = {{"type", "denoising"}, {"dir", "/nonexistent"}};
  config["loss"]["target"] = "clean";
  config["model"]["layers"][0]["input"] = "noisy";
  const std::vector<data::FieldSpec> fields = data_fields(parse_config(config, "c.json"));
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0].name, "noisy");
  EXPECT_EQ(fields[0].shape, (Shape{1, -1, -1}));
  config["data"] = {{"type", "bibtex"}, {"dir", "/nonexistent"}};
  config["loss"]["target"] = "labels";
  const std::vector<data::FieldSpec> bibtex = data_fields(parse_config(config, "c.json"));
  EXPECT_EQ(bibtex[0].shape, (Shape{1836}));
  EXPECT_EQ(bibtex[1].name, "labels");
  EXPECT_EQ(bibtex[1].shape, (Shape{159}));
}

TEST(Config, MakeSplitsBuildsTheConfiguredData) {
  json config = minimal_config();
  config["data"] = {{"type", "toy"}, {"dim", 3}, {"train_size", 20}, {"validation_size", 7}, {"test_size", 5}};
  const data::Splits splits = make_splits(parse_config(config, "c.json"));
  EXPECT_EQ(splits.train->size(), 20);
  EXPECT_EQ(splits.validation->size(), 7);
  EXPECT_EQ(splits.test->size(), 5);
  EXPECT_EQ(splits.train->batch(0, 0, 4).at("input").shape(), (Shape{4, 3}));
}

TEST(Config, FactoriesBuildTheConfiguredOptimizerAndSchedule) {
  std::vector<Tensor> params = {zeros({3})};
  params[0].requires_grad_();
  OptimizerConfig sgd;
  sgd.type = "sgd";
  sgd.lr = 0.5;
  const auto optimizer = make_optimizer(sgd, params);
  EXPECT_EQ(optimizer->name(), "SGD");
  EXPECT_EQ(optimizer->lr(), 0.5);
  OptimizerConfig adamw;
  adamw.type = "adamw";
  EXPECT_EQ(make_optimizer(adamw, params)->name(), "AdamW");

  ScheduleConfig constant;
  EXPECT_EQ(make_schedule(constant, *optimizer), nullptr);
  ScheduleConfig steps;
  steps.type = "multistep";
  steps.milestones = {1};
  steps.gamma = 0.1;
  const auto schedule = make_schedule(steps, *optimizer);
  ASSERT_NE(schedule, nullptr);
  EXPECT_EQ(schedule->name(), "MultiStepLR");
  schedule->step();
  EXPECT_DOUBLE_EQ(optimizer->lr(), 0.05);
}

}  // namespace
}  // namespace fpi::train
