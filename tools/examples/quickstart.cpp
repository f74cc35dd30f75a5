// The README's quick-start example, verbatim (a test keeps the two identical): fit y = 3x + 1 by
// gradient descent with tensors, ops and autograd only, then take a second derivative.
#include <cmath>
#include <cstdio>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

int main() {
  fpi::manual_seed(0);
  const fpi::Tensor x = fpi::rand({64, 1});
  const fpi::Tensor y = 3.0 * x + 1.0;

  fpi::Tensor w = fpi::zeros({1, 1}, {.requires_grad = true});
  fpi::Tensor b = fpi::zeros({1}, {.requires_grad = true});
  for (int step = 0; step < 2000; ++step) {
    const fpi::Tensor loss = fpi::mse_loss(fpi::linear(x, w, b), y);
    loss.backward();
    fpi::NoGrad no_grad;  // the update itself must not be recorded
    w.copy_(w - 0.5 * w.grad());
    b.copy_(b - 0.5 * b.grad());
    w.zero_grad();
    b.zero_grad();
  }
  std::printf("fitted y = %.4f x + %.4f\n", w.item(), b.item());

  // Higher order: d²/dt² t³ = 6t, by differentiating the first derivative's graph.
  const fpi::Tensor t = fpi::tensor({2.0}, {.requires_grad = true});
  const fpi::autograd::GradOptions keep_graph{.retain_graph = true, .create_graph = true};
  const fpi::Tensor dy = fpi::autograd::grad({fpi::pow(t, 3.0)}, {t}, {}, keep_graph)[0];
  const fpi::Tensor d2y = fpi::autograd::grad({dy}, {t})[0];
  std::printf("d/dt t^3 = %.1f, d2/dt2 t^3 = %.1f at t = 2\n", dy.item(), d2y.item());

  const bool ok = std::abs(w.item() - 3.0) < 1e-3 && std::abs(b.item() - 1.0) < 1e-3 && d2y.item() == 12.0;
  return ok ? 0 : 1;
}
