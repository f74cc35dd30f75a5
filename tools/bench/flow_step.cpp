// The optical-flow experiment's time target (issue 11: the FPI variant at almost the cost of the
// baseline): one training step of models/flow_feedforward.json and of models/flow_fpi.json as `fpi
// train` takes it (zero_grad, forward, MSE, backward, Adam), built by the trainer's own code from the
// configs, on the same batches of the training split (8 pairs of 64x64, made beforehand). The two
// models take turns, one sample of `steps` steps each, so load from other processes falls on both; a
// sample is timed by the CPU time of the process (with --threads 1 that is the step's own work, which
// other processes' load does not inflate) and by the wall clock. Reported: median ms/step of each, the
// ratio of the medians, the FPI layer's mean forward and backward iterations over the timed steps, and
// the segments the caching allocator took from the system per step (each a fresh page the kernel clears).
// --only times one model (for `perf record`).
//
//   build/bin/bench_flow_step [--quick] [--repeat N] [--steps N] [--warmup N] [--only both|feedforward|fpi]
//                             [--threads N] [--json FILE]   (run from anywhere: models/ and data/ are the source tree's)
#include <time.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "fpi/fixed_point.hpp"
#include "fpi/storage.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "fpi/train/trainer.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Sample {
  double cpu = 0.0, wall = 0.0;  // seconds per step
  double system_allocations = 0.0;  // segments the caching allocator took from the system, per step
};

class Model {
 public:
  Model(const std::string& config, int batches) : experiment_(load(config)) {
    const train::RunConfig& rc = experiment_.config();
    for (int b = 0; b < batches; ++b) {
      const data::Batch batch = experiment_.split("train").batch(0, b, rc.train.batch_size);
      std::vector<std::pair<std::string, Tensor>> sources;
      for (const auto& [name, tensor] : batch.fields)
        if (name != rc.loss.target) sources.emplace_back(name, tensor);
      batches_.push_back({std::move(sources), batch.at(rc.loss.target)});
    }
    parameters_ = experiment_.model().parameters();
    optimizer_ = train::make_optimizer(rc.optimizer, parameters_);
    const auto layers = experiment_.model().fixed_point_layers();
    if (!layers.empty()) layer_ = layers.front().second.get();
  }

  void step() {
    const auto& [sources, target] = batches_[next_++ % batches_.size()];
    optimizer_->zero_grad();
    mse_loss(experiment_.model().forward(sources), target).backward();
    optimizer_->step();
    if (layer_) {
      forward_iterations_ += layer_->stats().forward.mean_iterations();
      backward_iterations_ += layer_->stats().backward.mean_iterations();
      ++counted_;
    }
  }

  Sample time(int steps) {
    const std::uint64_t allocations = allocator_stats().system_allocations;
    const double cpu = process_cpu_seconds();
    const auto wall = bench::Clock::now();
    for (int i = 0; i < steps; ++i) step();
    return {(process_cpu_seconds() - cpu) / steps, bench::seconds_since(wall) / steps,
            static_cast<double>(allocator_stats().system_allocations - allocations) / steps};
  }

  void reset_counts() { forward_iterations_ = backward_iterations_ = 0.0, counted_ = 0; }
  double forward_iterations() const { return counted_ ? forward_iterations_ / counted_ : 0.0; }
  double backward_iterations() const { return counted_ ? backward_iterations_ / counted_ : 0.0; }
  bool has_fixed_point() const { return layer_ != nullptr; }

 private:
  static train::RunConfig load(const std::string& config) {
    const std::string root = FPI_SOURCE_DIR;
    // A few source images are enough for batches of textured pairs; loading all of them would take longer
    // than the benchmark.
    train::RunConfig rc = train::load_config(root + "/models/" + config,
                                             {"data.dir=" + root + "/data/denoising", "data.max_train_images=16",
                                              "data.validation_images=1", "data.max_test_images=1"});
    FPI_CHECK(rc.loss.type == "mse", "bench_flow_step: ", config, " has loss ", rc.loss.type, "; expected mse");
    return rc;
  }

  train::Experiment experiment_;
  std::vector<std::pair<std::vector<std::pair<std::string, Tensor>>, Tensor>> batches_;
  std::vector<Tensor> parameters_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  nn::FixedPointLayer* layer_ = nullptr;
  std::size_t next_ = 0;
  double forward_iterations_ = 0.0, backward_iterations_ = 0.0;
  int counted_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int repeat = 0, steps = 0, warmup = 0, batches = 0;
  std::string only = "both";
  bench::Harness harness("bench_flow_step",
                         "One training step of models/flow_feedforward.json and models/flow_fpi.json, alternating.");
  harness.add_count("--repeat", repeat, {.full = 15, .quick = 1}, "timed samples per model");
  harness.add_count("--steps", steps, {.full = 10, .quick = 1}, "training steps per sample");
  harness.add_count("--warmup", warmup, {.full = 10, .quick = 1}, "untimed steps per model first", 0);
  harness.add_count("--batches", batches, {.full = 20, .quick = 2}, "distinct training batches, used in turn");
  harness.add_choice("--only", only, {"both", "feedforward", "fpi"}, "the models timed");
  harness.parse(argc, argv);
  std::printf("optical-flow training step (batch 8, 64x64, float32, Adam); threads: %s\n",
              harness.threads_description().c_str());
  std::printf("%d warm-up steps, then %d alternating samples of %d steps per model over %d batches\n", warmup, repeat,
              steps, batches);

  std::vector<std::pair<std::string, std::unique_ptr<Model>>> models;
  if (only != "fpi") models.emplace_back("feedforward", std::make_unique<Model>("flow_feedforward.json", batches));
  if (only != "feedforward") models.emplace_back("fpi", std::make_unique<Model>("flow_fpi.json", batches));
  for (auto& [name, model] : models) {
    for (int i = 0; i < warmup; ++i) model->step();
    model->reset_counts();
  }
  std::vector<std::vector<double>> cpu(models.size()), wall(models.size()), allocations(models.size());
  for (int r = 0; r < repeat; ++r) {
    for (std::size_t m = 0; m < models.size(); ++m) {
      const Sample s = models[m].second->time(steps);
      cpu[m].push_back(s.cpu);
      wall[m].push_back(s.wall);
      allocations[m].push_back(s.system_allocations);
    }
  }

  using bench::number_cell;
  bench::Table& table = harness.table("steps", {{"model", 12, bench::Align::Left},
                                                {"cpu ms/step", 12},
                                                {"wall ms/step", 12},
                                                {"fwd iters", 10},
                                                {"bwd iters", 10},
                                                {"sys allocs/step", 15}});
  for (std::size_t m = 0; m < models.size(); ++m) {
    const Model& model = *models[m].second;
    table.add({bench::text_cell(models[m].first), number_cell(bench::median(cpu[m]) * 1e3, "%.2f"),
               number_cell(bench::median(wall[m]) * 1e3, "%.2f"),
               model.has_fixed_point() ? number_cell(model.forward_iterations(), "%.2f") : bench::missing_cell(),
               model.has_fixed_point() ? number_cell(model.backward_iterations(), "%.2f") : bench::missing_cell(),
               number_cell(bench::median(allocations[m]), "%.2f")});
  }
  if (models.size() == 2) {
    const double cpu_ratio = bench::median(cpu[1]) / bench::median(cpu[0]);
    const double wall_ratio = bench::median(wall[1]) / bench::median(wall[0]);
    std::printf("fpi / feedforward: cpu %.3f, wall %.3f\n", cpu_ratio, wall_ratio);
    harness.value("cpu_ratio", cpu_ratio);
    harness.value("wall_ratio", wall_ratio);
  }
  return harness.finish(0);
}
