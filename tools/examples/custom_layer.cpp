// A layer type of one's own, registered from C++ and then used in a JSON config like a built-in one:
// "soft_clip" computes c * tanh(x / c) with c read from the layer's JSON ("limit"), checked and
// resolved like any built-in key. The config trains on the toy problem through fpi::train::train, into
// a run directory under the system's temporary folder. A test runs it.
#include <cstdio>
#include <filesystem>

#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/registry.hpp"
#include "fpi/train/trainer.hpp"

int main() {
  using namespace fpi;
  train::register_layer(
      "soft_clip",
      {.description = "limit * tanh(x / limit): a smooth clip to (-limit, limit)",
       .build = [](train::JsonObject& args, const train::LayerContext& context) {
         const double limit = args.positive_number("limit", 1.0);
         train::BuiltLayer layer;
         layer.output_shape = context.input_shapes[0];
         layer.apply = [limit](const std::vector<Tensor>& inputs) { return tanh(inputs[0] / limit) * limit; };
         layer.summary = "limit " + std::to_string(limit);
         return layer;
       }});

  const nlohmann::json config = nlohmann::json::parse(R"({
    "name": "toy_soft_clip",
    "data": {"type": "toy", "dim": 8, "train_size": 1000, "validation_size": 200, "test_size": 200},
    "model": {"layers": [
      {"name": "fc1", "type": "dense", "input": "input", "units": 32},
      {"name": "act", "type": "relu"},
      {"name": "fc2", "type": "dense", "units": 8},
      {"name": "clip", "type": "soft_clip", "limit": 1.0}]},
    "loss": {"type": "mse", "target": "target"},
    "optimizer": {"type": "adam", "lr": 3e-3},
    "train": {"epochs": 10, "batch_size": 50}
  })");
  const std::string run_dir = (std::filesystem::temp_directory_path() / "fpi_example_custom_layer").string();
  train::TrainOptions options;
  options.run_dir = run_dir;
  options.force = true;
  const train::TrainResult result = train::train(train::parse_config(config, "custom_layer.cpp"), options);
  std::printf("best validation loss %.4f at epoch %lld (run directory %s)\n", *result.best_metric,
              static_cast<long long>(result.best_epoch), run_dir.c_str());
  std::filesystem::remove_all(run_dir);
  return *result.best_metric < 0.1 ? 0 : 1;
}
