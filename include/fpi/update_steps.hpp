// The settings of one fused optimizer update: what the in-place ops adam_update_ and sgd_update_
// (fpi/ops.hpp) take and what the backends' primitives carry out, one struct for both layers.
#pragma once

#include <cstdint>

namespace fpi {

// PyTorch's Adam/AdamW step for one parameter. `step` counts from 1. With `decoupled_weight_decay`
// (AdamW) the decay multiplies the parameter by (1 - lr * weight_decay); otherwise (Adam) it adds
// weight_decay * param to the gradient.
struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;
  bool amsgrad = false;
  std::int64_t step = 1;
};

// PyTorch's SGD step: g = grad + weight_decay * param; with momentum, buf = g on the first step and
// buf = momentum * buf + (1 - dampening) * g after, then g = nesterov ? g + momentum * buf : buf;
// param -= lr * g.
struct SgdStep {
  double lr = 1e-2, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = true;
};

}  // namespace fpi
