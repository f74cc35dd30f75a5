// fpi::matmul against raw cblas_sgemm on the same float32 buffers: what fpi's op layer (shape checks,
// operand analysis, output allocation from the caching allocator) costs on top of the BLAS call it
// makes. The two are timed in the same run, interleaved sample by sample (alternating which goes
// first), because on a shared 2-core machine a neighbour's load moves absolute numbers a lot while
// the ratio stays meaningful. Shapes: the square 1024³ reference, the MLP benchmark's 40x1995 → 600
// layer in its forward and backward layouts (transposed operands as views), and a batched product.
//
//   build/bin/bench_matmul [--quick] [--repeat N] [--threads N] [--json FILE]
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "harness.hpp"

namespace {

struct Case {
  const char* name;
  std::int64_t batch, m, n, k;
  bool trans_a, trans_b;  // whether A is stored k x m (B: n x k) and used through a transposed view
};

constexpr Case kCases[] = {
    {"square", 1, 1024, 1024, 1024, false, false},
    {"mlp fwd x@W", 1, 40, 600, 1995, false, false},
    {"mlp fwd x@Wt (linear layout)", 1, 40, 600, 1995, false, true},
    {"mlp bwd-data g@Wt", 1, 40, 1995, 600, false, true},
    {"mlp bwd-weight xt@g", 1, 1995, 600, 40, true, false},
    {"batched 32x", 32, 256, 256, 256, false, false},
};

struct Settings {
  int repeat = 21;
  double sample_seconds = 0.02;  // each timing sample repeats the call until it lasts about this long
};

struct Operands {
  fpi::Tensor a_stored, b_stored, a, b, c_raw;
};

fpi::Tensor stored(std::int64_t batch, std::int64_t rows, std::int64_t cols) {
  return batch == 1 ? fpi::rand({rows, cols}) : fpi::rand({batch, rows, cols});
}

Operands make_operands(const Case& c) {
  Operands o;
  o.a_stored = c.trans_a ? stored(c.batch, c.k, c.m) : stored(c.batch, c.m, c.k);
  o.b_stored = c.trans_b ? stored(c.batch, c.n, c.k) : stored(c.batch, c.k, c.n);
  o.a = c.trans_a ? o.a_stored.transpose(-1, -2) : o.a_stored;
  o.b = c.trans_b ? o.b_stored.transpose(-1, -2) : o.b_stored;
  o.c_raw = c.batch == 1 ? fpi::zeros({c.m, c.n}) : fpi::zeros({c.batch, c.m, c.n});
  return o;
}

// The call fpi's CPU backend ends in, made by hand: row-major, one sgemm per matrix of the batch.
void raw_sgemm(const Case& c, const Operands& o) {
  const float* a = o.a_stored.data<float>();
  const float* b = o.b_stored.data<float>();
  float* out = o.c_raw.data<float>();
  for (std::int64_t i = 0; i < c.batch; ++i) {
    cblas_sgemm(CblasRowMajor, c.trans_a ? CblasTrans : CblasNoTrans, c.trans_b ? CblasTrans : CblasNoTrans,
                c.m, c.n, c.k, 1.0f, a + i * c.m * c.k, c.trans_a ? c.m : c.k, b + i * c.k * c.n,
                c.trans_b ? c.k : c.n, 0.0f, out + i * c.m * c.n, c.n);
  }
}

// max |fpi - raw| relative to max |raw|: the two must compute the same product.
double relative_difference(const fpi::Tensor& fpi_result, const fpi::Tensor& raw) {
  const auto x = fpi_result.contiguous().to_vector<float>();
  const auto y = raw.to_vector<float>();
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(x[i]) - y[i]));
    scale = std::max(scale, std::abs(static_cast<double>(y[i])));
  }
  return diff / std::max(scale, 1e-30);
}

struct Result {
  double fpi_best, fpi_median, raw_best, raw_median, difference;
};

Result run_case(const Case& c, const Settings& s) {
  const Operands o = make_operands(c);
  auto fpi_call = [&] { fpi::matmul(o.a, o.b); };
  auto raw_call = [&] { raw_sgemm(c, o); };
  fpi_call();
  raw_call();
  using fpi::bench::seconds_per_call;
  const int calls = fpi::bench::calls_per_sample(seconds_per_call(raw_call, 1), s.sample_seconds);
  std::vector<double> fpi_times, raw_times;
  for (int rep = 0; rep < s.repeat; ++rep) {
    if (rep % 2 == 0) {
      fpi_times.push_back(seconds_per_call(fpi_call, calls));
      raw_times.push_back(seconds_per_call(raw_call, calls));
    } else {
      raw_times.push_back(seconds_per_call(raw_call, calls));
      fpi_times.push_back(seconds_per_call(fpi_call, calls));
    }
  }
  const double gflop = 2.0 * c.batch * c.m * c.n * c.k * 1e-9;
  const fpi::bench::Summary fpi_time = fpi::bench::summarize(fpi_times), raw_time = fpi::bench::summarize(raw_times);
  return {gflop / fpi_time.min, gflop / fpi_time.median, gflop / raw_time.min, gflop / raw_time.median,
          relative_difference(fpi::matmul(o.a, o.b), o.c_raw)};
}

std::string shape_label(const Case& c) {
  std::string label = c.batch > 1 ? std::to_string(c.batch) + "x " : "";
  label += std::to_string(c.m) + "x" + std::to_string(c.k) + (c.trans_a ? "(T)" : "") + " @ " + std::to_string(c.k) +
           "x" + std::to_string(c.n) + (c.trans_b ? "(T)" : "");
  return label;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  fpi::bench::Harness harness("bench_matmul", "fpi::matmul against raw cblas_sgemm on the same float32 buffers.");
  harness.add_count("--repeat", s.repeat, {.full = 21, .quick = 3}, "timing samples per case and implementation");
  harness.parse(argc, argv);
  if (harness.quick()) s.sample_seconds = 0.002;
  fpi::manual_seed(0);
  std::printf("fpi::matmul vs raw cblas_sgemm, float32, %d interleaved samples each\n", s.repeat);
  std::printf("BLAS: %s, %d threads\n\n", openblas_get_config(), openblas_get_num_threads());
  std::printf("GFLOP/s, best and median sample; fpi/sgemm in percent\n");
  using fpi::bench::Align;
  using fpi::bench::number_cell;
  fpi::bench::Table& table = harness.table("matmul", {{"case", 30, Align::Left},
                                                      {"shape", 26, Align::Left},
                                                      {"fpi best", 8},
                                                      {"fpi median", 8},
                                                      {"sgemm best", 8},
                                                      {"sgemm median", 8},
                                                      {"fpi/sgemm best", 7},
                                                      {"fpi/sgemm median", 7}});
  bool same_results = true;
  for (const Case& c : kCases) {
    const Result r = run_case(c, s);
    table.add({fpi::bench::text_cell(c.name), fpi::bench::text_cell(shape_label(c)), number_cell(r.fpi_best, "%.1f"),
               number_cell(r.fpi_median, "%.1f"), number_cell(r.raw_best, "%.1f"), number_cell(r.raw_median, "%.1f"),
               number_cell(100.0 * r.fpi_best / r.raw_best, "%.1f%%"),
               number_cell(100.0 * r.fpi_median / r.raw_median, "%.1f%%")});
    if (r.difference > 1e-5) {
      std::fprintf(stderr, "bench_matmul: %s: fpi and sgemm results differ (relative %.3g)\n", c.name, r.difference);
      same_results = false;
    }
  }
  return harness.finish(same_results ? 0 : 1);
}
