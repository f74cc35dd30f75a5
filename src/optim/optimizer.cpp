// Optimizer bookkeeping (parameter checks, the no-grad step loop, lazily allocated state, state dicts)
// and the SGD / Adam / AdamW updates, which are the fused in-place ops adam_update_ and sgd_update_.
#include "fpi/optim/optimizer.hpp"

#include <set>

#include "fpi/autograd.hpp"
#include "fpi/ops.hpp"

namespace fpi::optim {

namespace {

// PyTorch's checks: a learning rate, momentum, epsilon or decay below zero is a typo, not a setting.
void check_non_negative(const std::string& who, const char* what, double value) {
  FPI_CHECK(value >= 0.0, who, ": invalid ", what, " ", value, "; it must be non-negative");
}

void check_beta(const std::string& who, const char* what, double value) {
  FPI_CHECK(value >= 0.0 && value < 1.0, who, ": invalid ", what, " ", value, "; it must lie in [0, 1)");
}

// The key of one parameter's state in a state dict: "state.3.exp_avg".
std::string state_key(std::size_t index, const char* name) { return detail::concat("state.", index, ".", name); }

}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params, double lr, std::string name)
    : params_(std::move(params)), lr_(lr), name_(std::move(name)) {
  check_non_negative(name_, "learning rate", lr);
  FPI_CHECK(!params_.empty(), name_, ": got an empty parameter list; pass module->parameters()");
  std::set<const TensorImpl*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    FPI_CHECK(p.defined(), name_, ": parameter ", i, " is an undefined tensor");
    FPI_CHECK(p.is_leaf(), name_, ": parameter ", i, " (shape ", shape_str(p.shape()),
              ") is not a leaf tensor, so it cannot be optimized; pass the tensors a module registered");
    FPI_CHECK(seen.insert(p.impl()).second, name_, ": parameter ", i, " (shape ", shape_str(p.shape()),
              ") appears more than once in the parameter list");
  }
}

void Optimizer::set_lr(double lr) {
  check_non_negative(name_, "learning rate", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (const auto& p : params_) p.zero_grad();
}

void Optimizer::step() {
  NoGrad no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    Tensor grad = p.grad();
    if (!grad.defined()) continue;
    FPI_CHECK(grad.dtype() == p.dtype() && grad.device() == p.device(), name_, ".step: parameter ", i, " is ",
              dtype_name(p.dtype()), " on ", p.device().str(), " but its gradient is ", dtype_name(grad.dtype()),
              " on ", grad.device().str());
    FPI_CHECK(p.is_contiguous(), name_, ".step: parameter ", i, " (shape ", shape_str(p.shape()),
              ") is not contiguous; the fused update needs contiguous parameters");
    update(i, p, grad.detach().contiguous());
  }
}

State Optimizer::state_dict() const {
  State out;
  out.set("kind", name_);
  out.set("lr", lr_);
  out.set("param_count", static_cast<std::int64_t>(params_.size()));
  save_state(out);
  return out;
}

void Optimizer::load_state_dict(const State& state) {
  StateReader in(state, name_ + ".load_state_dict");
  in.require("kind", name_);
  in.require("param_count", static_cast<std::int64_t>(params_.size()));
  const double lr = in.get_double("lr");
  FPI_CHECK(lr >= 0.0, in.where(), ": key 'lr' is ", lr, "; a learning rate must be non-negative");
  const std::function<void()> write = read_state(in);
  in.check_all_read();
  write();
  lr_ = lr;
}

Tensor Optimizer::read_state_tensor(StateReader& in, const std::string& key, std::size_t index) const {
  const Tensor& saved = in.get_tensor(key);
  const Tensor& param = params_[index];
  FPI_CHECK(saved.shape() == param.shape(), in.where(), ": key '", key, "' has shape ", shape_str(saved.shape()),
            " but parameter ", index, " has ", shape_str(param.shape()));
  Tensor state = empty(param.shape(), param.options());
  state.copy_(saved);
  return state;
}

Tensor& Optimizer::state_like(Tensor& state, const Tensor& param, const char* state_name) const {
  if (!state.defined()) {
    state = zeros(param.shape(), param.options());
  } else {
    FPI_CHECK(state.dtype() == param.dtype() && state.device() == param.device(), name_, ".step: its ",
              state_name, " state is ", dtype_name(state.dtype()), " on ", state.device().str(),
              " but the parameter is now ", dtype_name(param.dtype()), " on ", param.device().str(),
              "; create the optimizer after converting the module with to()");
  }
  return state;
}

// ---- SGD --------------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, SgdOptions options)
    : Optimizer(std::move(params), options.lr, "SGD"), options_(options) {
  check_non_negative(name(), "momentum", options.momentum);
  check_non_negative(name(), "weight_decay", options.weight_decay);
  FPI_CHECK(!options.nesterov || (options.momentum > 0.0 && options.dampening == 0.0), name(),
            ": Nesterov momentum requires a momentum and zero dampening (got momentum ", options.momentum,
            ", dampening ", options.dampening, ")");
  momentum_buffers_.resize(parameters().size());
}

void SGD::update(std::size_t index, const Tensor& param, const Tensor& grad) {
  SgdStep step;
  step.lr = lr();
  step.momentum = options_.momentum;
  step.dampening = options_.dampening;
  step.weight_decay = options_.weight_decay;
  step.nesterov = options_.nesterov;
  Tensor buffer;
  if (options_.momentum != 0.0) {
    step.first_step = !momentum_buffers_[index].defined();
    buffer = state_like(momentum_buffers_[index], param, "momentum_buffer");
  }
  sgd_update_(param, grad, buffer, step);
}

void SGD::save_state(State& out) const {
  out.set("momentum", options_.momentum);
  out.set("dampening", options_.dampening);
  out.set("weight_decay", options_.weight_decay);
  out.set("nesterov", std::int64_t{options_.nesterov});
  for (std::size_t i = 0; i < momentum_buffers_.size(); ++i)
    if (momentum_buffers_[i].defined()) out.set(state_key(i, "momentum_buffer"), momentum_buffers_[i].detach());
}

std::function<void()> SGD::read_state(StateReader& in) {
  in.require("momentum", options_.momentum);
  in.require("dampening", options_.dampening);
  in.require("weight_decay", options_.weight_decay);
  in.require("nesterov", std::int64_t{options_.nesterov});
  std::vector<Tensor> buffers(parameters().size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    const std::string key = state_key(i, "momentum_buffer");
    if (in.contains(key)) buffers[i] = read_state_tensor(in, key, i);
  }
  return [this, buffers = std::move(buffers)] { momentum_buffers_ = buffers; };
}

// ---- Adam and AdamW -----------------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, false, "Adam") {}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled_weight_decay, std::string name)
    : Optimizer(std::move(params), options.lr, std::move(name)),
      options_(options),
      decoupled_weight_decay_(decoupled_weight_decay) {
  check_non_negative(this->name(), "epsilon", options.eps);
  check_beta(this->name(), "beta1", options.beta1);
  check_beta(this->name(), "beta2", options.beta2);
  check_non_negative(this->name(), "weight_decay", options.weight_decay);
  state_.resize(parameters().size());
}

void Adam::update(std::size_t index, const Tensor& param, const Tensor& grad) {
  ParamState& s = state_[index];
  state_like(s.exp_avg, param, "exp_avg");
  state_like(s.exp_avg_sq, param, "exp_avg_sq");
  if (options_.amsgrad) state_like(s.max_exp_avg_sq, param, "max_exp_avg_sq");
  AdamStep step;
  step.lr = lr();
  step.beta1 = options_.beta1;
  step.beta2 = options_.beta2;
  step.eps = options_.eps;
  step.weight_decay = options_.weight_decay;
  step.decoupled_weight_decay = decoupled_weight_decay_;
  step.amsgrad = options_.amsgrad;
  step.step = ++s.step;
  adam_update_(param, grad, s.exp_avg, s.exp_avg_sq, s.max_exp_avg_sq, step);
}

void Adam::save_state(State& out) const {
  out.set("beta1", options_.beta1);
  out.set("beta2", options_.beta2);
  out.set("eps", options_.eps);
  out.set("weight_decay", options_.weight_decay);
  out.set("amsgrad", std::int64_t{options_.amsgrad});
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const ParamState& s = state_[i];
    if (s.step == 0) continue;
    out.set(state_key(i, "step"), s.step);
    out.set(state_key(i, "exp_avg"), s.exp_avg.detach());
    out.set(state_key(i, "exp_avg_sq"), s.exp_avg_sq.detach());
    if (options_.amsgrad) out.set(state_key(i, "max_exp_avg_sq"), s.max_exp_avg_sq.detach());
  }
}

std::function<void()> Adam::read_state(StateReader& in) {
  in.require("beta1", options_.beta1);
  in.require("beta2", options_.beta2);
  in.require("eps", options_.eps);
  in.require("weight_decay", options_.weight_decay);
  in.require("amsgrad", std::int64_t{options_.amsgrad});
  std::vector<ParamState> state(parameters().size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    const std::string step_key = state_key(i, "step");
    if (!in.contains(step_key)) continue;
    ParamState& s = state[i];
    s.step = in.get_int64(step_key);
    FPI_CHECK(s.step >= 1, in.where(), ": key '", step_key, "' is ", s.step,
              "; a parameter's state is saved once it has taken a step");
    s.exp_avg = read_state_tensor(in, state_key(i, "exp_avg"), i);
    s.exp_avg_sq = read_state_tensor(in, state_key(i, "exp_avg_sq"), i);
    if (options_.amsgrad) s.max_exp_avg_sq = read_state_tensor(in, state_key(i, "max_exp_avg_sq"), i);
  }
  return [this, state = std::move(state)] { state_ = state; };
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam(std::move(params), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad}, true, "AdamW") {}

}  // namespace fpi::optim
