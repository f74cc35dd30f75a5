// A network written in C++ around an FPI layer, trained on the paper's toy problem (Section 4.1):
// learn t = argmin_{-1 <= x <= 1} ||x - a||^2 = clamp(a, -1, 1) from samples (a, t). The layer's map is
// g(x, a) = tanh(W2 relu(W1 [a, x])), so its fixed point can express the clamp's saturation. The data
// comes from fpi::data::toy_splits, batched by epoch and index as the trainer does. A test runs it.
#include <cstdio>
#include <memory>

#include "fpi/data/datasets.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"

namespace {

using namespace fpi;

// A custom module: the FPI layer and how the network uses it.
class BoxProjection : public nn::Module {
 public:
  BoxProjection(std::int64_t dim, std::int64_t hidden) : nn::Module("BoxProjection") {
    auto g = std::make_shared<nn::NetMap>(std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::Linear>(2 * dim, hidden), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(hidden, dim), std::make_shared<nn::Tanh>()}));
    FixedPointOptions options;
    options.name = "projection";
    options.on_nonconvergence = NonConvergencePolicy::Ignore;
    layer = register_module("layer", std::make_shared<nn::FixedPointLayer>(g, Shape{dim}, options));
  }
  Tensor forward(const Tensor& a) override { return (*layer)(a); }

  std::shared_ptr<nn::FixedPointLayer> layer;
};

double mean_loss(BoxProjection& model, const data::Dataset& split) {
  NoGrad no_grad;
  const data::Batch all = split.batch(0, 0, split.size());
  return mse_loss(model(all.at("input")), all.at("target")).item();
}

}  // namespace

int main() {
  manual_seed(0);
  const data::Splits splits = data::toy_splits({.dim = 10, .train_size = 2000, .test_size = 500});
  BoxProjection model(10, 64);
  optim::Adam adam(model.parameters(), {.lr = 3e-3});
  const double before = mean_loss(model, *splits.test);
  constexpr std::int64_t kEpochs = 15, kBatch = 50;
  for (std::int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    for (std::int64_t index = 0; index < splits.train->num_batches(kBatch); ++index) {
      const data::Batch batch = splits.train->batch(epoch, index, kBatch);
      adam.zero_grad();
      const Tensor loss = mse_loss(model(batch.at("input")), batch.at("target"));
      loss.backward();  // one backward FPI through the layer
      adam.step();
    }
  }
  const double after = mean_loss(model, *splits.test);
  const FixedPointStats& stats = model.layer->stats();
  std::printf("toy test loss %.4f -> %.4f after %lld epochs\n", before, after, static_cast<long long>(kEpochs));
  std::printf("last solve: %.1f forward iterations on average, %.0f%% of samples converged\n",
              stats.forward.mean_iterations(), 100 * stats.forward.converged_fraction());
  return after < before / 4 ? 0 : 1;
}
