// Fork-join pool: the calling thread takes a chunk too, so n threads means n - 1 workers.
#include "backend/cpu/parallel.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "backend/settings.hpp"
#include "fpi/core.hpp"

namespace fpi::backend::cpu {
namespace {

int configured_threads() {
  const char* env = std::getenv("FPI_NUM_THREADS");
  if (!env) return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned{kMaxThreads}));
  return parse_num_threads(env);
}

thread_local bool in_parallel_region = false;

// An FPI layer runs many small regions back to back (issue 11), where a condition-variable sleep and
// wake-up per region cost more than the work, so a waiting thread polls for up to this long before it
// sleeps. On bench_flow_step's FPI step at 2 threads the futex calls per step fall from 832 to 362, 155,
// 110, 63 and 25 with budgets of 10, 20, 30, 50 and 100 us; past 50 little is left to save, while with
// more threads than cores a longer poll holds a core that the awaited thread needs.
constexpr auto kSpinBudget = std::chrono::microseconds(50);

// Tells the core this is a wait loop: no pipeline flush when it ends, and a hyperthread sibling gets the
// core's shared units meanwhile.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polling pays only while the awaited thread runs on another core. Where the machine has more runnable
// threads than cores, it holds the core that thread needs (with another process on one of 2 cores, a
// fixed 50 us made the FPI step above 15% slower than sleeping at once). So each wait that ends unmet
// halves the thread's next budget, down to a microsecond, and each met one restores the whole budget.
constexpr auto kMinSpinBudget = std::chrono::microseconds(1);
thread_local std::chrono::nanoseconds spin_budget = kSpinBudget;

// True as soon as `ready` is; false once the thread's budget is spent without it.
template <class Ready>
bool spin_until(Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + spin_budget;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      spin_budget = std::max<std::chrono::nanoseconds>(spin_budget / 2, kMinSpinBudget);
      return false;
    }
    cpu_relax();
  }
  spin_budget = kSpinBudget;
  return true;
}

class Pool {
 public:
  // Where the system refuses a thread (a low `ulimit -u`), the pool runs with those it got: fewer
  // threads change no result, and the calling thread always takes part.
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i) {
      try {
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void run(std::int64_t begin, std::int64_t end, RangeFn fn) {
    std::lock_guard serial(run_mutex_);
    std::uint64_t generation;
    {
      std::lock_guard lock(mutex_);
      job_ = Job{begin, end, std::min<std::int64_t>(size(), end - begin), fn};
      next_chunk_ = 0;
      pending_ = job_->chunks;
      generation = ++generation_;
    }
    wake_.notify_all();
    take_chunks(generation);
    if (spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) return;
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
  }

 private:
  struct Job {
    std::int64_t begin, end, chunks;
    RangeFn fn;
  };

  // Chunks are claimed under the lock: there are only as many as threads, and a worker that wakes
  // late for a finished job sees the generation changed and claims nothing.
  void take_chunks(std::uint64_t generation) {
    for (;;) {
      std::optional<Job> job;
      std::int64_t chunk = 0;
      {
        std::lock_guard lock(mutex_);
        if (generation_ != generation || next_chunk_ >= job_->chunks) return;
        chunk = next_chunk_++;
        job = job_;
      }
      const std::int64_t span = job->end - job->begin;
      in_parallel_region = true;
      job->fn(job->begin + span * chunk / job->chunks, job->begin + span * (chunk + 1) / job->chunks);
      in_parallel_region = false;
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_all();
    }
  }

  void work() {
    std::uint64_t seen = 0;
    const auto job_or_stop = [&] { return stopping_.load(std::memory_order_relaxed) || generation_ != seen; };
    for (;;) {
      // A worker that sees the next job while polling does not wait on wake_, and notify_all then makes
      // no system call either; take_chunks checks the generation again under the lock.
      if (!spin_until(job_or_stop)) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, job_or_stop);
      }
      if (stopping_) return;
      seen = generation_;
      take_chunks(seen);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::optional<Job> job_;
  std::int64_t next_chunk_ = 0;
  // Written under mutex_; atomic so that the polling threads may read them without it.
  std::atomic<std::int64_t> pending_ = 0;
  std::atomic<std::uint64_t> generation_ = 0;
  std::atomic<bool> stopping_ = false;
};

GemmThreading current_gemm_threading = GemmThreading::Pool;

// OpenBLAS starts its threads when it loads, sized by OPENBLAS_NUM_THREADS or the core count; fpi
// overrides that whenever its own pool is made, so FPI_NUM_THREADS and set_num_threads are the one knob.
void configure_blas(int pool_size) {
  openblas_set_num_threads(current_gemm_threading == GemmThreading::Pool ? 1 : pool_size);
}

std::unique_ptr<Pool> make_pool(int threads) {
  auto pool = std::make_unique<Pool>(threads);
  configure_blas(pool->size());
  return pool;
}

// Replaced whole by set_num_threads: a pool's size is fixed for its workers' lifetime.
std::unique_ptr<Pool>& pool_slot() {
  static std::unique_ptr<Pool> slot = make_pool(configured_threads());
  return slot;
}

Pool& pool() { return *pool_slot(); }

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int threads) {
  FPI_CHECK(threads >= 1 && threads <= kMaxThreads, "set_num_threads: the thread count must be from 1 to ",
            kMaxThreads, ", got ", threads);
  FPI_CHECK(!in_parallel_region, "set_num_threads: called from inside a parallel region");
  if (threads == num_threads()) return;
  pool_slot().reset();
  pool_slot() = make_pool(threads);
}

GemmThreading gemm_threading() { return current_gemm_threading; }

void set_gemm_threading(GemmThreading mode) {
  FPI_CHECK(!in_parallel_region, "set_gemm_threading: called from inside a parallel region");
  current_gemm_threading = mode;
  configure_blas(num_threads());
}

void parallel_for_impl(std::int64_t begin, std::int64_t end, std::int64_t grain, RangeFn fn) {
  if (end <= begin) return;
  if (end - begin <= grain || in_parallel_region || num_threads() == 1) {
    fn(begin, end);
    return;
  }
  pool().run(begin, end, fn);
}

}  // namespace fpi::backend::cpu
