// CPU GEMM through OpenBLAS's CBLAS interface. OpenBLAS runs single-threaded (parallel.hpp says why);
// a large GEMM is shared out over fpi's pool instead: a batch by its matrices, one matrix by blocks of
// C's rows or columns, each block one BLAS call. A GEMM of a few outputs over a long reduction is a few
// dot products instead.
#include <cblas.h>

#include <type_traits>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"

namespace fpi::backend::cpu {
namespace {

// Multiply-adds below which waking the pool (tens of microseconds) costs more than it saves.
constexpr std::int64_t kSplitWork = std::int64_t{1} << 18;
// Blocks are whole multiples of this many rows or columns, so that every block but the last fills
// OpenBLAS's register tiles (at most 16 wide in its x86-64 kernels).
constexpr std::int64_t kBlockAlign = 16;

struct Operands {
  CBLAS_TRANSPOSE ta, tb;
  std::int64_t lda, ldb, ldc;
};

// C[rows, cols] of matrix i of the batch; k is never cut. Float64 blocks are bit-identical to one call;
// float32 ones are not, since OpenBLAS's sgemm result for an element depends on the call's shape, but
// they are repeatable at a fixed thread count (tests/backend/test_gemm_split.cpp checks both).
void call_blas(const GemmDesc& g, const Operands& o, std::int64_t i, std::int64_t row0, std::int64_t rows,
               std::int64_t col0, std::int64_t cols) {
  if (rows == 0 || cols == 0) return;
  const std::int64_t a_offset = i * g.stride_a + (g.trans_a ? row0 : row0 * o.lda);
  const std::int64_t b_offset = i * g.stride_b + (g.trans_b ? col0 * o.ldb : col0);
  const std::int64_t c_offset = i * g.stride_c + row0 * o.ldc + col0;
  if (g.dtype == DType::Float32) {
    cblas_sgemm(CblasRowMajor, o.ta, o.tb, rows, cols, g.k, static_cast<float>(g.alpha),
                static_cast<const float*>(g.a) + a_offset, o.lda, static_cast<const float*>(g.b) + b_offset, o.ldb,
                static_cast<float>(g.beta), static_cast<float*>(g.c) + c_offset, o.ldc);
  } else {
    cblas_dgemm(CblasRowMajor, o.ta, o.tb, rows, cols, g.k, g.alpha, static_cast<const double*>(g.a) + a_offset,
                o.lda, static_cast<const double*>(g.b) + b_offset, o.ldb, g.beta,
                static_cast<double*>(g.c) + c_offset, o.ldc);
  }
}

// A product with a handful of outputs and a long reduction, both operands contiguous along it, is that
// many dot products. OpenBLAS's sgemm packs both operands block by block of k and runs its register
// tile mostly empty there: Anderson's Gram matrix of 3 residuals of a batch (3 x 3 from rows of 65,536)
// took 840 µs as one sgemm and 83 µs as 9 sdot calls, and 5 x 5 took 789 µs against 270 µs (one thread,
// this VM); at 8 x 8 the dots lose (518 against 775 µs), hence the limit on the outputs.
constexpr std::int64_t kMaxDotOutputs = 32;

bool is_dot_shaped(const GemmDesc& g) { return !g.trans_a && g.trans_b && g.m * g.n <= kMaxDotOutputs; }

template <class T>
void gemm_by_dots(const GemmDesc& g, const Operands& o) {
  const T alpha = static_cast<T>(g.alpha), beta = static_cast<T>(g.beta);
  for (std::int64_t i = 0; i < g.batch; ++i) {
    const T* a = static_cast<const T*>(g.a) + i * g.stride_a;
    const T* b = static_cast<const T*>(g.b) + i * g.stride_b;
    T* c = static_cast<T*>(g.c) + i * g.stride_c;
    for (std::int64_t r = 0; r < g.m; ++r) {
      for (std::int64_t col = 0; col < g.n; ++col) {
        const T* x = a + r * o.lda;
        const T* y = b + col * o.ldb;
        T dot;
        if constexpr (std::is_same_v<T, float>)
          dot = cblas_sdot(static_cast<blasint>(g.k), x, 1, y, 1);
        else
          dot = cblas_ddot(static_cast<blasint>(g.k), x, 1, y, 1);
        T& out = c[r * o.ldc + col];
        // beta 0 must not read C, which may hold anything (NaN included), as BLAS does not.
        out = beta == T(0) ? alpha * dot : alpha * dot + beta * out;
      }
    }
  }
}

// Block p of `parts` over [0, size), cut at multiples of kBlockAlign.
std::int64_t block_start(std::int64_t size, std::int64_t parts, std::int64_t p) {
  if (p >= parts) return size;
  const std::int64_t blocks = (size + kBlockAlign - 1) / kBlockAlign;
  return std::min(size, blocks * p / parts * kBlockAlign);
}

}  // namespace

void CpuBackend::gemm(const GemmDesc& g) {
  if (g.m == 0 || g.n == 0) return;
  // BLAS rejects leading dimensions below the row length even when a matrix has one row.
  const Operands o{g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
                   std::max<std::int64_t>(g.lda, std::max<std::int64_t>(1, g.trans_a ? g.m : g.k)),
                   std::max<std::int64_t>(g.ldb, std::max<std::int64_t>(1, g.trans_b ? g.k : g.n)),
                   std::max<std::int64_t>(g.ldc, std::max<std::int64_t>(1, g.n))};
  if (is_dot_shaped(g)) {
    if (g.dtype == DType::Float32)
      gemm_by_dots<float>(g, o);
    else
      gemm_by_dots<double>(g, o);
    return;
  }
  const std::int64_t threads = num_threads();
  const bool split = gemm_threading() == GemmThreading::Pool && threads > 1 && g.m * g.n * g.k * g.batch >= kSplitWork;
  if (!split) {
    for (std::int64_t i = 0; i < g.batch; ++i) call_blas(g, o, i, 0, g.m, 0, g.n);
    return;
  }
  // Matrices of a batch that write distinct outputs go to different threads whole.
  if (g.batch >= threads && g.stride_c != 0) {
    parallel_for(0, g.batch, 0, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) call_blas(g, o, i, 0, g.m, 0, g.n);
    });
    return;
  }
  // Each thread packs its own copy of the operand the blocks share, so cut along the longer side of
  // C: blocks of columns share A (m x k), blocks of rows share B (k x n).
  const bool by_columns = g.n >= g.m;
  const std::int64_t size = by_columns ? g.n : g.m;
  const std::int64_t parts = std::min(threads, (size + kBlockAlign - 1) / kBlockAlign);
  for (std::int64_t i = 0; i < g.batch; ++i) {
    parallel_for(0, parts, 0, [&](std::int64_t begin, std::int64_t end) {
      const std::int64_t from = block_start(size, parts, begin), to = block_start(size, parts, end);
      if (by_columns)
        call_blas(g, o, i, 0, g.m, from, to - from);
      else
        call_blas(g, o, i, from, to - from, 0, g.n);
    });
  }
}

}  // namespace fpi::backend::cpu
