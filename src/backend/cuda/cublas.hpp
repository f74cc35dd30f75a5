// cuBLAS for the CUDA backend's matrix products (gemm.cpp) and dense solves (solve.cpp): the library's
// entry points, the per-device handle, and the check for every call.
//
// cuBLAS is opened on its first use instead of being linked: loading libcublas and its half-gigabyte
// libcublasLt costs a process about 1.5 s and 200 MB at start-up, which every program and every test
// process would pay whether or not it uses a GPU.
#pragma once

#include <cublas_v2.h>

#include "backend/cuda/check.hpp"

namespace fpi::backend::cuda {

// The cuBLAS entry points fpi uses, resolved once from the library.
struct Blas {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasSgemm_v2) sgemm;
  decltype(&cublasDgemm_v2) dgemm;
  decltype(&cublasSgemmStridedBatched) sgemm_batched;
  decltype(&cublasDgemmStridedBatched) dgemm_batched;
  decltype(&cublasSgetrfBatched) sgetrf_batched;
  decltype(&cublasDgetrfBatched) dgetrf_batched;
  decltype(&cublasSgetrsBatched) sgetrs_batched;
  decltype(&cublasDgetrsBatched) dgetrs_batched;
};

// Loads cuBLAS on the first call; throws fpi::Error saying where it looked when it cannot.
const Blas& blas();

// Device `index`'s handle, made on the device's first use; `index` must be the current device. It
// works on the legacy default stream.
cublasHandle_t blas_handle(int index);

}  // namespace fpi::backend::cuda

// The status text comes from the loaded library too.
#define FPI_CUBLAS_CHECK(call)                                                                                 \
  do {                                                                                                         \
    const cublasStatus_t fpi_status = (call);                                                                  \
    if (fpi_status != CUBLAS_STATUS_SUCCESS)                                                                   \
      ::fpi::backend::cuda::throw_library_error("cuBLAS", ::fpi::backend::cuda::blas().status_string(fpi_status), \
                                                #call, __FILE__, __LINE__);                                    \
  } while (0)
