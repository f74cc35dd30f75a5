// One training step of the paper's FPI_NN layers as `fpi train` takes it, timed on one device: the
// model, optimizer, loss and gradient clipping are built from the configs in models/ by the trainer's
// own code (fpi::train::Experiment, make_optimizer), so the step is the one `fpi train` runs minus the
// data loading and logging. The cases:
//   bibtex40, bibtex1024  models/bibtex_fpi_nn.json (g = sigmoid(fc2(relu(fc1([z, x])))), 1836 + 159
//                         -> 600 -> 159, per-sample Anderson, BCE, Adam 1e-3, clipping at norm 1) at
//                         batch 40 and 1024
//   denoise64             models/denoising_fpi_nn.json (3x3 conv stack 2 -> 32 -> 32 -> 1 on [z, x]),
//                         64 patches of 40x40, MSE, Adam 1e-3, clipping at norm 1
// The batch is the config's first training batch (real Bibtex rows; real Train400 patches with their
// noise), uploaded once: the timed step is zero_grad, forward (the forward FPI), loss, backward (the
// backward FPI), clip, optimizer step. Weights start from the config's seed.
//
// Reported per case: median and best ms/step over `repeat` samples of `steps` steps (the device is
// synchronised at each sample's ends only), the FPI iterations per step (forward and backward, mean
// over samples and steps) and the host synchronisations per step (fpi::host_sync_counts() over the
// timed steps, sample ends excluded; zero on the CPU). With --save DIR, each case's batch, initial
// weights and solver settings go to DIR/CASE/ as raw float32 files for tools/bench/torch_fpi_step.py,
// so the PyTorch twin starts from the same weights on the same data (tools/bench/compare_fpi_step.sh).
//
//   build/bin/bench_fpi_step [--quick] [--device cpu|cuda] [--case all|bibtex40|bibtex1024|denoise64]
//                            [--repeat N] [--steps N] [--warmup N] [--save DIR] [--set KEY=VALUE] [--threads N]
//                            [--json FILE]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "fpi/device.hpp"
#include "fpi/fixed_point.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "fpi/train/trainer.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

struct Case {
  std::string name;
  std::string config;  // file name under models/
  std::int64_t batch;
  std::vector<std::string> overrides;  // on top of the batch size and the data folder
};

const std::vector<Case>& cases() {
  // The denoising data is read from a few Train400 images: the patches are the config's (40x40, sigma
  // 25), and loading all 400 images would take longer than the benchmark.
  static const std::vector<Case> all{
      {"bibtex40", "bibtex_fpi_nn.json", 40, {}},
      {"bibtex1024", "bibtex_fpi_nn.json", 1024, {}},
      {"denoise64", "denoising_fpi_nn.json", 64,
       {"data.max_train_images=16", "data.validation_images=1", "data.max_test_images=1"}},
  };
  return all;
}

struct Settings {
  int warmup = 0, repeat = 0, steps = 0;
  std::string device = "cpu", only = "all", save, set;
};

struct Result {
  double ms_median = 0, ms_best = 0;
  double forward_iterations = 0, backward_iterations = 0;
  int forward_max = 0, backward_max = 0;
  double syncs_per_step = 0;
  HostSyncCounts syncs;  // summed over the timed steps
  double loss = 0;
};

HostSyncCounts minus(const HostSyncCounts& a, const HostSyncCounts& b) {
  return {a.downloads - b.downloads, a.uploads - b.uploads, a.synchronizations - b.synchronizations};
}
void add(HostSyncCounts& into, const HostSyncCounts& d) {
  into.downloads += d.downloads;
  into.uploads += d.uploads;
  into.synchronizations += d.synchronizations;
}

std::string option_lines(const std::string& prefix, const SolverOptions& s) {
  return bench::format("option %s.solver %s\noption %s.tolerance %.17g\noption %s.max_iterations %d\n"
                       "option %s.anderson_history %d\noption %s.anderson_ridge %.17g\noption %s.damping %.17g\n",
                       prefix.c_str(), s.solver == FixedPointSolver::Anderson ? "anderson" : "picard", prefix.c_str(),
                       s.tolerance, prefix.c_str(), s.max_iterations, prefix.c_str(), s.anderson_history,
                       prefix.c_str(), s.anderson_ridge, prefix.c_str(), s.damping);
}

void write_raw(const std::filesystem::path& file, const Tensor& t, std::ofstream& manifest, const std::string& name) {
  const std::vector<float> values = t.to(kCPU).contiguous().to_vector<float>();
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
  FPI_CHECK(out.good(), "bench_fpi_step --save: cannot write ", file.string());
  manifest << "tensor " << name << ' ' << file.filename().string();
  for (auto d : t.shape()) manifest << ' ' << d;
  manifest << '\n';
}

// The case's batch, weights and solver settings for the PyTorch twin: raw little-endian float32 files and
// a manifest naming them with their shapes (the format torch_fpi_step.py reads).
void save_case(const std::filesystem::path& dir, const Case& c, train::Experiment& experiment, const Tensor& input,
               const Tensor& target, const FixedPointOptions& options) {
  std::filesystem::create_directories(dir);
  std::ofstream manifest(dir / "manifest.txt");
  manifest << "case " << c.name << "\nconfig " << c.config << "\nloss " << experiment.config().loss.type << '\n';
  manifest << "per_sample " << (options.per_sample ? 1 : 0) << '\n';
  manifest << option_lines("forward", options.forward) << option_lines("backward", options.backward);
  manifest << "clip_grad_norm " << experiment.config().train.clip_grad_norm.value_or(0.0) << '\n';
  manifest << "lr " << experiment.config().optimizer.lr << '\n';
  write_raw(dir / "input.f32", input, manifest, "input");
  write_raw(dir / "target.f32", target, manifest, "target");
  for (const auto& [name, tensor] : experiment.model().state_dict()) write_raw(dir / (name + ".f32"), tensor, manifest, name);
  FPI_CHECK(manifest.good(), "bench_fpi_step --save: cannot write ", (dir / "manifest.txt").string());
}

Result run_case(const Case& c, const Settings& s) {
  const std::string models = std::string(FPI_SOURCE_DIR) + "/models/";
  const std::string data = std::string(FPI_SOURCE_DIR) + "/data/" + (c.name.starts_with("bibtex") ? "bibtex" : "denoising");
  std::vector<std::string> overrides{"train.batch_size=" + std::to_string(c.batch), "data.dir=" + data};
  overrides.insert(overrides.end(), c.overrides.begin(), c.overrides.end());
  if (!s.set.empty()) overrides.push_back(s.set);
  train::RunConfig config = train::load_config(models + c.config, overrides);
  config.device = s.device;
  train::Experiment experiment(std::move(config));
  const train::RunConfig& rc = experiment.config();
  const Device device = experiment.device();

  const data::Batch batch = experiment.split("train").batch(0, 0, c.batch);
  FPI_CHECK(batch.size() == c.batch, "bench_fpi_step: case ", c.name, " needs ", c.batch, " training samples, the split has ",
            batch.size());
  std::vector<std::pair<std::string, Tensor>> sources;
  for (const auto& [name, tensor] : batch.fields)
    if (name != rc.loss.target) sources.emplace_back(name, tensor.to(device));
  const Tensor target = batch.at(rc.loss.target).to(device);
  const auto layers = experiment.model().fixed_point_layers();
  FPI_CHECK(layers.size() == 1, "bench_fpi_step: ", c.config, " has ", layers.size(), " fixed_point layers; expected 1");
  nn::FixedPointLayer& layer = *layers[0].second;
  if (!s.save.empty()) {
    FPI_CHECK(sources.size() == 1, "bench_fpi_step --save: ", c.config, " reads ", sources.size(), " fields; expected 1");
    save_case(std::filesystem::path(s.save) / c.name, c, experiment, sources[0].second, target, layer.options());
  }

  std::vector<Tensor> parameters = experiment.model().parameters();
  const std::unique_ptr<optim::Optimizer> optimizer = train::make_optimizer(rc.optimizer, parameters);
  Tensor loss;
  const auto step = [&] {
    optimizer->zero_grad();
    const Tensor output = experiment.model().forward(sources);
    loss = rc.loss.type == "bce" ? bce_loss(output, target) : mse_loss(output, target);
    loss.backward();
    if (rc.train.clip_grad_norm) optim::clip_grad_norm(parameters, *rc.train.clip_grad_norm);
    optimizer->step();
  };

  for (int i = 0; i < s.warmup; ++i) step();
  Result r;
  std::vector<double> per_step;
  double forward_sum = 0, backward_sum = 0;
  for (int rep = 0; rep < s.repeat; ++rep) {
    synchronize(device);
    const HostSyncCounts before = host_sync_counts();
    const auto start = Clock::now();
    for (int i = 0; i < s.steps; ++i) {
      step();
      const FixedPointStats& stats = layer.stats();
      forward_sum += stats.forward.mean_iterations();
      backward_sum += stats.backward.mean_iterations();
      r.forward_max = std::max(r.forward_max, stats.forward.max_iterations());
      r.backward_max = std::max(r.backward_max, stats.backward.max_iterations());
    }
    add(r.syncs, minus(host_sync_counts(), before));
    synchronize(device);
    per_step.push_back(bench::seconds_since(start) / s.steps);
  }
  const double steps = static_cast<double>(s.repeat) * s.steps;
  const bench::Summary summary = bench::summarize(per_step);
  r.ms_median = summary.median * 1e3;
  r.ms_best = summary.min * 1e3;
  r.forward_iterations = forward_sum / steps;
  r.backward_iterations = backward_sum / steps;
  r.syncs_per_step = static_cast<double>(r.syncs.total()) / steps;
  r.loss = loss.item();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  bench::Harness harness("bench_fpi_step",
                         "One FPI_NN training step as `fpi train` takes it (models/bibtex_fpi_nn.json at batch 40 and "
                         "1024, models/denoising_fpi_nn.json at 64 patches), float32.");
  harness.add_count("--repeat", s.repeat, {.full = 7, .quick = 2}, "timing samples");
  harness.add_count("--steps", s.steps, {.full = 10, .quick = 2}, "training steps per sample");
  harness.add_count("--warmup", s.warmup, {.full = 5, .quick = 1}, "untimed steps first", 0);
  harness.add_choice("--device", s.device, {"cpu", "cuda"}, "where the step runs (cuda: cuda:0)");
  std::vector<std::string> choices{"all"};
  for (const Case& c : cases()) choices.push_back(c.name);
  harness.add_choice("--case", s.only, choices, "the case to run");
  harness.add_text("--save", s.save, "DIR", "write each case's batch, initial weights and settings to DIR/CASE/");
  harness.add_text("--set", s.set, "KEY=VALUE",
                   "one config override for every case, as fpi train --set (model.layers[0].forward.tolerance=1e-5)");
  harness.parse(argc, argv);

  std::printf("fpi FPI_NN training step, float32, device %s; threads: %s\n", s.device.c_str(),
              harness.threads_description().c_str());
  std::printf("%d warm-up steps, %d samples of %d steps; batch from each config's training data\n", s.warmup, s.repeat,
              s.steps);
  using bench::Align;
  using bench::number_cell;
  bench::Table& table = harness.table("steps", {{"case", 11, Align::Left},
                                                {"ms/step", 10},
                                                {"best", 10},
                                                {"fwd iters", 10},
                                                {"fwd max", 8},
                                                {"bwd iters", 10},
                                                {"bwd max", 8},
                                                {"syncs/step", 11},
                                                {"loss", 10}});
  int status = 0;
  for (const Case& c : cases()) {
    if (s.only != "all" && s.only != c.name) continue;
    try {
      const Result r = run_case(c, s);
      table.add({bench::text_cell(c.name), number_cell(r.ms_median, "%.3f"), number_cell(r.ms_best, "%.3f"),
                 number_cell(r.forward_iterations, "%.2f"), number_cell(r.forward_max, "%.0f"),
                 number_cell(r.backward_iterations, "%.2f"), number_cell(r.backward_max, "%.0f"),
                 number_cell(r.syncs_per_step, "%.1f"), number_cell(r.loss, "%.5f")});
      // One line per case for scripts (compare_fpi_step.sh): key value pairs after the case name.
      std::printf("result %s ms %.4f fwd %.3f bwd %.3f syncs %.2f downloads %.2f uploads %.2f synchronizations %.2f\n",
                  c.name.c_str(), r.ms_median, r.forward_iterations, r.backward_iterations, r.syncs_per_step,
                  static_cast<double>(r.syncs.downloads) / (s.repeat * s.steps),
                  static_cast<double>(r.syncs.uploads) / (s.repeat * s.steps),
                  static_cast<double>(r.syncs.synchronizations) / (s.repeat * s.steps));
      std::fflush(stdout);
      harness.value(c.name + "_ms_median", r.ms_median);
      harness.value(c.name + "_forward_iterations", r.forward_iterations);
      harness.value(c.name + "_backward_iterations", r.backward_iterations);
      harness.value(c.name + "_syncs_per_step", r.syncs_per_step);
      // The counter covers the CUDA backend alone: a CPU step that counted a wait would be a counting bug.
      if (s.device == "cpu" && r.syncs.total() != 0) {
        std::fprintf(stderr, "bench_fpi_step: case %s counted %lld host syncs on the CPU; expected none\n",
                     c.name.c_str(), static_cast<long long>(r.syncs.total()));
        status = 1;
      }
    } catch (const Error& e) {
      std::fprintf(stderr, "bench_fpi_step: case %s: %s\n", c.name.c_str(), e.what());
      status = 1;
    }
  }
  return harness.finish(status);
}
