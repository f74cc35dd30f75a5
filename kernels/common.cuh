// Device-side helpers shared by the kernel files: launch sizing for grid-stride loops and the
// strided offset computation. Included by kernels/*.cu only.
#pragma once

#include <cstdint>

#include "backend/cuda/check.hpp"
#include "kernels/strided.hpp"

namespace fpi::backend::cuda {

inline constexpr int kBlockSize = 256;
// Grid-stride loops cap the grid here: about 8 resident blocks on each of an H100's 132 SMs, four
// times over, is enough to hide latency; more blocks only add scheduling.
inline constexpr std::int64_t kMaxBlocks = 4096;

inline unsigned int grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + kBlockSize - 1) / kBlockSize;
  return static_cast<unsigned int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ std::int64_t thread_count() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

// The element offsets of linear index i (row-major over the merged sizes) in each operand. The loop
// is unrolled over the fixed maximum so every array index is a constant and the argument stays in
// parameter memory.
template <int N>
__device__ __forceinline__ void strided_offsets(const StridedArgs<N>& a, std::int64_t i, std::int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d == a.ndim) break;
    const std::int64_t size = a.sizes[d];
    const std::int64_t q = d + 1 == a.ndim ? 0 : i / size;
    const std::int64_t r = i - q * size;
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += r * a.strides[k][d];
    i = q;
  }
}

}  // namespace fpi::backend::cuda
