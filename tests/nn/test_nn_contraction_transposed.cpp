// The operator norm of a transposed convolution and its LipschitzBound: the norm against the dense
// matrix of the operator (float64), the power iteration's adjoint against the dense transpose, and the
// bound's rescaled layer and its gradients.
#include <gtest/gtest.h>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "gradcheck.hpp"

namespace fpi {
namespace {

constexpr TensorOptions kF64{.dtype = kFloat64};

// The operator's matrix on (C_in, h, w) inputs, one column per input element.
Tensor dense_matrix(const std::function<Tensor(const Tensor&)>& op, const Shape& sample) {
  const std::int64_t n = shape_numel(sample);
  Shape batch{1};
  batch.insert(batch.end(), sample.begin(), sample.end());
  std::vector<Tensor> columns;
  NoGrad no_grad;
  for (std::int64_t i = 0; i < n; ++i) {
    Tensor e = zeros({n}, kF64);
    e.slice(0, i, i + 1).fill_(1.0);
    columns.push_back(op(e.reshape(batch)).reshape({-1}));
  }
  return stack(columns, 1);
}

// Stride 2 with an output padding of 1: the adjoint (conv2d) must map back to exactly (h, w).
TEST(Contraction, SpectralNormOfATransposedConvolutionMatchesItsDenseMatrix) {
  Generator gen(6);
  nn::ConvTranspose2d deconv(3, 2, 4, 2, 1, 1, 1, false, kF64, &gen);
  const std::int64_t h = 4, w = 3;
  const auto op = [&](const Tensor& x) { return deconv(x); };
  const Tensor dense = dense_matrix(op, {3, h, w});
  EXPECT_NEAR(nn::spectral_norm(deconv, h, w, 300), nn::spectral_norm(dense, 300), 1e-8);
  // The adjoint the power iteration uses is the dense matrix's transpose.
  const Conv2dOptions adjoint{.stride = {2, 2}, .padding = {1, 1}};
  const Tensor dense_adjoint =
      dense_matrix([&](const Tensor& u) { return conv2d(u, deconv.weight, Tensor(), adjoint); },
                   {2, (h - 1) * 2 - 2 + 4 + 1, (w - 1) * 2 - 2 + 4 + 1});
  EXPECT_TRUE(allclose(dense_adjoint, dense.t(), 0.0, 1e-12));
}

TEST(Contraction, LipschitzBoundShrinksATransposedConvolution) {
  Generator gen(4);
  auto deconv = std::make_shared<nn::ConvTranspose2d>(3, 2, 4, 2, 1, 0, 1, true, kF64, &gen);
  {
    NoGrad no_grad;
    deconv->weight.copy_(deconv->weight * 20.0);
  }
  const std::int64_t h = 5, w = 4;
  const double before = nn::spectral_norm(*deconv, h, w, 2000);
  ASSERT_GT(before, 1.0);
  nn::LipschitzBound bounded(deconv, 0.7);
  const Tensor x = randn({2, 3, h, w}, kF64, &gen);
  bounded.forward(x);
  for (int i = 0; i < 2000; ++i) bounded.update();
  EXPECT_NEAR(bounded.sigma(), before, 1e-5 * before);
  auto rescaled = std::make_shared<nn::ConvTranspose2d>(3, 2, 4, 2, 1, 0, 1, true, kF64, &gen);
  {
    NoGrad no_grad;
    rescaled->weight.copy_(bounded.effective_weight());
  }
  EXPECT_NEAR(nn::spectral_norm(*rescaled, h, w, 2000), 0.7, 1e-5);
  // What the bound applies is the rescaled transposed convolution, differentiable in its weight through σ.
  bounded.eval();
  {
    NoGrad no_grad;
    EXPECT_TRUE(allclose(bounded.forward(x), conv_transpose2d(x, rescaled->weight, deconv->bias,
                                                              deconv->config().geometry), 0.0, 1e-12));
  }
  EXPECT_TRUE(testing::gradcheck([&](const Tensors&) { return bounded.forward(x); }, {deconv->weight, deconv->bias}));
}

}  // namespace
}  // namespace fpi
