// End to end through nn, autograd and optim: a 1 -> 32 -> 1 tanh network fits sin on [-3, 3] with Adam.
#include <gtest/gtest.h>

#include <cmath>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"

namespace fpi {
namespace {

TEST(Training, TinyMlpFitsASmoothCurveWithAdam) {
  Generator gen(2024);
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
      std::make_shared<nn::Linear>(1, 32, true, TensorOptions{}, &gen), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(32, 1, true, TensorOptions{}, &gen)});
  std::vector<float> xs, ys;
  for (int i = 0; i < 64; ++i) {
    xs.push_back(-3.0f + 6.0f * static_cast<float>(i) / 63.0f);
    ys.push_back(std::sin(xs.back()));
  }
  const Tensor x = from_vector(xs, {64, 1}, {});
  const Tensor y = from_vector(ys, {64, 1}, {});
  optim::Adam opt(net->parameters(), {.lr = 1e-2});

  double first_loss = 0.0, last_loss = 0.0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    const Tensor loss = mse_loss((*net)(x), y);
    loss.backward();
    opt.step();
    last_loss = loss.item();
    if (step == 0) first_loss = last_loss;
  }
  EXPECT_LT(last_loss, first_loss / 10.0) << "first loss " << first_loss << ", last " << last_loss;
}

}  // namespace
}  // namespace fpi
