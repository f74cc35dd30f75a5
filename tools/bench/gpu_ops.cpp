// The same work on cuda:0 and on the CPU, timed in one run: a 4096³ float32 matmul (cuBLAS vs
// OpenBLAS), a 64→64 3x3 convolution on 16x64x40x40 forward and backward (cuDNN vs im2col+GEMM), and
// the FPI_NN layer of the paper's Bibtex experiment (1836 features, 159 labels, one hidden layer of
// 600, batch 40) forward and backward through the implicit backward pass. GPU samples synchronize
// before the clock is read. Prints one table; where no GPU can be used it says why and times the CPU
// alone, so the program also runs (and is checked) on machines without one.
//
//   build/bin/bench_gpu_ops [--quick] [--repeat N] [--device cuda|cpu|both] [--threads N] [--json FILE]
#include <cstdio>
#include <functional>
#include <string>

#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"

namespace {

using fpi::Device;
using fpi::Tensor;
using fpi::bench::format;

// What a case reports besides its time: the work's FLOP count, or a note (the FPI iteration counts).
struct Workload {
  std::function<void()> run;
  double gflop = 0.0;
  std::function<std::string()> note;
};

struct Case {
  const char* name;
  std::function<Workload(Device)> make;
};

Workload matmul_case(Device d) {
  fpi::Generator gen(1);
  const Tensor a = fpi::randn({4096, 4096}, {.device = d}, &gen), b = fpi::randn({4096, 4096}, {.device = d}, &gen);
  return {[a, b] { fpi::matmul(a, b); }, 2.0 * 4096.0 * 4096.0 * 4096.0 * 1e-9, nullptr};
}

Workload conv_case(Device d) {
  fpi::Generator gen(2);
  const Tensor x = fpi::randn({16, 64, 40, 40}, {.device = d}, &gen).requires_grad_();
  const Tensor w = (fpi::randn({64, 64, 3, 3}, {.device = d}, &gen) * 0.05).detach().requires_grad_();
  const Tensor b = fpi::zeros({64}, {.device = d, .requires_grad = true});
  const Tensor gy = fpi::randn({16, 64, 40, 40}, {.device = d}, &gen);
  const double forward_gflop = 2.0 * 16 * 64 * 64 * 9 * 40 * 40 * 1e-9;
  return {[=] {
            const Tensor y = fpi::conv2d(x, w, b, {.padding = {1, 1}});
            fpi::autograd::grad({y}, {x, w, b}, {gy});
          },
          3.0 * forward_gflop, nullptr};
}

Workload fpi_nn_case(Device d) {
  fpi::Generator gen(3);
  constexpr std::int64_t kFeatures = 1836, kLabels = 159, kHidden = 600, kBatch = 40;
  auto net = std::make_shared<fpi::nn::Sequential>(std::initializer_list<fpi::nn::ModulePtr>{
      std::make_shared<fpi::nn::Linear>(kFeatures + kLabels, kHidden, true, fpi::TensorOptions{}, &gen),
      std::make_shared<fpi::nn::ReLU>(),
      std::make_shared<fpi::nn::Linear>(kHidden, kLabels, true, fpi::TensorOptions{}, &gen)});
  auto layer = std::make_shared<fpi::nn::FixedPointLayer>(std::make_shared<fpi::nn::NetMap>(net),
                                                          fpi::Shape{kLabels}, fpi::FixedPointOptions{});
  layer->to(d);
  // Binary features and labels, sparse like Bibtex's (about 5% and 10% set).
  const Tensor z = fpi::step(fpi::rand({kBatch, kFeatures}, {}, &gen) - 0.95).to(d);
  const Tensor target = fpi::step(fpi::rand({kBatch, kLabels}, {}, &gen) - 0.9).to(d);
  const auto params = layer->parameters();
  return {[=] {
            const Tensor x = layer->forward(z);
            fpi::autograd::grad({fpi::bce_with_logits_loss(x, target)}, params);
          },
          0.0,
          [layer] {
            const auto& s = layer->stats();
            return format("%.1f fwd + ", s.forward.mean_iterations()) +
                   format("%.1f bwd iterations", s.backward.mean_iterations());
          }};
}

const Case kCases[] = {
    {"matmul 4096x4096x4096 f32", matmul_case},
    {"conv 64->64 3x3, 16x64x40x40 fwd+bwd", conv_case},
    {"FPI_NN Bibtex, batch 40, fwd+bwd", fpi_nn_case},
};

struct Timing {
  double seconds = 0.0;
  std::string note;
};

// The median seconds per call; the warm-up call sets up cuBLAS/cuDNN handles, algorithm choices and
// allocator blocks.
Timing measure(const Case& c, Device d, const fpi::bench::Sampling& sampling) {
  const Workload w = c.make(d);
  Timing t{fpi::bench::time_calls(w.run, sampling, d).median, w.note ? w.note() : ""};
  if (w.gflop > 0) t.note = format("%.0f GFLOP/s", w.gflop / t.seconds);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  fpi::bench::Sampling sampling{.warmup = 1};
  std::string where = "both";
  fpi::bench::Harness harness("bench_gpu_ops", "The same work on cuda:0 and on the CPU: matmul, convolution, FPI_NN.");
  harness.add_count("--repeat", sampling.repeat, {.full = 7, .quick = 3}, "timing samples per case and device");
  harness.add_choice("--device", where, {"cuda", "cpu", "both"},
                     "where to run (cuda is skipped, saying why, where it cannot be used)");
  harness.parse(argc, argv);
  sampling.sample_seconds = harness.quick() ? 0.0 : 0.2;
  const bool cpu = where != "cuda";
  bool gpu = where != "cpu";
  if (gpu) {
    const std::string reason = fpi::bench::cuda_unavailable_reason();
    if (!reason.empty()) {
      std::printf("cuda: not timed (%s)\n", reason.c_str());
      gpu = false;
      if (!cpu) return harness.finish(1);
    }
  }
  using fpi::bench::Align;
  fpi::bench::Table& table = harness.table("cases", {{"case", 38, Align::Left},
                                                     {"cpu ms", 10},
                                                     {"cuda ms", 10},
                                                     {"cpu/cuda", 9},
                                                     {"cuda", 28, Align::Left},
                                                     {"cpu", 0, Align::Left}});
  for (const Case& c : kCases) {
    const Timing on_cpu = cpu ? measure(c, fpi::kCPU, sampling) : Timing{};
    const Timing on_gpu = gpu ? measure(c, fpi::cuda(0), sampling) : Timing{};
    using fpi::bench::missing_cell;
    using fpi::bench::number_cell;
    table.add({fpi::bench::text_cell(c.name), cpu ? number_cell(on_cpu.seconds * 1e3, "%.3f") : missing_cell(),
               gpu ? number_cell(on_gpu.seconds * 1e3, "%.3f") : missing_cell(),
               cpu && gpu ? number_cell(on_cpu.seconds / on_gpu.seconds, "%.1fx") : missing_cell(),
               fpi::bench::text_cell(on_gpu.note), fpi::bench::text_cell(on_cpu.note)});
  }
  return harness.finish(0);
}
