// The op benchmark: every row of the op table (tests/op_table.hpp, which also drives the float64
// gradient checks and the CPU/GPU parity tests) timed at its benchmark shapes, on the CPU and on
// cuda:0 when one can be used, so adding an op to the table also adds it here.
//
// Per row and device: "fwd" is the op on inputs that require grad, as in training (its node is
// recorded and dropped with the output); "fwd+bwd" adds the vector-Jacobian product with a fixed
// cotangent, autograd::grad({y}, inputs, {w}). Samples repeat a call for about 20 ms and synchronise
// the device before reading the clock; the table shows the median over samples. Rates: products and
// convolutions report GFLOP/s (the backward counted as two forwards, one per operand), other ops the
// forward's GB/s as input plus output bytes over its time, none for an output that is a view. On
// cuda:0 rows, cpu/cuda is the CPU's fwd+bwd time over the GPU's.
// --quick runs each row once at the tests' small shapes: a smoke test that every row runs here.
//
//   build/bin/bench_ops [--quick] [--dtype float32|float64] [--device cpu|cuda|both] [--only REGEX]
//                       [--repeat N] [--warmup N] [--threads N] [--json FILE]
#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"
#include "op_table.hpp"

namespace {

using fpi::Device;
using fpi::Tensor;
using fpi::Tensors;
using fpi::testing::OpCase;

struct Measurement {
  fpi::bench::Summary forward, forward_backward;
  double forward_gflop = 0.0;  // 0 for ops whose cost is memory traffic
  double gigabytes = 0.0;      // inputs and output; 0 when the output is a view
};

std::string shapes_label(const std::vector<fpi::Shape>& shapes) {
  std::string label;
  for (const fpi::Shape& shape : shapes) {
    if (!label.empty()) label += ", ";
    std::string dims;
    for (std::int64_t d : shape) {
      if (!dims.empty()) dims += 'x';
      dims += std::to_string(d);
    }
    label += dims.empty() ? "scalar" : dims;
  }
  return label;
}

double gigabytes(const Tensor& t) { return static_cast<double>(t.numel() * fpi::dtype_size(t.dtype())) * 1e-9; }

Measurement measure(const OpCase& row, const std::vector<fpi::Shape>& shapes, fpi::DType dtype, Device device,
                    const fpi::bench::Sampling& sampling) {
  Tensors inputs;
  for (const Tensor& x : fpi::testing::draw_inputs(shapes, row.domain))
    inputs.push_back(x.to(dtype).to(device).detach().requires_grad_());
  const Tensor y = row.fn(inputs);
  fpi::Generator gen(11);
  const Tensor cotangent = fpi::randn(y.shape(), {.dtype = dtype}, &gen).to(device);

  Measurement m;
  m.forward = fpi::bench::time_calls([&] { row.fn(inputs); }, sampling, device);
  m.forward_backward =
      fpi::bench::time_calls([&] { fpi::autograd::grad({row.fn(inputs)}, inputs, {cotangent}); }, sampling, device);
  if (row.flop) {
    m.forward_gflop = row.flop(inputs, y) * 1e-9;
  } else {
    bool view = false;
    for (const Tensor& x : inputs) view = view || x.impl()->storage == y.impl()->storage;
    if (!view) {
      m.gigabytes = gigabytes(y);
      for (const Tensor& x : inputs) m.gigabytes += gigabytes(x);
    }
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  fpi::bench::Harness harness("bench_ops",
                              "Every row of the op table at its benchmark shapes, forward and forward + backward.");
  std::string dtype_name = "float32", device_choice = "both", only;
  fpi::bench::Sampling sampling{.sample_seconds = 0.02};
  harness.add_choice("--dtype", dtype_name, {"float32", "float64"}, "the inputs' dtype");
  harness.add_choice("--device", device_choice, {"cpu", "cuda", "both"},
                     "where to run (cuda is skipped, saying why, where it cannot be used)");
  harness.add_text("--only", only, "REGEX", "only the rows whose name matches REGEX (a search, ECMAScript syntax)");
  harness.add_count("--repeat", sampling.repeat, {.full = 5, .quick = 1}, "timing samples per row and device");
  harness.add_count("--warmup", sampling.warmup, {.full = 1, .quick = 0}, "untimed calls before the samples", 0);
  harness.parse(argc, argv);
  if (harness.quick()) sampling.sample_seconds = 0.0;
  const fpi::DType dtype = dtype_name == "float64" ? fpi::kFloat64 : fpi::kFloat32;

  std::regex pattern;
  try {
    pattern = std::regex(only);
  } catch (const std::regex_error& e) {
    harness.reject("--only: '" + only + "' is not a regular expression (" + e.what() + ")");
  }
  std::vector<OpCase> rows;
  for (OpCase& row : fpi::testing::op_table())
    if (std::regex_search(row.name, pattern)) rows.push_back(std::move(row));
  if (rows.empty()) harness.reject("--only: no row of the op table matches '" + only + "'");

  std::vector<Device> devices;
  if (device_choice != "cuda") devices.push_back(fpi::kCPU);
  if (device_choice != "cpu") {
    const std::string reason = fpi::bench::cuda_unavailable_reason();
    if (reason.empty()) {
      devices.push_back(fpi::cuda(0));
    } else {
      std::printf("cuda: not timed (%s)\n", reason.c_str());
      if (devices.empty()) return harness.finish(1);
    }
  }

  std::printf("fpi ops: %zu rows at their %s shapes, %s; threads: %s\n", rows.size(),
              harness.quick() ? "test" : "benchmark", fpi::dtype_name(dtype), harness.threads_description().c_str());
  const std::string sample = sampling.sample_seconds > 0
                                 ? fpi::bench::format("at least %.0f ms", sampling.sample_seconds * 1e3)
                                 : std::string("one call");
  std::printf("median of %d samples of %s after %d warm-up calls; rates: fwd GB/s, or GFLOP/s of fwd and fwd+bwd\n\n",
              sampling.repeat, sample.c_str(), sampling.warmup);
  int name_width = 0, shapes_width = 0;
  for (const OpCase& row : rows) {
    name_width = std::max(name_width, static_cast<int>(row.name.size()));
    const auto& shapes = harness.quick() ? row.shapes : row.bench_shapes;
    shapes_width = std::max(shapes_width, static_cast<int>(shapes_label(shapes).size()));
  }
  using fpi::bench::Align;
  fpi::bench::Table& table = harness.table("ops", {{"op", name_width, Align::Left},
                                                   {"shapes", shapes_width, Align::Left},
                                                   {"device", 6, Align::Left},
                                                   {"fwd ms", 9},
                                                   {"fwd+bwd ms", 10},
                                                   {"GB/s", 7},
                                                   {"GFLOP/s", 8},
                                                   {"GFLOP/s fwd+bwd", 15},
                                                   {"cpu/cuda", 8}});
  int failures = 0;
  for (const OpCase& row : rows) {
    const std::vector<fpi::Shape>& shapes = harness.quick() ? row.shapes : row.bench_shapes;
    double cpu_seconds = 0.0;
    for (const Device device : devices) {
      Measurement m;
      try {
        m = measure(row, shapes, dtype, device, sampling);
      } catch (const fpi::Error& e) {
        std::fprintf(stderr, "bench_ops: %s on %s failed: %s\n", row.name.c_str(), device.str().c_str(), e.what());
        ++failures;
        continue;
      }
      using fpi::bench::missing_cell;
      using fpi::bench::number_cell;
      const double both = m.forward_backward.median;
      if (device.is_cpu()) cpu_seconds = both;
      table.add({fpi::bench::text_cell(row.name), fpi::bench::text_cell(shapes_label(shapes)),
                 fpi::bench::text_cell(device.str()), number_cell(m.forward.median * 1e3, "%.4f"),
                 number_cell(both * 1e3, "%.4f"),
                 m.gigabytes > 0 ? number_cell(m.gigabytes / m.forward.median, "%.1f") : missing_cell(),
                 m.forward_gflop > 0 ? number_cell(m.forward_gflop / m.forward.median, "%.1f") : missing_cell(),
                 m.forward_gflop > 0 ? number_cell(3 * m.forward_gflop / both, "%.1f") : missing_cell(),
                 device.is_cuda() && cpu_seconds > 0 ? number_cell(cpu_seconds / both, "%.1f") : missing_cell()});
    }
  }
  if (failures > 0) std::fprintf(stderr, "bench_ops: %d row(s) failed\n", failures);
  return harness.finish(failures > 0 ? 1 : 0);
}
