#include <gtest/gtest.h>

#include "fpi/ops.hpp"

TEST(Smoke, AddAndGrad) {
  auto a = fpi::tensor({1, 2, 3}, {.dtype = fpi::kFloat64, .requires_grad = true});
  auto b = fpi::tensor({4, 5, 6}, {.dtype = fpi::kFloat64});
  auto y = fpi::sum(a * b + fpi::exp(a));
  y.backward();
  std::cout << y << "\n" << a.grad() << "\n";
}
