// Checks for every CUDA runtime call: a failure throws fpi::Error naming the call, the file and line,
// and the runtime's own description of the error. cuBLAS and cuDNN calls are checked the same way
// through throw_library_error (cublas.hpp, conv.cpp). Light on purpose: kernels/*.cu include it.
#pragma once

#include <cuda_runtime_api.h>

namespace fpi::backend::cuda {

[[noreturn]] void throw_library_error(const char* library, const char* description, const char* call,
                                      const char* file, int line);

inline void check_runtime(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  // A failed call also leaves its error as the thread's "last error"; clear it so the next launch
  // check does not report this one a second time.
  cudaGetLastError();
  throw_library_error("CUDA", cudaGetErrorString(status), call, file, line);
}

}  // namespace fpi::backend::cuda

#define FPI_CUDA_CHECK(call) ::fpi::backend::cuda::check_runtime((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration (errors inside the kernel surface at the
// next synchronizing call).
#define FPI_CUDA_CHECK_LAUNCH() FPI_CUDA_CHECK(cudaGetLastError())
