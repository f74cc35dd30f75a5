// Learning-rate schedules with PyTorch's epoch semantics: constructing a schedule is epoch 0 (it
// records the optimizer's lr as the base and may already change it, e.g. a milestone at 0), and each
// step() advances one epoch and writes the new lr into the optimizer. The rules are PyTorch's chainable
// forms, which start from the optimizer's current lr, so the numbers agree with PyTorch's to rounding
// (the compiler may fuse a multiply-add where Python rounds twice).
// A schedule keeps a reference to its optimizer, which must outlive it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fpi/optim/optimizer.hpp"
#include "fpi/state.hpp"

namespace fpi::optim {

class LRScheduler {
 public:
  // `name` is the concrete schedule's ("MultiStepLR"), for errors and state dicts.
  LRScheduler(Optimizer& optimizer, std::string name);
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  void step();
  double last_lr() const { return last_lr_; }
  std::int64_t last_epoch() const { return last_epoch_; }
  double base_lr() const { return base_lr_; }
  const std::string& name() const { return name_; }

  // "kind" (the name), "last_epoch", "base_lr", "last_lr" and the schedule's settings.
  State state_dict() const;
  // Restores the epoch and lrs and puts the optimizer's lr back to last_lr, so the next step() gives
  // what the saved schedule's would have. A state of another kind of schedule or with other settings
  // is refused, naming the key, and nothing is changed.
  void load_state_dict(const State& state);

 protected:
  // The lr for epoch last_epoch(), given the optimizer's lr of the previous epoch.
  virtual double next_lr(double current_lr) const = 0;
  // Each concrete schedule's constructor ends with this: it makes the construction epoch 0.
  void initial_step() { step(); }
  // The schedule's settings in its state dict, and their check on load (StateReader::require).
  virtual void save_settings(State& out) const = 0;
  virtual void require_settings(StateReader& in) const = 0;

 private:
  Optimizer& optimizer_;
  std::string name_;
  double base_lr_;
  std::int64_t last_epoch_ = -1;
  double last_lr_;
};

// Multiplies the lr by gamma at each milestone epoch (by gamma^k for a milestone listed k times).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1);

 private:
  double next_lr(double current_lr) const override;
  // "milestones", "gamma".
  void save_settings(State& out) const override;
  void require_settings(StateReader& in) const override;
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

// lr(t) = eta_min + (base_lr - eta_min) · (1 + cos(π t / T_max)) / 2, continued past T_max as PyTorch
// does (the lr climbs back up over the next T_max epochs).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0.0);

 private:
  double next_lr(double current_lr) const override;
  // "t_max", "eta_min".
  void save_settings(State& out) const override;
  void require_settings(StateReader& in) const override;
  std::int64_t t_max_;
  double eta_min_;
};

}  // namespace fpi::optim
