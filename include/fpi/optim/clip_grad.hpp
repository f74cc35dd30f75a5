// Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::optim {

// The norm of all gradients of `params` taken together (tensors without a gradient are skipped; 0 when
// none has one). When max_norm / (total + 1e-6) < 1 every gradient is scaled in place by that factor;
// as in PyTorch, a non-finite total makes the factor 0 or NaN and the gradients follow, so check the
// returned norm before stepping when that matters.
// `norm_type` is p > 0 of the p-norm, or infinity for the largest absolute value.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);

}  // namespace fpi::optim
