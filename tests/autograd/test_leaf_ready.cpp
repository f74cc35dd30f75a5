// backward()'s leaf hook (autograd::LeafGradientReady): each leaf is reported once, after the last
// contribution to its gradient, in the order that lets data-parallel training start reducing the last
// layer's gradients while the backward still works on the first layer's.
#include <gtest/gtest.h>

#include <vector>

#include "fpi/autograd.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace fpi {
namespace {

const TensorOptions kF64Grad{.dtype = kFloat64, .requires_grad = true};

struct Report {
  TensorImpl* leaf;
  std::vector<double> grad_then;
};

TEST(AutogradLeafReady, ReportsEachLeafOnceWithItsFinalGradientLastLayerFirst) {
  Generator generator(7);
  const Tensor x = randn({5, 3}, {.dtype = kFloat64}, &generator);
  Tensor w1 = randn({4, 3}, kF64Grad, &generator);
  Tensor b1 = randn({4}, kF64Grad, &generator);
  Tensor w2 = randn({2, 4}, kF64Grad, &generator);
  Tensor unused = randn({2}, kF64Grad, &generator);
  // w1 feeds the first layer and, last of all, a penalty: its gradient has two contributions, the
  // second computed first by the backward.
  const Tensor hidden = tanh(linear(x, w1, b1));
  const Tensor loss = sum(linear(hidden, w2) * linear(hidden, w2)) + sum(w1 * w1);

  std::vector<Report> reports;
  autograd::backward({loss}, {}, std::nullopt, false, [&](const Tensor& leaf) {
    reports.push_back({leaf.impl(), leaf.grad().to_vector<double>()});
  });

  ASSERT_EQ(reports.size(), 3u);
  const auto position = [&](const Tensor& t) {
    for (std::size_t i = 0; i < reports.size(); ++i)
      if (reports[i].leaf == t.impl()) return static_cast<int>(i);
    return -1;
  };
  for (const Tensor* leaf : {&w1, &b1, &w2}) {
    const int at = position(*leaf);
    ASSERT_GE(at, 0);
    EXPECT_EQ(reports[static_cast<std::size_t>(at)].grad_then, leaf->grad().to_vector<double>());
  }
  EXPECT_EQ(position(unused), -1);
  EXPECT_LT(position(w2), position(w1));
  EXPECT_LT(position(w2), position(b1));
}

TEST(AutogradLeafReady, GradAndPlainBackwardReportNothing) {
  Tensor w = tensor({1.0, 2.0}, kF64Grad);
  int calls = 0;
  const auto count = [&](const Tensor&) { ++calls; };
  // grad() never accumulates, so no leaf's .grad becomes final.
  (void)autograd::grad({sum(w * w)}, {w});
  autograd::backward({sum(w * w)}, {}, std::nullopt, false, count);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{2.0, 4.0}));
  sum(w).backward();
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace fpi
