// The tape: accumulation, grad() options, higher-order gradients, graph lifetime and the errors a
// user meets when misusing it.
#include <gtest/gtest.h>

#include "fpi/ops.hpp"
#include "gradcheck.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

const TensorOptions kF64Grad{.dtype = kFloat64, .requires_grad = true};

using testing::error_of;

TEST(Autograd, BackwardAccumulatesIntoLeaves) {
  Tensor x = tensor({1.0, 2.0}, kF64Grad);
  Tensor y = sum(x * x);
  y.backward(Tensor(), true);
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 4}));
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{4, 8}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, AccumulationDoesNotWriteIntoTheCallersGradient) {
  Tensor x = tensor({1.0, 2.0}, kF64Grad);
  Tensor seed = tensor({1.0, 1.0}, {.dtype = kFloat64});
  (x + 0.0).backward(seed);
  (x + 0.0).backward(seed);
  EXPECT_EQ(seed.to_vector<double>(), (std::vector<double>{1, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 2}));
}

TEST(Autograd, GradDoesNotTouchDotGrad) {
  Tensor x = tensor({3.0}, kF64Grad);
  Tensor y = x * x * x;
  auto g = autograd::grad({y}, {x});
  EXPECT_DOUBLE_EQ(g[0].item(), 27.0);
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, HigherOrderDerivativesOfACubic) {
  Tensor x = tensor({2.0}, kF64Grad);
  Tensor y = pow(x, 3.0);
  Tensor d1 = autograd::grad({y}, {x}, {}, {.create_graph = true})[0];
  Tensor d2 = autograd::grad({d1}, {x}, {}, {.create_graph = true})[0];
  Tensor d3 = autograd::grad({d2}, {x})[0];
  EXPECT_DOUBLE_EQ(d1.item(), 12.0);
  EXPECT_DOUBLE_EQ(d2.item(), 12.0);
  EXPECT_DOUBLE_EQ(d3.item(), 6.0);
}

TEST(Autograd, GradientWithRespectToAnIntermediate) {
  Tensor x = tensor({1.0, 2.0}, kF64Grad);
  Tensor h = x * 3.0;
  Tensor y = sum(square(h));
  auto g = autograd::grad({y}, {h, x});
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{6, 12}));
  EXPECT_EQ(g[1].to_vector<double>(), (std::vector<double>{18, 36}));
}

TEST(Autograd, HessianVectorProductOfAnMlpEnergy) {
  Generator gen(11);
  Tensor w1 = randn({5, 3}, kF64Grad, &gen), b1 = randn({5}, kF64Grad, &gen);
  Tensor w2 = randn({1, 5}, kF64Grad, &gen);
  Tensor x = randn({4, 3}, kF64Grad, &gen);
  // ∇ₓE(x) for E = Σ softplus(W2 tanh(W1 x + b1)): what the gradient-descent FPI layer iterates.
  const testing::Fn grad_energy = [&](const Tensors& in) {
    EnableGrad enable;  // the checker evaluates f under NoGrad, but ∇ₓE needs a graph
    const Tensor e = sum(softplus(linear(tanh(linear(in[0], in[1], in[2])), in[3])));
    return autograd::grad({e}, {in[0]}, {}, {.create_graph = true})[0];
  };
  EXPECT_TRUE(testing::gradcheck(grad_energy, {x, w1, b1, w2}));
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor x = tensor({1.0}, kF64Grad);
  Tensor y;
  {
    NoGrad no_grad;
    y = x * 2.0;
    {
      EnableGrad enable;
      EXPECT_TRUE((x * 2.0).requires_grad());
    }
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FALSE(y.grad_fn());
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Autograd, UnusedInputs) {
  Tensor x = tensor({1.0}, kF64Grad), unused = tensor({1.0}, kF64Grad);
  Tensor y = x * 2.0;
  EXPECT_NE(error_of([&] { autograd::grad({y}, {x, unused}, {}, {.retain_graph = true}); }).find("allow_unused"),
            std::string::npos);
  auto g = autograd::grad({y}, {x, unused}, {}, {.allow_unused = true});
  EXPECT_TRUE(g[0].defined());
  EXPECT_FALSE(g[1].defined());
}

TEST(Autograd, MisuseGivesActionableErrors) {
  Tensor x = tensor({1.0, 2.0}, kF64Grad);
  const std::string non_scalar = error_of([&] { (x * 2.0).backward(); });
  EXPECT_NE(non_scalar.find("grad_outputs"), std::string::npos) << non_scalar;
  EXPECT_NE(non_scalar.find("[2]"), std::string::npos) << non_scalar;

  Tensor y = sum(exp(x));
  y.backward();
  const std::string twice = error_of([&] { y.backward(); });
  EXPECT_NE(twice.find("retain_graph"), std::string::npos) << twice;

  const std::string constant = error_of([] { sum(ones({2})).backward(); });
  EXPECT_NE(constant.find("does not require grad"), std::string::npos) << constant;

  Tensor a = tensor({1.0, 2.0}, {.dtype = kFloat64});
  Tensor z = sum(x * a);
  a.fill_(5.0);
  const std::string modified = error_of([&] { z.backward(); });
  EXPECT_NE(modified.find("modified in place"), std::string::npos) << modified;

  const std::string leaf_write = error_of([&] { x.fill_(0.0); });
  EXPECT_NE(leaf_write.find("NoGrad"), std::string::npos) << leaf_write;

  const std::string wrong_seed = error_of([&] { (x * 2.0).backward(ones({3}, {.dtype = kFloat64})); });
  EXPECT_NE(wrong_seed.find("grad_outputs[0]"), std::string::npos) << wrong_seed;
}

// A weight read through several slices (the FPI map's z and x columns) gets one gradient buffer that
// every slice adds its part into: no zero-filled whole per slice, summed afterwards.
TEST(Autograd, SlicesOfOneTensorAddIntoOneGradientBuffer) {
  Generator gen(3);
  const std::int64_t rows = 256, cols = 512;
  Tensor w = randn({rows, cols}, kF64Grad, &gen);
  const Tensor left = randn({rows, 200}, {.dtype = kFloat64}, &gen);
  const Tensor right = randn({rows, cols - 200}, {.dtype = kFloat64}, &gen);
  const Tensor even = randn({rows, cols / 2}, {.dtype = kFloat64}, &gen);
  Tensor loss = sum(slice(w, 1, 0, 200) * left) + sum(slice(w, 1, 200, cols) * right) +
                sum(slice(w, 1, 0, cols, 2) * even);
  const std::size_t whole_bytes = static_cast<std::size_t>(rows * cols) * sizeof(double);
  const std::size_t before = allocator_stats().bytes_in_use;
  reset_allocator_stats();
  loss.backward();
  // The gradient itself, plus one part's gradient at a time (the largest is 312 of the 512 columns).
  EXPECT_LE(allocator_stats().peak_bytes_in_use - before, whole_bytes + whole_bytes * 312 / 512 + 64 * 1024);

  const std::vector<double> got = w.grad().to_vector<double>();
  const std::vector<double> l = left.to_vector<double>(), r = right.to_vector<double>(), e = even.to_vector<double>();
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      double want = j < 200 ? l[i * 200 + j] : r[i * (cols - 200) + j - 200];
      if (j % 2 == 0) want += e[i * (cols / 2) + j / 2];
      ASSERT_EQ(got[i * cols + j], want) << "at (" << i << ", " << j << ")";
    }
  }
}

// The in-place path must not write into a gradient somebody else holds: here the caller's seed reaches
// x's buffer unchanged through `x + 0` before the slice adds its part.
TEST(Autograd, ASliceDoesNotAddIntoTheCallersGradient) {
  Tensor x = tensor({1.0, 2.0, 3.0}, kF64Grad);
  Tensor part = slice(x, 0, 1, 3);
  Tensor whole = x + 0.0;
  const Tensor seed_whole = tensor({1.0, 1.0, 1.0}, {.dtype = kFloat64});
  const Tensor seed_part = tensor({10.0, 20.0}, {.dtype = kFloat64});
  autograd::backward({part, whole}, {seed_part, seed_whole});
  EXPECT_EQ(seed_whole.to_vector<double>(), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 11, 21}));

  const std::string twice = error_of([&] { autograd::backward({part}, {seed_part}); });
  EXPECT_NE(twice.find("retain_graph"), std::string::npos) << twice;
}

TEST(Autograd, GraphIsFreedWithItsTensors) {
  std::weak_ptr<autograd::Node> node;
  Tensor x = tensor({1.0}, kF64Grad);
  {
    Tensor y = exp(x) * 3.0;
    node = y.grad_fn();
    EXPECT_FALSE(node.expired());
  }
  EXPECT_TRUE(node.expired());
}

TEST(Autograd, VeryDeepGraphsAreDestroyedWithoutRecursion) {
  Tensor x = tensor({1.0}, kF64Grad);
  std::weak_ptr<autograd::Node> first;
  {
    Tensor y = x * 1.0;
    first = y.grad_fn();
    for (int i = 0; i < 200000; ++i) y = y + 0.0;
  }
  EXPECT_TRUE(first.expired());
}

TEST(Autograd, TrainingLoopMemoryIsFlat) {
  Generator gen(1);
  Tensor w = randn({64, 32}, {.requires_grad = true}, &gen);
  const Tensor input = randn({16, 32}, {}, &gen);
  std::size_t in_use_after_first = 0;
  for (int step = 0; step < 20; ++step) {
    {
      Tensor loss = mean(square(tanh(linear(input, w))));
      loss.backward();
      NoGrad no_grad;
      w.copy_(w - w.grad() * 0.01);
    }
    w.zero_grad();
    if (step == 1) {
      in_use_after_first = allocator_stats().bytes_in_use;
      reset_allocator_stats();
    }
  }
  EXPECT_EQ(allocator_stats().bytes_in_use, in_use_after_first);
  EXPECT_EQ(allocator_stats().system_allocations, 0u);
}

}  // namespace
}  // namespace fpi
