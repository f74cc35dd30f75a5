// The in-place update ops behind the optimizers and gradient clipping (fpi/ops.hpp): one step
// against the formula written out, the storage versions they bump, and the arguments they refuse.
// Their numbers over many steps are checked against PyTorch through the optimizers in optim/test_optim.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using testing::error_of;

constexpr TensorOptions kF64{.dtype = kFloat64};

TEST(UpdateOps, OneAdamStepFollowsTheFormula) {
  const Tensor p = tensor({0.5, -1.0}, kF64), g = tensor({0.3, 2.0}, kF64);
  const Tensor m = zeros({2}, kF64), v = zeros({2}, kF64);
  const AdamStep step{.lr = 0.1, .weight_decay = 0.2};
  adam_update_(p, g, m, v, Tensor(), step);
  const std::vector<double> p0 = {0.5, -1.0}, g0 = {0.3, 2.0};
  for (int i = 0; i < 2; ++i) {
    const double gi = g0[i] + 0.2 * p0[i];
    const double bias_correction1 = 1 - 0.9, bias_correction2 = 1 - 0.999;
    const double mi = (1 - 0.9) * gi, vi = (1 - 0.999) * gi * gi;
    const double expected = p0[i] - 0.1 / bias_correction1 * mi / (std::sqrt(vi) / std::sqrt(bias_correction2) + 1e-8);
    EXPECT_NEAR(p.to_vector<double>()[i], expected, 1e-15) << i;
    EXPECT_NEAR(m.to_vector<double>()[i], mi, 1e-16) << i;
    EXPECT_NEAR(v.to_vector<double>()[i], vi, 1e-16) << i;
  }
}

TEST(UpdateOps, OneSgdStepAndScaleFollowTheFormula) {
  const Tensor p = tensor({0.5, -1.0}, kF64), g = tensor({0.3, 2.0}, kF64), buffer = zeros({2}, kF64);
  sgd_update_(p, g, buffer, {.lr = 0.1, .momentum = 0.9, .first_step = true});
  EXPECT_EQ(buffer.to_vector<double>(), (std::vector<double>{0.3, 2.0}));
  EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{0.5 - 0.1 * 0.3, -1.0 - 0.1 * 2.0}));
  const Tensor strided = arange(0, 6, 1, kF64).reshape({2, 3}).t();
  scale_(strided, 0.5);
  EXPECT_EQ(strided.to_vector<double>(), (std::vector<double>{0.0, 1.5, 0.5, 2.0, 1.0, 2.5}));
}

// A graph that saved a tensor an update then wrote must refuse to run its backward.
TEST(UpdateOps, BumpTheVersionOfEveryTensorTheyWrite) {
  const auto saved_by_a_graph = [](const Tensor& t) {
    const Tensor x = ones(t.shape(), kF64).requires_grad_();
    return sum(x * t);
  };
  const Tensor p = ones({2}, kF64), g = ones({2}, kF64), m = zeros({2}, kF64), v = zeros({2}, kF64),
               vmax = zeros({2}, kF64);
  const Tensor over_p = saved_by_a_graph(p), over_m = saved_by_a_graph(m), over_v = saved_by_a_graph(v),
               over_vmax = saved_by_a_graph(vmax);
  adam_update_(p, g, m, v, vmax, {.amsgrad = true});
  for (const Tensor& loss : {over_p, over_m, over_v, over_vmax}) EXPECT_THROW(loss.backward(), Error);

  const Tensor buffer = zeros({2}, kF64);
  const Tensor over_buffer = saved_by_a_graph(buffer), over_g = saved_by_a_graph(g);
  sgd_update_(p, g, buffer, {.momentum = 0.5});
  EXPECT_THROW(over_buffer.backward(), Error);
  over_g.backward();  // the gradient is only read

  const Tensor over_scaled = saved_by_a_graph(g);
  scale_(g, 2.0);
  EXPECT_THROW(over_scaled.backward(), Error);
}

TEST(UpdateOps, RefuseWhatTheFusedKernelsCannotTake) {
  const Tensor p = ones({2}, kF64), g = ones({2}, kF64), m = zeros({2}, kF64), v = zeros({2}, kF64);
  EXPECT_EQ(error_of([&] { adam_update_(p, g, zeros({2}), v, Tensor(), {}); }),
            "adam_update_: exp_avg is float32 on cpu but the parameter is float64 on cpu");
  EXPECT_EQ(error_of([&] { adam_update_(p, ones({3}, kF64), m, v, Tensor(), {}); }),
            "adam_update_: the gradient has shape [3] but the parameter has [2]");
  EXPECT_EQ(error_of([&] { adam_update_(p, g, m, v, Tensor(), {.amsgrad = true}); }),
            "adam_update_: max_exp_avg_sq is an undefined tensor");
  EXPECT_EQ(error_of([&] { adam_update_(p, g, m, v, Tensor(), {.step = 0}); }),
            "adam_update_: the step count starts at 1, got 0");
  const Tensor transposed = ones({2, 3}, kF64).t();
  EXPECT_EQ(error_of([&] { sgd_update_(transposed, ones({3, 2}, kF64), Tensor(), {}); }),
            "sgd_update_: the parameter (shape [3, 2]) is not contiguous; the fused update needs contiguous tensors");
  EXPECT_EQ(error_of([&] { sgd_update_(p, g, Tensor(), {.momentum = 0.9}); }),
            "sgd_update_: the momentum buffer is an undefined tensor");
  EXPECT_EQ(error_of([&] { sgd_update_(Tensor(), g, Tensor(), {}); }),
            "sgd_update_: the parameter is an undefined tensor");

  // Like Tensor::fill_, they refuse a tensor that requires grad while grad mode is on.
  const Tensor leaf = ones({2}, kF64).requires_grad_();
  const std::string outside_no_grad =
      " (shape [2]) requires grad and grad mode is on; in-place updates are not recorded, so run them inside an "
      "fpi::NoGrad scope";
  EXPECT_EQ(error_of([&] { sgd_update_(leaf, g, Tensor(), {}); }), "sgd_update_: the parameter" + outside_no_grad);
  EXPECT_EQ(error_of([&] { scale_(leaf * 2.0, 0.5); }), "scale_: the tensor" + outside_no_grad);
  NoGrad no_grad;
  sgd_update_(leaf, g, Tensor(), {});
  scale_(leaf, 0.5);
}

}  // namespace
}  // namespace fpi
