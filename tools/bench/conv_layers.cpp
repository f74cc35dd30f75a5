// The CPU convolution primitives on the optical-flow net's strided layers (models/flow_fpi.json, 64x64,
// batch 8): forward, input gradient and weight gradient with each source of conv.hpp (im2col and the
// phase split) in one run, as GFLOP/s (2 * multiply-adds of the convolution, taps on zeros of the
// padding included; from the fastest sample, as other processes share the cores) and the ratio; and the FMA peak of this CPU, from a register-only loop of 12
// independent chains per thread, to judge them by. A transposed convolution is timed as the convolution
// whose input gradient it is, so its forward is the "data" column.
//
//   build/bin/bench_conv_layers [--quick] [--repeat N] [--batch N] [--f64] [--threads N] [--json FILE]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/conv.hpp"
#include "backend/cpu/conv_tile.hpp"
#include "backend/cpu/parallel.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"

namespace {

using fpi::Tensor;
using fpi::backend::Conv2dDesc;
using fpi::backend::cpu::ConvSource;

struct Layer {
  const char* name;
  std::int64_t c_in, c_out, size, kernel;  // stride 2, padding 1
};

const std::vector<Layer> kLayers = {
    {"conv1", 2, 16, 64, 3},  {"conv2", 16, 32, 32, 3},       {"conv3", 32, 32, 16, 3},
    {"up3 (T)", 32, 32, 16, 4}, {"up2 (T)", 16, 64, 32, 4},   {"up1 (T)", 16, 32, 64, 4},
    {"fpi conv x", 2, 8, 64, 3}, {"fpi conv", 20, 8, 64, 3}, {"fpi deconv (T)", 2, 8, 64, 4},
};

Conv2dDesc describe(const Layer& l, std::int64_t batch) {
  Conv2dDesc d;
  d.batch = batch, d.in_channels = l.c_in, d.out_channels = l.c_out, d.in_h = d.in_w = l.size;
  d.kernel_h = d.kernel_w = l.kernel, d.stride_h = d.stride_w = 2, d.pad_h = d.pad_w = 1;
  d.out_h = d.out_w = (l.size + 2 - l.kernel) / 2 + 1;
  return d;
}

// FLOP/s of one thread's FMA units: 12 independent chains of vector FMAs on registers, the fastest of
// ten short runs (other processes share the cores).
template <class T>
double fma_peak_per_thread() {
  using V = fpi::backend::cpu::conv::Vec<T>;
  constexpr std::int64_t lanes = fpi::backend::cpu::conv::kLanes<T>;
  const std::int64_t steps = 1'000'000;
  V a, b;
  for (std::int64_t l = 0; l < lanes; ++l) a[l] = T(0.999999), b[l] = T(1e-7);
  // Named rather than an array, and all tied to registers by the empty asm, so none lives in memory.
  V c0 = b, c1 = b, c2 = b, c3 = b, c4 = b, c5 = b, c6 = b, c7 = b, c8 = b, c9 = b, c10 = b, c11 = b;
  double best = 1e30;
  for (int run = 0; run < 10; ++run) {
    const auto start = fpi::bench::Clock::now();
    for (std::int64_t s = 0; s < steps; ++s) {
      c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b, c4 = c4 * a + b, c5 = c5 * a + b;
      c6 = c6 * a + b, c7 = c7 * a + b, c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;
      asm volatile(""
                   : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5), "+v"(c6), "+v"(c7), "+v"(c8),
                     "+v"(c9), "+v"(c10), "+v"(c11));
    }
    best = std::min(best, fpi::bench::seconds_since(start));
  }
  T sink = c0[0] + c1[0] + c2[0] + c3[0] + c4[0] + c5[0] + c6[0] + c7[0] + c8[0] + c9[0] + c10[0] + c11[0];
  asm volatile("" : : "r"(&sink) : "memory");
  return 2.0 * 12 * lanes * static_cast<double>(steps) / best;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t batch = 8;
  bool f64 = false;
  fpi::bench::Sampling sampling{.warmup = 2, .sample_seconds = 0.05};
  fpi::bench::Harness harness("bench_conv_layers",
                              "CPU convolution primitives on the optical-flow layers: im2col against the phase split.");
  harness.add_count("--repeat", sampling.repeat, {.full = 7, .quick = 1}, "timed samples per primitive");
  harness.add_count("--batch", batch, {.full = 8, .quick = 2}, "images per call");
  harness.add_flag("--f64", f64, "float64 instead of float32");
  harness.parse(argc, argv);
  if (harness.quick()) sampling.sample_seconds = 0.0;

  const fpi::DType dtype = f64 ? fpi::kFloat64 : fpi::kFloat32;
  const int threads = fpi::backend::cpu::num_threads();
  const double peak = (f64 ? fma_peak_per_thread<double>() : fma_peak_per_thread<float>()) * threads;
  std::printf("%s; %s; FMA peak %.0f GFLOP/s (%d thread%s)\n", harness.threads_description().c_str(),
              fpi::dtype_name(dtype), peak * 1e-9, threads, threads == 1 ? "" : "s");
  harness.value("fma_peak_gflops", peak * 1e-9);

  using fpi::bench::Align;
  fpi::bench::Table& table =
      harness.table("layers", {{"layer", 15, Align::Left}, {"primitive", 9, Align::Left}, {"GFLOP", 7},
                               {"im2col GFLOP/s", 14}, {"phases GFLOP/s", 14}, {"speed-up", 8}, {"% of peak", 9}});
  auto& backend = fpi::backend::backend_for(fpi::kCPU);
  fpi::Generator gen(3);
  const fpi::TensorOptions o{.dtype = dtype};
  for (const Layer& layer : kLayers) {
    const Conv2dDesc d = describe(layer, batch);
    const Tensor x = fpi::uniform({d.batch, d.in_channels, d.in_h, d.in_w}, -1, 1, o, &gen);
    const Tensor w = fpi::uniform({d.out_channels, d.in_channels, d.kernel_h, d.kernel_w}, -1, 1, o, &gen);
    const Tensor gy = fpi::uniform({d.batch, d.out_channels, d.out_h, d.out_w}, -1, 1, o, &gen);
    const Tensor y = fpi::empty(gy.shape(), o), gx = fpi::empty(x.shape(), o), gw = fpi::empty(w.shape(), o);
    const double flop = 2.0 * static_cast<double>(d.batch * d.out_channels * d.in_channels * d.kernel_h *
                                                  d.kernel_w * d.out_h * d.out_w);
    const std::vector<std::pair<const char*, std::function<void()>>> primitives = {
        {"forward", [&] { backend.conv2d_forward(x, w, y, d); }},
        {"data", [&] { backend.conv2d_backward_data(gy, w, gx, d); }},
        {"filter", [&] { backend.conv2d_backward_filter(x, gy, gw, d); }},
    };
    for (const auto& [primitive, call] : primitives) {
      double seconds[2];
      for (const ConvSource source : {ConvSource::Im2col, ConvSource::PhaseSplit}) {
        fpi::backend::cpu::set_conv_source(source);
        seconds[source == ConvSource::PhaseSplit] = fpi::bench::time_calls(call, sampling).min;
      }
      fpi::backend::cpu::set_conv_source(ConvSource::Auto);
      const double fast = std::min(seconds[0], seconds[1]);
      table.add({fpi::bench::text_cell(layer.name), fpi::bench::text_cell(primitive),
                 fpi::bench::number_cell(flop * 1e-9, "%.3f"),
                 fpi::bench::number_cell(flop / seconds[0] * 1e-9, "%.1f"),
                 fpi::bench::number_cell(flop / seconds[1] * 1e-9, "%.1f"),
                 fpi::bench::number_cell(seconds[0] / seconds[1], "%.2f"),
                 fpi::bench::number_cell(100.0 * flop / fast / peak, "%.1f")});
    }
  }
  return harness.finish(0);
}
