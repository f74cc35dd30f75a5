// Optimizers: SGD (momentum, Nesterov, dampening, L2 decay), Adam (L2 decay, AMSGrad) and AdamW
// (decoupled decay), with PyTorch's update formulas and option checks. A step runs under NoGrad and
// makes one fused update op (fpi/ops.hpp) per parameter; parameters without a gradient are
// skipped, and their state (exp_avg, ...) is allocated, zeroed, on the first step that reaches them.
// The state dict holds the learning rate and that state, so a run that loads it steps on exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fpi/state.hpp"
#include "fpi/tensor.hpp"

namespace fpi::optim {

// The learning rate lives here (lr(), set_lr()) so schedules can drive any optimizer; the `lr` in an
// options struct is only the starting value.
class Optimizer {
 public:
  // `params` must be distinct leaf tensors with contiguous data (every module parameter is).
  Optimizer(std::vector<Tensor> params, double lr, std::string name);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  void step();
  // Drops every parameter's gradient.
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& parameters() const { return params_; }
  const std::string& name() const { return name_; }

  // "kind" (the name: "SGD", "Adam", "AdamW"), "lr", "param_count", the options, and under
  // "state.<index>." the state of each parameter that has been stepped (a parameter never stepped has
  // no keys). The tensors share the optimizer's storage, as a module's state dict does.
  State state_dict() const;
  // Replaces the learning rate and every parameter's state, copying tensors to the parameter's dtype
  // and device. A state from another kind of optimizer, for another number of parameters, with other
  // options, or with a tensor whose shape is not its parameter's is refused with an error naming the
  // key, and nothing is changed.
  void load_state_dict(const State& state);

 protected:
  // Updates parameter `index` from `grad` (contiguous, the parameter's dtype, device and shape).
  virtual void update(std::size_t index, const Tensor& param, const Tensor& grad) = 0;
  // A zeroed state tensor like `param`, or `state` itself once allocated (checked to still match).
  Tensor& state_like(Tensor& state, const Tensor& param, const char* state_name) const;
  // The subclass's part of state_dict(): its options and per-parameter state.
  virtual void save_state(State& out) const = 0;
  // The subclass's part of load_state_dict(): reads and checks its keys without changing anything, and
  // returns the writes, which are made once every key of the state has been checked.
  virtual std::function<void()> read_state(StateReader& in) = 0;
  // For read_state: the tensor under `key` as new state for parameter `index`, copied to the
  // parameter's dtype and device; its shape must be the parameter's.
  Tensor read_state_tensor(StateReader& in, const std::string& key, std::size_t index) const;

 private:
  std::vector<Tensor> params_;
  double lr_;
  std::string name_;
};

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SgdOptions options = {});

 private:
  void update(std::size_t index, const Tensor& param, const Tensor& grad) override;
  // "momentum", "dampening", "weight_decay", "nesterov"; "state.<i>.momentum_buffer".
  void save_state(State& out) const override;
  std::function<void()> read_state(StateReader& in) override;

  SgdOptions options_;
  std::vector<Tensor> momentum_buffers_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool amsgrad = false;
};

// AdamW's options differ from Adam's only in the default decay, which is decoupled from the gradient.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: the parameter is multiplied by (1 - lr * weight_decay)
  bool amsgrad = false;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});

 protected:
  Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled_weight_decay, std::string name);

 private:
  struct ParamState {
    Tensor exp_avg, exp_avg_sq, max_exp_avg_sq;
    std::int64_t step = 0;
  };
  void update(std::size_t index, const Tensor& param, const Tensor& grad) override;
  // "beta1", "beta2", "eps", "weight_decay", "amsgrad"; "state.<i>.step", "state.<i>.exp_avg",
  // "state.<i>.exp_avg_sq" and, with amsgrad, "state.<i>.max_exp_avg_sq".
  void save_state(State& out) const override;
  std::function<void()> read_state(StateReader& in) override;

  AdamOptions options_;
  bool decoupled_weight_decay_;
  std::vector<ParamState> state_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

}  // namespace fpi::optim
