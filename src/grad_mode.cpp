// The grad-mode switch (fpi/grad_mode.hpp): one flag per thread, on by default as in PyTorch.
#include "fpi/grad_mode.hpp"

namespace fpi::autograd {
namespace {
thread_local bool g_grad_enabled = true;
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

}  // namespace fpi::autograd
