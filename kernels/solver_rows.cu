// The fixed-point solver's per-row kernels. A batch has tens to thousands of rows and each row's work
// is a few dozen flops (an h × h elimination for Anderson, h <= ~10), so one thread per row is enough;
// what matters is that the loop never waits on the host.
#include "kernels/common.cuh"
#include "kernels/solver_rows.hpp"

namespace fpi::backend::cuda {
namespace {

__global__ void solver_rows_step_kernel(std::int64_t rows, double* state, const double* norms,
                                        SolverControl control) {
  for (std::int64_t r = global_thread(); r < rows; r += thread_count())
    solver_row_step(state + r * SolverColumn::Count, norms + r * NormColumn::Count, control);
}

__global__ void anderson_weights_kernel(std::int64_t rows, int h, int latest, double* gram, double* weights,
                                        double* state) {
  for (std::int64_t r = global_thread(); r < rows; r += thread_count())
    anderson_row(gram + r * h * h, weights + r * h, h, latest, state + r * SolverColumn::Count);
}

template <class T>
__global__ void copy_rows_where_kernel(std::int64_t rows, std::int64_t width, T* dst, const T* src,
                                       const double* mask, std::int64_t mask_stride) {
  const std::int64_t n = rows * width;
  for (std::int64_t i = global_thread(); i < n; i += thread_count())
    if (mask[(i / width) * mask_stride] != 0.0) dst[i] = src[i];
}

}  // namespace

void launch_solver_rows_step(std::int64_t rows, double* state, const double* norms, const SolverControl& control) {
  if (rows == 0) return;
  solver_rows_step_kernel<<<grid_for(rows), kBlockSize>>>(rows, state, norms, control);
  FPI_CUDA_CHECK_LAUNCH();
}

void launch_anderson_weights(std::int64_t rows, int h, int latest, double* gram, double* weights, double* state) {
  if (rows == 0 || h == 0) return;
  anderson_weights_kernel<<<grid_for(rows), kBlockSize>>>(rows, h, latest, gram, weights, state);
  FPI_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_copy_rows_where(std::int64_t rows, std::int64_t width, T* dst, const T* src, const double* mask,
                            std::int64_t mask_stride) {
  if (rows == 0 || width == 0) return;
  copy_rows_where_kernel<<<grid_for(rows * width), kBlockSize>>>(rows, width, dst, src, mask, mask_stride);
  FPI_CUDA_CHECK_LAUNCH();
}

template void launch_copy_rows_where<float>(std::int64_t, std::int64_t, float*, const float*, const double*,
                                            std::int64_t);
template void launch_copy_rows_where<double>(std::int64_t, std::int64_t, double*, const double*, const double*,
                                             std::int64_t);

}  // namespace fpi::backend::cuda
