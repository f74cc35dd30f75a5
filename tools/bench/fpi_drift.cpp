// How far a fixed-point layer's output x̂ on one fixed batch moves from one training step to the next:
// the measurement behind "FPI_GD's training-loss jumps come from the forward solve landing on another
// fixed point as the weights change" (issue 12). It trains a config exactly as `fpi train` does on one
// process (same weights, batches, clipping and optimizer) and after every step solves the fixed batch
// (the first rows of the validation split) twice, without gradients:
//
//   cold: from the layer's constant start, as the model computes x̂;
//   warm: from the previous step's cold x̂, the continuation of the fixed point the model had.
//
// A loss jump with a large |cold − previous cold| but a small |warm − previous cold| means the fixed
// point itself moved; a large |cold − warm| means the solve from the start found a different fixed point
// than the one the weights' change led to: the reading the measurement tests. One CSV row per step:
//
//   step, epoch, train_loss (the step's batch), fixed_loss (BCE of sigmoid(x̂) on the fixed batch),
//   dx_rms / dx_max (cold x̂ vs the previous step's cold x̂, RMS over elements / largest row norm),
//   gap_rms / gap_max (cold vs warm), flips (fraction of label decisions sigmoid(x̂) >= 0.5 that changed),
//   cold_iters / warm_iters (mean forward iterations), dtheta (norm of the parameters' change).
//
//   bench_fpi_drift CONFIG STEPS [ROWS] [key=value ...]     (keys as `fpi train --set`, e.g. seed=1)
//
// The layer must read a data field directly (its z is that field), as models/bibtex_fpi_gd.json's does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fpi/grad_mode.hpp"
#include "fpi/nn/fixed_point.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"

namespace {

using namespace fpi;

struct Difference {
  double rms = 0.0;
  double max_row = 0.0;  // the largest Euclidean norm of one row's difference
};

Difference difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  const std::size_t columns = static_cast<std::size_t>(a.size(1));
  Difference out;
  double row = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double d = x[i] - y[i];
    out.rms += d * d;
    row += d * d;
    if ((i + 1) % columns == 0) {
      out.max_row = std::max(out.max_row, std::sqrt(row));
      row = 0.0;
    }
  }
  out.rms = std::sqrt(out.rms / static_cast<double>(x.size()));
  return out;
}

double flipped_fraction(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  std::size_t flips = 0;
  for (std::size_t i = 0; i < x.size(); ++i) flips += (x[i] >= 0.0) != (y[i] >= 0.0);  // sigmoid(x) >= 0.5
  return static_cast<double>(flips) / static_cast<double>(x.size());
}

std::vector<double> flat_parameters(const std::vector<Tensor>& parameters) {
  std::vector<double> out;
  for (const Tensor& p : parameters) {
    const std::vector<double> values = p.detach().to_vector<double>();
    out.insert(out.end(), values.begin(), values.end());
  }
  return out;
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_fpi_drift CONFIG STEPS [ROWS] [key=value ...]\n");
    return 2;
  }
  const long steps = std::strtol(argv[2], nullptr, 10);
  int first_override = 3;
  long rows = 200;
  if (argc > 3 && std::string(argv[3]).find('=') == std::string::npos)
    rows = std::strtol(argv[first_override++], nullptr, 10);
  FPI_CHECK(steps > 0 && rows > 0, "bench_fpi_drift: STEPS and ROWS must be positive integers");
  const std::vector<std::string> overrides(argv + first_override, argv + argc);

  train::Experiment experiment(train::load_config(argv[1], overrides));
  const train::RunConfig& config = experiment.config();
  train::GraphModule& model = experiment.model();
  const auto layers = model.fixed_point_layers();
  FPI_CHECK(!layers.empty(), "bench_fpi_drift: ", argv[1], " has no fixed_point layer");
  nn::FixedPointLayer& layer = *layers.front().second;
  const std::string input = config.model["layers"][0].value("input", "");
  FPI_CHECK(config.model["layers"][0].value("type", "") == "fixed_point",
            "bench_fpi_drift: the first layer must be the fixed_point layer reading a data field");

  const data::Batch fixed = experiment.split("validation").batch(0, 0, rows);
  const Tensor z = fixed.at(input);
  const Tensor labels = fixed.at(config.loss.target);
  const std::vector<Tensor> parameters = model.parameters();
  const auto optimizer = train::make_optimizer(config.optimizer, parameters);
  const auto schedule = train::make_schedule(config.schedule, *optimizer);
  manual_seed(config.seed);

  const auto solve = [&](const Tensor* start, double& iterations) {
    NoGrad no_grad;
    model.eval();
    Tensor x = start ? layer.forward(z, *start) : layer.forward(z);
    iterations = layer.stats().forward.mean_iterations();
    model.train();
    return x;
  };
  double iterations = 0.0;
  Tensor previous = solve(nullptr, iterations);
  std::vector<double> previous_theta = flat_parameters(parameters);

  std::printf("step,epoch,train_loss,fixed_loss,dx_rms,dx_max,gap_rms,gap_max,flips,cold_iters,warm_iters,dtheta\n");
  const data::Dataset& train_split = experiment.split("train");
  const std::int64_t batches = train_split.num_batches(config.train.batch_size);
  for (long step = 1; step <= steps; ++step) {
    const std::int64_t epoch = (step - 1) / batches, index = (step - 1) % batches;
    optimizer->zero_grad();
    const auto [output, loss] = experiment.forward(train_split.batch(epoch, index, config.train.batch_size));
    const double train_loss = loss.item();
    loss.backward();
    if (config.train.clip_grad_norm) optim::clip_grad_norm(parameters, *config.train.clip_grad_norm);
    optimizer->step();
    if (schedule && index + 1 == batches) schedule->step();

    double cold_iterations = 0.0, warm_iterations = 0.0;
    const Tensor cold = solve(nullptr, cold_iterations);
    const Tensor warm = solve(&previous, warm_iterations);
    double fixed_loss = 0.0;
    {
      NoGrad no_grad;
      fixed_loss = bce_loss(sigmoid(cold), labels).item();
    }
    const Difference moved = difference(cold, previous), gap = difference(cold, warm);
    const std::vector<double> theta = flat_parameters(parameters);
    double dtheta = 0.0;
    for (std::size_t i = 0; i < theta.size(); ++i)
      dtheta += (theta[i] - previous_theta[i]) * (theta[i] - previous_theta[i]);
    std::printf("%ld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.4g,%.4g,%.6g\n", step,
                static_cast<long long>(epoch + 1), train_loss, fixed_loss, moved.rms, moved.max_row, gap.rms,
                gap.max_row, flipped_fraction(cold, previous), cold_iterations, warm_iterations, std::sqrt(dtheta));
    std::fflush(stdout);
    previous = cold;
    previous_theta = theta;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fpi_drift: %s\n", e.what());
    return 1;
  }
}
