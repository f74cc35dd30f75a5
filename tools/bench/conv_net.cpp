// Benchmark of the project's CPU speed requirement: one SGD training step (forward, MSE loss,
// backward, update) of a DnCNN-style net — conv 1->C + ReLU, (depth - 2) x [conv C->C + ReLU],
// conv C->1, 3x3 kernels, padding 1, bias — on a batch of 1xSxS patches, built from raw fpi ops so it
// measures the ops and backend and nothing above them. tools/bench/torch_conv_net.py runs the same
// step in PyTorch and tools/bench/compare_conv_net.sh prints the ratio. After warm-up one step must
// be served by the caching allocator alone (the exit status is 1 otherwise). With --device cuda it all
// runs on cuda:0 (tools/gpu_check.sh): each phase ends with a device synchronisation so its time is the
// device's, and the host synchronisations the step makes besides are counted (fpi::host_sync_counts()).
//
//   bench_conv_net [--quick] [--repeat N] [--warmup N] [--batch N] [--size S] [--width C] [--depth L]
//                  [--f64] [--no-layers] [--device cpu|cuda] [--threads N] [--json FILE]
//
// Threads: --threads N or FPI_NUM_THREADS, fpi's pool (OpenBLAS runs single-threaded inside it); the
// step time is the median over the timed steps, and the per-layer table times each convolution
// primitive alone.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"

namespace {

// Set from the command line.
struct Config {
  std::int64_t batch = 0, size = 0, width = 0, depth = 0;
  int repeat = 0, warmup = 0, layer_repeat = 0;
  fpi::DType dtype = fpi::kFloat32;
  fpi::Device device = fpi::kCPU;
  bool layers = true;
};

using fpi::bench::Clock;
double ms_since(Clock::time_point t0) { return fpi::bench::seconds_since(t0) * 1e3; }

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
    Layer layer{fpi::uniform({out, in, 3, 3}, -bound, bound, opts, &gen).to(c.device),
                fpi::uniform({out}, -bound, bound, opts, &gen).to(c.device)};
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
  std::int64_t host_syncs = 0;  // besides the phase ends' own synchronisations
  double total() const { return forward + backward + update; }
};

StepTimes train_step(std::vector<Layer>& net, const fpi::Tensor& x, const fpi::Tensor& target, fpi::Device device) {
  StepTimes t;
  fpi::synchronize(device);
  std::int64_t syncs = fpi::host_sync_counts().total();
  auto t0 = Clock::now();
  // The phase's milliseconds once the device has finished it.
  const auto phase_end = [&] {
    t.host_syncs += fpi::host_sync_counts().total() - syncs;
    fpi::synchronize(device);
    syncs = fpi::host_sync_counts().total();
    const double ms = ms_since(t0);
    t0 = Clock::now();
    return ms;
  };
  fpi::Tensor loss = fpi::mse_loss(forward(net, x), target);
  t.forward = phase_end();
  loss.backward();
  t.backward = phase_end();
  sgd(net, 1e-3);
  t.update = phase_end();
  return t;
}

template <class F>
double median_ms(int repeat, fpi::Device device, F&& fn) {
  return fpi::bench::time_calls(fn, {.warmup = 1, .repeat = repeat}, device).median * 1e3;
}

// Each convolution primitive alone, for the three layer shapes of the net: forward (conv2d without
// bias), input gradient (conv_transpose2d, which is the same primitive) and weight gradient (grad of
// a retained conv2d graph w.r.t. the weight only, so only that primitive runs).
void time_layers(const Config& c, fpi::Generator& gen, fpi::bench::Harness& harness) {
  std::printf("\nper-layer primitives (median of %d, ms; GFLOP/s in brackets)\n", c.layer_repeat);
  using fpi::bench::Align;
  fpi::bench::Table& table = harness.table("layers", {{"layer", 14, Align::Left},
                                                      {"count", 6},
                                                      {"forward", 18},
                                                      {"backward data", 18},
                                                      {"backward filter", 18}},
                                           2);
  const fpi::TensorOptions opts{.dtype = c.dtype, .device = c.device};
  const std::int64_t shapes[3][3] = {{1, c.width, 1}, {c.width, c.width, c.depth - 2}, {c.width, 1, 1}};
  double total = 0;
  for (const auto& [in, out, count] : shapes) {
    if (count == 0) continue;
    const fpi::Tensor x = fpi::uniform({c.batch, in, c.size, c.size}, -1, 1, opts, &gen);
    const fpi::Tensor gy = fpi::uniform({c.batch, out, c.size, c.size}, -1, 1, opts, &gen);
    const fpi::Tensor w = fpi::uniform({out, in, 3, 3}, -1, 1, opts, &gen);
    const fpi::Tensor w_leaf = w.detach().requires_grad_();
    const double flop = 2.0 * static_cast<double>(c.batch * out * in * 9 * c.size * c.size);
    const double fwd = median_ms(c.layer_repeat, c.device, [&] {
      fpi::NoGrad no_grad;
      fpi::conv2d(x, w, fpi::Tensor(), kSame);
    });
    const double bwd_data = median_ms(c.layer_repeat, c.device, [&] {
      fpi::NoGrad no_grad;
      fpi::conv_transpose2d(gy, w, fpi::Tensor(), kSame);
    });
    const fpi::Tensor y = fpi::conv2d(x, w_leaf, fpi::Tensor(), kSame);
    const double bwd_filter = median_ms(c.layer_repeat, c.device, [&] {
      fpi::autograd::grad({y}, {w_leaf}, {gy}, {.retain_graph = true});
    });
    const auto cell = [&](double ms) {
      return fpi::bench::Cell{fpi::bench::format("%8.3f (%5.1f)", ms, flop / ms * 1e-6), ms};
    };
    table.add({fpi::bench::text_cell(std::to_string(in) + "->" + std::to_string(out)),
               fpi::bench::number_cell(static_cast<double>(count), "%.0f"), cell(fwd), cell(bwd_data),
               cell(bwd_filter)});
    // The first layer's input needs no gradient, so its backward-data pass never runs in a step.
    total += static_cast<double>(count) * (fwd + bwd_filter + (in == 1 ? 0.0 : bwd_data));
  }
  std::printf("  sum over the net's convolutions: %.2f ms/step\n", total);
  harness.value("convolutions_ms_per_step", total);
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  bool f64 = false, no_layers = false;
  fpi::bench::Harness harness("bench_conv_net",
                              "One SGD training step of a DnCNN-style 3x3 conv net, and its convolutions one by one.");
  harness.add_count("--repeat", c.repeat, {.full = 20, .quick = 3}, "timed steps");
  harness.add_count("--warmup", c.warmup, {.full = 3, .quick = 1}, "untimed steps first", 0);
  harness.add_count("--batch", c.batch, {.full = 16, .quick = 2}, "patches per batch");
  harness.add_count("--size", c.size, {.full = 40, .quick = 12}, "patch height and width");
  harness.add_count("--width", c.width, {.full = 64, .quick = 8}, "channels of the hidden layers");
  harness.add_count("--depth", c.depth, {.full = 17, .quick = 4}, "convolutions (first and last layer included)", 2);
  harness.add_flag("--f64", f64, "float64 instead of float32");
  harness.add_flag("--no-layers", no_layers, "skip the per-layer table");
  std::string device = "cpu";
  harness.add_choice("--device", device, {"cpu", "cuda"}, "where the step runs (cuda: cuda:0)");
  harness.parse(argc, argv);
  if (device == "cuda") {
    if (const std::string why = fpi::bench::cuda_unavailable_reason(); !why.empty()) {
      std::fprintf(stderr, "bench_conv_net: --device cuda: %s\n", why.c_str());
      return harness.finish(1);
    }
    c.device = fpi::cuda(0);
  }
  c.layer_repeat = harness.quick() ? 2 : 10;
  c.dtype = f64 ? fpi::kFloat64 : fpi::kFloat32;
  c.layers = !no_layers;

  fpi::Generator gen(1234);
  auto net = make_net(c, gen);
  const fpi::TensorOptions opts{.dtype = c.dtype};
  const fpi::Tensor x = fpi::uniform({c.batch, 1, c.size, c.size}, 0, 1, opts, &gen).to(c.device);
  const fpi::Tensor target = fpi::uniform({c.batch, 1, c.size, c.size}, 0, 1, opts, &gen).to(c.device);

  std::printf("fpi conv net: batch %lld, 1x%lldx%lld, width %lld, %lld convs, %s, %s; threads: %s\n",
              static_cast<long long>(c.batch), static_cast<long long>(c.size), static_cast<long long>(c.size),
              static_cast<long long>(c.width), static_cast<long long>(c.depth), fpi::dtype_name(c.dtype),
              device.c_str(), harness.threads_description().c_str());

  for (int i = 0; i < c.warmup; ++i) train_step(net, x, target, c.device);
  fpi::reset_allocator_stats(c.device);
  train_step(net, x, target, c.device);
  const fpi::AllocatorStats stats = fpi::allocator_stats(c.device);

  std::vector<double> total, fwd, bwd, upd;
  std::int64_t host_syncs = 0;
  for (int i = 0; i < c.repeat; ++i) {
    const StepTimes t = train_step(net, x, target, c.device);
    host_syncs += t.host_syncs;
    total.push_back(t.total());
    fwd.push_back(t.forward);
    bwd.push_back(t.backward);
    upd.push_back(t.update);
  }
  using fpi::bench::median;
  const fpi::bench::Summary step = fpi::bench::summarize(total);
  std::printf("step     %9.2f ms (median of %d; min %.2f)\n", step.median, c.repeat, step.min);
  std::printf("forward  %9.2f ms (with the loss)\n", median(fwd));
  std::printf("backward %9.2f ms\n", median(bwd));
  std::printf("update   %9.2f ms\n", median(upd));
  const double syncs_per_step = static_cast<double>(host_syncs) / c.repeat;
  std::printf("host syncs per step %.2f (besides one at the end of each phase)\n", syncs_per_step);
  std::printf("allocator after warm-up: %llu requests, %llu system allocations, peak %.1f MiB\n",
              static_cast<unsigned long long>(stats.requests),
              static_cast<unsigned long long>(stats.system_allocations),
              static_cast<double>(stats.peak_bytes_in_use) / (1 << 20));
  harness.value("step_ms_median", step.median);
  harness.value("step_ms_min", step.min);
  harness.value("host_syncs_per_step", syncs_per_step);
  harness.value("forward_ms_median", median(fwd));
  harness.value("backward_ms_median", median(bwd));
  harness.value("update_ms_median", median(upd));
  harness.value("system_allocations", static_cast<double>(stats.system_allocations));
  harness.value("peak_bytes", static_cast<double>(stats.peak_bytes_in_use));
  if (c.layers) time_layers(c, gen, harness);
  return harness.finish(stats.system_allocations == 0 ? 0 : 1);
}
