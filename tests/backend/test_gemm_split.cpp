// The CPU GEMM shared out over fpi's pool (src/backend/cpu/gemm.cpp) against one BLAS call, and fpi's
// thread count governing OpenBLAS's. A split cuts C into blocks of rows or columns (or a batch into
// matrices) and never the reduction over k. Float64 blocks are bit-identical to one call. Float32
// ones are not, because OpenBLAS's single-precision result for an element depends on the shape of
// the call it is part of (seen with plain cblas_sgemm calls cut at most columns, 16-aligned or not); they
// are bit-for-bit repeatable at a given thread count, which the trainer's exact resume needs, and
// within rounding of one call.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"
#include "fpi/device.hpp"

namespace {

using fpi::backend::GemmDesc;
using fpi::backend::cpu::GemmThreading;

struct Shape {
  std::int64_t m, n, k, batch;
  bool trans_a, trans_b;
  std::int64_t pad;  // extra elements in every leading dimension
  double beta;
};

// The Bibtex layer's shapes (forward, both gradients), shapes cut by rows and by columns, sizes that
// are no multiple of the 16-wide blocks, batches smaller and larger than the pool, padded strides.
const std::vector<Shape> kShapes = {
    {40, 600, 1995, 1, false, true, 0, 0.0}, {40, 1995, 600, 1, false, false, 0, 0.0},
    {600, 1995, 40, 1, true, false, 0, 1.0}, {1001, 37, 129, 1, false, false, 3, 0.5},
    {37, 1001, 129, 1, true, true, 1, 0.0},  {129, 257, 65, 2, true, false, 0, 1.0},
    {64, 80, 96, 5, false, true, 2, 0.25},   {17, 2049, 33, 1, false, false, 0, 0.0}};

constexpr double kAlpha = 0.75;

template <class T>
struct Problem {
  Shape s;
  std::int64_t lda, ldb, ldc, a_rows, b_rows;
  std::vector<T> a, b, c;

  explicit Problem(const Shape& shape) : s(shape) {
    a_rows = s.trans_a ? s.k : s.m;
    b_rows = s.trans_b ? s.n : s.k;
    lda = (s.trans_a ? s.m : s.k) + s.pad;
    ldb = (s.trans_b ? s.k : s.n) + s.pad;
    ldc = s.n + s.pad;
    std::mt19937_64 gen(11);
    std::uniform_real_distribution<double> uniform(-1, 1);
    const auto fill = [&](std::int64_t count) {
      std::vector<T> v(static_cast<std::size_t>(count));
      for (T& x : v) x = static_cast<T>(uniform(gen));
      return v;
    };
    a = fill(s.batch * a_rows * lda);
    b = fill(s.batch * b_rows * ldb);
    c = fill(s.batch * s.m * ldc);
  }
  T a_at(std::int64_t i, std::int64_t row, std::int64_t col) const {
    return a[i * a_rows * lda + (s.trans_a ? col * lda + row : row * lda + col)];
  }
  T b_at(std::int64_t i, std::int64_t row, std::int64_t col) const {
    return b[i * b_rows * ldb + (s.trans_b ? col * ldb + row : row * ldb + col)];
  }

  // C after the GEMM with the pool at `threads`.
  std::vector<T> run(int threads) const {
    fpi::set_num_threads(threads);
    std::vector<T> out = c;
    GemmDesc g;
    g.dtype = sizeof(T) == 4 ? fpi::DType::Float32 : fpi::DType::Float64;
    g.trans_a = s.trans_a;
    g.trans_b = s.trans_b;
    g.m = s.m;
    g.n = s.n;
    g.k = s.k;
    g.alpha = kAlpha;
    g.beta = s.beta;
    g.a = a.data();
    g.lda = lda;
    g.stride_a = a_rows * lda;
    g.b = b.data();
    g.ldb = ldb;
    g.stride_b = b_rows * ldb;
    g.c = out.data();
    g.ldc = ldc;
    g.stride_c = s.m * ldc;
    g.batch = s.batch;
    fpi::backend::cpu::cpu_backend().gemm(g);
    return out;
  }

  // The rounding bound of one element computed two ways: each is within k eps (alpha sum |a b| +
  // |beta c|) of the exact value.
  std::vector<double> tolerance() const {
    std::vector<double> bound(c.size(), 0.0);
    const double eps = std::numeric_limits<T>::epsilon();
    for (std::int64_t i = 0; i < s.batch; ++i)
      for (std::int64_t r = 0; r < s.m; ++r)
        for (std::int64_t col = 0; col < s.n; ++col) {
          double magnitude = 0;
          for (std::int64_t j = 0; j < s.k; ++j) magnitude += std::abs(double(a_at(i, r, j)) * b_at(i, j, col));
          const std::size_t at = static_cast<std::size_t>(i * s.m * ldc + r * ldc + col);
          bound[at] = 2.0 * static_cast<double>(s.k + 2) * eps * (kAlpha * magnitude + std::abs(s.beta * c[at]));
        }
    return bound;
  }
};

std::string describe(const Shape& s, int threads) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) + " batch " +
         std::to_string(s.batch) + (s.trans_a ? " A^T" : "") + (s.trans_b ? " B^T" : "") + " with " +
         std::to_string(threads) + " threads";
}

TEST(GemmSplit, Float64BlocksMatchOneBlasCallBitForBit) {
  const int before = fpi::num_threads();
  for (const Shape& s : kShapes) {
    const Problem<double> p(s);
    const std::vector<double> one_call = p.run(1);
    for (int threads : {2, 3, 4}) {
      const std::vector<double> split = p.run(threads);
      EXPECT_EQ(std::memcmp(split.data(), one_call.data(), split.size() * sizeof(double)), 0) << describe(s, threads);
    }
  }
  fpi::set_num_threads(before);
}

TEST(GemmSplit, Float32BlocksAreRepeatableAndWithinRoundingOfOneCall) {
  const int before = fpi::num_threads();
  for (const Shape& s : kShapes) {
    const Problem<float> p(s);
    const std::vector<float> one_call = p.run(1);
    const std::vector<double> bound = p.tolerance();
    for (int threads : {2, 3, 4}) {
      const std::vector<float> split = p.run(threads), again = p.run(threads);
      EXPECT_EQ(std::memcmp(split.data(), again.data(), split.size() * sizeof(float)), 0) << describe(s, threads);
      std::size_t outside = 0;
      for (std::size_t i = 0; i < split.size(); ++i) outside += std::abs(double(split[i]) - one_call[i]) > bound[i];
      EXPECT_EQ(outside, 0u) << describe(s, threads);
    }
  }
  fpi::set_num_threads(before);
}

// The padding between C's rows is not C: no block writes there.
TEST(GemmSplit, BlocksWriteNothingOutsideC) {
  const int before = fpi::num_threads();
  const Problem<double> p({1001, 37, 129, 1, false, false, 3, 0.5});
  const std::vector<double> split = p.run(2);
  for (std::int64_t r = 0; r < p.s.m; ++r)
    for (std::int64_t col = p.s.n; col < p.ldc; ++col) {
      const auto at = static_cast<std::size_t>(r * p.ldc + col);
      ASSERT_EQ(split[at], p.c[at]) << "row " << r << " padding column " << col;
    }
  fpi::set_num_threads(before);
}

// OpenBLAS's own threads (the GemmThreading::OpenBlas mode) compute the same product, within rounding.
TEST(GemmSplit, OpenBlasThreadingComputesTheSameProduct) {
  const int before = fpi::num_threads();
  const Problem<double> p({40, 600, 1995, 1, false, true, 0, 0.0});
  const std::vector<double> pool = p.run(2), bound = p.tolerance();
  fpi::backend::cpu::set_gemm_threading(GemmThreading::OpenBlas);
  const std::vector<double> blas = p.run(2);
  fpi::backend::cpu::set_gemm_threading(GemmThreading::Pool);
  for (std::size_t i = 0; i < pool.size(); ++i) ASSERT_LE(std::abs(pool[i] - blas[i]), bound[i]) << "element " << i;
  fpi::set_num_threads(before);
}

TEST(GemmSplit, TheThreadCountGovernsOpenBlas) {
  const int before = fpi::num_threads();
  fpi::set_num_threads(3);
  EXPECT_EQ(openblas_get_num_threads(), 1) << "the pool splits GEMMs, so OpenBLAS must not start its own threads";
  fpi::backend::cpu::set_gemm_threading(GemmThreading::OpenBlas);
  EXPECT_EQ(openblas_get_num_threads(), 3);
  fpi::set_num_threads(2);
  EXPECT_EQ(openblas_get_num_threads(), 2);
  fpi::backend::cpu::set_gemm_threading(GemmThreading::Pool);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  fpi::set_num_threads(before);
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

}  // namespace
