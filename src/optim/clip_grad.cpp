// clip_grad_norm: per-gradient norms reduced on the device, combined on the host, then one in-place
// scaling per gradient, following torch.nn.utils.clip_grad_norm_ step by step so the numbers agree.
#include "fpi/optim/clip_grad.hpp"

#include <cmath>

#include "fpi/ops.hpp"

namespace fpi::optim {

namespace {

// ‖g‖_p of one gradient.
double grad_norm(const Tensor& g, double p) {
  if (std::isinf(p)) return max(abs(g)).item();
  if (p == 2.0) return norm(g).item();
  return std::pow(sum(pow(abs(g), p)).item(), 1.0 / p);
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  FPI_CHECK(norm_type > 0.0, "clip_grad_norm: norm_type must be positive (or infinity), got ", norm_type);
  FPI_CHECK(max_norm >= 0.0, "clip_grad_norm: max_norm must be non-negative, got ", max_norm);
  NoGrad no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : params) {
    FPI_CHECK(p.defined(), "clip_grad_norm: parameter ", grads.size(), " is an undefined tensor");
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;

  double total = 0.0;
  for (const auto& g : grads) {
    const double n = grad_norm(g.detach(), norm_type);
    if (std::isinf(norm_type)) {
      total = n > total || std::isnan(n) ? n : total;  // a NaN gradient poisons the total, as torch.max does
    } else {
      total += std::pow(n, norm_type);
    }
  }
  if (!std::isinf(norm_type)) total = std::pow(total, 1.0 / norm_type);

  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1.0)) {
    for (const auto& g : grads) scale_(g, coef);
  }
  return total;
}

}  // namespace fpi::optim
