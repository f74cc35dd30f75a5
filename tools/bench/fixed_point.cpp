// FPI layer cost on the paper's Bibtex FPI_NN shape: g(x, z) = sigmoid(W2 relu(W1 [z, x])), z of 1836
// features, x of 159 labels, batch 40, float32.
//
// Reports, in one run so the ratios are fair on a shared machine:
//   - one forward iteration versus one plain forward of g (target <= 1.1x),
//   - one backward iteration versus one vector-Jacobian product through g (target <= 1.2x),
//   - one Anderson iteration with and without the fallback chain's bookkeeping,
//   - a solve to tolerance (rows finish at different iterations) with the host checking every iteration
//     (finished rows leave the batch at once: compaction) against every 4 and 16 (finished rows stay
//     in the batch, masked, until the next check): what masking costs where host reads are free.
// The implicit against the unrolled backward (time, peak memory, tape size at 10, 100 and 1000
// iterations) is `fpi bench paper --only backward`'s table, so it is not repeated here.
//
//   bench_fixed_point [--quick] [--repeat N] [--threads N] [--json FILE]
#include <cstdio>
#include <string>
#include <vector>

#include "fpi/fixed_point.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

// Three untimed calls warm the allocator's cache and the BLAS threads.
template <class F>
double median_ms(F&& f, int repeat) {
  return bench::time_calls(f, {.warmup = 3, .repeat = repeat}).median * 1e3;
}

struct Setup {
  static constexpr std::int64_t kFeatures = 1836, kLabels = 159, kHidden = 600, kBatch = 40;
  Generator gen{2020};
  std::shared_ptr<nn::Sequential> net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(kFeatures + kLabels, kHidden, true, TensorOptions{}, &gen),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(kHidden, kLabels, true, TensorOptions{}, &gen),
      std::make_shared<nn::Sigmoid>()});
  nn::NetMap map{net};
  Tensor z = step(rand({kBatch, kFeatures}, {}, &gen) + (-0.97));  // sparse 0/1 bag of words, like Bibtex
  Tensor x = rand({kBatch, kLabels}, {}, &gen);
  std::vector<Tensor> params = net->parameters();
  FixedPointFn g = [this](const Tensor& state, const Tensor& input) { return map.step(state, input); };

  // Exactly `iterations` forward iterations (and at most 50 backward ones).
  FixedPointOptions forced(int iterations) const {
    FixedPointOptions o;
    o.forward.solver = FixedPointSolver::Picard;
    o.forward.tolerance = 1e-30;
    o.forward.min_iterations = o.forward.max_iterations = iterations;
    o.backward.solver = FixedPointSolver::Picard;
    o.backward.tolerance = 1e-6;
    o.backward.max_iterations = 50;
    o.backward_mode = FixedPointBackward::Implicit;
    o.on_nonconvergence = NonConvergencePolicy::Ignore;
    return o;
  }
};

}  // namespace

int main(int argc, char** argv) {
  int repeat = 0;
  bench::Harness harness("bench_fixed_point", "The FPI layer's costs on the paper's Bibtex FPI_NN shape, float32.");
  harness.add_count("--repeat", repeat, {.full = 15, .quick = 2},
                    "timing samples (four times as many for the plain g and the VJP)");
  harness.parse(argc, argv);
  const bool quick = harness.quick();
  Setup s;
  const Tensor x0 = zeros_like(s.x);

  // Per-iteration costs.
  const double plain_g = median_ms([&] { NoGrad ng; (void)s.g(s.x, s.z); }, repeat * 4);
  const int iterations = quick ? 5 : 50;
  auto stats = std::make_shared<FixedPointStats>();
  const double forward_picard = median_ms([&] {
    NoGrad ng;
    fixed_point(s.g, s.z, s.params, x0, s.forced(iterations), stats);
  }, repeat) / iterations;
  auto anderson_options = s.forced(iterations);
  anderson_options.forward.solver = FixedPointSolver::Anderson;
  const double forward_anderson = median_ms([&] {
    NoGrad ng;
    fixed_point(s.g, s.z, s.params, x0, anderson_options, stats);
  }, repeat) / iterations;
  // The same solve without the fallback chain: what tracking each sample's best iterate costs a healthy
  // solve (no sample stalls within 50 iterations of a window of 100).
  auto unchained_options = anderson_options;
  unchained_options.forward.stall_window = 0;
  const double forward_unchained = median_ms([&] {
    NoGrad ng;
    fixed_point(s.g, s.z, s.params, x0, unchained_options, stats);
  }, repeat) / iterations;

  // Masking against compaction: the same solve to tolerance at three check intervals.
  auto tolerance_options = anderson_options;
  tolerance_options.forward.tolerance = 1e-4;
  tolerance_options.forward.min_iterations = 0;
  tolerance_options.forward.max_iterations = 200;
  std::vector<std::pair<int, double>> per_check;
  double mean_iterations = 0.0;
  int slowest = 0;
  for (int check_every : {1, 4, 16}) {
    tolerance_options.forward.check_every = check_every;
    per_check.emplace_back(check_every, median_ms([&] {
      NoGrad ng;
      fixed_point(s.g, s.z, s.params, x0, tolerance_options, stats);
    }, repeat));
    mean_iterations = stats->forward.mean_iterations();
    slowest = stats->forward.max_iterations();
  }

  Tensor leaf = s.x.detach().requires_grad_();
  Tensor y;
  {
    EnableGrad eg;
    y = s.g(leaf, s.z);
  }
  const Tensor cotangent = rand(y.shape(), {}, &s.gen);
  const double vjp = median_ms([&] { (void)autograd::grad({y}, {leaf}, {cotangent}, {.retain_graph = true}); },
                              repeat * 4);
  auto backward_options = s.forced(2);
  backward_options.backward.tolerance = 1e-30;
  backward_options.backward.min_iterations = backward_options.backward.max_iterations = iterations;
  std::vector<double> backward_times;
  for (int r = 0; r < repeat; ++r) {
    const Tensor z = s.z.detach().requires_grad_();
    const Tensor x = fixed_point(s.g, z, s.params, x0, backward_options, stats);
    const Tensor loss = sum(x * cotangent);
    const auto start = Clock::now();
    (void)autograd::grad({loss}, {z});
    backward_times.push_back(bench::seconds_since(start) * 1e3);
  }
  const double backward_iteration = bench::median(backward_times) / iterations;

  std::printf("FPI_NN Bibtex shape (g: 1995 -> 600 ReLU -> 159 sigmoid, batch 40, float32); threads: %s\n",
              harness.threads_description().c_str());
  std::printf("  plain forward of g           %8.3f ms\n", plain_g);
  std::printf("  forward iteration, Picard    %8.3f ms  (%.2fx g; target <= 1.10x)\n", forward_picard,
              forward_picard / plain_g);
  std::printf("  forward iteration, Anderson  %8.3f ms  (%.2fx g)\n", forward_anderson, forward_anderson / plain_g);
  std::printf("  ... without fallback chain   %8.3f ms  (chain on / off %.3fx)\n", forward_unchained,
              forward_anderson / forward_unchained);
  std::printf("  Anderson solve to 1e-4 (%.1f iterations per row on average, %d at most):\n", mean_iterations, slowest);
  for (const auto& [check_every, ms] : per_check)
    std::printf("    check_every %2d             %8.3f ms  (%.3fx check_every 1)\n", check_every, ms,
                ms / per_check.front().second);
  std::printf("  VJP through g                %8.3f ms\n", vjp);
  std::printf("  backward iteration           %8.3f ms  (%.2fx VJP; target <= 1.20x; includes the final VJP and "
              "graph build, amortised over %d iterations)\n",
              backward_iteration, backward_iteration / vjp, iterations);
  harness.value("plain_g_ms", plain_g);
  harness.value("forward_iteration_picard_ms", forward_picard);
  harness.value("forward_iteration_anderson_ms", forward_anderson);
  harness.value("forward_iteration_anderson_no_fallback_ms", forward_unchained);
  for (const auto& [check_every, ms] : per_check)
    harness.value("solve_check_every_" + std::to_string(check_every) + "_ms", ms);
  harness.value("vjp_ms", vjp);
  harness.value("backward_iteration_ms", backward_iteration);

  return harness.finish(0);
}
