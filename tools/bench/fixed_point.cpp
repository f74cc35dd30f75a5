// FPI layer cost on the paper's Bibtex FPI_NN shape: g(x, z) = sigmoid(W2 relu(W1 [z, x])), z of 1836
// features, x of 159 labels, batch 40, float32.
//
// Reports, in one run so the ratios are fair on a shared machine:
//   - one forward iteration versus one plain forward of g (target <= 1.1x),
//   - one backward iteration versus one vector-Jacobian product through g (target <= 1.2x),
//   - time and peak allocator memory of forward + backward, implicit versus unrolled, at 10, 100 and
//     1000 forward iterations (implicit memory must stay flat).
//
//   bench_fixed_point [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "fpi/fixed_point.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"

namespace {

using namespace fpi;
using Clock = std::chrono::steady_clock;

double median_ms(const std::function<void()>& f, int repeats) {
  for (int i = 0; i < 3; ++i) f();  // warm the allocator's cache and the BLAS threads
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    f();
    times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
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
  FixedPointOptions forced(int iterations, FixedPointBackward mode) const {
    FixedPointOptions o;
    o.forward.solver = FixedPointSolver::Picard;
    o.forward.tolerance = 1e-30;
    o.forward.min_iterations = o.forward.max_iterations = iterations;
    o.backward.solver = FixedPointSolver::Picard;
    o.backward.tolerance = 1e-6;
    o.backward.max_iterations = 50;
    o.backward_mode = mode;
    o.on_nonconvergence = NonConvergencePolicy::Ignore;
    return o;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const int repeats = quick ? 2 : 15;
  Setup s;
  const Tensor x0 = zeros_like(s.x);

  // Per-iteration costs.
  const double plain_g = median_ms([&] { NoGrad ng; (void)s.g(s.x, s.z); }, repeats * 4);
  const int iterations = quick ? 5 : 50;
  auto stats = std::make_shared<FixedPointStats>();
  const double forward_picard = median_ms([&] {
    NoGrad ng;
    fixed_point(s.g, s.z, s.params, x0, s.forced(iterations, FixedPointBackward::Implicit), stats);
  }, repeats) / iterations;
  auto anderson_options = s.forced(iterations, FixedPointBackward::Implicit);
  anderson_options.forward.solver = FixedPointSolver::Anderson;
  const double forward_anderson = median_ms([&] {
    NoGrad ng;
    fixed_point(s.g, s.z, s.params, x0, anderson_options, stats);
  }, repeats) / iterations;

  Tensor leaf = s.x.detach().requires_grad_();
  Tensor y;
  {
    EnableGrad eg;
    y = s.g(leaf, s.z);
  }
  const Tensor cotangent = rand(y.shape(), {}, &s.gen);
  const double vjp = median_ms([&] { (void)autograd::grad({y}, {leaf}, {cotangent}, {.retain_graph = true}); },
                              repeats * 4);
  auto backward_options = s.forced(2, FixedPointBackward::Implicit);
  backward_options.backward.tolerance = 1e-30;
  backward_options.backward.min_iterations = backward_options.backward.max_iterations = iterations;
  double backward_total = 0.0;
  std::vector<double> backward_times;
  for (int r = 0; r < repeats; ++r) {
    const Tensor z = s.z.detach().requires_grad_();
    const Tensor x = fixed_point(s.g, z, s.params, x0, backward_options, stats);
    const Tensor loss = sum(x * cotangent);
    const auto start = Clock::now();
    (void)autograd::grad({loss}, {z});
    backward_times.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(backward_times.begin(), backward_times.end());
  backward_total = backward_times[backward_times.size() / 2];
  const double backward_iteration = backward_total / iterations;

  std::printf("FPI_NN Bibtex shape (g: 1995 -> 600 ReLU -> 159 sigmoid, batch 40, float32)\n");
  std::printf("  plain forward of g           %8.3f ms\n", plain_g);
  std::printf("  forward iteration, Picard    %8.3f ms  (%.2fx g; target <= 1.10x)\n", forward_picard,
              forward_picard / plain_g);
  std::printf("  forward iteration, Anderson  %8.3f ms  (%.2fx g)\n", forward_anderson, forward_anderson / plain_g);
  std::printf("  VJP through g                %8.3f ms\n", vjp);
  std::printf("  backward iteration           %8.3f ms  (%.2fx VJP; target <= 1.20x; includes the final VJP and "
              "graph build, amortised over %d iterations)\n",
              backward_iteration, backward_iteration / vjp, iterations);

  std::printf("\n  forward + backward (grad w.r.t. z and all parameters), time and peak allocator memory\n");
  std::printf("  %-10s %10s %12s %14s\n", "mode", "iterations", "time ms", "peak MiB");
  const std::vector<int> counts = quick ? std::vector<int>{10, 20} : std::vector<int>{10, 100, 1000};
  for (auto mode : {FixedPointBackward::Implicit, FixedPointBackward::Unrolled}) {
    for (int n : counts) {
      const Tensor z = s.z.detach().requires_grad_();
      Tensors wrt{z};
      wrt.insert(wrt.end(), s.params.begin(), s.params.end());
      reset_allocator_stats();
      const std::size_t before = allocator_stats().bytes_in_use;
      const auto start = Clock::now();
      {
        const Tensor x = fixed_point(s.g, z, s.params, x0, s.forced(n, mode));
        (void)autograd::grad({sum(x * cotangent)}, wrt);
      }
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      const double mib = static_cast<double>(allocator_stats().peak_bytes_in_use - before) / (1 << 20);
      std::printf("  %-10s %10d %12.1f %14.2f\n", mode == FixedPointBackward::Implicit ? "implicit" : "unrolled", n,
                  ms, mib);
    }
  }
  return 0;
}
