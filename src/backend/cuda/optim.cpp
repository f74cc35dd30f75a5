// Fused optimizer updates on the GPU: the per-step constants are computed here in double and rounded
// to the parameter's dtype exactly as src/backend/cpu/optim.cpp does, then one kernel updates
// parameter and state in a single pass (kernels/optim.cu).
#include <cmath>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"
#include "kernels/optim.hpp"

namespace fpi::backend::cuda {
namespace {

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

template <class T>
void adam_typed(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor& max_exp_avg_sq, const AdamStep& d) {
  AdamConstants<T> s;
  s.beta1 = d.beta1;
  s.beta2 = d.beta2;
  s.one_minus_beta1 = 1.0 - d.beta1;
  s.one_minus_beta2 = 1.0 - d.beta2;
  s.l2 = d.decoupled_weight_decay ? 0.0 : d.weight_decay;
  s.decay = d.decoupled_weight_decay ? 1.0 - d.lr * d.weight_decay : 1.0;
  const double bias_correction1 = 1.0 - std::pow(d.beta1, static_cast<double>(d.step));
  const double bias_correction2 = 1.0 - std::pow(d.beta2, static_cast<double>(d.step));
  s.step_size = d.lr / bias_correction1;
  s.inv_sqrt_bc2 = 1.0 / std::sqrt(bias_correction2);
  s.eps = d.eps;
  launch_adam(s, param.numel(), ptr<T>(param), ptr<T>(grad), ptr<T>(exp_avg), ptr<T>(exp_avg_sq),
              d.amsgrad ? ptr<T>(max_exp_avg_sq) : nullptr);
}

template <class T>
void sgd_typed(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStep& d) {
  SgdConstants<T> s;
  s.lr = d.lr;
  s.weight_decay = d.weight_decay;
  s.momentum = d.momentum;
  s.damp = 1.0 - d.dampening;
  s.first = d.first_step;
  s.nesterov = d.nesterov;
  launch_sgd(s, param.numel(), ptr<T>(param), ptr<T>(grad), d.momentum != 0.0 ? ptr<T>(momentum_buffer) : nullptr);
}

}  // namespace

void CudaBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                              const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& desc) {
  DeviceGuard guard(index_);
  if (param.dtype() == DType::Float32) {
    adam_typed<float>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, desc);
  } else {
    adam_typed<double>(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, desc);
  }
}

void CudaBackend::sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                             const SgdStep& desc) {
  DeviceGuard guard(index_);
  if (param.dtype() == DType::Float32) {
    sgd_typed<float>(param, grad, momentum_buffer, desc);
  } else {
    sgd_typed<double>(param, grad, momentum_buffer, desc);
  }
}

}  // namespace fpi::backend::cuda
