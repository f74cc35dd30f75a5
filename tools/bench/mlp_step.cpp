// One training step of the paper's Bibtex feed-forward net, Linear(1995, 600) → ReLU → Linear(600, 159)
// → Sigmoid, trained with bce_loss against 0/1 targets and Adam(lr = 1e-3) on a batch of 40, float32:
// the step fpi must take no slower than PyTorch (tools/bench/torch_mlp_step.py times the same step;
// tools/bench/compare_mlp_step.sh runs both). A step is zero_grad, forward, loss, backward, optimizer
// step. After warm-up the caching allocator must serve every tensor of a step from its free lists, so
// the allocator's counters are reset after warm-up and system_allocations over the timed steps must
// be 0 (the exit status is 1 otherwise).
//
// Timing: `reps` samples of `steps` consecutive steps each; a sample's time divided by its step count
// is one ms/step figure, and the median and best of those are reported. The forward / backward /
// optimizer split comes from clock reads between the phases of every timed step.
//
//   build/bin/bench_mlp_step [--quick] [--reps N] [--steps N] [--warmup N]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::int64_t kBatch = 40, kIn = 1995, kHidden = 600, kOut = 159;
constexpr std::uint64_t kSeed = 0;

struct Settings {
  int warmup = 20;
  int reps = 15;
  int steps = 40;
};

// Seconds spent in each phase, summed over the steps of one sample.
struct Phases {
  double forward = 0, backward = 0, optimizer = 0;
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t mid = v.size() / 2;
  return v.size() % 2 ? v[mid] : 0.5 * (v[mid - 1] + v[mid]);
}

// Random data of Bibtex's shape (the values do not affect the cost): inputs in [0, 1), each label on
// with probability 0.1.
fpi::Tensor random_targets(fpi::Generator& gen) {
  std::vector<float> values(kBatch * kOut);
  for (float& v : values) v = gen.uniform() < 0.1 ? 1.0f : 0.0f;
  return fpi::from_vector(values, {kBatch, kOut}, {});
}

class Benchmark {
 public:
  Benchmark()
      : gen_(kSeed),
        net_(std::make_shared<fpi::nn::Sequential>(std::initializer_list<fpi::nn::ModulePtr>{
            std::make_shared<fpi::nn::Linear>(kIn, kHidden, true, fpi::TensorOptions{}, &gen_),
            std::make_shared<fpi::nn::ReLU>(),
            std::make_shared<fpi::nn::Linear>(kHidden, kOut, true, fpi::TensorOptions{}, &gen_),
            std::make_shared<fpi::nn::Sigmoid>()})),
        x_(fpi::rand({kBatch, kIn}, {}, &gen_)),
        y_(random_targets(gen_)),
        optimizer_(net_->parameters(), {.lr = 1e-3}) {}

  // One step; with `phases`, the time of each phase is added to it. The loss is kept until the next
  // step replaces it, as a training loop that logs it would, in warm-up and timed steps alike.
  void step(Phases* phases) {
    const auto t0 = Clock::now();
    optimizer_.zero_grad();
    loss_ = fpi::bce_loss((*net_)(x_), y_);
    const auto t1 = Clock::now();
    loss_.backward();
    const auto t2 = Clock::now();
    optimizer_.step();
    if (phases) {
      const auto t3 = Clock::now();
      phases->forward += seconds(t0, t1);
      phases->backward += seconds(t1, t2);
      phases->optimizer += seconds(t2, t3);
    }
  }
  double loss() const { return loss_.item(); }

 private:
  fpi::Generator gen_;
  std::shared_ptr<fpi::nn::Sequential> net_;
  fpi::Tensor x_, y_, loss_;
  fpi::optim::Adam optimizer_;
};

int usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: bench_mlp_step [--quick] [--reps N] [--steps N] [--warmup N]\n"
               "  --quick     a smoke run well under a second (3 warm-up steps, 3 samples of 3 steps)\n"
               "  --reps N    timing samples (default 15)\n"
               "  --steps N   training steps per sample (default 40)\n"
               "  --warmup N  untimed steps before the allocator counters are reset (default 20, at least 2)\n");
  return status;
}

bool parse_count(const char* text, int least, int& out) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < least || value > 1000000) return false;
  out = static_cast<int>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--quick") {
      s = {.warmup = 3, .reps = 3, .steps = 3};
    } else if (arg == "--reps" && has_value && parse_count(argv[i + 1], 1, s.reps)) {
      ++i;
    } else if (arg == "--steps" && has_value && parse_count(argv[i + 1], 1, s.steps)) {
      ++i;
    } else if (arg == "--warmup" && has_value && parse_count(argv[i + 1], 2, s.warmup)) {
      ++i;
    } else if (arg == "--help" || arg == "-h") {
      return usage(0);
    } else {
      std::fprintf(stderr, "bench_mlp_step: unknown option or invalid value at '%s'\n", argv[i]);
      return usage(2);
    }
  }

  Benchmark bench;
  // Warm-up fills the allocator's free lists and Adam's state; the first step allocates the state, so
  // at least two steps are needed before a step can run allocation-free.
  for (int i = 0; i < s.warmup; ++i) bench.step(nullptr);
  fpi::reset_allocator_stats();

  std::vector<double> per_step;
  std::vector<Phases> phases(s.reps);
  for (int rep = 0; rep < s.reps; ++rep) {
    const auto start = Clock::now();
    for (int i = 0; i < s.steps; ++i) bench.step(&phases[rep]);
    per_step.push_back(seconds(start, Clock::now()) / s.steps);
  }
  const fpi::AllocatorStats stats = fpi::allocator_stats();

  const auto phase_ms = [&](double Phases::*field) {
    std::vector<double> v;
    for (const Phases& p : phases) v.push_back(p.*field / s.steps * 1e3);
    return median(v);
  };
  std::printf("fpi MLP training step: %lld -> %lld -> %lld, batch %lld, BCE, Adam, float32\n",
              static_cast<long long>(kIn), static_cast<long long>(kHidden), static_cast<long long>(kOut),
              static_cast<long long>(kBatch));
  const auto env = [](const char* name) { return std::getenv(name) ? std::getenv(name) : "unset (all cores)"; };
  std::printf("threads: FPI_NUM_THREADS %s, OPENBLAS_NUM_THREADS %s\n", env("FPI_NUM_THREADS"),
              env("OPENBLAS_NUM_THREADS"));
  std::printf("%d warm-up steps, %d samples of %d steps\n", s.warmup, s.reps, s.steps);
  std::printf("ms/step median %.4f best %.4f\n", median(per_step) * 1e3,
              *std::min_element(per_step.begin(), per_step.end()) * 1e3);
  std::printf("split (median ms): forward+loss %.4f backward %.4f optimizer %.4f\n",
              phase_ms(&Phases::forward), phase_ms(&Phases::backward), phase_ms(&Phases::optimizer));
  std::printf("loss after %d steps %.6f\n", s.warmup + s.reps * s.steps, bench.loss());
  std::printf("allocator over the timed steps: requests %llu system_allocations %llu peak_bytes %zu\n",
              static_cast<unsigned long long>(stats.requests),
              static_cast<unsigned long long>(stats.system_allocations), stats.peak_bytes_in_use);
  if (stats.system_allocations != 0) {
    std::fprintf(stderr, "bench_mlp_step: the timed steps made %llu system allocations; expected none\n",
                 static_cast<unsigned long long>(stats.system_allocations));
    return 1;
  }
  return 0;
}
