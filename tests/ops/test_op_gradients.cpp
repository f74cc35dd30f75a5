// The op table (tests/op_table.hpp) drives a float64 first-order gradient check and a second-order
// check of every op here; test_cuda_parity.cpp runs the same rows on the GPU against the CPU.
#include <gtest/gtest.h>

#include "gradcheck.hpp"
#include "op_table.hpp"

namespace fpi {
namespace {

using testing::OpCase;

class OpGradient : public ::testing::TestWithParam<OpCase> {
 protected:
  Tensors inputs() const {
    Tensors xs = testing::draw_inputs(GetParam());
    for (Tensor& x : xs) x.requires_grad_();
    return xs;
  }
};

TEST_P(OpGradient, FirstOrderMatchesFiniteDifferences) {
  EXPECT_TRUE(testing::gradcheck(GetParam().fn, inputs()));
}

TEST_P(OpGradient, SecondOrderMatchesFiniteDifferences) {
  EXPECT_TRUE(testing::gradgradcheck(GetParam().fn, inputs(), {.atol = 1e-6, .rtol = 1e-4}));
}

INSTANTIATE_TEST_SUITE_P(Table, OpGradient, ::testing::ValuesIn(testing::op_table()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; });

}  // namespace
}  // namespace fpi
