// Opens cuBLAS at its first use and keeps one handle per device (see cublas.hpp for why it is not linked).
#include "backend/cuda/cublas.hpp"

#include <dlfcn.h>

#include <string>

#include "backend/cuda/device.hpp"
#include "fpi/core.hpp"

namespace fpi::backend::cuda {
namespace {

template <class F>
void resolve(void* library, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(library, name));
  FPI_CHECK(f, "cuda: the loaded cuBLAS has no ", name);
}

// By soname first (LD_LIBRARY_PATH, the program's RUNPATH, the system's library folders), then
// where CMake found cuBLAS when fpi was built.
Blas load_blas() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) library = dlopen(FPI_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  FPI_CHECK(library, "cuda: cannot load cuBLAS (", soname, ", or ", FPI_CUBLAS_LIBRARY, "): ", dlerror(),
            "; put the CUDA Toolkit's library folder on LD_LIBRARY_PATH");
  Blas b;
  resolve(library, "cublasCreate_v2", b.create);
  resolve(library, "cublasGetStatusString", b.status_string);
  resolve(library, "cublasSgemm_v2", b.sgemm);
  resolve(library, "cublasDgemm_v2", b.dgemm);
  resolve(library, "cublasSgemmStridedBatched", b.sgemm_batched);
  resolve(library, "cublasDgemmStridedBatched", b.dgemm_batched);
  resolve(library, "cublasSgetrfBatched", b.sgetrf_batched);
  resolve(library, "cublasDgetrfBatched", b.dgetrf_batched);
  resolve(library, "cublasSgetrsBatched", b.sgetrs_batched);
  resolve(library, "cublasDgetrsBatched", b.dgetrs_batched);
  return b;
}

struct BlasHandle {
  explicit BlasHandle(int) { FPI_CUBLAS_CHECK(blas().create(&handle)); }
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  cublasHandle_t handle = nullptr;
};

}  // namespace

const Blas& blas() {
  static const Blas b = load_blas();
  return b;
}

cublasHandle_t blas_handle(int index) { return per_device<BlasHandle>(index).handle; }

}  // namespace fpi::backend::cuda
