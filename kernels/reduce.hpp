// Launcher of the reduction kernels (kernels/reduce.cu). The host (src/backend/cuda/reduce.cpp)
// describes the folds (ReduceArgs) and chooses how threads share them (ReducePlan).
#pragma once

#include "backend/op_codes.hpp"
#include "kernels/strided.hpp"

namespace fpi::backend::cuda {

// Each block is threads_x * threads_y = 256 threads: threads_x threads share one fold, threads_y folds
// per block. With split > 1 every fold is cut into `split` parts reduced by different blocks into
// `partial` (outputs * split accumulators), and a second kernel combines the parts in order.
struct ReducePlan {
  int threads_x = 1;
  int threads_y = 256;
  int split = 1;
};

// Sums accumulate in double (as on the CPU); max and min in T. `partial` holds outputs * split
// accumulators of that type when split > 1 and may be null otherwise.
template <class T>
void launch_reduce(ReduceOp op, const ReduceArgs& args, const ReducePlan& plan, T* dst, const T* src, void* partial);

}  // namespace fpi::backend::cuda
