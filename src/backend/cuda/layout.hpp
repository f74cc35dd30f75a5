// Builds the kernel geometry (kernels/strided.hpp) from tensors: size-1 dimensions are dropped and
// neighbours that every operand walks contiguously are merged, as the CPU backend's coalesce() does,
// so a contiguous tensor of any rank becomes one dimension and takes the kernels' fast path.
#pragma once

#include <array>
#include <vector>

#include "fpi/core.hpp"
#include "kernels/strided.hpp"

namespace fpi::backend::cuda {

struct Dim {
  std::int64_t size;
  std::vector<std::int64_t> strides;  // one per operand
};

// Merges dimension d into the one before it when, for every operand, stepping over d's full extent
// lands exactly on the outer dimension's next element. `dims` is outermost first.
inline std::vector<Dim> merge_dims(const std::vector<Dim>& dims) {
  std::vector<Dim> out;
  for (const Dim& d : dims) {
    if (d.size == 1) continue;
    bool mergeable = !out.empty();
    for (std::size_t k = 0; mergeable && k < d.strides.size(); ++k)
      mergeable = out.back().strides[k] == d.strides[k] * d.size;
    if (mergeable) {
      out.back().size *= d.size;
      out.back().strides = d.strides;
    } else {
      out.push_back(d);
    }
  }
  return out;
}

inline void check_rank(std::size_t ndim, const char* what) {
  FPI_CHECK(ndim <= static_cast<std::size_t>(kMaxDims), "cuda ", what, ": the operands have ", ndim,
            " dimensions that cannot be merged; the CUDA kernels handle at most ", kMaxDims,
            " (make an operand contiguous first)");
}

// `strides[k]` are operand k's strides for `shape`.
template <int N>
StridedArgs<N> strided_args(const Shape& shape, const std::array<const Shape*, N>& strides, const char* what) {
  std::vector<Dim> dims;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    Dim dim{shape[d], std::vector<std::int64_t>(N)};
    for (int k = 0; k < N; ++k) dim.strides[k] = (*strides[k])[d];
    dims.push_back(std::move(dim));
  }
  const std::vector<Dim> merged = merge_dims(dims);
  check_rank(merged.size(), what);
  StridedArgs<N> args;
  args.ndim = static_cast<int>(merged.size());
  args.numel = shape_numel(shape);
  for (int i = 0; i < args.ndim; ++i) {
    const Dim& d = merged[merged.size() - 1 - i];  // innermost first
    args.sizes[i] = d.size;
    for (int k = 0; k < N; ++k) args.strides[k][i] = d.strides[k];
  }
  return args;
}

}  // namespace fpi::backend::cuda
