// CUDA batched dense solve through cuBLAS: getrfBatched factors every matrix (LU with partial pivoting,
// as LAPACK's ?gesv on the CPU), getrsBatched solves with the factors. The operands are already in
// cuBLAS's column-major layout (Backend::solve), so the calls take them as they are.
#include <climits>
#include <vector>

#include "backend/cuda/cublas.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"

namespace fpi::backend::cuda {
namespace {

int as_int(std::int64_t v, const char* what) {
  FPI_CHECK(v <= INT_MAX, "cuda solve: ", what, " = ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

// The batched calls take the address of every matrix, in device memory: `addresses` receives the
// factors' first, then the right-hand sides'.
template <class T>
void write_addresses(const Tensor& lu, const Tensor& rhs, std::int64_t batch, const Storage& addresses) {
  const std::int64_t n = lu.size(1), k = rhs.size(1);
  std::vector<T*> host(2 * batch);
  for (std::int64_t i = 0; i < batch; ++i) {
    host[i] = static_cast<T*>(lu.raw_data()) + i * n * n;
    host[batch + i] = static_cast<T*>(rhs.raw_data()) + i * n * k;
  }
  count_host_wait(HostWait::Upload);
  FPI_CUDA_CHECK(cudaMemcpy(addresses.data(), host.data(), host.size() * sizeof(T*), cudaMemcpyHostToDevice));
}

}  // namespace

std::vector<std::int64_t> CudaBackend::solve(const Tensor& lu, const Tensor& rhs) {
  for (const Tensor* t : {&lu, &rhs})
    FPI_CHECK(t->device() == device(), "cuda solve: an operand on ", t->device().str(),
              " was given to the backend of ", device().str());
  std::vector<std::int64_t> singular;
  if (lu.size(0) == 0 || lu.size(1) == 0) return singular;
  DeviceGuard guard(index_);
  const int batch = as_int(lu.size(0), "batch"), n = as_int(lu.size(1), "n"), k = as_int(rhs.size(1), "k");
  const bool fp32 = lu.dtype() == DType::Float32;
  const Storage addresses(2 * static_cast<std::size_t>(batch) * sizeof(void*), device());
  if (fp32) {
    write_addresses<float>(lu, rhs, batch, addresses);
  } else {
    write_addresses<double>(lu, rhs, batch, addresses);
  }
  const Storage pivots(static_cast<std::size_t>(batch) * n * sizeof(int), device());
  const Storage infos(static_cast<std::size_t>(batch) * sizeof(int), device());
  auto* pivot = static_cast<int*>(pivots.data());
  auto* info = static_cast<int*>(infos.data());
  cublasHandle_t handle = blas_handle(index_);
  // getrsBatched checks its arguments only, on the host; a singular factor shows in getrf's info.
  int rejected = 0;
  if (fp32) {
    auto* const* a = static_cast<float**>(addresses.data());
    FPI_CUBLAS_CHECK(blas().sgetrf_batched(handle, n, a, n, pivot, info, batch));
    if (k > 0)
      FPI_CUBLAS_CHECK(blas().sgetrs_batched(handle, CUBLAS_OP_N, n, k, a, n, pivot, a + batch, n, &rejected, batch));
  } else {
    auto* const* a = static_cast<double**>(addresses.data());
    FPI_CUBLAS_CHECK(blas().dgetrf_batched(handle, n, a, n, pivot, info, batch));
    if (k > 0)
      FPI_CUBLAS_CHECK(blas().dgetrs_batched(handle, CUBLAS_OP_N, n, k, a, n, pivot, a + batch, n, &rejected, batch));
  }
  FPI_CHECK(rejected == 0, "cuda solve: internal error, cuBLAS getrsBatched rejected argument ", -rejected);
  std::vector<int> factored(batch);
  count_host_wait(HostWait::Download);
  FPI_CUDA_CHECK(cudaMemcpy(factored.data(), info, factored.size() * sizeof(int), cudaMemcpyDeviceToHost));
  for (int i = 0; i < batch; ++i) {
    FPI_CHECK(factored[i] >= 0, "cuda solve: internal error, cuBLAS getrfBatched rejected argument ", -factored[i]);
    if (factored[i] > 0) singular.push_back(i);
  }
  return singular;
}

}  // namespace fpi::backend::cuda
