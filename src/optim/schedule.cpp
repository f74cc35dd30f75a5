// MultiStepLR and CosineAnnealingLR in PyTorch's chainable (recursive) form, and the schedules' state
// dicts; see schedule.hpp.
#include "fpi/optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace fpi::optim {

LRScheduler::LRScheduler(Optimizer& optimizer, std::string name)
    : optimizer_(optimizer), name_(std::move(name)), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  ++last_epoch_;
  last_lr_ = next_lr(optimizer_.lr());
  optimizer_.set_lr(last_lr_);
}

State LRScheduler::state_dict() const {
  State out;
  out.set("kind", name_);
  out.set("last_epoch", last_epoch_);
  out.set("base_lr", base_lr_);
  out.set("last_lr", last_lr_);
  save_settings(out);
  return out;
}

void LRScheduler::load_state_dict(const State& state) {
  StateReader in(state, name_ + ".load_state_dict");
  in.require("kind", name_);
  require_settings(in);
  const std::int64_t last_epoch = in.get_int64("last_epoch");
  const double base_lr = in.get_double("base_lr");
  const double last_lr = in.get_double("last_lr");
  in.check_all_read();
  FPI_CHECK(last_epoch >= 0, in.where(), ": key 'last_epoch' is ", last_epoch,
            "; a schedule is at epoch 0 or later once constructed");
  FPI_CHECK(base_lr >= 0.0 && last_lr >= 0.0, in.where(), ": the learning rates must be non-negative (base_lr ",
            base_lr, ", last_lr ", last_lr, ")");
  last_epoch_ = last_epoch;
  base_lr_ = base_lr;
  last_lr_ = last_lr;
  optimizer_.set_lr(last_lr);
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler(optimizer, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  FPI_CHECK(gamma >= 0.0, "MultiStepLR: gamma must be non-negative, got ", gamma);
  initial_step();
}

double MultiStepLR::next_lr(double current_lr) const {
  const auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch());
  return hits == 0 ? current_lr : current_lr * std::pow(gamma_, static_cast<double>(hits));
}

void MultiStepLR::save_settings(State& out) const {
  out.set("milestones", milestones_);
  out.set("gamma", gamma_);
}

void MultiStepLR::require_settings(StateReader& in) const {
  in.require("milestones", milestones_);
  in.require("gamma", gamma_);
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LRScheduler(optimizer, "CosineAnnealingLR"), t_max_(t_max), eta_min_(eta_min) {
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

void CosineAnnealingLR::save_settings(State& out) const {
  out.set("t_max", t_max_);
  out.set("eta_min", eta_min_);
}

void CosineAnnealingLR::require_settings(StateReader& in) const {
  in.require("t_max", t_max_);
  in.require("eta_min", eta_min_);
}

}  // namespace fpi::optim
