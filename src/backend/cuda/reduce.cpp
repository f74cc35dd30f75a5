// CUDA reductions over any set of dimensions. The source's dimensions are split into kept ones (the
// destination has their size) and reduced ones (size 1 in the destination), each group merged where
// it is contiguous, and the launch plan decides how threads share the work (kernels/reduce.cu).
#include <algorithm>
#include <bit>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"
#include "backend/cuda/layout.hpp"
#include "kernels/reduce.hpp"

namespace fpi::backend::cuda {
namespace {

ReduceArgs reduce_args(const Tensor& dst, const Tensor& src) {
  std::vector<Dim> kept, reduced;
  for (std::size_t d = 0; d < src.shape().size(); ++d) {
    const std::int64_t size = src.shape()[d];
    if (dst.shape()[d] == 1 && size != 1) {
      reduced.push_back({size, {src.strides()[d]}});
    } else {
      kept.push_back({size, {src.strides()[d], dst.strides()[d]}});
    }
  }
  kept = merge_dims(kept);
  reduced = merge_dims(reduced);
  check_rank(kept.size(), "reduce");
  check_rank(reduced.size(), "reduce");
  ReduceArgs a;
  a.outputs = dst.numel();
  a.length = 1;
  a.kept_ndim = static_cast<int>(kept.size());
  for (int i = 0; i < a.kept_ndim; ++i) {
    const Dim& d = kept[kept.size() - 1 - i];  // innermost first
    a.kept_sizes[i] = d.size;
    a.kept_src[i] = d.strides[0];
    a.kept_dst[i] = d.strides[1];
  }
  a.reduced_ndim = static_cast<int>(reduced.size());
  for (int i = 0; i < a.reduced_ndim; ++i) {
    const Dim& d = reduced[reduced.size() - 1 - i];
    a.reduced_sizes[i] = d.size;
    a.reduced_src[i] = d.strides[0];
    a.length *= d.size;
  }
  return a;
}

int pow2_at_least(std::int64_t n, int cap) {
  return static_cast<int>(std::min<std::uint64_t>(std::bit_ceil(static_cast<std::uint64_t>(std::max<std::int64_t>(n, 1))),
                                                  static_cast<std::uint64_t>(cap)));
}

// Threads that share a fold read neighbouring elements when the fold is contiguous, so a fold gets up
// to a whole block; otherwise one thread per fold, and neighbouring threads read neighbouring
// outputs. When that leaves the GPU short of blocks (few outputs: a full sum, a bias gradient), each
// fold is also split across blocks, but never into parts of fewer than ~32 elements per thread.
ReducePlan plan_for(const ReduceArgs& a, int multiprocessors) {
  constexpr int kThreads = 256, kMinPerThread = 32, kMaxSplit = 1024;
  ReducePlan p;
  const bool contiguous_fold = a.reduced_ndim > 0 && a.reduced_src[0] == 1;
  p.threads_x = contiguous_fold ? pow2_at_least(a.length, kThreads) : kThreads / pow2_at_least(a.outputs, kThreads);
  p.threads_y = kThreads / p.threads_x;
  const std::int64_t blocks = (a.outputs + p.threads_y - 1) / p.threads_y;
  const std::int64_t wanted = 4 * static_cast<std::int64_t>(multiprocessors);
  if (blocks < wanted) {
    const std::int64_t by_occupancy = (wanted + blocks - 1) / blocks;
    const std::int64_t by_work = a.length / (static_cast<std::int64_t>(p.threads_x) * kMinPerThread);
    p.split = static_cast<int>(std::clamp<std::int64_t>(std::min(by_occupancy, by_work), 1, kMaxSplit));
  }
  return p;
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& dst, const Tensor& src) {
  FPI_CHECK(dst.device() == device() && src.device() == device(), "cuda reduce: operands on ", dst.device().str(),
            " and ", src.device().str(), " were given to the backend of ", device().str());
  DeviceGuard guard(index_);
  const ReduceArgs args = reduce_args(dst, src);
  if (args.outputs == 0) return;
  const ReducePlan plan = plan_for(args, multiprocessor_count(index_));
  Tensor partial;
  if (plan.split > 1) {
    const DType acc = op == ReduceOp::Sum ? DType::Float64 : dst.dtype();
    partial = empty({args.outputs * plan.split}, {acc, device()});
  }
  void* parts = partial.defined() ? partial.raw_data() : nullptr;
  if (dst.dtype() == DType::Float32) {
    launch_reduce(op, args, plan, static_cast<float*>(dst.raw_data()), static_cast<const float*>(src.raw_data()), parts);
  } else {
    launch_reduce(op, args, plan, static_cast<double*>(dst.raw_data()), static_cast<const double*>(src.raw_data()), parts);
  }
}

}  // namespace fpi::backend::cuda
