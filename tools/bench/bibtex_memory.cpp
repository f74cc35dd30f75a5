// Memory of an FPI_NN Bibtex training run (models/bibtex_fpi_nn.json): the process's peak resident
// memory (VmHWM) and the caching allocator's figures after the training steps, after the evaluation
// pass the trainer runs at the end of an epoch, and after a test evaluation in one batch, with the
// speed of the steps. The FPI solves
// shrink their active row set one row at a time, so this is where an allocator that cannot reuse
// blocks of other sizes grows. The target is a peak within 1.5x the 393 MB of the authors'
// PyTorch code, 590 MB; the full profile's exit status is 1 above it. FPI_ALLOCATOR_CACHE_LIMIT
// sets the cache limit as in any fpi program.
//
//   build/bin/bench_bibtex_memory [--quick] [--steps N] [--threads N] [--json FILE]
//   (run from the repository root: the config reads models/ and data/)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fpi/optim/clip_grad.hpp"
#include "fpi/storage.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kTargetBytes = 590e6;

// A "VmHWM:" or "VmRSS:" figure of /proc/self/status in bytes (0 where there is no /proc).
double proc_status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) * 1024.0;
  return 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 300;
  bench::Harness harness("bench_bibtex_memory",
                         "Peak resident memory and allocator figures of an FPI_NN Bibtex training run.");
  harness.add_count("--steps", steps, {.full = 300, .quick = 3}, "training steps (batches of 40)");
  harness.parse(argc, argv);

  const train::RunConfig config = train::load_config("models/bibtex_fpi_nn.json", {});
  const Clock::time_point setup_start = Clock::now();
  train::Experiment experiment(config);
  const data::Dataset& split = experiment.split("train");
  const std::int64_t batch_size = config.train.batch_size;
  auto optimizer = train::make_optimizer(config.optimizer, experiment.model().parameters());
  const std::vector<Tensor> parameters = experiment.model().parameters();
  const double setup_seconds = bench::seconds_since(setup_start);
  const double rss_after_setup = proc_status_bytes("VmRSS:");

  using bench::Align;
  using bench::number_cell;
  bench::Table& table = harness.table(
      "memory", {{"phase", 14, Align::Left}, {"VmHWM MiB", 10}, {"VmRSS MiB", 10}, {"in use MiB", 10},
                 {"peak use MiB", 12}, {"reserved MiB", 12}, {"peak rsv MiB", 12}, {"fragm. MiB", 10},
                 {"segments", 8}, {"requests", 9}, {"sys allocs", 10}, {"sys frees", 9}});
  const auto row = [&](const char* phase) {
    const AllocatorStats s = allocator_stats();
    table.add({bench::text_cell(phase), number_cell(proc_status_bytes("VmHWM:") / kMiB, "%.1f"),
               number_cell(proc_status_bytes("VmRSS:") / kMiB, "%.1f"), number_cell(s.bytes_in_use / kMiB, "%.1f"),
               number_cell(s.peak_bytes_in_use / kMiB, "%.1f"), number_cell(s.bytes_reserved / kMiB, "%.1f"),
               number_cell(s.peak_bytes_reserved / kMiB, "%.1f"), number_cell(s.bytes_fragmented / kMiB, "%.1f"),
               number_cell(static_cast<double>(s.segments), "%.0f"),
               number_cell(static_cast<double>(s.requests), "%.0f"),
               number_cell(static_cast<double>(s.system_allocations), "%.0f"),
               number_cell(static_cast<double>(s.system_frees), "%.0f")});
  };
  row("setup");

  experiment.model().train();
  manual_seed(config.seed);
  const std::int64_t batches = split.num_batches(batch_size);
  const Clock::time_point steps_start = Clock::now();
  for (int step = 0; step < steps; ++step) {
    const data::Batch batch = split.batch(step / batches, step % batches, batch_size);
    optimizer->zero_grad();
    const auto [output, loss] = experiment.forward(batch);
    loss.item();
    loss.backward();
    if (config.train.clip_grad_norm) optim::clip_grad_norm(parameters, *config.train.clip_grad_norm);
    optimizer->step();
  }
  const double step_seconds = bench::seconds_since(steps_start);
  row("train steps");
  const Clock::time_point eval_start = Clock::now();
  experiment.evaluate(config.eval.split, config.eval.batch_size);
  const double eval_seconds = bench::seconds_since(eval_start);
  row("evaluation");
  // The test F1 as bench_bibtex_fpi computes it: all 2515 rows in one solve, whose active set shrinks
  // through hundreds of row counts.
  const std::int64_t test_rows = experiment.split("test").size();
  const Clock::time_point test_start = Clock::now();
  experiment.evaluate("test", test_rows);
  const double test_seconds = bench::seconds_since(test_start);
  row("test, 1 batch");
  empty_cache();
  row("empty_cache");

  const double peak = proc_status_bytes("VmHWM:");
  std::printf("setup %.2f s (RSS %.1f MiB), %d steps %.2f s (%.2f steps/s), %s evaluation %.2f s (batch %lld), "
              "test evaluation %.2f s (one batch of %lld)\n",
              setup_seconds, rss_after_setup / kMiB, steps, step_seconds, steps / step_seconds,
              config.eval.split.c_str(), eval_seconds, static_cast<long long>(config.eval.batch_size), test_seconds,
              static_cast<long long>(test_rows));
  std::printf("peak resident %.1f MB (%.1f MiB), target <= %.0f MB; cache limit %zu bytes\n", peak / 1e6,
              peak / kMiB, kTargetBytes / 1e6, allocator_stats().cache_limit);
  harness.value("peak_resident_bytes", peak);
  harness.value("steps_per_second", steps / step_seconds);
  harness.value("eval_seconds", eval_seconds);
  harness.value("test_eval_seconds", test_seconds);
  return harness.finish(!harness.quick() && peak > kTargetBytes ? 1 : 0);
}
