// Training the paper's Bibtex FPI layers on the real data (data/bibtex), comparing solvers.
//
// FPI_NN: g(x, z) = sigmoid(W2 relu(W1 [z, x])), 1836 features, 159 labels, hidden 600, batch 40.
// FPI_GD: g(x, z) = x − ∇ₓE with E = mean(relu(W [z, sigmoid(x)])²) per sample, hidden 512, batch 80,
//         step size 1, loss BCE(sigmoid(x̂), y).
// Both as in the authors' demo programs: Adam (lr 1e-3), BCE, gradient clipping at norm 1 for FPI_NN,
// relative tolerance 1e-4 (their normalised test ‖Δx‖² / ‖x‖² < 1e-8), iteration cap 4000.
//
// Each configuration trains from the same initial weights on the same batches and reports, per
// training step: forward and backward iterations, the fraction of samples that converged, cycles and
// time; then the example-based F1 on the test split. "cycles" counts (sample, step) pairs in which the
// forward solve saw a period-2 oscillation; "fell back" counts (sample, step) pairs whose forward solve
// stalled and left the configured solver for the fallback chain (SolverOptions::stall_window, on at its
// default of 100). "whole batch" reproduces the authors' stopping
// test (one norm over the batch), the others stop per sample.
//
//   bench_bibtex_fpi [--quick] [--steps N] [--data DIR] [--threads N] [--json FILE]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "fpi/data.hpp"
#include "fpi/fixed_point.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

constexpr std::int64_t kFeatures = data::kBibtexFeatures, kLabels = data::kBibtexLabels;

// E(x, z) per sample = mean(relu(W [z, sigmoid(x)] + b)²): the authors' FPI_GD cost network.
class BibtexEnergy : public nn::Module {
 public:
  explicit BibtexEnergy(Generator& gen) : nn::Module("BibtexEnergy") {
    fc = register_module("fc", std::make_shared<nn::Linear>(kFeatures + kLabels, 512, true, TensorOptions{}, &gen));
  }
  Tensor forward(const Tensor& zx) override {
    const Tensor z = zx.slice(1, 0, kFeatures), x = zx.slice(1, kFeatures, kFeatures + kLabels);
    return relu((*fc)(concat({z, sigmoid(x)}, 1)));
  }
  std::shared_ptr<nn::Linear> fc;
};

enum class Kind { Nn, Gd };

struct Config {
  std::string name;
  Kind kind;
  FixedPointSolver solver;
  bool per_sample;
  bool damp_cycles;
  int steps;  // training steps to run (slow configurations run fewer)
  bool evaluate = true;  // the test F1 costs a solve over all 2515 test rows
};

struct StepRecord {
  double forward_mean, backward_mean, converged, ms;
  int forward_max, cycles, fell_back;
};

std::string data_dir(const std::string& requested) {
  if (!requested.empty()) return requested;
  if (std::filesystem::exists("data/bibtex/bibtex-train.arff")) return "data/bibtex";
  return std::string(FPI_SOURCE_DIR) + "/data/bibtex";
}

std::shared_ptr<nn::FixedPointLayer> make_layer(const Config& c, std::uint64_t seed, int max_iterations) {
  Generator gen(seed);
  FixedPointOptions o;
  o.name = c.name;
  o.per_sample = c.per_sample;
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  for (SolverOptions* s : {&o.forward, &o.backward}) {
    s->solver = c.solver;
    s->tolerance = 1e-4;
    s->max_iterations = max_iterations;
    s->damp_cycles = c.damp_cycles;
  }
  std::shared_ptr<nn::FixedPointMap> map;
  if (c.kind == Kind::Nn) {
    map = std::make_shared<nn::NetMap>(std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::Linear>(kFeatures + kLabels, 600, true, TensorOptions{}, &gen), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(600, kLabels, true, TensorOptions{}, &gen), std::make_shared<nn::Sigmoid>()}));
  } else {
    map = std::make_shared<nn::EnergyDescentMap>(std::make_shared<BibtexEnergy>(gen), 1.0, nn::EnergyReduction::MeanSquare);
  }
  return std::make_shared<nn::FixedPointLayer>(map, Shape{kLabels}, o);
}

Tensor probabilities(const Config& c, const Tensor& x_hat) { return c.kind == Kind::Nn ? x_hat : sigmoid(x_hat); }

double test_f1(const Config& c, nn::FixedPointLayer& layer, const data::MultiLabelData& test) {
  NoGrad no_grad;
  layer.eval();
  const Tensor p = probabilities(c, layer.forward(test.features));
  layer.train();
  return data::example_f1(p, test.labels, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<int> steps_override;
  std::string requested_dir;
  bench::Harness harness("bench_bibtex_fpi",
                         "Training the paper's Bibtex FPI layers on the real data, comparing solvers.");
  harness.add_count("--steps", steps_override,
                    "training steps of every configuration (default: as listed, at most 2 with --quick)");
  harness.add_text("--data", requested_dir, "DIR", "the Bibtex folder (default data/bibtex, else the source tree's)");
  harness.parse(argc, argv);
  const bool quick = harness.quick();
  const std::string dir = data_dir(requested_dir);
  const data::MultiLabelData train = data::load_bibtex(dir, data::Split::Train);
  const data::MultiLabelData test = data::load_bibtex(dir, data::Split::Test);

  const int epoch_nn = static_cast<int>(data::kBibtexTrainRows / 40);
  std::vector<Config> configs{
      {"nn whole-batch Picard", Kind::Nn, FixedPointSolver::Picard, false, false, 15},
      {"nn Picard", Kind::Nn, FixedPointSolver::Picard, true, false, epoch_nn},
      {"nn Picard + cycle damping", Kind::Nn, FixedPointSolver::Picard, true, true, epoch_nn},
      {"nn Anderson", Kind::Nn, FixedPointSolver::Anderson, true, true, epoch_nn},
      {"gd Picard", Kind::Gd, FixedPointSolver::Picard, true, true, 3, false},
      {"gd Anderson", Kind::Gd, FixedPointSolver::Anderson, true, true, 30},
  };
  if (quick)
    for (auto& c : configs) c.steps = std::min(c.steps, 2);
  if (steps_override)
    for (auto& c : configs) c.steps = *steps_override;

  std::printf("Bibtex FPI training, %s; first %s\n", dir.c_str(),
              quick ? "2 steps, at most 300 iterations (quick)" : "steps as listed");
  using bench::Align;
  using bench::number_cell;
  bench::Table& table = harness.table("configurations", {{"configuration", 26, Align::Left},
                                                         {"steps", 5},
                                                         {"fwd-mean", 9},
                                                         {"fwd-max", 7},
                                                         {"bwd-mean", 9},
                                                         {"conv-mean", 9},
                                                         {"min", 7},
                                                         {">=95%", 7},
                                                         {"cycles", 7},
                                                         {"fell back", 9},
                                                         {"ms/step", 9},
                                                         {"F1", 7}});
  for (const Config& c : configs) {
    const std::uint64_t seed = 2020;
    auto layer = make_layer(c, seed, quick ? 300 : 4000);
    optim::Adam adam(layer->parameters(), {.lr = 1e-3});
    data::DataLoader loader(data::TensorDataset({train.features, train.labels}),
                            {.batch_size = c.kind == Kind::Nn ? 40 : 80, .shuffle = true, .drop_last = true, .seed = 7});
    std::vector<StepRecord> records;
    std::string failure;
    try {
      for (int epoch = 0; static_cast<int>(records.size()) < c.steps; ++epoch) {
        for (const auto& batch : loader) {
          if (static_cast<int>(records.size()) >= c.steps) break;
          const auto start = Clock::now();
          adam.zero_grad();
          const Tensor loss = bce_loss(probabilities(c, layer->forward(batch[0])), batch[1]);
          loss.backward();
          if (c.kind == Kind::Nn) optim::clip_grad_norm(layer->parameters(), 1.0);
          adam.step();
          const double ms = bench::seconds_since(start) * 1e3;
          const auto& s = layer->stats();
          records.push_back({s.forward.mean_iterations(), s.backward.mean_iterations(),
                             s.forward.converged_fraction(), ms, s.forward.max_iterations(), s.forward.cycle_count(),
                             s.forward.fallback_count()});
        }
      }
    } catch (const Error& e) {
      // A diverging solve (NaN or Inf) ends this configuration; the table says at which step.
      failure = e.what();
    }
    if (records.empty()) {
      std::printf("%-26s failed at step 1: %s\n", c.name.c_str(), failure.c_str());
      continue;
    }
    double forward_mean = 0, backward_mean = 0, converged_mean = 0, converged_min = 1, ms = 0;
    int forward_max = 0, good = 0, cycles = 0, fell_back = 0;
    for (const auto& r : records) {
      forward_mean += r.forward_mean / records.size();
      backward_mean += r.backward_mean / records.size();
      converged_mean += r.converged / records.size();
      converged_min = std::min(converged_min, r.converged);
      ms += r.ms / records.size();
      forward_max = std::max(forward_max, r.forward_max);
      good += r.converged >= 0.95;
      cycles += r.cycles;
      fell_back += r.fell_back;
    }
    const bench::Cell f1 =
        c.evaluate && failure.empty() ? number_cell(test_f1(c, *layer, test), "%.4f") : bench::missing_cell();
    table.add({bench::text_cell(c.name), number_cell(static_cast<double>(records.size()), "%.0f"),
               number_cell(forward_mean, "%.1f"), number_cell(forward_max, "%.0f"), number_cell(backward_mean, "%.1f"),
               number_cell(100 * converged_mean, "%.1f%%"), number_cell(100 * converged_min, "%.1f%%"),
               number_cell(good, "%.0f"), number_cell(cycles, "%.0f"), number_cell(fell_back, "%.0f"),
               number_cell(ms, "%.1f"), f1});
    if (!failure.empty()) std::printf("%-26s   stopped at step %zu: %s\n", "", records.size() + 1, failure.c_str());
  }
  return harness.finish(0);
}
