// CUDA GEMM through cuBLAS. cuBLAS is column-major; a row-major matrix is the column-major view of its
// transpose, so C = op(A) op(B) (row-major) is computed as Cᵀ = op(B)ᵀ op(A)ᵀ (column-major): the
// operands swap places, m and n swap, and the leading dimensions and transpose flags stay as given.
// A batch is one strided-batched call (stride 0 broadcasts a matrix). FP32 products keep full FP32
// precision: cuBLAS's default math mode does not use TF32 unless asked to.
//
// cuBLAS is opened on the first product instead of being linked: loading libcublas and its
// half-gigabyte libcublasLt costs a process about 1.5 s and 200 MB at start-up, which every program
// and every test process would pay whether or not it multiplies matrices on a GPU.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <string>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"

// The status text comes from the loaded library too.
#define FPI_CUBLAS_CHECK(call)                                                                                 \
  do {                                                                                                         \
    const cublasStatus_t fpi_status = (call);                                                                  \
    if (fpi_status != CUBLAS_STATUS_SUCCESS)                                                                   \
      ::fpi::backend::cuda::throw_library_error("cuBLAS", ::fpi::backend::cuda::blas().status_string(fpi_status), \
                                                #call, __FILE__, __LINE__);                                    \
  } while (0)

namespace fpi::backend::cuda {
namespace {

// The cuBLAS entry points fpi uses, resolved once from the library.
struct Blas {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasSgemm_v2) sgemm;
  decltype(&cublasDgemm_v2) dgemm;
  decltype(&cublasSgemmStridedBatched) sgemm_batched;
  decltype(&cublasDgemmStridedBatched) dgemm_batched;
};

template <class F>
void resolve(void* library, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(library, name));
  FPI_CHECK(f, "cuda gemm: the loaded cuBLAS has no ", name);
}

// By soname first (LD_LIBRARY_PATH, the program's RUNPATH, the system's library folders), then
// where CMake found cuBLAS when fpi was built.
Blas load_blas() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) library = dlopen(FPI_CUBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  FPI_CHECK(library, "cuda gemm: cannot load cuBLAS (", soname, ", or ", FPI_CUBLAS_LIBRARY, "): ", dlerror(),
            "; put the CUDA Toolkit's library folder on LD_LIBRARY_PATH");
  Blas b;
  resolve(library, "cublasCreate_v2", b.create);
  resolve(library, "cublasGetStatusString", b.status_string);
  resolve(library, "cublasSgemm_v2", b.sgemm);
  resolve(library, "cublasDgemm_v2", b.dgemm);
  resolve(library, "cublasSgemmStridedBatched", b.sgemm_batched);
  resolve(library, "cublasDgemmStridedBatched", b.dgemm_batched);
  return b;
}

const Blas& blas() {
  static const Blas b = load_blas();
  return b;
}

// One handle per device, made on the device's first product. It works on the legacy default stream.
struct BlasHandle {
  explicit BlasHandle(int) { FPI_CUBLAS_CHECK(blas().create(&handle)); }
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  cublasHandle_t handle = nullptr;
};

int as_int(std::int64_t v, const char* what) {
  FPI_CHECK(v >= 0 && v <= INT_MAX, "cuda gemm: ", what, " = ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

}  // namespace

void CudaBackend::gemm(const GemmDesc& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  DeviceGuard guard(index_);
  cublasHandle_t handle = per_device<BlasHandle>(index_).handle;
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
