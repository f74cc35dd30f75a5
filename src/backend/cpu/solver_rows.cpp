// The fixed-point solver's primitives on the CPU: loops over rows of the shared per-row formulas
// (backend/solver_rows.hpp). Rows are few (a batch) and each costs a few dozen flops, so they run on
// the calling thread; waking the pool would cost more.
#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.hpp"

namespace fpi::backend::cpu {

void CpuBackend::solver_rows_step(const Tensor& state, const Tensor& norms, const SolverControl& control) {
  auto* s = static_cast<double*>(state.raw_data());
  const auto* n = static_cast<const double*>(norms.raw_data());
  for (std::int64_t r = 0; r < state.size(0); ++r)
    solver_row_step(s + r * SolverColumn::Count, n + r * NormColumn::Count, control);
}

void CpuBackend::anderson_weights(const Tensor& gram, const Tensor& weights, const Tensor& state, int latest) {
  const int h = static_cast<int>(gram.size(1));
  auto* H = static_cast<double*>(gram.raw_data());
  auto* w = static_cast<double*>(weights.raw_data());
  auto* s = static_cast<double*>(state.raw_data());
  for (std::int64_t r = 0; r < gram.size(0); ++r)
    anderson_row(H + r * h * h, w + r * h, h, latest, s + r * SolverColumn::Count);
}

void CpuBackend::copy_rows_where(const Tensor& dst, const Tensor& src, const Tensor& mask) {
  const std::int64_t rows = dst.size(0), row_bytes = dst.numel() / std::max<std::int64_t>(rows, 1) *
                                                     static_cast<std::int64_t>(dtype_size(dst.dtype()));
  if (rows == 0 || row_bytes == 0) return;
  auto* d = static_cast<char*>(dst.raw_data());
  const auto* from = static_cast<const char*>(src.raw_data());
  const auto* m = static_cast<const double*>(mask.raw_data());
  const std::int64_t stride = mask.strides()[0];
  for (std::int64_t r = 0; r < rows; ++r)
    if (m[r * stride] != 0.0) std::memcpy(d + r * row_bytes, from + r * row_bytes, row_bytes);
}

}  // namespace fpi::backend::cpu
