// MultiStepLR and CosineAnnealingLR in PyTorch's chainable (recursive) form; see schedule.hpp.
#include "fpi/optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace fpi::optim {

LRScheduler::LRScheduler(Optimizer& optimizer)
    : optimizer_(optimizer), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  ++last_epoch_;
  last_lr_ = next_lr(optimizer_.lr());
  optimizer_.set_lr(last_lr_);
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  FPI_CHECK(gamma >= 0.0, "MultiStepLR: gamma must be non-negative, got ", gamma);
  initial_step();
}

double MultiStepLR::next_lr(double current_lr) const {
  const auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch());
  return hits == 0 ? current_lr : current_lr * std::pow(gamma_, static_cast<double>(hits));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  FPI_CHECK(t_max >= 1, "CosineAnnealingLR: T_max must be at least 1 epoch, got ", t_max);
  initial_step();
}

double CosineAnnealingLR::next_lr(double current_lr) const {
  constexpr double pi = std::numbers::pi;
  const std::int64_t t = last_epoch();
  const auto T = static_cast<double>(t_max_);
  if (t == 0) return current_lr;
  // (t - 1 - T_max) mod 2·T_max == 0 (a non-negative remainder, as Python's %): the cosine's trough,
  // where the ratio below would divide by zero, so PyTorch adds the step up directly.
  const std::int64_t period = 2 * t_max_;
  if (((t - 1 - t_max_) % period + period) % period == 0)
    return current_lr + (base_lr() - eta_min_) * (1.0 - std::cos(pi / T)) / 2.0;
  return (1.0 + std::cos(pi * static_cast<double>(t) / T)) / (1.0 + std::cos(pi * static_cast<double>(t - 1) / T)) *
             (current_lr - eta_min_) +
         eta_min_;
}

}  // namespace fpi::optim
