// A training run's config (models/README.md documents the format, models/schema.json is its JSON
// Schema): read from a file, edited by --set overrides, checked against the embedded schema and then
// by fpi's own reader, whose messages name the exact place ("train.epochs: expected a positive integer,
// got 0"). The model section is kept as JSON: fpi::train::build_model (graph.hpp) builds and checks it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "fpi/data/datasets.hpp"
#include "fpi/data/flow.hpp"
#include "fpi/optim/optimizer.hpp"
#include "fpi/optim/schedule.hpp"
#include "fpi/train/json_reader.hpp"

namespace fpi::train {

struct LossConfig {
  std::string type;    // "bce" | "bce_with_logits" | "mse"
  std::string target;  // a data field
};

// The fields of the other optimizer types keep the optim:: defaults.
struct OptimizerConfig {
  std::string type;  // "adam" | "adamw" | "sgd"
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool amsgrad = false;
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};

struct ScheduleConfig {
  std::string type = "constant";  // "constant" | "multistep" | "cosine"
  std::vector<std::int64_t> milestones;
  double gamma = 0.1;
  std::int64_t t_max = 1;
  double eta_min = 0.0;
};

struct TrainConfig {
  std::int64_t epochs = 1, batch_size = 1;
  std::optional<double> clip_grad_norm;  // off when empty
};

struct EvalConfig {
  std::string split = "validation", metric = "loss", mode = "min";
  std::int64_t every = 1, batch_size = 1;
  // The f1 metric predicts a label when its score is >= threshold. With tune_threshold ("tune") each
  // evaluation on the validation split chooses it from data::spen_threshold_grid(), and the other splits
  // (and `fpi eval` on a checkpoint) reuse that choice, so the test split is never used to choose it.
  double threshold = 0.5;
  bool tune_threshold = false;
};

struct CheckpointConfig {
  std::int64_t every = 1;
};

struct RunConfig {
  std::string name, description;
  std::uint64_t seed = 0;
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N" | "auto"
  DType dtype = kFloat32;
  std::string data_type;       // "bibtex" | "denoising" | "flow" | "toy"
  std::variant<data::BibtexOptions, data::DenoisingOptions, data::ToyOptions, data::FlowOptions> data;
  nlohmann::json model;        // the model section as given; fpi::train::build_model (graph engineer) builds it
  LossConfig loss;
  std::vector<std::string> metrics;  // distinct, "loss" always first
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  nlohmann::json resolved;     // every key with its default filled in (the model section as given until
                               // set_resolved_model() replaces it with build_model's resolved one)
  void set_resolved_model(nlohmann::json model_resolved);
};

// Reads the file (errors name it; JSON syntax errors give "<path>: line L, column C: <what>"), applies the
// overrides, validates against the embedded schema, then parses into RunConfig. Every error is a
// ConfigError whose message starts with the file's path.
//
// An override is "<dotted path>=<value>" ("train.epochs=3", "model.layers[0].forward.tolerance=1e-5");
// the value is parsed as JSON if it parses, else taken as a string. The parent object or array must
// exist (an array index must be in range); a new key is then checked by validation like any other.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Schema validation and parsing of a config already read; `source` starts every error (a file path).
RunConfig parse_config(const nlohmann::json& config, const std::string& source);
// Applies overrides as load_config does; errors name the override ("--set train.x.y=1: ...").
void apply_overrides(nlohmann::json& config, const std::vector<std::string>& overrides);
// The text of models/schema.json, embedded at build time.
const std::string& config_schema();

// Dispatches to the data::*_splits factories.
data::Splits make_splits(const RunConfig& config);
// The fields the model may read, without loading data. Denoising gives (1, -1, -1) for both fields:
// training patches are P x P but evaluation reads whole images of any size, so a model is validated
// against the variable shape and must accept any height and width.
std::vector<data::FieldSpec> data_fields(const RunConfig& config);
std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& config, std::vector<Tensor> params);
// Null for the constant schedule.
std::unique_ptr<optim::LRScheduler> make_schedule(const ScheduleConfig& config, optim::Optimizer& optimizer);

}  // namespace fpi::train
