// CUDA GEMM through cuBLAS. cuBLAS is column-major; a row-major matrix is the column-major view of its
// transpose, so C = op(A) op(B) (row-major) is computed as Cᵀ = op(B)ᵀ op(A)ᵀ (column-major): the
// operands swap places, m and n swap, and the leading dimensions and transpose flags stay as given.
// A batch is one strided-batched call (stride 0 broadcasts a matrix). FP32 products keep full FP32
// precision: cuBLAS's default math mode does not use TF32 unless asked to.
#include <algorithm>
#include <climits>

#include "backend/cuda/cublas.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"

namespace fpi::backend::cuda {
namespace {

int as_int(std::int64_t v, const char* what) {
  FPI_CHECK(v >= 0 && v <= INT_MAX, "cuda gemm: ", what, " = ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

}  // namespace

void CudaBackend::gemm(const GemmDesc& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  DeviceGuard guard(index_);
  cublasHandle_t handle = blas_handle(index_);
  // cuBLAS rejects leading dimensions below the stored row length even when a matrix has one row.
  const int lda = as_int(std::max<std::int64_t>(g.lda, std::max<std::int64_t>(1, g.trans_a ? g.m : g.k)), "lda");
  const int ldb = as_int(std::max<std::int64_t>(g.ldb, std::max<std::int64_t>(1, g.trans_b ? g.k : g.n)), "ldb");
  const int ldc = as_int(std::max<std::int64_t>(g.ldc, std::max<std::int64_t>(1, g.n)), "ldc");
  const int m = as_int(g.m, "m"), n = as_int(g.n, "n"), k = as_int(g.k, "k"), batch = as_int(g.batch, "batch");
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (g.dtype == DType::Float32) {
    const float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
    const auto* a = static_cast<const float*>(g.a);
    const auto* b = static_cast<const float*>(g.b);
    auto* c = static_cast<float*>(g.c);
    if (batch == 1) {
      FPI_CUBLAS_CHECK(blas().sgemm(handle, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
    } else {
      FPI_CUBLAS_CHECK(blas().sgemm_batched(handle, op_b, op_a, n, m, k, &alpha, b, ldb, g.stride_b, a, lda,
                                             g.stride_a, &beta, c, ldc, g.stride_c, batch));
    }
  } else {
    const double alpha = g.alpha, beta = g.beta;
    const auto* a = static_cast<const double*>(g.a);
    const auto* b = static_cast<const double*>(g.b);
    auto* c = static_cast<double*>(g.c);
    if (batch == 1) {
      FPI_CUBLAS_CHECK(blas().dgemm(handle, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
    } else {
      FPI_CUBLAS_CHECK(blas().dgemm_batched(handle, op_b, op_a, n, m, k, &alpha, b, ldb, g.stride_b, a, lda,
                                             g.stride_a, &beta, c, ldc, g.stride_c, batch));
    }
  }
}

}  // namespace fpi::backend::cuda
