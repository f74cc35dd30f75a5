// The CUDA backend: cuBLAS for matrix products and dense solves, cuDNN for convolutions, fpi's own
// kernels (kernels/*.cu) for the element-wise maps, reductions and optimizer updates. Each family of
// primitives lives in its own file beside this one, named like its CPU counterpart in src/backend/cpu/
// (elementwise.cpp, reduce.cpp, gemm.cpp, solve.cpp, conv.cpp, optim.cpp); device.cpp holds the device
// registry and allocators, cublas.cpp the cuBLAS library that gemm.cpp and solve.cpp share.
//
// All work of a device is queued on its legacy default stream, in call order: kernels, cuBLAS and
// cuDNN see each other's results, a block returned to the caching allocator is reused only by work
// queued after it, and copies to the host (cudaMemcpy) wait for everything before them.
#pragma once

#include "backend/backend.hpp"

namespace fpi::backend::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index) {}
  Device device() const override { return fpi::cuda(index_); }

  // Either side may be on the host or on another device; see transfer.cpp.
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, double value) override;
  void unary(UnaryOp op, const Tensor& dst, const Tensor& src, double a, double b) override;
  void binary(BinaryOp op, const Tensor& dst, const Tensor& lhs, const Tensor& rhs) override;
  void reduce(ReduceOp op, const Tensor& dst, const Tensor& src) override;
  void gemm(const GemmDesc& desc) override;
  std::vector<std::int64_t> solve(const Tensor& lu, const Tensor& rhs) override;

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dDesc& desc) override;
  void conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dDesc& desc) override;
  void conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const Conv2dDesc& desc) override;

  void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                   const Tensor& max_exp_avg_sq, const AdamStep& desc) override;
  void sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                  const SgdStep& desc) override;

  void solver_rows_step(const Tensor& state, const Tensor& norms, const SolverControl& control) override;
  void anderson_weights(const Tensor& gram, const Tensor& weights, const Tensor& state, int latest) override;
  void copy_rows_where(const Tensor& dst, const Tensor& src, const Tensor& mask) override;
  bool host_reads_are_free() const override { return false; }

  void synchronize() override;

 private:
  int index_;
};

// dst = src for two tensors on the current device: any strides, dtype converted (elementwise.cpp).
void copy_within_device(const Tensor& dst, const Tensor& src);

// Both throw fpi::Error when `index` cannot be used (no driver, no GPU, index out of range).
CudaBackend& cuda_backend(int index);
CachingAllocator& cuda_allocator(int index);
// The number of visible devices; 0 without a driver or a GPU.
int device_count();

}  // namespace fpi::backend::cuda
