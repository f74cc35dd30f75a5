// The CPU backend: OpenBLAS for matrix products and dense solves, vectorisable loops for the rest. Each
// family of primitives lives in its own file beside this one (elementwise.cpp, reduce.cpp, gemm.cpp,
// solve.cpp, conv.cpp, optim.cpp), mirroring the CUDA backend's files.
#pragma once

#include "backend/backend.hpp"

namespace fpi::backend::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return kCPU; }

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
};

CpuBackend& cpu_backend();
RawAllocator cpu_raw_allocator();

}  // namespace fpi::backend::cpu
