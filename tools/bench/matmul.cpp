// fpi::matmul against raw cblas_sgemm on the same float32 buffers: what fpi's op layer (shape checks,
// operand analysis, output allocation from the caching allocator) costs on top of the BLAS call it
// makes. The two are timed in the same run, interleaved sample by sample (alternating which goes
// first), because on a shared 2-core machine a neighbour's load moves absolute numbers a lot while
// the ratio stays meaningful. Shapes: the square 1024³ reference, the MLP benchmark's 40x1995 → 600
// layer in its forward and backward layouts (transposed operands as views), and a batched product.
//
//   build/bin/bench_matmul [--quick] [--reps N]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using Clock = std::chrono::steady_clock;

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
  int reps = 21;
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

template <class F>
double seconds_per_call(F&& call, int calls) {
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) call();
  return std::chrono::duration<double>(Clock::now() - start).count() / calls;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
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
  const double one = seconds_per_call(raw_call, 1);
  const int calls = std::max(1, static_cast<int>(s.sample_seconds / std::max(one, 1e-9)));
  std::vector<double> fpi_times, raw_times;
  for (int rep = 0; rep < s.reps; ++rep) {
    if (rep % 2 == 0) {
      fpi_times.push_back(seconds_per_call(fpi_call, calls));
      raw_times.push_back(seconds_per_call(raw_call, calls));
    } else {
      raw_times.push_back(seconds_per_call(raw_call, calls));
      fpi_times.push_back(seconds_per_call(fpi_call, calls));
    }
  }
  const double flop = 2.0 * c.batch * c.m * c.n * c.k;
  const double gflop = flop * 1e-9;
  return {gflop / *std::min_element(fpi_times.begin(), fpi_times.end()), gflop / median(fpi_times),
          gflop / *std::min_element(raw_times.begin(), raw_times.end()), gflop / median(raw_times),
          relative_difference(fpi::matmul(o.a, o.b), o.c_raw)};
}

std::string shape_label(const Case& c) {
  std::string label = c.batch > 1 ? std::to_string(c.batch) + "x " : "";
  label += std::to_string(c.m) + "x" + std::to_string(c.k) + (c.trans_a ? "(T)" : "") + " @ " + std::to_string(c.k) +
           "x" + std::to_string(c.n) + (c.trans_b ? "(T)" : "");
  return label;
}

int usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: bench_matmul [--quick] [--reps N]\n"
               "  --quick   a one-second smoke run (3 short samples per case)\n"
               "  --reps N  timing samples per case and implementation (default 21)\n");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      s.reps = 3;
      s.sample_seconds = 0.002;
    } else if (arg == "--reps" && i + 1 < argc && std::atoi(argv[i + 1]) > 0) {
      s.reps = std::atoi(argv[++i]);
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else {
      std::fprintf(stderr, "bench_matmul: unknown or incomplete option '%s'\n", argv[i]);
      return usage(2);
    }
  }
  fpi::manual_seed(0);
  std::printf("fpi::matmul vs raw cblas_sgemm, float32, %d interleaved samples each\n", s.reps);
  std::printf("BLAS: %s, %d threads\n\n", openblas_get_config(), openblas_get_num_threads());
  std::printf("%-30s %-26s %17s %17s %15s\n", "case", "shape", "fpi GFLOP/s", "sgemm GFLOP/s", "fpi/sgemm");
  std::printf("%-30s %-26s %17s %17s %15s\n", "", "", "best  median", "best  median", "best  median");
  bool same_results = true;
  for (const Case& c : kCases) {
    const Result r = run_case(c, s);
    std::printf("%-30s %-26s %8.1f %8.1f %8.1f %8.1f %6.1f%% %6.1f%%\n", c.name, shape_label(c).c_str(), r.fpi_best,
                r.fpi_median, r.raw_best, r.raw_median, 100.0 * r.fpi_best / r.raw_best,
                100.0 * r.fpi_median / r.raw_median);
    if (r.difference > 1e-5) {
      std::fprintf(stderr, "bench_matmul: %s: fpi and sgemm results differ (relative %.3g)\n", c.name, r.difference);
      same_results = false;
    }
  }
  return same_results ? 0 : 1;
}
