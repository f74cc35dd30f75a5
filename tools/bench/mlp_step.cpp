// One training step of the paper's Bibtex feed-forward net, Linear(1995, 600) → ReLU → Linear(600, 159)
// → Sigmoid, trained with bce_loss against 0/1 targets and Adam(lr = 1e-3) on a batch of 40, float32:
// the step fpi must take no slower than PyTorch (tools/bench/torch_mlp_step.py times the same step;
// tools/bench/compare_mlp_step.sh runs both). A step is zero_grad, forward, loss, backward, optimizer
// step. After warm-up the caching allocator must serve every tensor of a step from its free lists, so
// the allocator's counters are reset after warm-up and system_allocations over the timed steps must
// be 0 (the exit status is 1 otherwise).
//
// Timing: `repeat` samples of `steps` consecutive steps each; a sample's time divided by its step count
// is one ms/step figure, and the median and best of those are reported. The forward / backward /
// optimizer split comes from clock reads between the phases of every timed step. With --device cuda
// the step runs on cuda:0 (tools/gpu_check.sh), the device is synchronised at each sample's ends only,
// so the split is the host's time to enqueue each phase, and the host synchronisations per step
// (fpi::host_sync_counts() over the timed steps) are printed too.
//
//   build/bin/bench_mlp_step [--quick] [--repeat N] [--steps N] [--warmup N] [--device cpu|cuda] [--threads N]
//                            [--json FILE]
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "harness.hpp"

namespace {

using fpi::bench::Clock;
using fpi::bench::seconds_between;

constexpr std::int64_t kBatch = 40, kIn = 1995, kHidden = 600, kOut = 159;
constexpr std::uint64_t kSeed = 0;

// Set from the command line.
struct Settings {
  int warmup = 0, repeat = 0, steps = 0;
  std::string device = "cpu";
};

// Seconds spent in each phase, summed over the steps of one sample.
struct Phases {
  double forward = 0, backward = 0, optimizer = 0;
};

// Random data of Bibtex's shape (the values do not affect the cost): inputs in [0, 1), each label on
// with probability 0.1.
fpi::Tensor random_targets(fpi::Generator& gen, fpi::Device device) {
  std::vector<float> values(kBatch * kOut);
  for (float& v : values) v = gen.uniform() < 0.1 ? 1.0f : 0.0f;
  return fpi::from_vector(values, {kBatch, kOut}, {}).to(device);
}

class Benchmark {
 public:
  explicit Benchmark(fpi::Device device)
      : gen_(kSeed),
        net_(std::make_shared<fpi::nn::Sequential>(std::initializer_list<fpi::nn::ModulePtr>{
            std::make_shared<fpi::nn::Linear>(kIn, kHidden, true, fpi::TensorOptions{}, &gen_),
            std::make_shared<fpi::nn::ReLU>(),
            std::make_shared<fpi::nn::Linear>(kHidden, kOut, true, fpi::TensorOptions{}, &gen_),
            std::make_shared<fpi::nn::Sigmoid>()})),
        x_(fpi::rand({kBatch, kIn}, {}, &gen_).to(device)),
        y_(random_targets(gen_, device)),
        optimizer_(net_->parameters(), {.lr = 1e-3}) {
    net_->to(device);  // in place: the optimizer's handles stay the parameters
  }

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
      phases->forward += seconds_between(t0, t1);
      phases->backward += seconds_between(t1, t2);
      phases->optimizer += seconds_between(t2, t3);
    }
  }
  double loss() const { return loss_.item(); }

 private:
  fpi::Generator gen_;
  std::shared_ptr<fpi::nn::Sequential> net_;
  fpi::Tensor x_, y_, loss_;
  fpi::optim::Adam optimizer_;
};

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  fpi::bench::Harness harness("bench_mlp_step",
                              "One training step of the paper's Bibtex MLP (1995 -> 600 -> 159, batch 40, BCE, Adam), "
                              "float32.");
  harness.add_count("--repeat", s.repeat, {.full = 15, .quick = 3}, "timing samples");
  harness.add_count("--steps", s.steps, {.full = 40, .quick = 3}, "training steps per sample");
  harness.add_count("--warmup", s.warmup, {.full = 20, .quick = 3},
                    "untimed steps before the allocator counters are reset", 2);
  harness.add_choice("--device", s.device, {"cpu", "cuda"}, "where the step runs (cuda: cuda:0)");
  harness.parse(argc, argv);
  const fpi::Device device = s.device == "cuda" ? fpi::cuda(0) : fpi::kCPU;
  if (device.is_cuda()) {
    if (const std::string why = fpi::bench::cuda_unavailable_reason(); !why.empty()) {
      std::fprintf(stderr, "bench_mlp_step: --device cuda: %s\n", why.c_str());
      return harness.finish(1);
    }
  }

  Benchmark bench(device);
  // Warm-up fills the allocator's free lists and Adam's state; the first step allocates the state, so
  // at least two steps are needed before a step can run allocation-free.
  for (int i = 0; i < s.warmup; ++i) bench.step(nullptr);
  fpi::reset_allocator_stats(device);

  std::vector<double> per_step;
  std::vector<Phases> phases(s.repeat);
  std::int64_t syncs = 0;
  for (int rep = 0; rep < s.repeat; ++rep) {
    fpi::synchronize(device);
    const std::int64_t before = fpi::host_sync_counts().total();
    const auto start = Clock::now();
    for (int i = 0; i < s.steps; ++i) bench.step(&phases[rep]);
    syncs += fpi::host_sync_counts().total() - before;
    fpi::synchronize(device);
    per_step.push_back(fpi::bench::seconds_since(start) / s.steps);
  }
  const fpi::AllocatorStats stats = fpi::allocator_stats(device);

  const auto phase_ms = [&](double Phases::*field) {
    std::vector<double> v;
    for (const Phases& p : phases) v.push_back(p.*field / s.steps * 1e3);
    return fpi::bench::median(v);
  };
  const fpi::bench::Summary step = fpi::bench::summarize(per_step);
  const double forward_ms = phase_ms(&Phases::forward), backward_ms = phase_ms(&Phases::backward),
               optimizer_ms = phase_ms(&Phases::optimizer);
  std::printf("fpi MLP training step: %lld -> %lld -> %lld, batch %lld, BCE, Adam, float32, %s\n",
              static_cast<long long>(kIn), static_cast<long long>(kHidden), static_cast<long long>(kOut),
              static_cast<long long>(kBatch), s.device.c_str());
  std::printf("threads: %s\n", harness.threads_description().c_str());
  std::printf("%d warm-up steps, %d samples of %d steps\n", s.warmup, s.repeat, s.steps);
  std::printf("ms/step median %.4f best %.4f\n", step.median * 1e3, step.min * 1e3);
  std::printf("split (median ms): forward+loss %.4f backward %.4f optimizer %.4f\n", forward_ms, backward_ms,
              optimizer_ms);
  const double syncs_per_step = static_cast<double>(syncs) / (s.repeat * s.steps);
  std::printf("host syncs per step %.2f\n", syncs_per_step);
  std::printf("loss after %d steps %.6f\n", s.warmup + s.repeat * s.steps, bench.loss());
  std::printf("allocator over the timed steps: requests %llu system_allocations %llu peak_bytes %zu\n",
              static_cast<unsigned long long>(stats.requests),
              static_cast<unsigned long long>(stats.system_allocations), stats.peak_bytes_in_use);
  harness.value("step_ms_median", step.median * 1e3);
  harness.value("step_ms_best", step.min * 1e3);
  harness.value("forward_loss_ms_median", forward_ms);
  harness.value("backward_ms_median", backward_ms);
  harness.value("optimizer_ms_median", optimizer_ms);
  harness.value("host_syncs_per_step", syncs_per_step);
  harness.value("loss", bench.loss());
  harness.value("allocator_requests", static_cast<double>(stats.requests));
  harness.value("system_allocations", static_cast<double>(stats.system_allocations));
  harness.value("peak_bytes", static_cast<double>(stats.peak_bytes_in_use));
  if (stats.system_allocations != 0) {
    std::fprintf(stderr, "bench_mlp_step: the timed steps made %llu system allocations; expected none\n",
                 static_cast<unsigned long long>(stats.system_allocations));
    return harness.finish(1);
  }
  return harness.finish(0);
}
