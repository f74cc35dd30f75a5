// Launchers of the fused optimizer updates (kernels/optim.cu). The host (src/backend/cuda/optim.cpp)
// turns AdamStep/SgdStep into these per-step constants exactly as the CPU backend does, so both
// devices compute the same expression in the same order.
#pragma once

#include <cstdint>

namespace fpi::backend::cuda {

template <class T>
struct AdamConstants {
  T beta1, beta2, one_minus_beta1, one_minus_beta2;
  T l2;           // Adam's weight decay, added to the gradient
  T decay;        // AdamW's multiplier of the parameter
  T step_size;    // lr / (1 - beta1^t)
  T inv_sqrt_bc2; // 1 / sqrt(1 - beta2^t)
  T eps;
};

template <class T>
struct SgdConstants {
  T lr, weight_decay, momentum, damp;  // damp = 1 - dampening
  bool first, nesterov;
};

// max_exp_avg_sq is null without amsgrad; all arrays are contiguous with n elements.
template <class T>
void launch_adam(const AdamConstants<T>& s, std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                 T* max_exp_avg_sq);

// momentum_buffer is null without momentum.
template <class T>
void launch_sgd(const SgdConstants<T>& s, std::int64_t n, T* param, const T* grad, T* momentum_buffer);

}  // namespace fpi::backend::cuda
