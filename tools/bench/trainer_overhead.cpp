// What the trainer costs on top of the training steps: one epoch of `fpi train` (fpi::train::train:
// batches made on a second thread, random crops and flips, metrics, metrics.jsonl, the log, a
// checkpoint) against the bare steps of the same epoch (forward, backward, clipping, optimizer) over
// batches made beforehand, from the same initial weights, so both do the same arithmetic. The trainer's
// one-off setup (reading the data, building the model) and its evaluation pass are timed apart and
// left out of the overhead: they are not per-step costs. The requirement is overhead <= 10 % of the
// bare epoch.
//
//   build/bin/bench_trainer_overhead [--quick] [--repeat N] [--configs a,b] [--threads N] [--json FILE]
//   (run from the repository root: the configs read models/ and data/)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "fpi/optim/clip_grad.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// The settings of one epoch: the real config, with the quick profile's smaller data.
std::vector<std::string> overrides_for(const std::string& name, bool quick) {
  std::vector<std::string> overrides{"train.epochs=1"};
  if (name.starts_with("denoising")) {
    overrides.push_back("data.max_train_images=" + std::string(quick ? "8" : "0"));
    overrides.push_back("data.max_test_images=2");
    overrides.push_back("data.validation_images=2");
    if (quick) overrides.push_back("data.patches_per_epoch=256");
  }
  if (name.starts_with("bibtex") && quick) overrides.push_back("model.layers[0].map.layers[1].units=32");
  return overrides;
}

// Seconds of the bare steps of epoch 0 over batches made beforehand.
double bare_epoch(const train::RunConfig& config) {
  train::Experiment experiment(config);
  const data::Dataset& split = experiment.split("train");
  const std::int64_t batch_size = config.train.batch_size;
  std::vector<data::Batch> batches;
  for (std::int64_t i = 0; i < split.num_batches(batch_size); ++i) batches.push_back(split.batch(0, i, batch_size));
  auto optimizer = train::make_optimizer(config.optimizer, experiment.model().parameters());
  const std::vector<Tensor> parameters = experiment.model().parameters();
  experiment.model().train();
  manual_seed(config.seed);
  const auto start = Clock::now();
  for (const data::Batch& batch : batches) {
    optimizer->zero_grad();
    const auto [output, loss] = experiment.forward(batch);
    loss.item();  // the trainer reads every loss to check it is finite
    loss.backward();
    if (config.train.clip_grad_norm) optim::clip_grad_norm(parameters, *config.train.clip_grad_norm);
    optimizer->step();
  }
  return bench::seconds_since(start);
}

struct TrainerTimes {
  double setup = 0.0, epoch = 0.0, eval = 0.0;
};

TrainerTimes trainer_epoch(const train::RunConfig& config, const std::string& run_dir) {
  TrainerTimes times;
  auto start = Clock::now();
  { train::Experiment setup_only(config); }
  times.setup = bench::seconds_since(start);
  train::TrainOptions options;
  options.run_dir = run_dir;
  options.force = true;
  start = Clock::now();
  const train::TrainResult result = train::train(config, options);
  times.eval = result.last_eval ? result.last_eval->seconds : 0.0;
  times.epoch = bench::seconds_since(start) - times.setup - times.eval;
  return times;
}

}  // namespace

int main(int argc, char** argv) {
  std::string configs = "bibtex_fpi_nn,denoising_fpi_nn";
  int repeat = 3;
  bench::Harness harness("bench_trainer_overhead",
                         "One epoch of fpi train against the bare training steps of the same epoch.");
  harness.add_text("--configs", configs, "A,B", "configs in models/ to measure");
  harness.add_count("--repeat", repeat, {.full = 3, .quick = 1}, "epochs timed each way (the minimum counts)");
  harness.parse(argc, argv);

  const std::string run_dir = (std::filesystem::temp_directory_path() / "fpi_bench_trainer_overhead").string();
  using bench::Align;
  bench::Table& table = harness.table(
      "overhead", {{"config", 18, Align::Left}, {"bare s", 9}, {"trainer s", 9}, {"overhead", 9}, {"setup s", 8},
                   {"eval s", 8}});
  int status = 0;
  for (const std::string& name : split_list(configs)) try {
    const train::RunConfig config =
        train::load_config("models/" + name + ".json", overrides_for(name, harness.quick()));
    double bare = 1e300;
    TrainerTimes best{1e300, 1e300, 1e300};
    for (int r = 0; r < repeat; ++r) {
      bare = std::min(bare, bare_epoch(config));
      const TrainerTimes t = trainer_epoch(config, run_dir);
      if (t.epoch < best.epoch) best = t;
    }
    const double overhead = (best.epoch - bare) / bare;
    table.add({bench::text_cell(name), bench::number_cell(bare, "%.3f"), bench::number_cell(best.epoch, "%.3f"),
               bench::number_cell(100.0 * overhead, "%.1f %%"), bench::number_cell(best.setup, "%.3f"),
               bench::number_cell(best.eval, "%.3f")});
    if (!harness.quick() && overhead > 0.10) status = 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_trainer_overhead: %s: %s\n", name.c_str(), e.what());
    status = 1;
  }
  std::filesystem::remove_all(run_dir);
  return harness.finish(status);
}
