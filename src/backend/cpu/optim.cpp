// Fused optimizer updates: one pass over parameter, gradient and state per step, so a step costs
// memory bandwidth only and allocates nothing.
#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/strided_loop.hpp"

namespace fpi::backend::cpu {

void CpuBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                             const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamDesc& d) {
  dispatch(param.dtype(), [&]<class T>() {
    T* p = static_cast<T*>(param.raw_data());
    const T* g = static_cast<const T*>(grad.raw_data());
    T* m = static_cast<T*>(exp_avg.raw_data());
    T* v = static_cast<T*>(exp_avg_sq.raw_data());
    T* vmax = d.amsgrad ? static_cast<T*>(max_exp_avg_sq.raw_data()) : nullptr;
    const T beta1 = d.beta1, beta2 = d.beta2, one_minus_beta1 = 1.0 - d.beta1, one_minus_beta2 = 1.0 - d.beta2;
    const T l2 = d.decoupled_weight_decay ? 0.0 : d.weight_decay;
    const T decay = d.decoupled_weight_decay ? 1.0 - d.lr * d.weight_decay : 1.0;
    const double bias_correction1 = 1.0 - std::pow(d.beta1, static_cast<double>(d.step));
    const double bias_correction2 = 1.0 - std::pow(d.beta2, static_cast<double>(d.step));
    const T step_size = d.lr / bias_correction1;
    const T inv_sqrt_bc2 = 1.0 / std::sqrt(bias_correction2);
    const T eps = d.eps;
    parallel_for(0, param.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const T gi = g[i] + l2 * p[i];
        m[i] = beta1 * m[i] + one_minus_beta1 * gi;
        v[i] = beta2 * v[i] + one_minus_beta2 * gi * gi;
        T second = v[i];
        if (vmax) second = vmax[i] = std::max(vmax[i], v[i]);
        p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(second) * inv_sqrt_bc2 + eps);
      }
    });
  });
}

void CpuBackend::sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                            const SgdDesc& d) {
  dispatch(param.dtype(), [&]<class T>() {
    T* p = static_cast<T*>(param.raw_data());
    const T* g = static_cast<const T*>(grad.raw_data());
    T* buf = d.momentum != 0.0 ? static_cast<T*>(momentum_buffer.raw_data()) : nullptr;
    const T lr = d.lr, wd = d.weight_decay, mu = d.momentum, damp = 1.0 - d.dampening;
    const bool first = d.first_step, nesterov = d.nesterov;
    parallel_for(0, param.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        T gi = g[i] + wd * p[i];
        if (buf) {
          buf[i] = first ? gi : mu * buf[i] + damp * gi;
          gi = nesterov ? gi + mu * buf[i] : buf[i];
        }
        p[i] -= lr * gi;
      }
    });
  });
}

}  // namespace fpi::backend::cpu
