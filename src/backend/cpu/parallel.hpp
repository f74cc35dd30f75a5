// A small fork-join pool for the CPU backend's element-wise loops. Workers sleep on a condition
// variable between jobs rather than spin, so they do not steal cycles from OpenBLAS's own threads.
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
void set_num_threads(int threads);

// Calls fn on disjoint chunks covering [begin, end); runs inline when the range is below `grain`
// or a parallel region is already active.
void parallel_for_impl(std::int64_t begin, std::int64_t end, std::int64_t grain, RangeFn fn);

template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, F&& fn) {
  parallel_for_impl(begin, end, grain, RangeFn(fn));
}

}  // namespace fpi::backend::cpu
