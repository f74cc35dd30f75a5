// The fixed-point solver's primitives on the GPU (kernels/solver_rows.cu): the same per-row formulas
// as src/backend/cpu/solver_rows.cpp, queued on the device's stream like every other primitive, so a
// solver iteration never waits for the host.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"
#include "kernels/solver_rows.hpp"

namespace fpi::backend::cuda {
namespace {

void check_on(const Tensor& t, int index, const char* op) {
  FPI_CHECK(t.device() == fpi::cuda(index), "cuda ", op, ": an operand on ", t.device().str(),
            " was given to the backend of cuda:", index);
}

double* f64(const Tensor& t) { return static_cast<double*>(t.raw_data()); }

}  // namespace

void CudaBackend::solver_rows_step(const Tensor& state, const Tensor& norms, const SolverControl& control) {
  check_on(state, index_, "solver_rows_step");
  check_on(norms, index_, "solver_rows_step");
  DeviceGuard guard(index_);
  launch_solver_rows_step(state.size(0), f64(state), f64(norms), control);
}

void CudaBackend::anderson_weights(const Tensor& gram, const Tensor& weights, const Tensor& state, int latest) {
  for (const Tensor* t : {&gram, &weights, &state}) check_on(*t, index_, "anderson_weights");
  DeviceGuard guard(index_);
  launch_anderson_weights(gram.size(0), static_cast<int>(gram.size(1)), latest, f64(gram), f64(weights), f64(state));
}

void CudaBackend::copy_rows_where(const Tensor& dst, const Tensor& src, const Tensor& mask) {
  for (const Tensor* t : {&dst, &src, &mask}) check_on(*t, index_, "copy_rows_where");
  DeviceGuard guard(index_);
  const std::int64_t rows = dst.size(0), width = rows > 0 ? dst.numel() / rows : 0;
  const std::int64_t stride = mask.strides()[0];
  if (dst.dtype() == DType::Float32) {
    launch_copy_rows_where(rows, width, static_cast<float*>(dst.raw_data()),
                           static_cast<const float*>(src.raw_data()), f64(mask), stride);
  } else {
    launch_copy_rows_where(rows, width, f64(dst), static_cast<const double*>(src.raw_data()), f64(mask), stride);
  }
}

}  // namespace fpi::backend::cuda
