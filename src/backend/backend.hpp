// The backend interface: the narrow set of primitives that ops are built from. One implementation per
// device kind (cpu/, cuda/); nothing above this layer branches on the device. Primitives know nothing
// of autograd: they read and write the data of tensors whose shapes the op layer has already checked.
//
// Conventions: `dst` is written, the others are read. Element-wise primitives accept any strides
// (broadcast inputs arrive as expanded views with zero strides). Matrix and convolution primitives take
// the layouts stated on each.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/allocator.hpp"
#include "backend/op_codes.hpp"
#include "backend/solver_rows.hpp"
#include "fpi/tensor.hpp"
#include "fpi/update_steps.hpp"

namespace fpi::backend {

// Row-major batched GEMM: C[i] = alpha * op(A[i]) @ op(B[i]) + beta * C[i] for i < batch, where
// op(A) is m x k and op(B) is k x n. lda/ldb/ldc are row strides of the stored matrices (elements);
// stride_* are the distances between consecutive matrices of the batch (0 broadcasts one matrix).
struct GemmDesc {
  DType dtype = DType::Float32;
  bool trans_a = false;
  bool trans_b = false;
  std::int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0;
  const void* a = nullptr;
  std::int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  std::int64_t ldb = 0, stride_b = 0;
  double beta = 0.0;
  void* c = nullptr;
  std::int64_t ldc = 0, stride_c = 0;
  std::int64_t batch = 1;
};

// 2-D cross-correlation geometry, NCHW input x[N, C_in, H, W], weight w[C_out, C_in, kH, kW],
// output y[N, C_out, H_out, W_out]; all three contiguous.
struct Conv2dDesc {
  std::int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
  std::int64_t out_channels = 0, out_h = 0, out_w = 0;
  std::int64_t kernel_h = 0, kernel_w = 0;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dilation_h = 1, dilation_w = 1;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // dst and src have equal shapes; the dtype is converted where they differ.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  virtual void fill(const Tensor& dst, double value) = 0;
  // dst = op(src; a, b); dst may alias src when both are the same view.
  virtual void unary(UnaryOp op, const Tensor& dst, const Tensor& src, double a = 0.0, double b = 0.0) = 0;
  // dst = lhs op rhs; lhs and rhs are views with dst's shape.
  virtual void binary(BinaryOp op, const Tensor& dst, const Tensor& lhs, const Tensor& rhs) = 0;
  // dst has src's rank with size 1 in every reduced dimension.
  virtual void reduce(ReduceOp op, const Tensor& dst, const Tensor& src) = 0;
  virtual void gemm(const GemmDesc& desc) = 0;
  // Batched dense solve in place, as LAPACK's ?gesv (LU with partial pivoting): for every i, A[i] X[i]
  // = B[i] with A[i] n x n and B[i] n x k, each matrix stored column by column (LAPACK's layout), so
  // `lu` is a contiguous (batch, n, n) tensor holding each A[i] transposed and `rhs` a contiguous
  // (batch, k, n) one holding each B[i] transposed. `lu` is overwritten by the LU factors and `rhs` by
  // the solutions X[i] (transposed). Returns the indices i whose A[i] is singular (a zero pivot); their
  // X[i] is unspecified.
  virtual std::vector<std::int64_t> solve(const Tensor& lu, const Tensor& rhs) = 0;

  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dDesc& desc) = 0;
  // gx = d<y, gy>/dx (overwritten).
  virtual void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx,
                                    const Conv2dDesc& desc) = 0;
  // gw = d<y, gy>/dw (overwritten).
  virtual void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                      const Conv2dDesc& desc) = 0;

  // One optimizer step in place (fpi/update_steps.hpp); every tensor contiguous, with param's shape.
  virtual void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                           const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& step) = 0;
  virtual void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                          const SgdStep& step) = 0;

  // The fixed-point solver's primitives (backend/solver_rows.hpp), so its loop runs on the data's device.
  // One iteration's bookkeeping for every row: `state` a contiguous float64 (rows, SolverColumn::Count)
  // tensor, updated in place; `norms` a contiguous float64 (rows, NormColumn::Count) one.
  virtual void solver_rows_step(const Tensor& state, const Tensor& norms, const SolverControl& control) = 0;
  // Anderson's weights for every row: `gram` a contiguous float64 (rows, h, h) tensor (overwritten),
  // `weights` a contiguous float64 (rows, h) one (written), `state` as above (its Ridge and Picard read,
  // its SingularStreak updated); `latest` is the history slot of the newest iterate.
  virtual void anderson_weights(const Tensor& gram, const Tensor& weights, const Tensor& state, int latest) = 0;
  // dst[r] = src[r] for every row r where mask[r] != 0: dst and src contiguous (rows, n) tensors of one
  // dtype, mask a float64 (rows) view of any stride (a column of the solver's state).
  virtual void copy_rows_where(const Tensor& dst, const Tensor& src, const Tensor& mask) = 0;
  // Whether reading a small tensor on the host costs no more than computing it: true where the data
  // already lives in host memory, false where a read waits for the device's queue to drain.
  virtual bool host_reads_are_free() const { return true; }

  // Waits until queued work on the device is done (a no-op on the CPU).
  virtual void synchronize() {}
};

Backend& backend_for(Device device);
inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

}  // namespace fpi::backend
