// The CPU pool's size from code (fpi::set_num_threads): results do not depend on it, and a count
// below one is refused.
#include <gtest/gtest.h>

#include "fpi/device.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;

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

TEST(Threads, ACountBelowOneIsRefused) {
  const int before = fpi::num_threads();
  EXPECT_THROW(fpi::set_num_threads(0), fpi::Error);
  EXPECT_EQ(fpi::num_threads(), before);
}

}  // namespace
