// Loading a trained model for inference: the run directory's resolved config rebuilds the model (no
// data is read), the checkpoint's weights go in by name, and the model runs in evaluation mode without
// a tape. Give it a run directory (`example_checkpoint_inference runs/toy_fpi_nn`); without one it
// first trains the toy FPI_NN config for a few epochs into a temporary run directory. A test runs it.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "fpi/grad_mode.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/trainer.hpp"

int main(int argc, char** argv) {
  using namespace fpi;
  std::string run_dir = argc > 1 ? argv[1] : "";
  if (run_dir.empty()) {
    run_dir = (std::filesystem::temp_directory_path() / "fpi_example_checkpoint_inference").string();
    train::TrainOptions options;
    options.run_dir = run_dir;
    options.force = true;
    train::train(train::load_config(std::string(FPI_SOURCE_DIR) + "/models/toy_fpi_nn.json", {"train.epochs=5"}),
                 options);
  }

  const train::RunConfig config = train::load_run_config(run_dir);
  Generator initialisation(config.seed);  // its draws are overwritten by the checkpoint's weights
  const train::BuiltModel built = train::build_model(config.model, train::data_fields(config),
                                                     TensorOptions{.dtype = config.dtype}, initialisation);
  train::GraphModule& model = *built.module;
  train::load_weights(model, run_dir + "/checkpoints/best");
  model.eval();

  // Three inputs of the toy problem; the answer is clamp(a, -1, 1).
  NoGrad no_grad;
  const std::vector<float> values{-3.0f, -0.5f, 0.0f, 0.5f, 3.0f, 1.5f, -1.5f, 0.25f, -0.25f, 2.0f};
  const Tensor a = from_vector(values, {1, 10}, {});
  const Tensor input = concat({a, a * 0.5, a * -0.3}, 0);
  const Tensor prediction = model.forward({{"input", input}});
  const double error = mse_loss(prediction, clamp(input, -1.0, 1.0)).item();
  std::cout << "a          = " << a.select(0, 0) << "\nprediction = " << prediction.select(0, 0) << "\n";
  std::printf("mean squared error against clamp(a, -1, 1): %.4f\n", error);
  if (argc <= 1) std::filesystem::remove_all(run_dir);
  return error < 0.2 ? 0 : 1;
}
