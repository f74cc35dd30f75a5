// CPU GEMM through OpenBLAS's CBLAS interface. OpenBLAS runs single-threaded (parallel.hpp says why);
// a large GEMM is shared out over fpi's pool instead: a batch by its matrices, one matrix by blocks of
// C's rows or columns, each block one BLAS call.
#include <cblas.h>

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
