// The op table: one row per differentiable op (and per interesting variant). It drives the float64
// gradient checks (test_op_gradients.cpp) and the CPU/GPU parity tests (test_cuda.cpp), so adding an
// op means adding one row here.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "gradcheck.hpp"

namespace fpi::testing {

// Where an op's inputs are drawn from: kinks and singularities are kept out of reach of the
// finite-difference step.
enum class Domain { Real, Positive, AwayFromZero, Probability };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;
  Fn fn;
  Domain domain = Domain::Real;
};

inline void PrintTo(const OpCase& c, std::ostream* out) { *out << c.name; }

inline Tensor draw(const Shape& shape, Domain domain, Generator& gen) {
  const TensorOptions f64{.dtype = kFloat64};
  switch (domain) {
    case Domain::Real: return randn(shape, f64, &gen);
    case Domain::Positive: return uniform(shape, 0.5, 2.0, f64, &gen);
    case Domain::Probability: return uniform(shape, 0.05, 0.95, f64, &gen);
    case Domain::AwayFromZero: {
      const Tensor r = randn(shape, f64, &gen);
      return sign(r) * (abs(r) + 0.2);
    }
  }
  return Tensor();
}

// A row's inputs: float64 CPU tensors, the same numbers on every call.
inline Tensors draw_inputs(const OpCase& c) {
  Generator gen(7);
  Tensors xs;
  for (const auto& shape : c.shapes) xs.push_back(draw(shape, c.domain, gen));
  return xs;
}

// Constant operands of a row are made like its first input (dtype and device), so a row runs
// unchanged in float32 and on a GPU.
inline Tensor probabilities_like(const Shape& shape, TensorOptions options) {
  Generator gen(99);
  return uniform(shape, 0.05, 0.95, options, &gen);
}

inline std::vector<OpCase> op_table() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  using T = const Tensors&;
  return {
      {"add", {{3, 4}, {3, 4}}, [](T x) { return x[0] + x[1]; }},
      {"add_broadcast", {{2, 3, 4}, {3, 1}}, [](T x) { return x[0] + x[1]; }},
      {"add_scalar", {{3, 4}}, [](T x) { return x[0] + 2.5; }},
      {"sub", {{3, 4}, {4}}, [](T x) { return x[0] - x[1]; }},
      {"rsub_scalar", {{3, 4}}, [](T x) { return 1.5 - x[0]; }},
      {"mul", {{3, 4}, {3, 4}}, [](T x) { return x[0] * x[1]; }},
      {"mul_broadcast", {{2, 1, 4}, {3, 1}}, [](T x) { return x[0] * x[1]; }},
      {"mul_scalar", {{3, 4}}, [](T x) { return x[0] * -3.0; }},
      {"div", {{3, 4}, {3, 4}}, [](T x) { return x[0] / x[1]; }, Domain::Positive},
      {"div_broadcast", {{3, 4}, {4}}, [](T x) { return x[0] / x[1]; }, Domain::Positive},
      {"neg", {{5}}, [](T x) { return -x[0]; }},
      {"exp", {{3, 4}}, [](T x) { return exp(x[0]); }},
      {"log", {{3, 4}}, [](T x) { return log(x[0]); }, Domain::Positive},
      {"sqrt", {{3, 4}}, [](T x) { return sqrt(x[0]); }, Domain::Positive},
      {"pow", {{3, 4}}, [](T x) { return pow(x[0], 2.7); }, Domain::Positive},
      {"pow_negative", {{3, 4}}, [](T x) { return pow(x[0], -1.5); }, Domain::Positive},
      {"square", {{3, 4}}, [](T x) { return square(x[0]); }},
      {"abs", {{3, 4}}, [](T x) { return abs(x[0]); }, Domain::AwayFromZero},
      {"reciprocal", {{3, 4}}, [](T x) { return reciprocal(x[0]); }, Domain::Positive},
      {"relu", {{3, 4}}, [](T x) { return relu(x[0]); }, Domain::AwayFromZero},
      {"sigmoid", {{3, 4}}, [](T x) { return sigmoid(x[0]); }},
      {"tanh", {{3, 4}}, [](T x) { return tanh(x[0]); }},
      {"softplus", {{3, 4}}, [](T x) { return softplus(x[0]); }},
      {"clamp", {{4, 5}}, [](T x) { return clamp(x[0], -0.5, 0.7); }},
      {"clamp_one_sided", {{4, 5}}, [](T x) { return clamp(x[0], -0.3, kInf); }},
      {"minimum", {{3, 4}, {3, 4}}, [](T x) { return minimum(x[0], x[1]); }},
      {"maximum_broadcast", {{3, 4}, {4}}, [](T x) { return maximum(x[0], x[1]); }},
      {"sum_all", {{3, 4}}, [](T x) { return sum(x[0]); }},
      {"sum_dims", {{2, 3, 4}}, [](T x) { return sum(x[0], {0, 2}); }},
      {"sum_keepdim", {{2, 3, 4}}, [](T x) { return sum(x[0], {-1}, true); }},
      {"mean_all", {{3, 4}}, [](T x) { return mean(x[0]); }},
      {"mean_dim", {{3, 4}}, [](T x) { return mean(x[0], {1}); }},
      {"max_all", {{3, 4}}, [](T x) { return max(x[0]); }},
      {"max_dim", {{3, 4}}, [](T x) { return max(x[0], 1); }},
      {"min_dim_keepdim", {{3, 4}}, [](T x) { return min(x[0], 0, true); }},
      {"logsumexp", {{3, 4}}, [](T x) { return logsumexp(x[0], 1); }},
      {"softmax", {{3, 4}}, [](T x) { return softmax(x[0], 1); }},
      {"log_softmax", {{3, 4}}, [](T x) { return log_softmax(x[0], 0); }},
      {"norm", {{3, 4}}, [](T x) { return norm(x[0]); }, Domain::AwayFromZero},
      {"matmul", {{3, 4}, {4, 5}}, [](T x) { return matmul(x[0], x[1]); }},
      {"matmul_transposed", {{4, 3}, {5, 4}}, [](T x) { return matmul(x[0].t(), x[1].t()); }},
      {"matmul_batched", {{2, 3, 4}, {2, 4, 2}}, [](T x) { return matmul(x[0], x[1]); }},
      {"matmul_broadcast", {{2, 3, 4}, {4, 2}}, [](T x) { return matmul(x[0], x[1]); }},
      {"matmul_broadcast_batch", {{2, 1, 3, 4}, {3, 4, 2}}, [](T x) { return matmul(x[0], x[1]); }},
      {"linear", {{5, 4}, {3, 4}, {3}}, [](T x) { return linear(x[0], x[1], x[2]); }},
      {"linear_no_bias", {{2, 5, 4}, {3, 4}}, [](T x) { return linear(x[0], x[1]); }},
      {"conv2d", {{2, 3, 5, 6}, {4, 3, 3, 3}, {4}},
       [](T x) { return conv2d(x[0], x[1], x[2], {.padding = {1, 1}}); }},
      {"conv2d_stride_dilation", {{1, 2, 7, 6}, {3, 2, 3, 2}},
       [](T x) { return conv2d(x[0], x[1], Tensor(), {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}); }},
      {"conv_transpose2d", {{2, 3, 4, 3}, {3, 2, 3, 3}, {2}},
       [](T x) { return conv_transpose2d(x[0], x[1], x[2], {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}}); }},
      {"conv_transpose2d_dilated_output_padding", {{1, 2, 3, 4}, {2, 2, 2, 3}},
       [](T x) { return conv_transpose2d(x[0], x[1], Tensor(), {.dilation = {2, 3}, .output_padding = {1, 2}}); }},
      {"concat", {{2, 3}, {4, 3}}, [](T x) { return concat({x[0], x[1]}, 0); }},
      {"concat_dim1", {{2, 3}, {2, 1}, {2, 2}}, [](T x) { return concat({x[0], x[1], x[2]}, -1); }},
      {"stack", {{2, 3}, {2, 3}}, [](T x) { return stack({x[0], x[1]}, 1); }},
      {"reshape", {{3, 4}}, [](T x) { return x[0].reshape({2, -1, 3}); }},
      {"reshape_noncontiguous", {{3, 4}}, [](T x) { return x[0].t().reshape({-1}); }},
      {"transpose", {{2, 3, 4}}, [](T x) { return x[0].transpose(0, 2) * 1.0; }},
      {"permute", {{2, 3, 4}}, [](T x) { return x[0].permute({1, 2, 0}).contiguous(); }},
      {"slice", {{5, 4}}, [](T x) { return x[0].slice(0, 1, 5, 2); }},
      {"slice_negative", {{5, 4}}, [](T x) { return x[0].slice(1, -3, -1); }},
      {"select", {{5, 4}}, [](T x) { return x[0].select(1, 2); }},
      {"expand", {{3, 1}}, [](T x) { return x[0].expand({2, 3, 4}); }},
      {"unsqueeze_squeeze", {{3, 4}}, [](T x) { return x[0].unsqueeze(1).squeeze(1) * x[0]; }},
      {"clone", {{3, 4}}, [](T x) { return x[0].clone(); }},
      {"mse_loss", {{3, 4}, {3, 4}}, [](T x) { return mse_loss(x[0], x[1]); }},
      {"bce_loss", {{3, 4}, {3, 4}}, [](T x) { return bce_loss(x[0], x[1]); }, Domain::Probability},
      {"bce_with_logits_loss", {{3, 4}}, [](T x) { return bce_with_logits_loss(x[0], probabilities_like({3, 4}, x[0].options())); }},
      {"cross_entropy_indices", {{4, 5}},
       [](T x) { return cross_entropy_loss(x[0], tensor({0, 4, 2, 2}, x[0].options())); }},
      {"cross_entropy_probabilities", {{3, 4}},
       [](T x) { return cross_entropy_loss(x[0], softmax(probabilities_like({3, 4}, x[0].options()), 1)); }},
  };
}

}  // namespace fpi::testing
