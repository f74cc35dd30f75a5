// `fpi demo`: the first thing a new user runs. It trains a small MLP (1 → 32 → 32 → 1, tanh) with
// fpi::nn and fpi::optim::Adam on a built-in regression, y = sin(3x) + 0.1·noise for 256 points x in
// [-1, 1], printing the loss as it falls, and ends with one summary line. The noise sets a floor of
// about 0.01 under the mean squared error, which the summary states so the user can judge the fit.
// Data and initial weights are drawn from one seeded fpi::Generator, so a seed gives the same start on
// every machine (the losses may differ in the last digits where BLAS kernels differ).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"

namespace fpi_cli {
namespace {

constexpr std::int64_t kPoints = 256, kHidden = 32;
constexpr double kNoise = 0.1;
constexpr long long kMaxSteps = 1000000;

struct DemoOptions {
  long long steps = 500;
  std::uint64_t seed = 0;
  double lr = 1e-2;
  bool quiet = false;
};

// y = sin(3x) + kNoise·n with n standard normal. fpi has no sin op (no layer needs one), so the
// targets are made on the host.
fpi::Tensor targets(const fpi::Tensor& x, fpi::Generator& gen) {
  std::vector<float> values = x.to_vector<float>();
  for (float& v : values) v = static_cast<float>(std::sin(3.0 * v) + kNoise * gen.normal());
  return fpi::from_vector(values, x.shape(), {});
}

int demo(const DemoOptions& options) {
  fpi::Generator gen(options.seed);
  const fpi::Tensor x = fpi::uniform({kPoints, 1}, -1.0, 1.0, {}, &gen);
  const fpi::Tensor y = targets(x, gen);
  auto net = std::make_shared<fpi::nn::Sequential>(std::initializer_list<fpi::nn::ModulePtr>{
      std::make_shared<fpi::nn::Linear>(1, kHidden, true, fpi::TensorOptions{}, &gen),
      std::make_shared<fpi::nn::Tanh>(),
      std::make_shared<fpi::nn::Linear>(kHidden, kHidden, true, fpi::TensorOptions{}, &gen),
      std::make_shared<fpi::nn::Tanh>(),
      std::make_shared<fpi::nn::Linear>(kHidden, 1, true, fpi::TensorOptions{}, &gen)});
  fpi::optim::Adam optimizer(net->parameters(), {.lr = options.lr});

  if (!options.quiet) {
    std::printf("fpi demo: fitting y = sin(3x) + %.1f*noise on %lld points with a 1-%lld-%lld-1 tanh MLP,"
                " Adam lr %g, seed %llu\n",
                kNoise, static_cast<long long>(kPoints), static_cast<long long>(kHidden),
                static_cast<long long>(kHidden), options.lr, static_cast<unsigned long long>(options.seed));
  }
  const long long report_every = std::max(1LL, options.steps / 10);
  double first_loss = 0.0, loss = 0.0;
  const auto start = std::chrono::steady_clock::now();
  for (long long step = 1; step <= options.steps; ++step) {
    optimizer.zero_grad();
    const fpi::Tensor l = fpi::mse_loss((*net)(x), y);
    l.backward();
    optimizer.step();
    loss = l.item();
    if (step == 1) first_loss = loss;
    if (!std::isfinite(loss)) {
      std::fprintf(stderr, "fpi demo: the loss became %g at step %lld; try a smaller --lr than %g\n", loss, step,
                   options.lr);
      return 1;
    }
    if (!options.quiet && (step == 1 || step % report_every == 0 || step == options.steps))
      std::printf("step %7lld  loss %.6f\n", step, loss);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fpi demo: loss %.6f -> %.6f (noise floor about %.4f) after %lld steps in %.2f s\n", first_loss,
              loss, kNoise * kNoise, options.steps, seconds);
  if (options.steps > 1 && loss >= first_loss)
    std::fprintf(stderr, "fpi demo: the loss did not fall; try a smaller --lr than %g\n", options.lr);
  return 0;
}

}  // namespace

Command add_demo(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "demo", "train a small MLP on a built-in curve and watch the loss fall: a 1-32-32-1 tanh MLP, Adam, "
              "y = sin(3x) + 0.1*noise");
  auto options = std::make_shared<DemoOptions>();
  command->add_option("--steps", options->steps, "training steps")
      ->check(whole_number(1, kMaxSteps))
      ->capture_default_str();
  command->add_option("--seed", options->seed, "seed of the data and the initial weights")
      ->check(whole_number(0, std::numeric_limits<long long>::max()))
      ->capture_default_str();
  command->add_option("--lr", options->lr, "Adam learning rate")->check(positive_number())->capture_default_str();
  command->add_flag("--quiet", options->quiet, "print only the summary line");
  return [options] { return demo(*options); };
}

}  // namespace fpi_cli
