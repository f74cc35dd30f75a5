// Example-based F1 and the threshold search on cases worked out by hand, including SPEN's 0/0 rule,
// the >= threshold rule, and the errors for malformed inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "fpi/data/metrics.hpp"

namespace fpi::data {
namespace {

// Example 0: T = {0, 1}, P = {0, 2} at 0.5 -> 2*1/(2+2) = 0.5.
// Example 1: T = {3},    P = {3}           -> 1.
// Example 2: T = {},     P = {}            -> 1 (SPEN's convention for 0/0).
// Example 3: T = {1},    P = {}            -> 0.
Tensor scores() {
  return from_vector<double>({0.9, 0.2, 0.7, 0.1,  //
                              0.4, 0.3, 0.0, 0.5,  //
                              0.1, 0.2, 0.3, 0.4,  //
                              0.0, 0.45, 0.0, 0.0},
                             {4, 4}, {.dtype = kFloat64});
}
Tensor targets() {
  return from_vector<double>({1, 1, 0, 0,  //
                              0, 0, 0, 1,  //
                              0, 0, 0, 0,  //
                              0, 1, 0, 0},
                             {4, 4}, {.dtype = kFloat64});
}

TEST(ExampleF1, HandComputedCases) {
  EXPECT_DOUBLE_EQ(example_f1(scores(), targets(), 0.5), (0.5 + 1.0 + 1.0 + 0.0) / 4);
  // At 0.4: P0 = {0, 2} (0.5), P1 = {0, 3} -> 2/3, P2 = {3} -> 0, P3 = {1} -> 1.
  EXPECT_DOUBLE_EQ(example_f1(scores(), targets(), 0.4), (0.5 + 2.0 / 3.0 + 0.0 + 1.0) / 4);
  // At 0: everything is predicted: 2*2/(4+2), 2/5, 0 (|T| = 0, |P| = 4), 2/5.
  EXPECT_DOUBLE_EQ(example_f1(scores(), targets(), 0.0), (4.0 / 6.0 + 0.4 + 0.0 + 0.4) / 4);
  EXPECT_DOUBLE_EQ(example_f1(targets(), targets(), 0.5), 1.0);
  EXPECT_DOUBLE_EQ(example_f1(scores().to(kFloat32), targets().to(kFloat32), 0.5), 0.625);
}

TEST(ExampleF1, BestThresholdSearchesTheGrid) {
  const std::vector<double> grid{0.0, 0.4, 0.5, 0.6};
  const ThresholdChoice best = best_threshold(scores(), targets(), grid);
  // 0 gives 0.3667, 0.4 gives 0.5417, 0.5 gives 0.625 and 0.6 gives (0.5 + 0 + 1 + 0) / 4 = 0.375.
  EXPECT_EQ(best.threshold, 0.5);
  EXPECT_DOUBLE_EQ(best.f1, 0.625);
  const std::vector<double> tied{0.46, 0.5, 0.55};
  EXPECT_EQ(best_threshold(scores(), targets(), tied).threshold, 0.46) << "the first of equal thresholds wins";
}

TEST(ExampleF1, GridGivesEachThresholdsF1InGridOrder) {
  const std::vector<double> grid{0.6, 0.0, 0.5, 0.4};
  const std::vector<double> f1 = example_f1_grid(scores(), targets(), grid);
  ASSERT_EQ(f1.size(), 4u);
  // The hand-computed values of HandComputedCases and BestThresholdSearchesTheGrid.
  EXPECT_DOUBLE_EQ(f1[0], (0.5 + 0.0 + 1.0 + 0.0) / 4);
  EXPECT_DOUBLE_EQ(f1[1], (4.0 / 6.0 + 0.4 + 0.0 + 0.4) / 4);
  EXPECT_DOUBLE_EQ(f1[2], 0.625);
  EXPECT_DOUBLE_EQ(f1[3], (0.5 + 2.0 / 3.0 + 0.0 + 1.0) / 4);
  EXPECT_TRUE(example_f1_grid(scores(), targets(), std::vector<double>{}).empty());
}

TEST(ExampleF1, BestThresholdOfComputedValuesIsTheFirstArgmax) {
  const std::vector<double> grid{0.1, 0.2, 0.3, 0.4};
  const ThresholdChoice best = best_threshold(grid, std::vector<double>{0.25, 0.5, 0.5, 0.125});
  EXPECT_EQ(best.threshold, 0.2);
  EXPECT_EQ(best.f1, 0.5);
  EXPECT_EQ(best_threshold(grid, std::vector<double>{0.0, 0.0, 0.0, 0.0}).threshold, 0.1);
  EXPECT_THROW(best_threshold(grid, std::vector<double>{0.5}), Error);
  EXPECT_THROW(best_threshold(std::vector<double>{}, std::vector<double>{}), Error);
}

TEST(ExampleF1, SpenGrid) {
  const std::vector<double> grid = spen_threshold_grid();
  ASSERT_EQ(grid.size(), 20u);
  EXPECT_EQ(grid[0], 0.0);
  EXPECT_EQ(grid[5], 0.05);
  EXPECT_EQ(grid[6], 0.10);
  EXPECT_EQ(grid[7], 0.15);
  EXPECT_EQ(grid.back(), 0.75);
}

TEST(ExampleF1, RejectsMalformedInputs) {
  EXPECT_THROW(example_f1(scores(), zeros({4, 3}, {.dtype = kFloat64})), Error);
  EXPECT_THROW(example_f1(scores().reshape({16}), targets().reshape({16})), Error);
  EXPECT_THROW(example_f1(zeros({0, 4}), zeros({0, 4})), Error);
  try {
    example_f1(scores(), full({4, 4}, 0.5, {.dtype = kFloat64}));
    ADD_FAILURE() << "targets of 0.5 were accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "example_f1: target (0, 0) is 0.5; targets must be 0 or 1");
  }
  const Tensor nan_scores = full({1, 2}, std::nan(""), {.dtype = kFloat64});
  EXPECT_THROW(example_f1(nan_scores, zeros({1, 2}, {.dtype = kFloat64})), Error);
  EXPECT_THROW(best_threshold(scores(), targets(), std::vector<double>{}), Error);
}

}  // namespace
}  // namespace fpi::data
