// A small fork-join pool for the CPU backend's loops and GEMMs. Between jobs, workers poll for at most
// tens of microseconds (parallel.cpp says why) and then sleep on a condition variable. It is the only
// pool that runs: OpenBLAS is kept single-threaded and gemm.cpp splits a large GEMM into one BLAS call
// per thread, because OpenBLAS's own idle threads busy-wait with sched_yield after every call and took
// the cores from the loops that followed.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

namespace fpi::backend::cpu {

// A non-owning reference to a callable taking (begin, end): no allocation per parallel region.
class RangeFn {
 public:
  template <class F>
  RangeFn(F& f) : object_(&f), call_(&invoke<F>) {}  // NOLINT(google-explicit-constructor)
  void operator()(std::int64_t begin, std::int64_t end) const { call_(object_, begin, end); }

 private:
  template <class F>
  static void invoke(void* object, std::int64_t begin, std::int64_t end) {
    (*static_cast<F*>(object))(begin, end);
  }
  void* object_;
  void (*call_)(void*, std::int64_t, std::int64_t);
};

int num_threads();
// Also sets OpenBLAS's thread count, as the GEMM threading below needs it.
void set_num_threads(int threads);

// Who runs a GEMM's threads. Pool, the default: OpenBLAS single-threaded, fpi's pool splits the GEMM.
// OpenBlas: whole GEMMs go to OpenBLAS with as many threads as fpi's pool (fpi's behaviour before);
// kept so tools/bench/threads.cpp can measure both in one process. Call it between operations.
enum class GemmThreading { Pool, OpenBlas };
GemmThreading gemm_threading();
void set_gemm_threading(GemmThreading mode);

// Calls fn on disjoint chunks covering [begin, end); runs inline when the range is below `grain`
// or a parallel region is already active.
void parallel_for_impl(std::int64_t begin, std::int64_t end, std::int64_t grain, RangeFn fn);

template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& fn) {
  parallel_for_impl(begin, end, grain, RangeFn(fn));
}

}  // namespace fpi::backend::cpu
