// Element-wise kernels: one grid-stride kernel per operand count and dtype, with the opcode switched
// inside (uniform across the grid, so it costs no divergence and keeps the number of instantiations,
// and the compile time, small). Every launcher picks a contiguous fast path, where all operands are
// dense and aligned element for element, or the general strided path (broadcasts have stride 0).
// The formulas are the CPU's own, from src/backend/scalar_ops.hpp.
#include "backend/scalar_ops.hpp"
#include "kernels/common.cuh"
#include "kernels/elementwise.hpp"

namespace fpi::backend::cuda {
namespace {

template <int N>
bool dense(const StridedArgs<N>& a) {
  if (a.ndim > 1) return false;
  for (int k = 0; k < N; ++k)
    if (a.ndim == 1 && a.strides[k][0] != 1) return false;
  return true;
}

// A value that is no opcode leaves x unchanged (the CPU raises instead; a kernel cannot).
template <class T>
__device__ __forceinline__ T apply(UnaryOp op, T x, T a, T b) {
  T y = x;
  with_unary_formula(op, a, b, [&](auto formula) { y = formula(x); });
  return y;
}

template <class T>
__device__ __forceinline__ T apply(BinaryOp op, T x, T y) {
  T z = x;
  with_binary_formula<T>(op, [&](auto formula) { z = formula(x, y); });
  return z;
}

template <class D, class S>
__global__ void copy_dense(std::int64_t n, D* dst, const S* src) {
  for (std::int64_t i = global_thread(); i < n; i += thread_count()) dst[i] = static_cast<D>(src[i]);
}

template <class D, class S>
__global__ void copy_strided(StridedArgs<2> a, D* dst, const S* src) {
  for (std::int64_t i = global_thread(); i < a.numel; i += thread_count()) {
    std::int64_t off[2];
    strided_offsets(a, i, off);
    dst[off[0]] = static_cast<D>(src[off[1]]);
  }
}

template <class T>
__global__ void fill_strided(StridedArgs<1> a, T* dst, T value) {
  for (std::int64_t i = global_thread(); i < a.numel; i += thread_count()) {
    std::int64_t off[1];
    strided_offsets(a, i, off);
    dst[off[0]] = value;
  }
}

template <class T>
__global__ void unary_dense(UnaryOp op, std::int64_t n, T* dst, const T* src, T a, T b) {
  for (std::int64_t i = global_thread(); i < n; i += thread_count()) dst[i] = apply(op, src[i], a, b);
}

template <class T>
__global__ void unary_strided(UnaryOp op, StridedArgs<2> s, T* dst, const T* src, T a, T b) {
  for (std::int64_t i = global_thread(); i < s.numel; i += thread_count()) {
    std::int64_t off[2];
    strided_offsets(s, i, off);
    dst[off[0]] = apply(op, src[off[1]], a, b);
  }
}

template <class T>
__global__ void binary_dense(BinaryOp op, std::int64_t n, T* dst, const T* lhs, const T* rhs) {
  for (std::int64_t i = global_thread(); i < n; i += thread_count()) dst[i] = apply(op, lhs[i], rhs[i]);
}

template <class T>
__global__ void binary_strided(BinaryOp op, StridedArgs<3> s, T* dst, const T* lhs, const T* rhs) {
  for (std::int64_t i = global_thread(); i < s.numel; i += thread_count()) {
    std::int64_t off[3];
    strided_offsets(s, i, off);
    dst[off[0]] = apply(op, lhs[off[1]], rhs[off[2]]);
  }
}

}  // namespace

template <class D, class S>
void launch_copy(const StridedArgs<2>& args, D* dst, const S* src) {
  if (args.numel == 0) return;
  const unsigned int grid = grid_for(args.numel);
  if (dense(args)) {
    copy_dense<<<grid, kBlockSize>>>(args.numel, dst, src);
  } else {
    copy_strided<<<grid, kBlockSize>>>(args, dst, src);
  }
  FPI_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_fill(const StridedArgs<1>& args, T* dst, T value) {
  if (args.numel == 0) return;
  if (dense(args) && value == T(0)) {
    FPI_CUDA_CHECK(cudaMemsetAsync(dst, 0, args.numel * sizeof(T)));  // +0.0 is all zero bits
    return;
  }
  fill_strided<<<grid_for(args.numel), kBlockSize>>>(args, dst, value);
  FPI_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_unary(UnaryOp op, const StridedArgs<2>& args, T* dst, const T* src, T a, T b) {
  if (args.numel == 0) return;
  const unsigned int grid = grid_for(args.numel);
  if (dense(args)) {
    unary_dense<<<grid, kBlockSize>>>(op, args.numel, dst, src, a, b);
  } else {
    unary_strided<<<grid, kBlockSize>>>(op, args, dst, src, a, b);
  }
  FPI_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_binary(BinaryOp op, const StridedArgs<3>& args, T* dst, const T* lhs, const T* rhs) {
  if (args.numel == 0) return;
  const unsigned int grid = grid_for(args.numel);
  if (dense(args)) {
    binary_dense<<<grid, kBlockSize>>>(op, args.numel, dst, lhs, rhs);
  } else {
    binary_strided<<<grid, kBlockSize>>>(op, args, dst, lhs, rhs);
  }
  FPI_CUDA_CHECK_LAUNCH();
}

template void launch_copy(const StridedArgs<2>&, float*, const float*);
template void launch_copy(const StridedArgs<2>&, float*, const double*);
template void launch_copy(const StridedArgs<2>&, double*, const float*);
template void launch_copy(const StridedArgs<2>&, double*, const double*);
template void launch_fill(const StridedArgs<1>&, float*, float);
template void launch_fill(const StridedArgs<1>&, double*, double);
template void launch_unary(UnaryOp, const StridedArgs<2>&, float*, const float*, float, float);
template void launch_unary(UnaryOp, const StridedArgs<2>&, double*, const double*, double, double);
template void launch_binary(BinaryOp, const StridedArgs<3>&, float*, const float*, const float*);
template void launch_binary(BinaryOp, const StridedArgs<3>&, double*, const double*, const double*);

}  // namespace fpi::backend::cuda
