// `fpi demo`: the first thing a new user runs. It trains a small MLP (1 → 32 → 32 → 1, tanh) with
// fpi::nn and fpi::optim::Adam on a built-in regression, y = sin(3x) + 0.1·noise for 256 points x in
// [-1, 1], printing the loss as it falls, and ends with one summary line. The noise sets a floor of
// about 0.01 under the mean squared error, which the summary states so the user can judge the fit.
// Data and initial weights are drawn from one seeded fpi::Generator, so a seed gives the same start on
// every machine (the losses may differ in the last digits where BLAS kernels differ).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
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

void print_demo_usage(std::ostream& out) {
  out << "usage: fpi demo [--steps N] [--seed S] [--lr X] [--quiet]\n"
         "  trains a 1-32-32-1 tanh MLP with Adam on y = sin(3x) + 0.1*noise and prints the loss\n"
         "  --steps N  training steps, 1 to 1000000 (default 500)\n"
         "  --seed S   seed of the data and the initial weights, a whole number >= 0 (default 0)\n"
         "  --lr X     Adam learning rate, a number > 0 (default 0.01)\n"
         "  --quiet    print only the summary line\n";
}

int demo_usage_error(const std::string& problem) {
  std::cerr << "fpi demo: " << problem << "\n\n";
  print_demo_usage(std::cerr);
  return kUsageError;
}

// Each parser accepts the whole text or nothing: "12x" is an error, not 12.
bool parse_steps(const char* text, long long& out) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 1 || value > kMaxSteps) return false;
  out = value;
  return true;
}

bool parse_seed(const char* text, std::uint64_t& out) {
  if (*text < '0' || *text > '9') return false;  // strtoull would accept "-1" as 2^64 - 1
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (*end != '\0' || errno == ERANGE) return false;
  out = value;
  return true;
}

bool parse_lr(const char* text, double& out) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(value) || value <= 0.0) return false;
  out = value;
  return true;
}

// y = sin(3x) + kNoise·n with n standard normal. fpi has no sin op (no layer needs one), so the
// targets are made on the host.
fpi::Tensor targets(const fpi::Tensor& x, fpi::Generator& gen) {
  std::vector<float> values = x.to_vector<float>();
  for (float& v : values) v = static_cast<float>(std::sin(3.0 * v) + kNoise * gen.normal());
  return fpi::from_vector(values, x.shape(), {});
}

// Returns the exit status to stop with, or -1 when the options are complete.
int parse_options(std::span<char*> args, DemoOptions& options) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (flag == "--quiet") {
      options.quiet = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      print_demo_usage(std::cout);
      return 0;
    }
    if (flag != "--steps" && flag != "--seed" && flag != "--lr")
      return demo_usage_error("unknown option '" + std::string(flag) + "'");
    if (i + 1 == args.size()) return demo_usage_error(std::string(flag) + " needs a value");
    const char* value = args[++i];
    const std::string got = std::string(", got '") + value + "'";
    if (flag == "--steps" && !parse_steps(value, options.steps))
      return demo_usage_error("--steps needs a whole number from 1 to 1000000" + got);
    if (flag == "--seed" && !parse_seed(value, options.seed))
      return demo_usage_error("--seed needs a whole number from 0 to 18446744073709551615" + got);
    if (flag == "--lr" && !parse_lr(value, options.lr))
      return demo_usage_error("--lr needs a finite number greater than 0, such as 0.01" + got);
  }
  return -1;
}

}  // namespace

int run_demo(std::span<char*> args) {
  DemoOptions options;
  if (const int status = parse_options(args, options); status >= 0) return status;

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

}  // namespace fpi_cli
