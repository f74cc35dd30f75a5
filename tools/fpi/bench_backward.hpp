// The `backward` experiment of `fpi bench paper`: the paper's memory argument (Sections 3.2-3.3) measured. One
// forward + backward pass of the Bibtex FPI_NN layer is forced to exactly N forward iterations, and the
// implicit backward (one node on the tape, its own backward FPI) is compared with the unrolled one (every
// iteration on the tape) in time and in the allocator's peak bytes in use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fpi/core.hpp"
#include "fpi/fixed_point.hpp"

namespace fpi_cli::bench {

// The layer g(x, z) = sigmoid(fc2(relu(fc1(concat(z, x))))) on random data of its shape: the paper's Bibtex
// sizes by default.
struct BackwardSetup {
  std::int64_t batch = 40;
  std::int64_t features = 1995;
  std::int64_t hidden = 600;
  std::int64_t labels = 159;
  std::vector<int> iterations = {10, 100, 1000};
  int repeats = 3;
  fpi::Device device = fpi::kCPU;
  std::uint64_t seed = 0;
};

// One backward mode at one forward iteration count.
struct BackwardPoint {
  std::string mode;                // "implicit" or "unrolled"
  int iterations = 0;              // the forward iterations every sample took (checked)
  std::size_t baseline_bytes = 0;  // in use when the pass started: parameters and data
  std::size_t peak_bytes = 0;      // the allocator's peak in use during the pass, the largest over the repeats
  std::int64_t tape_nodes = 0;     // nodes reachable from the loss before its backward
  std::vector<double> seconds;     // forward + backward, per repeat
  fpi::SolveStats forward, backward;  // the last repeat's solves; backward.ran is false for unrolled

  double median_seconds() const;
};

const char* mode_name(fpi::FixedPointBackward mode);

// `setup.repeats` passes of one mode; fails naming the point when a sample did not take exactly
// `iterations` forward iterations.
BackwardPoint measure_backward(const BackwardSetup& setup, fpi::FixedPointBackward mode, int iterations);

// Every iteration count of the setup, implicit then unrolled at each; `progress` hears of each point before
// it runs.
std::vector<BackwardPoint> run_backward(const BackwardSetup& setup,
                                        const std::function<void(const std::string&)>& progress);

}  // namespace fpi_cli::bench
