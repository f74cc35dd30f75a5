// The register-tiled multiply behind the CPU convolutions. One loop serves all three primitives:
//
//   acc[m][j] += sum_k  a[a_rows[m] + k]  *  b[b_rows[k] + j * lanes .. + lanes)
//
// with one row offset per output row (for the scalar broadcast) and one per reduction step (for the
// vector load). Offsets instead of strides let the same loop read a zero-padded image at shifted
// positions ("implicit GEMM": the 3x3 taps of a stride-1 convolution are offsets into one padded
// plane, so no im2col matrix is built), an im2col matrix, or a transposed gradient.
//
// Written with GCC vector extensions rather than calling BLAS: OpenBLAS 0.3.21 does not recognise
// newer CPUs and runs its AVX2 "Haswell" kernel on the Zen 5 machines here, which reaches about
// 190 GFLOP/s on two threads for a convolution's product, against about 400 for AVX-512 FMA. The
// vector width and the tile sizes follow the instruction set the library is compiled for
// (FPI_NATIVE); the tile alone runs at the FMA peak when its operands are in L1.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fpi::backend::cpu::conv {

#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
inline constexpr int kAccumulators = 24;  // of 32 vector registers, leaving room for loads
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
inline constexpr int kAccumulators = 12;  // of 16
#else
inline constexpr int kVectorBytes = 16;
inline constexpr int kAccumulators = 12;
#endif

template <class T>
struct VectorOf;
template <>
struct VectorOf<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <>
struct VectorOf<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};
template <class T>
using Vec = typename VectorOf<T>::type;
template <class T>
inline constexpr std::int64_t kLanes = kVectorBytes / sizeof(T);

// Vectors travel by reference: returning them by value changes the ABI between instruction sets.
template <class T>
inline void load(Vec<T>& v, const T* p) {
  std::memcpy(&v, p, sizeof v);
}
template <class T>
inline void store(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof v);
}

// base[offset + l] = v[l] for lanes first <= l < last: a masked store where the instruction set has one.
template <class T>
inline void store_lanes(T* base, std::int64_t offset, const Vec<T>& v, int first, int last) {
#if defined(__AVX512F__)
  const unsigned mask = ((1u << last) - 1) & ~((1u << first) - 1);
  if constexpr (sizeof(T) == 4)
    _mm512_mask_storeu_ps(base + offset, static_cast<__mmask16>(mask), reinterpret_cast<const __m512&>(v));
  else
    _mm512_mask_storeu_pd(base + offset, static_cast<__mmask8>(mask), reinterpret_cast<const __m512d&>(v));
#else
  for (int l = first; l < last; ++l) base[offset + l] = v[l];
#endif
}

// An MR x NV tile of accumulators; MR * NV stays within kAccumulators so the tile lives in registers.
template <class T, int MR, int NV>
struct Tile {
  static constexpr int rows = MR;
  static constexpr int vectors = NV;
  static constexpr std::int64_t width = NV * kLanes<T>;
  Vec<T> acc[MR][NV];

  void zero() {
    for (auto& row : acc)
      for (auto& v : row) v = Vec<T>{};
  }

  void multiply(std::int64_t depth, const T* a, const std::int64_t* a_rows, const T* b, const std::int64_t* b_rows) {
    const T* a_row[MR];
    for (int m = 0; m < MR; ++m) a_row[m] = a + a_rows[m];
    for (std::int64_t k = 0; k < depth; ++k) {
      Vec<T> bk[NV];
      for (int j = 0; j < NV; ++j) load(bk[j], b + b_rows[k] + j * kLanes<T>);
      for (int m = 0; m < MR; ++m) {
        const T s = a_row[m][k];
        for (int j = 0; j < NV; ++j) acc[m][j] += s * bk[j];
      }
    }
  }
};

// KR x MC dot products with the positions in the vector, for reductions whose other side is too
// narrow to fill a vector (a weight gradient with few output channels): acc[k][m] += a_k[q..] * b_m[q..]
// lane-wise over q = 0, lanes, ... < depth, with a_k = a + a_rows[k] and b_m = b + m * b_stride. Each
// step loads KR + MC vectors for KR * MC products, where one row of b at a time (MC = 1) loaded 13 for
// 12; the lanes are added up by the caller.
template <class T, int KR, int MC>
struct DotTile {
  static constexpr int rows = KR;
  static constexpr int columns = MC;
  Vec<T> acc[KR][MC];

  void zero() {
    for (auto& row : acc)
      for (auto& v : row) v = Vec<T>{};
  }

  void multiply(std::int64_t depth, const T* a, const std::int64_t* a_rows, const T* b, std::int64_t b_stride) {
    const T* a_row[KR];
    for (int k = 0; k < KR; ++k) a_row[k] = a + a_rows[k];
    for (std::int64_t q = 0; q < depth; q += kLanes<T>) {
      Vec<T> bq[MC];
      for (int m = 0; m < MC; ++m) load(bq[m], b + m * b_stride + q);
      for (int k = 0; k < KR; ++k) {
        Vec<T> ak;
        load(ak, a_row[k] + q);
        for (int m = 0; m < MC; ++m) acc[k][m] += ak * bq[m];
      }
    }
  }
};

// NV vectors per row and as many rows as the register budget allows; at most 12, because with few
// vectors per row the broadcasts, not the registers, become the limit.
template <class T, int NV>
using TallTile = Tile<T, std::min(12, kAccumulators / NV), NV>;

}  // namespace fpi::backend::cpu::conv
