// CPU batched dense solve through LAPACK's ?gesv, which OpenBLAS provides; a batch is a loop of single
// calls, as for GEMM.
#include <climits>

#include "backend/cpu/cpu_backend.hpp"

// OpenBLAS's LAPACK symbols; Debian installs no header that declares them on the default include path.
extern "C" {
void sgesv_(const int* n, const int* nrhs, float* a, const int* lda, int* ipiv, float* b, const int* ldb, int* info);
void dgesv_(const int* n, const int* nrhs, double* a, const int* lda, int* ipiv, double* b, const int* ldb,
            int* info);
}

namespace fpi::backend::cpu {
namespace {

int as_int(std::int64_t v, const char* what) {
  FPI_CHECK(v <= INT_MAX, "cpu solve: ", what, " = ", v, " exceeds LAPACK's 32-bit limit");
  return static_cast<int>(v);
}

}  // namespace

std::vector<std::int64_t> CpuBackend::solve(const Tensor& lu, const Tensor& rhs) {
  const std::int64_t batch = lu.size(0);
  const int n = as_int(lu.size(1), "n"), k = as_int(rhs.size(1), "k");
  std::vector<std::int64_t> singular;
  if (n == 0 || batch == 0) return singular;
  std::vector<int> pivots(n);
  for (std::int64_t i = 0; i < batch; ++i) {
    int info = 0;
    if (lu.dtype() == DType::Float32) {
      sgesv_(&n, &k, static_cast<float*>(lu.raw_data()) + i * n * n, &n, pivots.data(),
             static_cast<float*>(rhs.raw_data()) + i * n * k, &n, &info);
    } else {
      dgesv_(&n, &k, static_cast<double*>(lu.raw_data()) + i * n * n, &n, pivots.data(),
             static_cast<double*>(rhs.raw_data()) + i * n * k, &n, &info);
    }
    FPI_CHECK(info >= 0, "cpu solve: internal error, LAPACK ?gesv rejected argument ", -info);
    if (info > 0) singular.push_back(i);
  }
  return singular;
}

}  // namespace fpi::backend::cpu
