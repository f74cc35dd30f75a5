// Fused Adam/AdamW and SGD updates: one pass over parameter, gradient and state, the same expression
// as src/backend/cpu/optim.cpp element for element.
#include "kernels/common.cuh"
#include "kernels/optim.hpp"

namespace fpi::backend::cuda {
namespace {

template <class T>
__global__ void adam_kernel(AdamConstants<T> s, std::int64_t n, T* p, const T* g, T* m, T* v, T* vmax) {
  for (std::int64_t i = global_thread(); i < n; i += thread_count()) {
    const T gi = g[i] + s.l2 * p[i];
    const T mi = s.beta1 * m[i] + s.one_minus_beta1 * gi;
    const T vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if (vmax) second = vmax[i] = vmax[i] < vi ? vi : vmax[i];  // std::max(vmax, v)
    p[i] = p[i] * s.decay - s.step_size * mi / (sqrt(second) * s.inv_sqrt_bc2 + s.eps);
  }
}

template <class T>
__global__ void sgd_kernel(SgdConstants<T> s, std::int64_t n, T* p, const T* g, T* buf) {
  for (std::int64_t i = global_thread(); i < n; i += thread_count()) {
    T gi = g[i] + s.weight_decay * p[i];
    if (buf) {
      const T b = s.first ? gi : s.momentum * buf[i] + s.damp * gi;
      buf[i] = b;
      gi = s.nesterov ? gi + s.momentum * b : b;
    }
    p[i] -= s.lr * gi;
  }
}

}  // namespace

template <class T>
void launch_adam(const AdamConstants<T>& s, std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                 T* max_exp_avg_sq) {
  if (n == 0) return;
  adam_kernel<<<grid_for(n), kBlockSize>>>(s, n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq);
  FPI_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_sgd(const SgdConstants<T>& s, std::int64_t n, T* param, const T* grad, T* momentum_buffer) {
  if (n == 0) return;
  sgd_kernel<<<grid_for(n), kBlockSize>>>(s, n, param, grad, momentum_buffer);
  FPI_CUDA_CHECK_LAUNCH();
}

template void launch_adam(const AdamConstants<float>&, std::int64_t, float*, const float*, float*, float*, float*);
template void launch_adam(const AdamConstants<double>&, std::int64_t, double*, const double*, double*, double*, double*);
template void launch_sgd(const SgdConstants<float>&, std::int64_t, float*, const float*, float*);
template void launch_sgd(const SgdConstants<double>&, std::int64_t, double*, const double*, double*);

}  // namespace fpi::backend::cuda
