// Grad mode: the thread-local switch that says whether differentiable ops record on the tape. It sits
// below the tensor (which refuses in-place writes to graph tensors while it is on) and the tape (which
// records only while it is on), so both can read it without depending on each other.
#pragma once

namespace fpi {
namespace autograd {

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Disables recording in its scope (inference, optimizer steps, the forward FPI loop).
class NoGrad {
 public:
  NoGrad() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGrad() { set_grad_enabled(previous_); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// Re-enables recording inside a NoGrad scope (FPI_GD needs ∇ₓE inside its no-grad forward loop).
class EnableGrad {
 public:
  EnableGrad() : previous_(grad_enabled()) { set_grad_enabled(true); }
  ~EnableGrad() { set_grad_enabled(previous_); }
  EnableGrad(const EnableGrad&) = delete;
  EnableGrad& operator=(const EnableGrad&) = delete;

 private:
  bool previous_;
};

}  // namespace autograd

using autograd::EnableGrad;
using autograd::NoGrad;

}  // namespace fpi
