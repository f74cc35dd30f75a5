// Benchmark of the project's CPU speed requirement: one SGD training step (forward, MSE loss,
// backward, update) of a DnCNN-style net — conv 1->C + ReLU, (depth - 2) x [conv C->C + ReLU],
// conv C->1, 3x3 kernels, padding 1, bias — on a batch of 1xSxS patches, built from raw fpi ops so it
// measures the ops and backend and nothing above them. tools/bench/torch_conv_net.py runs the same
// step in PyTorch and tools/bench/compare_conv_net.sh prints the ratio.
//
//   bench_conv_net [--quick] [--steps N] [--warmup N] [--batch N] [--size S] [--width C] [--depth L]
//                  [--f64] [--no-layers]
//
// Thread settings come from the environment (FPI_NUM_THREADS, OPENBLAS_NUM_THREADS); the step time is
// the median over the timed steps, and the per-layer table times each convolution primitive alone.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

struct Config {
  std::int64_t batch = 16, size = 40, width = 64, depth = 17;
  int steps = 20, warmup = 3, layer_reps = 10;
  fpi::DType dtype = fpi::kFloat32;
  bool layers = true;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_conv_net: %s\nusage: bench_conv_net [--quick] [--steps N] [--warmup N] [--batch N] "
               "[--size S] [--width C] [--depth L] [--f64] [--no-layers]\n",
               why);
  std::exit(2);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&] {
      if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
      const long v = std::strtol(argv[++i], nullptr, 10);
      if (v <= 0) usage(("expected a positive number after " + arg).c_str());
      return v;
    };
    if (arg == "--quick") {
      c.batch = 2, c.size = 12, c.width = 8, c.depth = 4, c.steps = 3, c.warmup = 1, c.layer_reps = 2;
    } else if (arg == "--steps") {
      c.steps = static_cast<int>(value());
    } else if (arg == "--warmup") {
      c.warmup = static_cast<int>(value());
    } else if (arg == "--batch") {
      c.batch = value();
    } else if (arg == "--size") {
      c.size = value();
    } else if (arg == "--width") {
      c.width = value();
    } else if (arg == "--depth") {
      c.depth = value();
      if (c.depth < 2) usage("--depth must be at least 2 (first and last layer)");
    } else if (arg == "--f64") {
      c.dtype = fpi::kFloat64;
    } else if (arg == "--no-layers") {
      c.layers = false;
    } else {
      usage(("unknown argument " + arg).c_str());
    }
  }
  return c;
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Layer {
  fpi::Tensor weight, bias;
};

// PyTorch's default Conv2d initialisation draws weight and bias from U(±1/sqrt(fan_in)).
std::vector<Layer> make_net(const Config& c, fpi::Generator& gen) {
  std::vector<Layer> net;
  for (std::int64_t l = 0; l < c.depth; ++l) {
    const std::int64_t in = l == 0 ? 1 : c.width, out = l + 1 == c.depth ? 1 : c.width;
    const double bound = 1.0 / std::sqrt(static_cast<double>(in * 9));
    const fpi::TensorOptions opts{.dtype = c.dtype};
    Layer layer{fpi::uniform({out, in, 3, 3}, -bound, bound, opts, &gen),
                fpi::uniform({out}, -bound, bound, opts, &gen)};
    layer.weight.requires_grad_();
    layer.bias.requires_grad_();
    net.push_back(std::move(layer));
  }
  return net;
}

const fpi::Conv2dOptions kSame{.padding = {1, 1}};

fpi::Tensor forward(const std::vector<Layer>& net, fpi::Tensor x) {
  for (std::size_t l = 0; l < net.size(); ++l) {
    x = fpi::conv2d(x, net[l].weight, net[l].bias, kSame);
    if (l + 1 < net.size()) x = fpi::relu(x);
  }
  return x;
}

// Plain SGD, p -= lr * grad, outside the tape; the gradient is dropped as zero_grad(set_to_none) does.
void sgd(std::vector<Layer>& net, double lr) {
  fpi::NoGrad no_grad;
  for (auto& layer : net) {
    for (fpi::Tensor* p : {&layer.weight, &layer.bias}) {
      p->copy_(*p - p->grad() * lr);
      p->zero_grad();
    }
  }
}

struct StepTimes {
  double forward = 0, backward = 0, update = 0;
  double total() const { return forward + backward + update; }
};

StepTimes train_step(std::vector<Layer>& net, const fpi::Tensor& x, const fpi::Tensor& target) {
  StepTimes t;
  auto t0 = Clock::now();
  fpi::Tensor loss = fpi::mse_loss(forward(net, x), target);
  t.forward = ms_since(t0);
  t0 = Clock::now();
  loss.backward();
  t.backward = ms_since(t0);
  t0 = Clock::now();
  sgd(net, 1e-3);
  t.update = ms_since(t0);
  return t;
}

double median_ms(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    times.push_back(ms_since(t0));
  }
  return median(times);
}

// Each convolution primitive alone, for the three layer shapes of the net: forward (conv2d without
// bias), input gradient (conv_transpose2d, which is the same primitive) and weight gradient (grad of
// a retained conv2d graph w.r.t. the weight only, so only that primitive runs).
void time_layers(const Config& c, fpi::Generator& gen) {
  std::printf("\nper-layer primitives (median of %d, ms; GFLOP/s in brackets)\n", c.layer_reps);
  std::printf("  %-14s %6s %18s %18s %18s\n", "layer", "count", "forward", "backward data", "backward filter");
  const fpi::TensorOptions opts{.dtype = c.dtype};
  const std::int64_t shapes[3][3] = {{1, c.width, 1}, {c.width, c.width, c.depth - 2}, {c.width, 1, 1}};
  double total = 0;
  for (const auto& [in, out, count] : shapes) {
    if (count == 0) continue;
    const fpi::Tensor x = fpi::uniform({c.batch, in, c.size, c.size}, -1, 1, opts, &gen);
    const fpi::Tensor gy = fpi::uniform({c.batch, out, c.size, c.size}, -1, 1, opts, &gen);
    const fpi::Tensor w = fpi::uniform({out, in, 3, 3}, -1, 1, opts, &gen);
    const fpi::Tensor w_leaf = w.detach().requires_grad_();
    const double flop = 2.0 * static_cast<double>(c.batch * out * in * 9 * c.size * c.size);
    const double fwd = median_ms(c.layer_reps, [&] {
      fpi::NoGrad no_grad;
      fpi::conv2d(x, w, fpi::Tensor(), kSame);
    });
    const double bwd_data = median_ms(c.layer_reps, [&] {
      fpi::NoGrad no_grad;
      fpi::conv_transpose2d(gy, w, fpi::Tensor(), kSame);
    });
    const fpi::Tensor y = fpi::conv2d(x, w_leaf, fpi::Tensor(), kSame);
    const double bwd_filter = median_ms(c.layer_reps, [&] {
      fpi::autograd::grad({y}, {w_leaf}, {gy}, {.retain_graph = true});
    });
    const auto cell = [&](double ms) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%8.3f (%5.1f)", ms, flop / ms * 1e-6);
      return std::string(buf);
    };
    const std::string name = std::to_string(in) + "->" + std::to_string(out);
    std::printf("  %-14s %6lld %18s %18s %18s\n", name.c_str(), static_cast<long long>(count), cell(fwd).c_str(),
                cell(bwd_data).c_str(), cell(bwd_filter).c_str());
    // The first layer's input needs no gradient, so its backward-data pass never runs in a step.
    total += static_cast<double>(count) * (fwd + bwd_filter + (in == 1 ? 0.0 : bwd_data));
  }
  std::printf("  sum over the net's convolutions: %.2f ms/step\n", total);
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  fpi::Generator gen(1234);
  auto net = make_net(c, gen);
  const fpi::TensorOptions opts{.dtype = c.dtype};
  const fpi::Tensor x = fpi::uniform({c.batch, 1, c.size, c.size}, 0, 1, opts, &gen);
  const fpi::Tensor target = fpi::uniform({c.batch, 1, c.size, c.size}, 0, 1, opts, &gen);

  const char* fpi_threads = std::getenv("FPI_NUM_THREADS");
  const char* blas_threads = std::getenv("OPENBLAS_NUM_THREADS");
  std::printf("fpi conv net: batch %lld, 1x%lldx%lld, width %lld, %lld convs, %s; FPI_NUM_THREADS=%s "
              "OPENBLAS_NUM_THREADS=%s\n",
              static_cast<long long>(c.batch), static_cast<long long>(c.size), static_cast<long long>(c.size),
              static_cast<long long>(c.width), static_cast<long long>(c.depth), fpi::dtype_name(c.dtype),
              fpi_threads ? fpi_threads : "(unset)", blas_threads ? blas_threads : "(unset)");

  for (int i = 0; i < c.warmup; ++i) train_step(net, x, target);
  fpi::reset_allocator_stats();
  train_step(net, x, target);
  const fpi::AllocatorStats stats = fpi::allocator_stats();

  std::vector<double> total, fwd, bwd, upd;
  for (int i = 0; i < c.steps; ++i) {
    const StepTimes t = train_step(net, x, target);
    total.push_back(t.total());
    fwd.push_back(t.forward);
    bwd.push_back(t.backward);
    upd.push_back(t.update);
  }
  std::printf("step     %9.2f ms (median of %d; min %.2f)\n", median(total), c.steps,
              *std::min_element(total.begin(), total.end()));
  std::printf("forward  %9.2f ms (with the loss)\n", median(fwd));
  std::printf("backward %9.2f ms\n", median(bwd));
  std::printf("update   %9.2f ms\n", median(upd));
  std::printf("allocator after warm-up: %llu requests, %llu system allocations, peak %.1f MiB\n",
              static_cast<unsigned long long>(stats.requests),
              static_cast<unsigned long long>(stats.system_allocations),
              static_cast<double>(stats.peak_bytes_in_use) / (1 << 20));
  if (c.layers) time_layers(c, gen);
  return stats.system_allocations == 0 ? 0 : 1;
}
