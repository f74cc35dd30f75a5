// CPU element-wise primitives: copy (with dtype conversion), fill, unary and binary maps. The maps'
// formulas are shared with the CUDA kernels (backend/scalar_ops.hpp), except float32 tanh (vector_tanh.hpp).
#include <cstring>
#include <type_traits>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/strided_loop.hpp"
#include "backend/cpu/vector_tanh.hpp"
#include "backend/scalar_ops.hpp"

namespace fpi::backend::cpu {
namespace {

template <class D, class S, class F>
void map1(const Tensor& dst, const Tensor& src, F f) {
  D* d = static_cast<D*>(dst.raw_data());
  const S* s = static_cast<const S*>(src.raw_data());
  const auto layout = coalesce<2>(dst.shape(), {&dst.strides(), &src.strides()});
  for_each_run_parallel(layout, [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                                    const std::array<std::int64_t, 2>& st) {
    D* dp = d + off[0];
    const S* sp = s + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (std::int64_t i = 0; i < n; ++i) dp[i] = f(sp[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) dp[i * st[0]] = f(sp[i * st[1]]);
    }
  });
}

template <class T, class F>
void map2(const Tensor& dst, const Tensor& lhs, const Tensor& rhs, F f) {
  T* d = static_cast<T*>(dst.raw_data());
  const T* a = static_cast<const T*>(lhs.raw_data());
  const T* b = static_cast<const T*>(rhs.raw_data());
  const auto layout = coalesce<3>(dst.shape(), {&dst.strides(), &lhs.strides(), &rhs.strides()});
  for_each_run_parallel(layout, [&](const std::array<std::int64_t, 3>& off, std::int64_t n,
                                    const std::array<std::int64_t, 3>& st) {
    T* dp = d + off[0];
    const T* ap = a + off[1];
    const T* bp = b + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (std::int64_t i = 0; i < n; ++i) dp[i] = f(ap[i], bp[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const T bv = *bp;
      for (std::int64_t i = 0; i < n; ++i) dp[i] = f(ap[i], bv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      const T av = *ap;
      for (std::int64_t i = 0; i < n; ++i) dp[i] = f(av, bp[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) dp[i * st[0]] = f(ap[i * st[1]], bp[i * st[2]]);
    }
  });
}

// One instantiation of map1, hence one straight loop, per opcode: the opcode is decided once per call.
template <class T>
void unary_typed(UnaryOp op, const Tensor& dst, const Tensor& src, T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    if (op == UnaryOp::Tanh) return map1<float, float>(dst, src, [](float x) { return vector_tanh(x); });
  }
  bool known = false;
  with_unary_formula(op, a, b, [&](auto formula) {
    map1<T, T>(dst, src, formula);
    known = true;
  });
  FPI_CHECK(known, "cpu unary: unknown op ", static_cast<int>(op));
}

template <class T>
void binary_typed(BinaryOp op, const Tensor& dst, const Tensor& lhs, const Tensor& rhs) {
  bool known = false;
  with_binary_formula<T>(op, [&](auto formula) {
    map2<T>(dst, lhs, rhs, formula);
    known = true;
  });
  FPI_CHECK(known, "cpu binary: unknown op ", static_cast<int>(op));
}

}  // namespace

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;  // an empty tensor may have no storage: memcpy must not see its null pointer
  if (dst.dtype() == src.dtype()) {
    if (dst.is_contiguous() && src.is_contiguous()) {
      std::memcpy(dst.raw_data(), src.raw_data(), dst.numel() * dtype_size(dst.dtype()));
      return;
    }
    dispatch(dst.dtype(), [&]<class T>() { map1<T, T>(dst, src, [](T x) { return x; }); });
  } else if (dst.dtype() == DType::Float32) {
    map1<float, double>(dst, src, [](double x) { return static_cast<float>(x); });
  } else {
    map1<double, float>(dst, src, [](float x) { return static_cast<double>(x); });
  }
}

void CpuBackend::fill(const Tensor& dst, double value) {
  dispatch(dst.dtype(), [&]<class T>() {
    T* d = static_cast<T*>(dst.raw_data());
    const T v = static_cast<T>(value);
    const auto layout = coalesce<1>(dst.shape(), {&dst.strides()});
    for_each_run_parallel(layout, [&](const std::array<std::int64_t, 1>& off, std::int64_t n,
                                      const std::array<std::int64_t, 1>& st) {
      for (std::int64_t i = 0; i < n; ++i) d[off[0] + i * st[0]] = v;
    });
  });
}

void CpuBackend::unary(UnaryOp op, const Tensor& dst, const Tensor& src, double a, double b) {
  dispatch(dst.dtype(), [&]<class T>() { unary_typed<T>(op, dst, src, static_cast<T>(a), static_cast<T>(b)); });
}

void CpuBackend::binary(BinaryOp op, const Tensor& dst, const Tensor& lhs, const Tensor& rhs) {
  dispatch(dst.dtype(), [&]<class T>() { binary_typed<T>(op, dst, lhs, rhs); });
}

CpuBackend& cpu_backend() {
  // The pool is made with the backend: making it sets OpenBLAS's thread count (parallel.hpp), which
  // must happen before the first BLAS or LAPACK call.
  [[maybe_unused]] static const int pool_size = num_threads();
  static CpuBackend instance;
  return instance;
}

}  // namespace fpi::backend::cpu
