// fpi's thread pool beside OpenBLAS's: what each way of sharing the cores costs in training steps. The
// two ways (src/backend/cpu/parallel.hpp): "pool", OpenBLAS single-threaded and fpi's pool splitting
// each large GEMM into per-thread BLAS calls (the default); "openblas", whole GEMMs on OpenBLAS's own
// threads, as many as fpi's pool; "main", fpi before this split with OPENBLAS_NUM_THREADS unset (whole
// GEMMs on OpenBLAS's threads, one per core whatever fpi's count). All run in this one process,
// interleaved, for each thread count, so the machine's load affects them alike. Per run: wall time, user and system CPU
// time of all threads (getrusage) and context switches. Workloads:
//   bibtex  steps of `fpi train models/bibtex_fpi_nn.json` on the real data (the FPI_NN layer),
//   conv    SGD steps of bench_conv_net's DnCNN-style net (17 3x3 convs, width 64, 16 patches 40x40),
//   gemm    the Bibtex layer's GEMMs alone, float32 and float64, in GFLOP/s beside the cores' FMA peak
//           (measured here, best of many short tries: a register-only AVX-512 FMA loop, 12 independent
//           chains per thread; OpenBLAS's Haswell kernels use 256-bit FMAs, half that rate on a
//           full-width core).
// OpenBLAS's idle threads call sched_yield, which getrusage does not count; count it with
//   strace -f -c -e trace=sched_yield build/bin/bench_threads --modes openblas --workloads bibtex
//
//   bench_threads [--quick] [--steps N] [--conv-steps N] [--repeat N] [--modes pool,openblas,main]
//                 [--thread-counts 1,2] [--workloads bibtex,conv,gemm] [--json FILE]
//   (run from the repository root, or anywhere: the config and data fall back to the source tree)
#include <cblas.h>
#include <immintrin.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/parallel.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim/clip_grad.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using backend::cpu::GemmThreading;
using bench::Clock;
using bench::split_list;

double seconds(const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); }

// What one run of a workload cost the whole process.
struct Cost {
  double wall = 0, user = 0, sys = 0, voluntary = 0, involuntary = 0;
};

class Meter {
 public:
  Meter() : wall_(Clock::now()) { getrusage(RUSAGE_SELF, &start_); }
  Cost read() const {
    rusage now{};
    getrusage(RUSAGE_SELF, &now);
    return {bench::seconds_since(wall_), seconds(now.ru_utime) - seconds(start_.ru_utime),
            seconds(now.ru_stime) - seconds(start_.ru_stime), static_cast<double>(now.ru_nvcsw - start_.ru_nvcsw),
            static_cast<double>(now.ru_nivcsw - start_.ru_nivcsw)};
  }

 private:
  Clock::time_point wall_;
  rusage start_{};
};

// ---- workloads -------------------------------------------------------------------------------------

std::string source_path(const std::string& relative) {
  return std::filesystem::exists(relative) ? relative : std::string(FPI_SOURCE_DIR) + "/" + relative;
}

// The FPI_NN Bibtex run as `fpi train` sets it up: the model, Adam, clipping, batches of 40.
class BibtexSteps {
 public:
  BibtexSteps()
      : config_(train::load_config(source_path("models/bibtex_fpi_nn.json"))), experiment_(config_) {
    const data::Dataset& split = experiment_.split("train");
    for (std::int64_t i = 0; i < split.num_batches(config_.train.batch_size); ++i)
      batches_.push_back(split.batch(0, i, config_.train.batch_size));
  }
  // The same steps from the same weights each time: a fresh optimizer on the initial parameters.
  void run(int steps) {
    std::vector<Tensor> parameters = experiment_.model().parameters();
    std::vector<Tensor> initial;
    for (const Tensor& p : parameters) initial.push_back(p.detach().clone());
    auto optimizer = train::make_optimizer(config_.optimizer, parameters);
    experiment_.model().train();
    for (int s = 0; s < steps; ++s) {
      optimizer->zero_grad();
      const auto [output, loss] = experiment_.forward(batches_[static_cast<std::size_t>(s) % batches_.size()]);
      loss.item();
      loss.backward();
      optim::clip_grad_norm(parameters, *config_.train.clip_grad_norm);
      optimizer->step();
    }
    NoGrad no_grad;
    for (std::size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(initial[i]);
  }

 private:
  train::RunConfig config_;
  train::Experiment experiment_;
  std::vector<data::Batch> batches_;
};

// bench_conv_net's net at its full size: conv 1->64, 15 x conv 64->64, conv 64->1, ReLUs, MSE, SGD.
class ConvSteps {
 public:
  ConvSteps() : gen_(1234) {
    for (std::int64_t l = 0; l < 17; ++l) {
      const std::int64_t in = l == 0 ? 1 : 64, out = l == 16 ? 1 : 64;
      const double bound = 1.0 / std::sqrt(static_cast<double>(in * 9));
      layers_.push_back({uniform({out, in, 3, 3}, -bound, bound, {}, &gen_).requires_grad_(),
                         uniform({out}, -bound, bound, {}, &gen_).requires_grad_()});
    }
    x_ = uniform({16, 1, 40, 40}, 0, 1, {}, &gen_);
    target_ = uniform({16, 1, 40, 40}, 0, 1, {}, &gen_);
  }
  void run(int steps) {
    const Conv2dOptions same{.padding = {1, 1}};
    for (int s = 0; s < steps; ++s) {
      Tensor y = x_;
      for (std::size_t l = 0; l < layers_.size(); ++l) {
        y = conv2d(y, layers_[l].weight, layers_[l].bias, same);
        if (l + 1 < layers_.size()) y = relu(y);
      }
      mse_loss(y, target_).backward();
      NoGrad no_grad;
      for (auto& layer : layers_) {
        for (Tensor* p : {&layer.weight, &layer.bias}) {
          p->copy_(*p - p->grad() * 1e-3);
          p->zero_grad();
        }
      }
    }
  }

 private:
  struct Layer {
    Tensor weight, bias;
  };
  Generator gen_;
  std::vector<Layer> layers_;
  Tensor x_, target_;
};

// The FPI_NN layer's products for a batch of 40: forward fc1 and fc2, and the gradients of fc1.
struct GemmShape {
  const char* name;
  std::int64_t m, n, k;
  bool trans_a, trans_b;
};
constexpr GemmShape kBibtexShapes[] = {{"fc1 40x1995 @ 1995x600", 40, 600, 1995, false, true},
                                       {"fc2 40x600 @ 600x159", 40, 159, 600, false, true},
                                       {"dW1 600x40 @ 40x1995", 600, 1995, 40, true, false},
                                       {"dX1 40x600 @ 600x1995", 40, 1995, 600, false, false}};

double gemm_gflops(const GemmShape& s, DType dtype, int repeat) {
  Generator gen(5);
  const TensorOptions options{.dtype = dtype};
  const Tensor a = s.trans_a ? randn({s.k, s.m}, options, &gen).t() : randn({s.m, s.k}, options, &gen);
  const Tensor b = s.trans_b ? randn({s.n, s.k}, options, &gen).t() : randn({s.k, s.n}, options, &gen);
  const bench::Summary t = bench::time_calls([&] { matmul(a, b); }, {.warmup = 3, .repeat = repeat});
  return 2.0 * static_cast<double>(s.m * s.n * s.k) / t.min * 1e-9;
}

// FMA throughput of `threads` threads, each a register-only loop of 12 independent 16-float chains.
__attribute__((target("avx512f"))) double fma_chains(long long rounds) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  // Unrolled, or the chains live in memory and store-to-load latency, not the FMA units, sets the pace.
  for (long long r = 0; r < rounds; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
  alignas(64) float lanes[16];
  double sum = 0;
  for (int i = 0; i < 12; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    for (float lane : lanes) sum += lane;
  }
  return sum;
}

// Where the chains' results go, so that the compiler keeps the loops.
volatile double fma_sink = 0;

double fma_peak_gflops(int threads, long long rounds) {
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  std::vector<double> results(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] { results[static_cast<std::size_t>(t)] = fma_chains(rounds); });
  for (auto& w : workers) w.join();
  const double elapsed = bench::seconds_since(start);
  for (double r : results) fma_sink = fma_sink + r;
  return 2.0 * 16 * 12 * static_cast<double>(rounds) * threads / elapsed * 1e-9;
}


// Switches the GEMM threading. Leaving "openblas", it lets OpenBLAS's idle threads finish their
// busy-wait (about 0.1 s by default) before anything else is measured; --quick measures nothing worth
// the wait.
// "main" is fpi before the pool split GEMMs, with OPENBLAS_NUM_THREADS unset: OpenBLAS on every core
// whatever fpi's count.
void use(int threads, const std::string& mode, bool quick) {
  const bool settle = !quick && backend::cpu::gemm_threading() == GemmThreading::OpenBlas;
  set_num_threads(threads);
  backend::cpu::set_gemm_threading(mode == "pool" ? GemmThreading::Pool : GemmThreading::OpenBlas);
  if (mode == "main") openblas_set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  if (settle) std::this_thread::sleep_for(std::chrono::milliseconds(400));
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 0, conv_steps = 0, repeat = 0;
  std::string modes = "pool,openblas,main", thread_counts = "1,2", workloads = "bibtex,conv,gemm";
  bench::Harness harness("bench_threads",
                         "fpi's pool and OpenBLAS's threads: training steps with GEMMs split by fpi or by OpenBLAS.");
  harness.add_count("--steps", steps, {.full = 40, .quick = 2}, "Bibtex FPI_NN training steps per run");
  harness.add_count("--conv-steps", conv_steps, {.full = 3, .quick = 1}, "conv net training steps per run");
  harness.add_count("--repeat", repeat, {.full = 2, .quick = 1}, "runs of each (mode, threads); the fastest counts");
  harness.add_text("--modes", modes, "A,B", "GEMM threading: pool, openblas, main (see the top of threads.cpp)");
  harness.add_text("--thread-counts", thread_counts, "N,M", "fpi thread counts (OpenBLAS follows)");
  harness.add_text("--workloads", workloads, "A,B", "bibtex, conv, gemm");
  harness.parse(argc, argv);
  std::vector<int> counts;
  for (const std::string& c : split_list(thread_counts)) {
    const int n = std::atoi(c.c_str());
    if (n < 1 || n > 64) harness.reject("--thread-counts: '" + c + "' is not a count from 1 to 64");
    counts.push_back(n);
  }
  const std::vector<std::string> mode_names = split_list(modes);
  for (const std::string& m : mode_names)
    if (m != "pool" && m != "openblas" && m != "main")
      harness.reject("--modes: '" + m + "' is not pool, openblas or main");
  const std::vector<std::string> loads = split_list(workloads);
  const auto wants = [&](const char* w) { return std::find(loads.begin(), loads.end(), w) != loads.end(); };

  using bench::Align;
  using bench::number_cell;
  using bench::text_cell;
  std::printf("fpi thread pool beside OpenBLAS; %d hardware threads; runs of each setting: %d, fastest shown\n",
              static_cast<int>(std::thread::hardware_concurrency()), repeat);
  if (wants("bibtex") || wants("conv")) {
    bench::Table& table = harness.table(
        "steps", {{"workload", 8, Align::Left}, {"threads", 7}, {"mode", 9, Align::Left}, {"steps", 5},
                  {"wall s", 8}, {"user s", 8}, {"sys s", 7}, {"sys %", 6}, {"vol cs", 8}, {"invol cs", 8},
                  {"steps/s", 8}, {"wall vs first", 13}});
    std::optional<BibtexSteps> bibtex;
    std::optional<ConvSteps> conv;
    if (wants("bibtex")) bibtex.emplace();
    if (wants("conv")) conv.emplace();
    for (const char* name : {"bibtex", "conv"}) {
      if (!wants(name)) continue;
      const bool is_bibtex = std::string(name) == "bibtex";
      const int n = is_bibtex ? steps : conv_steps;
      const auto work = [&] { is_bibtex ? bibtex->run(n) : conv->run(n); };
      for (int threads : counts) {
        std::vector<Cost> best(mode_names.size(), Cost{1e300});
        // Interleaved: every mode once per round, so a burst of load from elsewhere hits all of them.
        for (int r = 0; r < repeat; ++r)
          for (std::size_t m = 0; m < mode_names.size(); ++m) {
            use(threads, mode_names[m], harness.quick());
            const Meter meter;
            work();
            const Cost cost = meter.read();
            if (cost.wall < best[m].wall) best[m] = cost;
          }
        for (std::size_t m = 0; m < mode_names.size(); ++m) {
          const Cost& c = best[m];
          const double cpu = c.user + c.sys;
          table.add({text_cell(name), number_cell(threads, "%.0f"), text_cell(mode_names[m]), number_cell(n, "%.0f"),
                     number_cell(c.wall, "%.3f"), number_cell(c.user, "%.3f"), number_cell(c.sys, "%.3f"),
                     number_cell(cpu > 0 ? 100 * c.sys / cpu : 0, "%.1f"), number_cell(c.voluntary, "%.0f"),
                     number_cell(c.involuntary, "%.0f"), number_cell(n / c.wall, "%.2f"),
                     number_cell(c.wall / best[0].wall, "%.3f")});
        }
      }
    }
  }
  // The peak loop is AVX-512 code: on a CPU without it, the GEMMs are measured against no peak.
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  if (wants("gemm")) {
    const long long rounds = 200'000;
    const int tries = harness.quick() ? 5 : 300;
    // The best of many short tries (about a millisecond each, as one GEMM call): on a shared machine a
    // long loop is always interrupted, while the GEMMs' best-of-N times catch quiet moments.
    std::vector<double> peaks;
    for (int threads : counts) {
      double best = 0;
      for (int attempt = 0; has_avx512 && attempt < tries; ++attempt)
        best = std::max(best, fma_peak_gflops(threads, rounds));
      peaks.push_back(best);
    }
    if (has_avx512)
      std::printf("\nAVX-512 FMA peak measured, best of %d tries (float32; float64 is half):", tries);
    else
      std::printf("\nThis CPU has no AVX-512: the FMA peak is not measured and '%% of peak' is left empty\n");
    for (std::size_t i = 0; has_avx512 && i < counts.size(); ++i) {
      std::printf(" %d thread%s %.0f GFLOP/s%s", counts[i], counts[i] == 1 ? "" : "s", peaks[i],
                  i + 1 < counts.size() ? "," : "\n");
      harness.value("fma_peak_gflops_" + std::to_string(counts[i]) + "_threads", peaks[i]);
    }
    bench::Table& table = harness.table("gemm", {{"shape", 24, Align::Left}, {"dtype", 7, Align::Left},
                                                 {"threads", 7}, {"mode", 9, Align::Left}, {"GFLOP/s", 8},
                                                 {"% of peak", 9}});
    const int gemm_repeat = harness.quick() ? 3 : 30;
    for (const GemmShape& s : kBibtexShapes)
      for (DType dtype : {kFloat32, kFloat64})
        for (std::size_t t = 0; t < counts.size(); ++t)
          for (const std::string& mode : mode_names) {
            use(counts[t], mode, harness.quick());
            const double gflops = gemm_gflops(s, dtype, gemm_repeat);
            const double peak = dtype == kFloat32 ? peaks[t] : peaks[t] / 2;
            table.add({text_cell(s.name), text_cell(dtype_name(dtype)), number_cell(counts[t], "%.0f"),
                       text_cell(mode), number_cell(gflops, "%.1f"),
                       has_avx512 ? number_cell(100 * gflops / peak, "%.1f") : text_cell("")});
          }
  }
  return harness.finish(0);
}
