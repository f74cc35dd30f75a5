// The backward experiment's measurements (bench_backward.hpp): the layer built directly from fpi::nn, its
// forward forced to exactly N Picard iterations, and one forward + backward pass per repeat under the
// allocator's peak counter and a clock.
#include "bench_backward.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>

#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/storage.hpp"

namespace fpi_cli::bench {

namespace {

// Every node the loss's backward would visit: the tape's size for this pass.
std::int64_t count_nodes(const std::shared_ptr<fpi::autograd::Node>& root) {
  std::set<const fpi::autograd::Node*> seen;
  std::vector<const fpi::autograd::Node*> pending;
  if (root) pending.push_back(root.get());
  while (!pending.empty()) {
    const fpi::autograd::Node* node = pending.back();
    pending.pop_back();
    if (!seen.insert(node).second) continue;
    for (const auto& next : node->next())
      if (next) pending.push_back(next.get());
  }
  return static_cast<std::int64_t>(seen.size());
}

}  // namespace

double BackwardPoint::median_seconds() const {
  if (seconds.empty()) return 0.0;
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t middle = sorted.size() / 2;
  return sorted.size() % 2 ? sorted[middle] : 0.5 * (sorted[middle - 1] + sorted[middle]);
}

const char* mode_name(fpi::FixedPointBackward mode) {
  switch (mode) {
    case fpi::FixedPointBackward::Implicit: return "implicit";
    case fpi::FixedPointBackward::Unrolled: return "unrolled";
    case fpi::FixedPointBackward::JacobianFree: return "jacobian_free";
    case fpi::FixedPointBackward::Exact: return "exact";
  }
  return "unknown";
}

BackwardPoint measure_backward(const BackwardSetup& setup, fpi::FixedPointBackward mode, int iterations) {
  using namespace fpi;
  FPI_CHECK(iterations >= 1 && setup.repeats >= 1, "bench paper backward: need at least one iteration and one repeat");
  // The same weights and data for every point, so only the mode and the iteration count differ.
  manual_seed(setup.seed);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(setup.features + setup.labels, setup.hidden), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(setup.hidden, setup.labels), std::make_shared<nn::Sigmoid>()});
  FixedPointOptions options;
  options.name = "fpi";
  // Exactly N iterations: no sample may stop before the last one (min_iterations), a tolerance that no
  // float reaches, and no fallback chain to cut a stalled sample short.
  options.forward.solver = FixedPointSolver::Picard;
  options.forward.tolerance = 1e-300;
  options.forward.min_iterations = iterations;
  options.forward.max_iterations = iterations;
  options.forward.stall_window = 0;
  options.backward_mode = mode;
  options.on_nonconvergence = NonConvergencePolicy::Ignore;
  nn::FixedPointLayer layer(std::make_shared<nn::NetMap>(net), Shape{setup.labels}, options);
  layer.to(setup.device);
  Generator generator(setup.seed + 1);
  const Tensor z = rand({setup.batch, setup.features}, {.device = setup.device}, &generator);
  const Tensor target = rand({setup.batch, setup.labels}, {.device = setup.device}, &generator);

  BackwardPoint point;
  point.mode = mode_name(mode);
  point.iterations = iterations;
  for (int repeat = 0; repeat < setup.repeats; ++repeat) {
    layer.zero_grad();  // the gradients' own allocation belongs to every pass
    synchronize(setup.device);
    reset_allocator_stats(setup.device);
    point.baseline_bytes = allocator_stats(setup.device).bytes_in_use;
    const auto start = std::chrono::steady_clock::now();
    {
      const Tensor loss = bce_loss(layer(z), target);
      point.tape_nodes = count_nodes(loss.grad_fn());
      loss.backward();
    }
    synchronize(setup.device);
    point.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    point.peak_bytes = std::max(point.peak_bytes, allocator_stats(setup.device).peak_bytes_in_use);
  }
  layer.zero_grad();
  point.forward = layer.stats().forward;
  point.backward = layer.stats().backward;
  const auto [fewest, most] = std::minmax_element(point.forward.iterations.begin(), point.forward.iterations.end());
  FPI_CHECK(fewest != point.forward.iterations.end() && *fewest == iterations && *most == iterations,
            "bench paper backward: the ", point.mode, " pass was to take exactly ", iterations,
            " forward iterations, but its samples took ", fewest == point.forward.iterations.end() ? 0 : *fewest,
            " to ", most == point.forward.iterations.end() ? 0 : *most);
  return point;
}

std::vector<BackwardPoint> run_backward(const BackwardSetup& setup,
                                        const std::function<void(const std::string&)>& progress) {
  // One untimed pass of each mode first, so that the first point does not pay for warming up the thread
  // pool, BLAS and the allocator's cache.
  FPI_CHECK(!setup.iterations.empty(), "bench paper backward: no iteration counts to measure");
  BackwardSetup warm_up = setup;
  warm_up.repeats = 1;
  for (fpi::FixedPointBackward mode : {fpi::FixedPointBackward::Implicit, fpi::FixedPointBackward::Unrolled})
    measure_backward(warm_up, mode, setup.iterations.front());
  std::vector<BackwardPoint> points;
  for (int iterations : setup.iterations) {
    for (fpi::FixedPointBackward mode : {fpi::FixedPointBackward::Implicit, fpi::FixedPointBackward::Unrolled}) {
      if (progress) progress(std::string(mode_name(mode)) + " backward, " + std::to_string(iterations) + " iterations");
      points.push_back(measure_backward(setup, mode, iterations));
    }
  }
  return points;
}

}  // namespace fpi_cli::bench
