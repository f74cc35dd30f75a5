// Launchers of the fixed-point solver's kernels (kernels/solver_rows.cu): one thread per row runs the
// shared per-row formulas of backend/solver_rows.hpp, the same code the CPU backend loops over.
#pragma once

#include <cstdint>

#include "backend/solver_rows.hpp"

namespace fpi::backend::cuda {

// state (rows, SolverColumn::Count) and norms (rows, NormColumn::Count), contiguous float64.
void launch_solver_rows_step(std::int64_t rows, double* state, const double* norms, const SolverControl& control);
// gram (rows, h, h) overwritten, weights (rows, h) written, state as above; all contiguous float64.
void launch_anderson_weights(std::int64_t rows, int h, int latest, double* gram, double* weights, double* state);
// dst[r, :] = src[r, :] where mask[r * mask_stride] != 0, for rows × width contiguous elements.
template <class T>
void launch_copy_rows_where(std::int64_t rows, std::int64_t width, T* dst, const T* src, const double* mask,
                            std::int64_t mask_stride);

}  // namespace fpi::backend::cuda
