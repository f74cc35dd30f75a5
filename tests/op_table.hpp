// The op table: one row per differentiable op (and per interesting variant). It drives the float64
// gradient checks (ops/test_op_gradients.cpp), the CPU/GPU parity tests (backend/test_cuda_parity.cpp)
// and the op benchmark (tools/bench/ops.cpp), so adding an op means adding one row here.
//
// Each row carries two shape sets: the small one the tests use (finite differences re-run the op once
// per input element) and the benchmark's, the sizes the op meets in the paper's models. The header
// stays with the tests it was written for; bench_ops adds tests/ to its include path. It therefore
// includes only fpi's public headers, never gtest (PrintTo is found by gtest through argument-dependent
// lookup and needs nothing from it).
#pragma once

#include <cmath>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace fpi::testing {

// The same function type gradcheck.hpp calls Fn, so a row's function goes to the gradient checks as is.
using OpFn = std::function<Tensor(const Tensors&)>;

// Forward floating-point operations of a row whose cost is arithmetic rather than memory traffic,
// counted from its inputs and output; the benchmark reports GFLOP/s for those rows and GB/s for others.
using FlopCount = double (*)(const Tensors& inputs, const Tensor& output);

// Where an op's inputs are drawn from: kinks and singularities are kept out of reach of the
// finite-difference step.
enum class Domain { Real, Positive, AwayFromZero, Probability };

struct OpCase {
  std::string name;
  std::vector<Shape> shapes;        // the tests' inputs
  std::vector<Shape> bench_shapes;  // bench_ops's inputs
  OpFn fn;
  Domain domain = Domain::Real;
  FlopCount flop = nullptr;
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

// Inputs of the given shapes from a row's domain: float64 CPU tensors, the same numbers on every call.
inline Tensors draw_inputs(const std::vector<Shape>& shapes, Domain domain) {
  Generator gen(7);
  Tensors xs;
  for (const auto& shape : shapes) xs.push_back(draw(shape, domain, gen));
  return xs;
}

// A row's inputs at its test shapes.
inline Tensors draw_inputs(const OpCase& c) { return draw_inputs(c.shapes, c.domain); }

// Constant operands of a row are made like its first input (shape, dtype and device), so a row runs
// unchanged in float32, on a GPU and at its benchmark shapes.
inline Tensor probabilities_like(const Tensor& x) {
  Generator gen(99);
  return uniform(x.shape(), 0.05, 0.95, x.options(), &gen);
}

// Class labels for a [batch, classes] logit tensor: the labels 0, 4, 2, 2 repeated down the batch
// (the test rows have 5 classes, the benchmark's many more).
inline Tensor class_labels_like(const Tensor& logits) {
  constexpr std::int64_t kLabels[] = {0, 4, 2, 2};
  std::vector<double> labels(static_cast<std::size_t>(logits.size(0)));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<double>(kLabels[i % 4] % logits.size(1));
  return from_vector(labels, logits.options());
}

// Products contract the first input's last dimension, or its first for the transposed layout;
// a convolution's output element sums in_channels * kernel area products (the weight's size per output
// channel), and a transposed convolution scatters each input element over out_channels * kernel area.
inline double product_flop(const Tensors& x, const Tensor& y) { return 2.0 * y.numel() * x[0].size(-1); }
inline double transposed_product_flop(const Tensors& x, const Tensor& y) { return 2.0 * y.numel() * x[0].size(0); }
inline double conv_flop(const Tensors& x, const Tensor& y) { return 2.0 * y.numel() * x[1].numel() / x[1].size(0); }
inline double conv_transpose_flop(const Tensors& x, const Tensor&) {
  return 2.0 * x[0].numel() * x[1].numel() / x[1].size(0);
}

// I + A · 0.3/√n for a square (…, n, n) draw A: its eigenvalues stay near 1 at any n.
inline Tensor well_conditioned(const Tensor& a) {
  const std::int64_t n = a.size(-1);
  return a * (0.3 / std::sqrt(static_cast<double>(n))) + eye(n, a.options());
}

inline std::vector<OpCase> op_table() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  using T = const Tensors&;
  // Benchmark shapes: element-wise ops, reductions and views on about a million elements (4 MiB in
  // float32); losses on the Bibtex output layer's [batch 40, 159 labels]; linear on the Bibtex MLP's
  // first layer; matmul at 1024 and batched at 32 x 256; convolutions on the 64-channel 3x3 layer of
  // bench_conv_net, 16 patches of 40x40.
  const Shape m{1024, 1024}, row{1024}, cube{64, 128, 128}, logits{40, 159};
  const Shape images{16, 64, 40, 40}, kernel{64, 64, 3, 3}, channels{64};
  return {
      {"add", {{3, 4}, {3, 4}}, {m, m}, [](T x) { return x[0] + x[1]; }},
      {"add_broadcast", {{2, 3, 4}, {3, 1}}, {{4, 256, 1024}, {256, 1}}, [](T x) { return x[0] + x[1]; }},
      {"add_scalar", {{3, 4}}, {m}, [](T x) { return x[0] + 2.5; }},
      {"sub", {{3, 4}, {4}}, {m, row}, [](T x) { return x[0] - x[1]; }},
      {"rsub_scalar", {{3, 4}}, {m}, [](T x) { return 1.5 - x[0]; }},
      {"mul", {{3, 4}, {3, 4}}, {m, m}, [](T x) { return x[0] * x[1]; }},
      {"mul_broadcast", {{2, 1, 4}, {3, 1}}, {{4, 1, 1024}, {256, 1}}, [](T x) { return x[0] * x[1]; }},
      {"mul_scalar", {{3, 4}}, {m}, [](T x) { return x[0] * -3.0; }},
      {"div", {{3, 4}, {3, 4}}, {m, m}, [](T x) { return x[0] / x[1]; }, Domain::Positive},
      {"div_broadcast", {{3, 4}, {4}}, {m, row}, [](T x) { return x[0] / x[1]; }, Domain::Positive},
      {"neg", {{5}}, {{1 << 20}}, [](T x) { return -x[0]; }},
      {"exp", {{3, 4}}, {m}, [](T x) { return exp(x[0]); }},
      {"log", {{3, 4}}, {m}, [](T x) { return log(x[0]); }, Domain::Positive},
      {"sqrt", {{3, 4}}, {m}, [](T x) { return sqrt(x[0]); }, Domain::Positive},
      {"pow", {{3, 4}}, {m}, [](T x) { return pow(x[0], 2.7); }, Domain::Positive},
      {"pow_negative", {{3, 4}}, {m}, [](T x) { return pow(x[0], -1.5); }, Domain::Positive},
      {"square", {{3, 4}}, {m}, [](T x) { return square(x[0]); }},
      {"abs", {{3, 4}}, {m}, [](T x) { return abs(x[0]); }, Domain::AwayFromZero},
      {"reciprocal", {{3, 4}}, {m}, [](T x) { return reciprocal(x[0]); }, Domain::Positive},
      {"relu", {{3, 4}}, {m}, [](T x) { return relu(x[0]); }, Domain::AwayFromZero},
      {"sigmoid", {{3, 4}}, {m}, [](T x) { return sigmoid(x[0]); }},
      {"tanh", {{3, 4}}, {m}, [](T x) { return tanh(x[0]); }},
      {"softplus", {{3, 4}}, {m}, [](T x) { return softplus(x[0]); }},
      {"clamp", {{4, 5}}, {m}, [](T x) { return clamp(x[0], -0.5, 0.7); }},
      {"clamp_one_sided", {{4, 5}}, {m}, [](T x) { return clamp(x[0], -0.3, kInf); }},
      {"minimum", {{3, 4}, {3, 4}}, {m, m}, [](T x) { return minimum(x[0], x[1]); }},
      {"maximum_broadcast", {{3, 4}, {4}}, {m, row}, [](T x) { return maximum(x[0], x[1]); }},
      {"sum_all", {{3, 4}}, {m}, [](T x) { return sum(x[0]); }},
      {"sum_dims", {{2, 3, 4}}, {cube}, [](T x) { return sum(x[0], {0, 2}); }},
      {"sum_keepdim", {{2, 3, 4}}, {cube}, [](T x) { return sum(x[0], {-1}, true); }},
      {"mean_all", {{3, 4}}, {m}, [](T x) { return mean(x[0]); }},
      {"mean_dim", {{3, 4}}, {m}, [](T x) { return mean(x[0], {1}); }},
      {"max_all", {{3, 4}}, {m}, [](T x) { return max(x[0]); }},
      {"max_dim", {{3, 4}}, {m}, [](T x) { return max(x[0], 1); }},
      {"min_dim_keepdim", {{3, 4}}, {m}, [](T x) { return min(x[0], 0, true); }},
      {"logsumexp", {{3, 4}}, {m}, [](T x) { return logsumexp(x[0], 1); }},
      {"softmax", {{3, 4}}, {m}, [](T x) { return softmax(x[0], 1); }},
      {"log_softmax", {{3, 4}}, {m}, [](T x) { return log_softmax(x[0], 0); }},
      {"norm", {{3, 4}}, {m}, [](T x) { return norm(x[0]); }, Domain::AwayFromZero},
      {"matmul", {{3, 4}, {4, 5}}, {m, m}, [](T x) { return matmul(x[0], x[1]); }, Domain::Real, product_flop},
      {"matmul_transposed", {{4, 3}, {5, 4}}, {m, m}, [](T x) { return matmul(x[0].t(), x[1].t()); }, Domain::Real,
       transposed_product_flop},
      {"matmul_batched", {{2, 3, 4}, {2, 4, 2}}, {{32, 256, 256}, {32, 256, 256}},
       [](T x) { return matmul(x[0], x[1]); }, Domain::Real, product_flop},
      {"matmul_broadcast", {{2, 3, 4}, {4, 2}}, {{32, 256, 256}, {256, 256}}, [](T x) { return matmul(x[0], x[1]); },
       Domain::Real, product_flop},
      {"matmul_broadcast_batch", {{2, 1, 3, 4}, {3, 4, 2}}, {{4, 1, 256, 256}, {8, 256, 256}},
       [](T x) { return matmul(x[0], x[1]); }, Domain::Real, product_flop},
      {"linear", {{5, 4}, {3, 4}, {3}}, {{40, 1995}, {600, 1995}, {600}}, [](T x) { return linear(x[0], x[1], x[2]); },
       Domain::Real, product_flop},
      {"linear_no_bias", {{2, 5, 4}, {3, 4}}, {{4, 256, 1024}, {1024, 1024}}, [](T x) { return linear(x[0], x[1]); },
       Domain::Real, product_flop},
      // A is scaled towards the identity so that every draw is far from singular.
      {"solve", {{3, 3}, {3, 2}}, {{40, 159, 159}, {40, 159, 1}},
       [](T x) { return solve(well_conditioned(x[0]), x[1]); }},
      {"solve_broadcast", {{2, 1, 3, 3}, {4, 3, 2}}, {{4, 1, 64, 64}, {10, 64, 8}},
       [](T x) { return solve(well_conditioned(x[0]), x[1]); }},
      {"conv2d", {{2, 3, 5, 6}, {4, 3, 3, 3}, {4}}, {images, kernel, channels},
       [](T x) { return conv2d(x[0], x[1], x[2], {.padding = {1, 1}}); }, Domain::Real, conv_flop},
      {"conv2d_stride_dilation", {{1, 2, 7, 6}, {3, 2, 3, 2}}, {images, kernel},
       [](T x) { return conv2d(x[0], x[1], Tensor(), {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}); },
       Domain::Real, conv_flop},
      {"conv_transpose2d", {{2, 3, 4, 3}, {3, 2, 3, 3}, {2}}, {{16, 64, 20, 20}, kernel, channels},
       [](T x) { return conv_transpose2d(x[0], x[1], x[2], {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}}); },
       Domain::Real, conv_transpose_flop},
      {"conv_transpose2d_dilated_output_padding", {{1, 2, 3, 4}, {2, 2, 2, 3}}, {images, {64, 64, 2, 3}},
       [](T x) { return conv_transpose2d(x[0], x[1], Tensor(), {.dilation = {2, 3}, .output_padding = {1, 2}}); },
       Domain::Real, conv_transpose_flop},
      {"concat", {{2, 3}, {4, 3}}, {{512, 1024}, {512, 1024}}, [](T x) { return concat({x[0], x[1]}, 0); }},
      {"concat_dim1", {{2, 3}, {2, 1}, {2, 2}}, {{1024, 512}, {1024, 1}, {1024, 511}},
       [](T x) { return concat({x[0], x[1], x[2]}, -1); }},
      {"stack", {{2, 3}, {2, 3}}, {{512, 1024}, {512, 1024}}, [](T x) { return stack({x[0], x[1]}, 1); }},
      {"reshape", {{3, 4}}, {{768, 1024}}, [](T x) { return x[0].reshape({2, -1, 3}); }},
      {"reshape_noncontiguous", {{3, 4}}, {m}, [](T x) { return x[0].t().reshape({-1}); }},
      {"transpose", {{2, 3, 4}}, {cube}, [](T x) { return x[0].transpose(0, 2) * 1.0; }},
      {"permute", {{2, 3, 4}}, {cube}, [](T x) { return x[0].permute({1, 2, 0}).contiguous(); }},
      {"slice", {{5, 4}}, {m}, [](T x) { return x[0].slice(0, 1, x[0].size(0), 2); }},
      {"slice_negative", {{5, 4}}, {m}, [](T x) { return x[0].slice(1, -3, -1); }},
      {"select", {{5, 4}}, {m}, [](T x) { return x[0].select(1, 2); }},
      {"expand", {{3, 1}}, {{1 << 17, 1}}, [](T x) { return x[0].expand({2, x[0].size(0), 4}); }},
      {"unsqueeze_squeeze", {{3, 4}}, {m}, [](T x) { return x[0].unsqueeze(1).squeeze(1) * x[0]; }},
      {"clone", {{3, 4}}, {m}, [](T x) { return x[0].clone(); }},
      {"mse_loss", {{3, 4}, {3, 4}}, {logits, logits}, [](T x) { return mse_loss(x[0], x[1]); }},
      {"bce_loss", {{3, 4}, {3, 4}}, {logits, logits}, [](T x) { return bce_loss(x[0], x[1]); }, Domain::Probability},
      {"bce_with_logits_loss", {{3, 4}}, {logits},
       [](T x) { return bce_with_logits_loss(x[0], probabilities_like(x[0])); }},
      {"cross_entropy_indices", {{4, 5}}, {logits}, [](T x) { return cross_entropy_loss(x[0], class_labels_like(x[0])); }},
      {"cross_entropy_probabilities", {{3, 4}}, {logits},
       [](T x) { return cross_entropy_loss(x[0], softmax(probabilities_like(x[0]), 1)); }},
  };
}

}  // namespace fpi::testing
