// Element-wise kernels: one grid-stride kernel per operand count and dtype, with the opcode switched
// inside (uniform across the grid, so it costs no divergence and keeps the number of instantiations,
// and the compile time, small). Every launcher picks a contiguous fast path, where all operands are
// dense and aligned element for element, or the general strided path (broadcasts have stride 0).
// The formulas match src/backend/cpu/elementwise.cpp, NaN handling included.
#include "kernels/common.cuh"
#include "kernels/elementwise.hpp"

namespace fpi::backend::cuda {
namespace {

// Tripwire for new opcodes: each needs a case in apply() below, and device code gets no -Wswitch.
static_assert(static_cast<int>(UnaryOp::NonFinite) == 18 && static_cast<int>(BinaryOp::Eq) == 10,
              "an opcode was added or moved: give it a case in kernels/elementwise.cu, then update this check");

template <int N>
bool dense(const StridedArgs<N>& a) {
  if (a.ndim > 1) return false;
  for (int k = 0; k < N; ++k)
    if (a.ndim == 1 && a.strides[k][0] != 1) return false;
  return true;
}

template <class T>
__device__ __forceinline__ T pow_scalar(T x, T p) {
  if (p == T(2)) return x * x;
  if (p == T(1)) return x;
  if (p == T(3)) return x * x * x;
  if (p == T(0.5)) return sqrt(x);
  if (p == T(-1)) return T(1) / x;
  return pow(x, p);
}

template <class T>
__device__ __forceinline__ T apply(UnaryOp op, T x, T a, T b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return exp(x);
    case UnaryOp::Log: return log(x);
    case UnaryOp::Sqrt: return sqrt(x);
    case UnaryOp::Abs: return fabs(x);
    case UnaryOp::Sign: return T((x > T(0)) - (x < T(0)));
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::Step: return x > T(0) ? T(1) : T(0);
    case UnaryOp::Sigmoid: return T(1) / (T(1) + exp(-x));
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::Softplus: return (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x)));
    case UnaryOp::Square: return x * x;
    case UnaryOp::Reciprocal: return T(1) / x;
    case UnaryOp::PowScalar: return pow_scalar(x, a);
    case UnaryOp::AddScalar: return x + a;
    case UnaryOp::MulScalar: return x * a;
    case UnaryOp::Clamp: {
      if (isnan(x)) return x;
      const T low = x < a ? a : x;  // std::max(x, a)
      return b < low ? b : low;     // std::min(low, b)
    }
    case UnaryOp::InRange: return T(x >= a && x <= b);
    case UnaryOp::NonFinite: return T(!isfinite(x));
  }
  return x;
}

template <class T>
__device__ __forceinline__ T apply(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Minimum: return (x < y || isnan(x)) ? x : y;
    case BinaryOp::Maximum: return (x > y || isnan(x)) ? x : y;
    case BinaryOp::Gt: return T(x > y);
    case BinaryOp::Ge: return T(x >= y);
    case BinaryOp::Lt: return T(x < y);
    case BinaryOp::Le: return T(x <= y);
    case BinaryOp::Eq: return T(x == y);
  }
  return x;
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
