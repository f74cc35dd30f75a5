// What the linear-algebra ops (linalg.cpp) offer fpi's own layers beyond include/fpi/ops.hpp: a solve
// that hands its singular systems back instead of raising, for a caller that can say more about them
// (the FPI layer's exact backward names its layer and sample).
#pragma once

#include <cstdint>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::ops {

struct SolveReport {
  Tensor x;                              // fpi::solve(a, b), recorded alike; unspecified where singular
  std::vector<std::int64_t> singular;    // row-major indices into the broadcast batch shape, ascending
};

SolveReport solve_reporting_singular(const Tensor& a, const Tensor& b);

}  // namespace fpi::ops
