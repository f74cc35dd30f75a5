// The CPU pool's size from code (fpi::set_num_threads): results do not depend on it, and a count
// below one is refused. The pool's hand-off (src/backend/cpu/parallel.cpp): threads poll briefly for the
// next job before they sleep, and every region, whichever way its threads found it, covers its range once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "backend/cpu/parallel.hpp"
#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;

// Runs one region over [0, size) with the smallest grain and checks that each index was visited once.
void expect_each_index_once(std::int64_t size) {
  std::vector<std::atomic<int>> visits(static_cast<std::size_t>(size));
  fpi::backend::cpu::parallel_for(0, size, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) visits[static_cast<std::size_t>(i)].fetch_add(1);
  });
  for (std::int64_t i = 0; i < size; ++i) ASSERT_EQ(visits[static_cast<std::size_t>(i)].load(), 1) << "index " << i;
}

TEST(Threads, ResizingThePoolKeepsEveryResult) {
  const int before = fpi::num_threads();
  fpi::Generator gen(3);
  // Large enough that the element-wise loop and the reduction are split between threads.
  const Tensor x = fpi::randn({512, 1024}, {.dtype = fpi::kFloat64}, &gen);
  const auto compute = [&] { return fpi::sum(fpi::tanh(x) * 2.0 + 1.0, {1}).to_vector<double>(); };
  const auto reference = compute();
  for (int threads : {1, 3, before}) {
    fpi::set_num_threads(threads);
    EXPECT_EQ(fpi::num_threads(), threads);
    EXPECT_EQ(compute(), reference) << "with " << threads << " threads";
  }
}

// Regions back to back are taken by threads still polling; pauses longer than the polling budget
// (tens of microseconds) make them sleep first, and a slow chunk makes the caller sleep on the rest.
TEST(Threads, RegionsCoverTheirRangeOnceWhetherThreadsPollOrSleep) {
  const int before = fpi::num_threads();
  fpi::set_num_threads(3);
  for (int region = 0; region < 3000; ++region) {
    expect_each_index_once(2 + region % 61);
    if (region % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::atomic<int> slow_chunks = 0;
  fpi::backend::cpu::parallel_for(0, 3, 1, [&](std::int64_t begin, std::int64_t) {
    if (begin == 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    slow_chunks.fetch_add(1);
  });
  EXPECT_EQ(slow_chunks.load(), 3);
  fpi::set_num_threads(before);
}

// Replacing the pool just after a region ends joins workers that are still polling for the next one.
TEST(Threads, ThePoolCanBeReplacedWhileItsWorkersPoll) {
  const int before = fpi::num_threads();
  for (int round = 0; round < 200; ++round) {
    fpi::set_num_threads(2 + round % 2);
    expect_each_index_once(64);
  }
  fpi::set_num_threads(before);
}

TEST(Threads, ACountBelowOneIsRefused) {
  const int before = fpi::num_threads();
  EXPECT_THROW(fpi::set_num_threads(0), fpi::Error);
  EXPECT_EQ(fpi::num_threads(), before);
}

}  // namespace
