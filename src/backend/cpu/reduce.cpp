// CPU reductions over any set of dimensions. The destination is viewed with stride 0 along reduced
// dimensions, so one strided walk over the source covers every case: a run whose destination stride
// is 0 folds into one value, a run whose destination stride is 1 accumulates element-wise.
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/strided_loop.hpp"

namespace fpi::backend::cpu {
namespace {

struct SumOp {
  template <class T>
  static T identity() { return T(0); }
  template <class T>
  static T combine(T a, T b) { return a + b; }
};
struct MaxOp {
  template <class T>
  static T identity() { return -std::numeric_limits<T>::infinity(); }
  template <class T>
  static T combine(T a, T b) { return (b > a || std::isnan(b)) ? b : a; }
};
struct MinOp {
  template <class T>
  static T identity() { return std::numeric_limits<T>::infinity(); }
  template <class T>
  static T combine(T a, T b) { return (b < a || std::isnan(b)) ? b : a; }
};

// Float sums accumulate in double; four independent accumulators keep the adds pipelined.
template <class Op, class T>
auto fold_run(const T* p, std::int64_t n, std::int64_t stride) {
  using Acc = std::conditional_t<std::is_same_v<Op, SumOp>, double, T>;
  Acc acc[4] = {Op::template identity<Acc>(), Op::template identity<Acc>(), Op::template identity<Acc>(),
                Op::template identity<Acc>()};
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) acc[j] = Op::combine(acc[j], static_cast<Acc>(p[(i + j) * stride]));
  for (; i < n; ++i) acc[0] = Op::combine(acc[0], static_cast<Acc>(p[i * stride]));
  return Op::combine(Op::combine(acc[0], acc[1]), Op::combine(acc[2], acc[3]));
}

template <class Op, class T>
void reduce_typed(const Tensor& dst, const Tensor& src) {
  T* d = static_cast<T*>(dst.raw_data());
  const T* s = static_cast<const T*>(src.raw_data());
  Shape dst_strides = dst.strides();
  for (std::size_t i = 0; i < dst_strides.size(); ++i)
    if (dst.shape()[i] == 1) dst_strides[i] = 0;
  const auto layout = coalesce<2>(src.shape(), {&dst_strides, &src.strides()});

  if (layout.sizes.size() == 1 && layout.strides[0][0] == 0) {
    // Everything folds into one value: fold chunks in parallel, then fold the chunks in order.
    const std::int64_t n = layout.sizes[0], stride = layout.strides[1][0];
    using Acc = decltype(fold_run<Op>(s, 0, 1));
    std::array<Acc, 64> partial;
    partial.fill(Op::template identity<Acc>());
    const std::int64_t chunks = std::min<std::int64_t>(64, num_threads());
    parallel_for(0, chunks, 0, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c)
        partial[c] = fold_run<Op>(s + (n * c / chunks) * stride, n * (c + 1) / chunks - n * c / chunks, stride);
    });
    Acc total = Op::template identity<Acc>();
    for (std::int64_t c = 0; c < chunks; ++c) total = Op::combine(total, partial[c]);
    *d = static_cast<T>(total);
    return;
  }

  for (std::int64_t i = 0, n = dst.numel(); i < n; ++i) d[i] = Op::template identity<T>();
  // Nothing to fold: each output keeps the identity (a sum over no elements is 0).
  if (src.numel() == 0) return;
  auto body = [&](const std::array<std::int64_t, 2>& off, std::int64_t n, const std::array<std::int64_t, 2>& st) {
    T* dp = d + off[0];
    const T* sp = s + off[1];
    if (st[0] == 0) {
      *dp = Op::combine(*dp, static_cast<T>(fold_run<Op>(sp, n, st[1])));
    } else if (st[0] == 1 && st[1] == 1) {
      for (std::int64_t i = 0; i < n; ++i) dp[i] = Op::combine(dp[i], sp[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) dp[i * st[0]] = Op::combine(dp[i * st[0]], sp[i * st[1]]);
    }
  };
  const std::int64_t outer = layout.outer_count();
  if (layout.sizes.size() > 1 && layout.strides[0][0] != 0) {
    // The outermost dimension is kept, so threads that split it write disjoint outputs.
    const std::int64_t per_index = outer / layout.sizes[0];
    const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / (per_index * layout.sizes.back()));
    parallel_for(0, layout.sizes[0], grain, [&](std::int64_t b, std::int64_t e) {
      for_each_run(layout, b * per_index, e * per_index, body);
    });
  } else {
    for_each_run(layout, 0, outer, body);
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& dst, const Tensor& src) {
  dispatch(dst.dtype(), [&]<class T>() {
    switch (op) {
      case ReduceOp::Sum: return reduce_typed<SumOp, T>(dst, src);
      case ReduceOp::Max: return reduce_typed<MaxOp, T>(dst, src);
      case ReduceOp::Min: return reduce_typed<MinOp, T>(dst, src);
    }
  });
}

}  // namespace fpi::backend::cpu
