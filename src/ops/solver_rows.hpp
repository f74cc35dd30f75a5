// What the ops layer offers the fixed-point solver (src/fixed_point/solver.cpp) beyond
// include/fpi/ops.hpp: its per-row primitives (backend/solver_rows.hpp), checked and passed to the
// backend of the data's device, so the solver's loop runs there without naming the device. None is
// differentiable or recorded; the solver runs under NoGrad.
#pragma once

#include "backend/solver_rows.hpp"
#include "fpi/tensor.hpp"

namespace fpi::ops {

using backend::NormColumn;
using backend::SolverColumn;
using backend::SolverControl;

// One iteration's bookkeeping for every row; see Backend::solver_rows_step.
void solver_rows_step_(const Tensor& state, const Tensor& norms, const SolverControl& control);
// Anderson's weights (rows, h), float64, from the Gram matrices (rows, h, h) of any dtype; updates the
// state's SingularStreak. See Backend::anderson_weights.
Tensor anderson_weights(const Tensor& gram, const Tensor& state, int latest);
// dst[r] = src[r] where state[r, column] != 0, for dst and src (rows, …) of one dtype and device.
void copy_rows_where_(const Tensor& dst, const Tensor& src, const Tensor& state, int column);
// Whether the host may read `device`'s data every iteration for free (Backend::host_reads_are_free).
bool host_reads_are_free(Device device);

}  // namespace fpi::ops
