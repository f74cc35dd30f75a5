// Reductions over any set of dimensions. A block folds threads_y outputs with threads_x threads each
// (one thread per output when the reduced elements are far apart and neighbouring outputs are
// adjacent in memory, a warp or more per output when the reduced elements are contiguous), then a
// tree in shared memory combines each output's threads. The order of every combination is fixed by
// the plan, so results are reproducible run to run. Combining rules match src/backend/cpu/reduce.cpp:
// NaN wins in max and min.
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/reduce.hpp"

namespace fpi::backend::cuda {
namespace {

struct SumOp {
  template <class A>
  static __device__ A identity() { return A(0); }
  template <class A>
  static __device__ A combine(A a, A b) { return a + b; }
};

struct MaxOp {
  template <class A>
  static __device__ A identity() { return -INFINITY; }
  template <class A>
  static __device__ A combine(A a, A b) { return (b > a || isnan(b)) ? b : a; }
};

struct MinOp {
  template <class A>
  static __device__ A identity() { return INFINITY; }
  template <class A>
  static __device__ A combine(A a, A b) { return (b < a || isnan(b)) ? b : a; }
};

// Where output o starts in the source and where it goes in the destination.
__device__ __forceinline__ void kept_offsets(const ReduceArgs& a, std::int64_t o, std::int64_t& src,
                                             std::int64_t& dst) {
  src = 0;
  dst = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d == a.kept_ndim) break;
    const std::int64_t q = d + 1 == a.kept_ndim ? 0 : o / a.kept_sizes[d];
    const std::int64_t r = o - q * a.kept_sizes[d];
    src += r * a.kept_src[d];
    dst += r * a.kept_dst[d];
    o = q;
  }
}

// The source offset of element r of a fold, relative to the fold's start.
__device__ __forceinline__ std::int64_t reduced_offset(const ReduceArgs& a, std::int64_t r) {
  if (a.reduced_ndim == 1) return r * a.reduced_src[0];
  std::int64_t off = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d == a.reduced_ndim) break;
    const std::int64_t q = d + 1 == a.reduced_ndim ? 0 : r / a.reduced_sizes[d];
    off += (r - q * a.reduced_sizes[d]) * a.reduced_src[d];
    r = q;
  }
  return off;
}

template <class Op, class T, class Acc>
__global__ void reduce_folds(ReduceArgs a, int split, T* dst, const T* src, Acc* partial) {
  __shared__ Acc buffer[kBlockSize];
  const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  Acc acc = Op::template identity<Acc>();
  std::int64_t dst_offset = 0;
  if (o < a.outputs) {
    std::int64_t base = 0;
    kept_offsets(a, o, base, dst_offset);
    const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * split;
    for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; r < a.length; r += step)
      acc = Op::combine(acc, static_cast<Acc>(src[base + reduced_offset(a, r)]));
  }
  const int row = threadIdx.y * blockDim.x;
  buffer[row + threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buffer[row + threadIdx.x] = Op::combine(buffer[row + threadIdx.x], buffer[row + threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0 && o < a.outputs) {
    if (split == 1) {
      dst[dst_offset] = static_cast<T>(buffer[row]);
    } else {
      partial[o * split + blockIdx.y] = buffer[row];
    }
  }
}

template <class Op, class T, class Acc>
__global__ void combine_parts(ReduceArgs a, int split, T* dst, const Acc* partial) {
  for (std::int64_t o = global_thread(); o < a.outputs; o += thread_count()) {
    Acc acc = Op::template identity<Acc>();
    for (int s = 0; s < split; ++s) acc = Op::combine(acc, partial[o * split + s]);
    std::int64_t base = 0, dst_offset = 0;
    kept_offsets(a, o, base, dst_offset);
    dst[dst_offset] = static_cast<T>(acc);
  }
}

template <class Op, class T, class Acc>
void run(const ReduceArgs& a, const ReducePlan& plan, T* dst, const T* src, void* partial) {
  const dim3 block(plan.threads_x, plan.threads_y);
  const dim3 grid(static_cast<unsigned int>((a.outputs + plan.threads_y - 1) / plan.threads_y), plan.split);
  reduce_folds<Op, T, Acc><<<grid, block>>>(a, plan.split, dst, src, static_cast<Acc*>(partial));
  FPI_CUDA_CHECK_LAUNCH();
  if (plan.split > 1) {
    combine_parts<Op, T, Acc><<<grid_for(a.outputs), kBlockSize>>>(a, plan.split, dst, static_cast<const Acc*>(partial));
    FPI_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

template <class T>
void launch_reduce(ReduceOp op, const ReduceArgs& args, const ReducePlan& plan, T* dst, const T* src, void* partial) {
  if (args.outputs == 0) return;
  switch (op) {
    case ReduceOp::Sum: return run<SumOp, T, double>(args, plan, dst, src, partial);
    case ReduceOp::Max: return run<MaxOp, T, T>(args, plan, dst, src, partial);
    case ReduceOp::Min: return run<MinOp, T, T>(args, plan, dst, src, partial);
  }
}

template void launch_reduce(ReduceOp, const ReduceArgs&, const ReducePlan&, float*, const float*, void*);
template void launch_reduce(ReduceOp, const ReduceArgs&, const ReducePlan&, double*, const double*, void*);

}  // namespace fpi::backend::cuda
