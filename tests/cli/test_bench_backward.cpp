// The measurement behind `fpi bench paper --only backward` (tools/fpi/bench_backward.cpp, compiled into
// fpi_tests too) at a small size: every sample takes exactly the forward iterations asked for, the implicit
// backward's peak memory and tape do not grow with them, and the unrolled backward's grow linearly. The
// allocator's figures are deterministic, so nothing here is timed.
#include <gtest/gtest.h>

#include "bench_backward.hpp"

namespace {

using fpi_cli::bench::BackwardPoint;
using fpi_cli::bench::BackwardSetup;

TEST(BenchBackward, ImplicitPeakIsFlatAndUnrolledGrowsLinearly) {
  const BackwardSetup setup{.batch = 4, .features = 24, .hidden = 16, .labels = 8, .iterations = {10, 100, 400},
                            .repeats = 2};
  std::vector<std::string> heard;
  const std::vector<BackwardPoint> points =
      fpi_cli::bench::run_backward(setup, [&](const std::string& what) { heard.push_back(what); });
  ASSERT_EQ(points.size(), 6u);
  ASSERT_EQ(heard.size(), 6u);
  EXPECT_EQ(heard[0], "implicit backward, 10 iterations");
  EXPECT_EQ(heard[5], "unrolled backward, 400 iterations");
  for (std::size_t i = 0; i < points.size(); ++i) {
    const BackwardPoint& p = points[i];
    SCOPED_TRACE(p.mode + " " + std::to_string(p.iterations));
    EXPECT_EQ(p.mode, i % 2 ? "unrolled" : "implicit");
    EXPECT_EQ(p.iterations, setup.iterations[i / 2]);
    EXPECT_EQ(p.forward.max_iterations(), p.iterations);
    EXPECT_DOUBLE_EQ(p.forward.mean_iterations(), p.iterations);
    EXPECT_EQ(p.seconds.size(), 2u);
    EXPECT_EQ(p.baseline_bytes, points[0].baseline_bytes);
    EXPECT_GT(p.peak_bytes, p.baseline_bytes);
    EXPECT_EQ(p.backward.ran, p.mode == "implicit");
  }
  const BackwardPoint &implicit10 = points[0], &implicit400 = points[4];
  const BackwardPoint &unrolled10 = points[1], &unrolled100 = points[3], &unrolled400 = points[5];
  // Implicit: one node for the whole solve, whatever the iteration count.
  EXPECT_EQ(implicit400.tape_nodes, implicit10.tape_nodes);
  EXPECT_LE(implicit400.peak_bytes, implicit10.peak_bytes + implicit10.peak_bytes / 20);
  // Unrolled: the same nodes and bytes per recorded iteration, from 10 to 100 and from 100 to 400.
  const std::int64_t nodes_early = unrolled100.tape_nodes - unrolled10.tape_nodes;
  const std::int64_t nodes_late = unrolled400.tape_nodes - unrolled100.tape_nodes;
  EXPECT_GT(nodes_early, 0);
  EXPECT_EQ(nodes_late * 90, nodes_early * 300);
  const double early = static_cast<double>(unrolled100.peak_bytes - unrolled10.peak_bytes) / 90.0;
  const double late = static_cast<double>(unrolled400.peak_bytes - unrolled100.peak_bytes) / 300.0;
  EXPECT_NEAR(late / early, 1.0, 0.1) << early << " and " << late << " bytes per iteration";
  // Each step keeps at least fc1's input, concat(z, x): batch x (features + labels) floats.
  EXPECT_GE(early, static_cast<double>(setup.batch * (setup.features + setup.labels) * 4));
  EXPECT_GT(unrolled400.peak_bytes, 10 * implicit400.peak_bytes);
}

}  // namespace
