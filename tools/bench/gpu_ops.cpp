// The same work on cuda:0 and on the CPU, timed in one run: a 4096³ float32 matmul (cuBLAS vs
// OpenBLAS), a 64→64 3x3 convolution on 16x64x40x40 forward and backward (cuDNN vs im2col+GEMM), and
// the FPI_NN layer of the paper's Bibtex experiment (1836 features, 159 labels, one hidden layer of
// 600, batch 40) forward and backward through the implicit backward pass. GPU samples synchronize
// before the clock is read. Prints one table; where no GPU can be used it says why and times the CPU
// alone, so the program also runs (and is checked) on machines without one.
//
//   build/bin/bench_gpu_ops [--quick] [--reps N] [--device cuda|cpu|both]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using fpi::Device;
using fpi::Tensor;

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

struct Settings {
  int reps = 7;
  double sample_seconds = 0.2;  // a sample repeats the work until it lasts about this long
  bool cpu = true, gpu = true;
};

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

// Median seconds per call, each sample synchronizing the device before reading the clock.
double time_per_call(const Workload& w, Device d, const Settings& s) {
  const auto timed = [&](int calls) {
    fpi::synchronize(d);
    const auto start = Clock::now();
    for (int i = 0; i < calls; ++i) w.run();
    fpi::synchronize(d);
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  timed(1);  // warm-up: cuBLAS/cuDNN handles, algorithm choice, allocator blocks
  const int calls = std::max(1, static_cast<int>(s.sample_seconds / std::max(timed(1), 1e-6)));
  std::vector<double> samples;
  for (int r = 0; r < s.reps; ++r) samples.push_back(timed(calls) / calls);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

struct Timing {
  double seconds = 0.0;
  std::string note;
};

Timing measure(const Case& c, Device d, const Settings& s) {
  const Workload w = c.make(d);
  Timing t{time_per_call(w, d, s), w.note ? w.note() : ""};
  if (w.gflop > 0) t.note = format("%.0f GFLOP/s", w.gflop / t.seconds);
  return t;
}

int usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: bench_gpu_ops [--quick] [--reps N] [--device cuda|cpu|both]\n"
               "  --quick    a short smoke run (3 short samples per case)\n"
               "  --reps N   timing samples per case and device (default 7)\n"
               "  --device   where to run (default both; cuda is skipped with a reason when unusable)\n");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      s.reps = 3;
      s.sample_seconds = 0.0;
    } else if (arg == "--reps" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      s.reps = std::atoi(argv[++i]);
    } else if (arg == "--device" && i + 1 < argc) {
      const std::string_view which = argv[++i];
      if (which != "cuda" && which != "cpu" && which != "both") return usage(2);
      s.cpu = which != "cuda";
      s.gpu = which != "cpu";
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else {
      std::fprintf(stderr, "bench_gpu_ops: unknown or incomplete option '%s'\n", argv[i]);
      return usage(2);
    }
  }
  if (s.gpu && !fpi::cuda_available()) {
    std::string reason = "this build has no CUDA backend";
    try {
      fpi::zeros({1}, {.device = fpi::cuda(0)});
    } catch (const fpi::Error& e) {
      reason = e.what();
    }
    std::printf("cuda: not timed (%s)\n", reason.c_str());
    s.gpu = false;
    if (!s.cpu) return 1;
  }
  std::printf("%-38s %10s %10s %9s  %-28s %s\n", "case", "cpu ms", "cuda ms", "cpu/cuda", "cuda", "cpu");
  for (const Case& c : kCases) {
    const Timing cpu = s.cpu ? measure(c, fpi::kCPU, s) : Timing{};
    const Timing gpu = s.gpu ? measure(c, fpi::cuda(0), s) : Timing{};
    const auto ms = [](const Timing& t, bool ran) { return ran ? format("%.3f", t.seconds * 1e3) : "-"; };
    const std::string ratio = s.cpu && s.gpu ? format("%.1fx", cpu.seconds / gpu.seconds) : "-";
    std::printf("%-38s %10s %10s %9s  %-28s %s\n", c.name, ms(cpu, s.cpu).c_str(), ms(gpu, s.gpu).c_str(),
                ratio.c_str(), gpu.note.c_str(), cpu.note.c_str());
    std::fflush(stdout);
  }
  return 0;
}
