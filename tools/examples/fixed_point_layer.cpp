// An FPI layer inside a network, trained end to end: Linear -> FixedPointLayer(FPI_NN) -> Linear on a
// small regression. The README shows this file verbatim; a test runs it.
#include <cstdio>

#include "fpi/fixed_point.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"

int main() {
  using namespace fpi;
  manual_seed(0);
  const Tensor x = uniform({256, 2}, -2.0, 2.0);
  const Tensor y = tanh(x.select(1, 0) * x.select(1, 1)).unsqueeze(1);

  // g(s, z) = tanh(W [z, s] + b): its Lipschitz constant in s stays below 0.9 by construction.
  auto g = std::make_shared<nn::NetMap>(std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(8 + 8, 8), 0.9),
      std::make_shared<nn::Tanh>()}));
  FixedPointOptions options;
  options.name = "fpi";
  options.forward.tolerance = options.backward.tolerance = 1e-5;
  auto fpi_layer = std::make_shared<nn::FixedPointLayer>(g, Shape{8}, options);
  auto model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(2, 8), fpi_layer, std::make_shared<nn::Linear>(8, 1)});

  optim::Adam adam(model->parameters(), {.lr = 0.02});
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 300; ++step) {
    adam.zero_grad();
    const Tensor loss = mse_loss((*model)(x), y);
    loss.backward();  // one backward FPI through the layer, whatever the forward iteration count
    adam.step();
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  const FixedPointStats& stats = fpi_layer->stats();
  std::printf("loss %.4f -> %.4f\n", first, last);
  std::printf("last step, forward:  %d iterations at most, %.0f%% of samples converged\n",
              stats.forward.max_iterations(), 100 * stats.forward.converged_fraction());
  std::printf("last step, backward: %d iterations at most\n", stats.backward.max_iterations());
  return last < first / 10 ? 0 : 1;
}
