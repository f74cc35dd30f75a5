// The geometry that element-wise and reduction kernels receive, by value, as a kernel argument: sizes
// and per-operand strides after the host has dropped size-1 dimensions and merged the ones every
// operand walks contiguously (src/backend/cuda/layout.hpp). Dimensions are stored innermost FIRST so
// that device loops over them can be unrolled with constant indices (no local-memory copies of the
// argument). Plain C++: included by host .cpp files and by kernels/*.cu alike.
#pragma once

#include <cstdint>

namespace fpi::backend::cuda {

// Tensors of any rank are accepted; this bounds the dimensions left after merging.
inline constexpr int kMaxDims = 10;

template <int N>
struct StridedArgs {
  int ndim = 0;  // 0 for a single element
  std::int64_t numel = 0;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[N][kMaxDims] = {};  // elements, per operand
};

// A reduction seen as `outputs` independent folds of `length` elements each. An output's position
// comes from the kept dimensions (source and destination strides), an element's position within its
// fold from the reduced dimensions (source strides).
struct ReduceArgs {
  std::int64_t outputs = 0;
  std::int64_t length = 0;
  int kept_ndim = 0;
  std::int64_t kept_sizes[kMaxDims] = {};
  std::int64_t kept_src[kMaxDims] = {};
  std::int64_t kept_dst[kMaxDims] = {};
  int reduced_ndim = 0;
  std::int64_t reduced_sizes[kMaxDims] = {};
  std::int64_t reduced_src[kMaxDims] = {};
};

}  // namespace fpi::backend::cuda
