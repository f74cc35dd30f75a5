// Optimizer bookkeeping (parameter checks, the no-grad step loop, lazily allocated state) and the
// SGD / Adam / AdamW updates, which are the fused backend primitives adam_update and sgd_update.
#include "fpi/optim/optimizer.hpp"

#include <set>

#include "backend/backend.hpp"
#include "fpi/autograd.hpp"

namespace fpi::optim {

namespace {

// PyTorch's checks: a learning rate, momentum, epsilon or decay below zero is a typo, not a setting.
void check_non_negative(const std::string& who, const char* what, double value) {
  FPI_CHECK(value >= 0.0, who, ": invalid ", what, " ", value, "; it must be non-negative");
}

void check_beta(const std::string& who, const char* what, double value) {
  FPI_CHECK(value >= 0.0 && value < 1.0, who, ": invalid ", what, " ", value, "; it must lie in [0, 1)");
}

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
    p.impl()->storage->bump_version();
  }
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
  backend::SgdDesc desc;
  desc.lr = lr();
  desc.momentum = options_.momentum;
  desc.dampening = options_.dampening;
  desc.weight_decay = options_.weight_decay;
  desc.nesterov = options_.nesterov;
  Tensor buffer;
  if (options_.momentum != 0.0) {
    desc.first_step = !momentum_buffers_[index].defined();
    buffer = state_like(momentum_buffers_[index], param, "momentum_buffer");
  }
  backend::backend_of(param).sgd_update(param, grad, buffer, desc);
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
  State& s = state_[index];
  state_like(s.exp_avg, param, "exp_avg");
  state_like(s.exp_avg_sq, param, "exp_avg_sq");
  if (options_.amsgrad) state_like(s.max_exp_avg_sq, param, "max_exp_avg_sq");
  backend::AdamDesc desc;
  desc.lr = lr();
  desc.beta1 = options_.beta1;
  desc.beta2 = options_.beta2;
  desc.eps = options_.eps;
  desc.weight_decay = options_.weight_decay;
  desc.decoupled_weight_decay = decoupled_weight_decay_;
  desc.amsgrad = options_.amsgrad;
  desc.step = ++s.step;
  backend::backend_of(param).adam_update(param, grad, s.exp_avg, s.exp_avg_sq, s.max_exp_avg_sq, desc);
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam(std::move(params), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad}, true, "AdamW") {}

}  // namespace fpi::optim
