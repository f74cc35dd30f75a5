// CPU GEMM through OpenBLAS's CBLAS interface; a batch is a loop of single calls.
#include <cblas.h>

#include "backend/cpu/cpu_backend.hpp"

namespace fpi::backend::cpu {

void CpuBackend::gemm(const GemmDesc& g) {
  if (g.m == 0 || g.n == 0) return;
  const auto ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = g.trans_b ? CblasTrans : CblasNoTrans;
  // BLAS rejects leading dimensions below the row length even when a matrix has one row.
  const auto lda = std::max<std::int64_t>(g.lda, std::max<std::int64_t>(1, g.trans_a ? g.m : g.k));
  const auto ldb = std::max<std::int64_t>(g.ldb, std::max<std::int64_t>(1, g.trans_b ? g.k : g.n));
  const auto ldc = std::max<std::int64_t>(g.ldc, std::max<std::int64_t>(1, g.n));
  for (std::int64_t i = 0; i < g.batch; ++i) {
    if (g.dtype == DType::Float32) {
      cblas_sgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, static_cast<float>(g.alpha),
                  static_cast<const float*>(g.a) + i * g.stride_a, lda,
                  static_cast<const float*>(g.b) + i * g.stride_b, ldb, static_cast<float>(g.beta),
                  static_cast<float*>(g.c) + i * g.stride_c, ldc);
    } else {
      cblas_dgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, g.alpha, static_cast<const double*>(g.a) + i * g.stride_a,
                  lda, static_cast<const double*>(g.b) + i * g.stride_b, ldb, g.beta,
                  static_cast<double*>(g.c) + i * g.stride_c, ldc);
    }
  }
}

}  // namespace fpi::backend::cpu
