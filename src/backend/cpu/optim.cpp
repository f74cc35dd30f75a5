// Fused optimizer updates: one pass over parameter, gradient and state per step, so a step costs
// memory bandwidth only and allocates nothing.
#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/strided_loop.hpp"

namespace fpi::backend::cpu {

namespace {

// Adam's per-step scalars, converted to the parameter's type once.
template <class T>
struct AdamScalars {
  T beta1, beta2, one_minus_beta1, one_minus_beta2, l2, decay, step_size, inv_sqrt_bc2, eps;
};

// One chunk of the update. The scalars are copied into locals and the arrays marked non-aliasing so
// the loop vectorises (with -fno-math-errno for the sqrt); amsgrad is a template flag so the common
// case carries no branch in its loop.
template <class T, bool kAmsgrad>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                std::int64_t n, const AdamScalars<T>& c) {
  const T beta1 = c.beta1, beta2 = c.beta2, one_minus_beta1 = c.one_minus_beta1;
  const T one_minus_beta2 = c.one_minus_beta2, l2 = c.l2, decay = c.decay, step_size = c.step_size;
  const T inv_sqrt_bc2 = c.inv_sqrt_bc2, eps = c.eps;
  for (std::int64_t i = 0; i < n; ++i) {
    const T gi = g[i] + l2 * p[i];
    const T mi = beta1 * m[i] + one_minus_beta1 * gi;
    const T vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    T second = vi;
    if constexpr (kAmsgrad) second = vmax[i] = std::max(vmax[i], vi);
    p[i] = p[i] * decay - step_size * mi / (std::sqrt(second) * inv_sqrt_bc2 + eps);
  }
}

// SGD's chunk, with the same care as Adam's: the momentum variant is chosen outside the loop.
enum class Momentum { None, First, Heavy, Nesterov, NesterovFirst };

template <class T, Momentum kMomentum>
void sgd_chunk(T* __restrict p, const T* __restrict g, T* __restrict buf, std::int64_t n, T lr, T wd, T mu,
               T damp) {
  for (std::int64_t i = 0; i < n; ++i) {
    T gi = g[i] + wd * p[i];
    if constexpr (kMomentum == Momentum::First || kMomentum == Momentum::NesterovFirst) {
      buf[i] = gi;
    } else if constexpr (kMomentum != Momentum::None) {
      buf[i] = mu * buf[i] + damp * gi;
    }
    if constexpr (kMomentum == Momentum::Nesterov || kMomentum == Momentum::NesterovFirst) {
      gi = gi + mu * buf[i];
    } else if constexpr (kMomentum != Momentum::None) {
      gi = buf[i];
    }
    p[i] -= lr * gi;
  }
}

}  // namespace

void CpuBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                             const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const AdamStep& d) {
  dispatch(param.dtype(), [&]<class T>() {
    T* p = static_cast<T*>(param.raw_data());
    const T* g = static_cast<const T*>(grad.raw_data());
    T* m = static_cast<T*>(exp_avg.raw_data());
    T* v = static_cast<T*>(exp_avg_sq.raw_data());
    T* vmax = d.amsgrad ? static_cast<T*>(max_exp_avg_sq.raw_data()) : nullptr;
    const double bias_correction1 = 1.0 - std::pow(d.beta1, static_cast<double>(d.step));
    const double bias_correction2 = 1.0 - std::pow(d.beta2, static_cast<double>(d.step));
    const AdamScalars<T> c{static_cast<T>(d.beta1),
                           static_cast<T>(d.beta2),
                           static_cast<T>(1.0 - d.beta1),
                           static_cast<T>(1.0 - d.beta2),
                           static_cast<T>(d.decoupled_weight_decay ? 0.0 : d.weight_decay),
                           static_cast<T>(d.decoupled_weight_decay ? 1.0 - d.lr * d.weight_decay : 1.0),
                           static_cast<T>(d.lr / bias_correction1),
                           static_cast<T>(1.0 / std::sqrt(bias_correction2)),
                           static_cast<T>(d.eps)};
    parallel_for(0, param.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      if (vmax) {
        adam_chunk<T, true>(p + b, g + b, m + b, v + b, vmax + b, e - b, c);
      } else {
        adam_chunk<T, false>(p + b, g + b, m + b, v + b, nullptr, e - b, c);
      }
    });
  });
}

void CpuBackend::sgd_update(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                            const SgdStep& d) {
  const Momentum kind = d.momentum == 0.0 ? Momentum::None
                        : d.nesterov       ? (d.first_step ? Momentum::NesterovFirst : Momentum::Nesterov)
                                           : (d.first_step ? Momentum::First : Momentum::Heavy);
  dispatch(param.dtype(), [&]<class T>() {
    T* p = static_cast<T*>(param.raw_data());
    const T* g = static_cast<const T*>(grad.raw_data());
    T* buf = kind == Momentum::None ? nullptr : static_cast<T*>(momentum_buffer.raw_data());
    const T lr = d.lr, wd = d.weight_decay, mu = d.momentum, damp = 1.0 - d.dampening;
    parallel_for(0, param.numel(), kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      T* chunk_buf = buf ? buf + b : nullptr;
      switch (kind) {
        case Momentum::None: return sgd_chunk<T, Momentum::None>(p + b, g + b, chunk_buf, e - b, lr, wd, mu, damp);
        case Momentum::First: return sgd_chunk<T, Momentum::First>(p + b, g + b, chunk_buf, e - b, lr, wd, mu, damp);
        case Momentum::Heavy: return sgd_chunk<T, Momentum::Heavy>(p + b, g + b, chunk_buf, e - b, lr, wd, mu, damp);
        case Momentum::Nesterov:
          return sgd_chunk<T, Momentum::Nesterov>(p + b, g + b, chunk_buf, e - b, lr, wd, mu, damp);
        case Momentum::NesterovFirst:
          return sgd_chunk<T, Momentum::NesterovFirst>(p + b, g + b, chunk_buf, e - b, lr, wd, mu, damp);
      }
    });
  });
}

}  // namespace fpi::backend::cpu
