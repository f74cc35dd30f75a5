// The same computations on cuda:0 and on the CPU: every row of the op table (forward values and
// first-order gradients, float32 and float64), convolutions forward and backward over several
// geometries, optimizer steps, and an FPI layer's forward and backward passes. Each test skips with
// the reason where no GPU can be used.
#include <gtest/gtest.h>

#include <tuple>

#include "cuda_testing.hpp"
#include "fixed_point_fixtures.hpp"
#include "fpi/nn.hpp"
#include "fpi/optim.hpp"
#include "op_table.hpp"

namespace fpi {
namespace {

using testing::CudaParamTest;
using testing::CudaTest;
using testing::kGpu;
using testing::matches_cpu;
using testing::OpCase;

// Runs f on inputs made leaves on `device` and returns its value and d<f, w>/d(inputs).
Tensors value_and_gradients(const testing::OpFn& f, const Tensors& inputs, Device device, std::uint64_t seed) {
  Tensors xs;
  for (const Tensor& x : inputs) xs.push_back(x.to(device).detach().requires_grad_());
  const Tensor y = f(xs);
  Generator gen(seed);
  const Tensor w = randn(y.shape(), {.dtype = y.dtype()}, &gen).to(device);
  Tensors out = autograd::grad({y}, xs, {w});
  out.insert(out.begin(), y.detach());
  return out;
}

class CudaOpParity : public CudaParamTest<std::tuple<OpCase, DType>> {};

TEST_P(CudaOpParity, ValuesAndGradientsMatchCpu) {
  const auto& [op, dtype] = GetParam();
  Tensors inputs = testing::draw_inputs(op);
  for (Tensor& x : inputs) x = x.to(dtype);
  const Tensors cpu = value_and_gradients(op.fn, inputs, kCPU, 11);
  const Tensors gpu = value_and_gradients(op.fn, inputs, kGpu, 11);
  EXPECT_EQ(gpu[0].device(), kGpu);
  EXPECT_TRUE(matches_cpu(gpu[0], cpu[0])) << "forward";
  for (std::size_t i = 1; i < cpu.size(); ++i) EXPECT_TRUE(matches_cpu(gpu[i], cpu[i])) << "gradient of input " << i - 1;
}

INSTANTIATE_TEST_SUITE_P(Table, CudaOpParity, ::testing::Combine(::testing::ValuesIn(testing::op_table()),
                                                                 ::testing::Values(kFloat32, kFloat64)),
                         [](const ::testing::TestParamInfo<std::tuple<OpCase, DType>>& info) {
                           return std::get<0>(info.param).name +
                                  (std::get<1>(info.param) == kFloat32 ? "_f32" : "_f64");
                         });

struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dOptions options;
  bool transposed = false;
};

class CudaConv : public CudaTest {};

// Forward and both backward primitives through conv2d / conv_transpose2d and their gradients, in
// geometries that pick different cuDNN algorithms (1x1, 3x3, 5x5, strided, dilated, many channels).
TEST_F(CudaConv, ForwardAndBackwardMatchCpu) {
  const std::vector<ConvCase> cases{
      {"3x3 pad 1", {2, 3, 9, 8}, {4, 3, 3, 3}, {.padding = {1, 1}}},
      {"1x1", {3, 8, 5, 5}, {6, 8, 1, 1}, {}},
      {"5x5 pad 2, 16 channels", {4, 16, 20, 20}, {8, 16, 5, 5}, {.padding = {2, 2}}},
      {"stride 2, dilation 2", {2, 4, 13, 11}, {5, 4, 3, 3}, {.stride = {2, 2}, .dilation = {2, 2}}},
      {"uneven", {1, 2, 7, 6}, {3, 2, 3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}}},
      {"64 channels, 3x3 (the benchmark's layer)", {2, 64, 12, 12}, {64, 64, 3, 3}, {.padding = {1, 1}}},
      {"transposed, stride 2", {2, 3, 4, 5}, {3, 2, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 0}}, true},
  };
  for (DType dtype : {kFloat32, kFloat64}) {
    for (const ConvCase& c : cases) {
      Generator gen(21);
      const Tensors inputs{randn(c.x, {.dtype = dtype}, &gen), randn(c.w, {.dtype = dtype}, &gen),
                           randn({c.transposed ? c.w[1] : c.w[0]}, {.dtype = dtype}, &gen)};
      const auto f = [&](const Tensors& x) {
        return c.transposed ? conv_transpose2d(x[0], x[1], x[2], c.options) : conv2d(x[0], x[1], x[2], c.options);
      };
      const Tensors cpu = value_and_gradients(f, inputs, kCPU, 5);
      const Tensors gpu = value_and_gradients(f, inputs, kGpu, 5);
      const char* what[] = {"output", "input gradient", "weight gradient", "bias gradient"};
      for (std::size_t i = 0; i < cpu.size(); ++i)
        EXPECT_TRUE(matches_cpu(gpu[i], cpu[i])) << c.name << ", " << dtype << ": " << what[i];
    }
  }
}

TEST_F(CudaConv, EmptyBatch) {
  const Tensor x = zeros({0, 3, 5, 5}, {.device = kGpu}).requires_grad_();
  const Tensor w = ones({2, 3, 3, 3}, {.device = kGpu}).requires_grad_();
  const Tensor y = conv2d(x, w);
  EXPECT_EQ(y.shape(), (Shape{0, 2, 3, 3}));
  const Tensors g = autograd::grad({sum(y)}, {x, w});
  EXPECT_EQ(g[0].shape(), x.shape());
  EXPECT_EQ(g[1].to_vector<double>(), std::vector<double>(54, 0.0));
}

class CudaOptimizer : public CudaTest {};

// Six steps of each optimizer from the same parameters and gradients on both devices.
template <class Opt, class Options>
void expect_same_steps(const Options& options, DType dtype, const char* what) {
  Generator gen(31);
  const Tensor start = randn({1000}, {.dtype = dtype}, &gen);
  Tensors grads;
  for (int i = 0; i < 6; ++i) grads.push_back(randn({1000}, {.dtype = dtype}, &gen) * (i == 0 ? 3.0 : 1.0));
  const auto run = [&](Device device) {
    Tensor p = start.to(device).clone().detach().requires_grad_();  // a CPU run must not step `start` itself
    Opt opt({p}, options);
    for (const Tensor& g : grads) {
      p.set_grad(g.to(device));
      opt.step();
    }
    return p.detach();
  };
  EXPECT_TRUE(matches_cpu(run(kGpu), run(kCPU), dtype == kFloat32 ? 1e-5 : 1e-12)) << what << " " << dtype;
}

TEST_F(CudaOptimizer, StepsMatchCpu) {
  using namespace optim;
  for (DType dtype : {kFloat32, kFloat64}) {
    expect_same_steps<SGD>(SgdOptions{.lr = 0.1}, dtype, "SGD");
    expect_same_steps<SGD>(SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}, dtype, "SGD nesterov");
    expect_same_steps<SGD>(SgdOptions{.lr = 0.1, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01}, dtype,
                           "SGD momentum, dampening, weight decay");
    expect_same_steps<Adam>(AdamOptions{.lr = 0.1}, dtype, "Adam");
    expect_same_steps<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1, .amsgrad = true}, dtype, "Adam amsgrad");
    expect_same_steps<AdamW>(AdamWOptions{.lr = 0.05, .weight_decay = 0.1}, dtype, "AdamW");
  }
}

class CudaFixedPoint : public CudaTest {};

// FPI_NN on images: g(x, z) = tanh(LipschitzBound(conv)(concat(z, x))). The per-sample solver reads
// residuals back to the host every iteration, so this also checks that the device and host agree on
// when each sample has converged.
TEST_F(CudaFixedPoint, ConvLayerForwardAndBackwardMatchCpu) {
  const auto make_layer = [](Device device) {
    Generator gen(3);
    auto conv = std::make_shared<nn::Conv2d>(4, 2, 3, 1, 1, 1, true, TensorOptions{}, &gen);
    auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::LipschitzBound>(conv, 0.8), std::make_shared<nn::Tanh>()});
    FixedPointOptions options;
    options.forward.tolerance = options.backward.tolerance = 1e-11;
    options.forward.max_iterations = options.backward.max_iterations = 500;
    auto layer = std::make_shared<nn::FixedPointLayer>(std::make_shared<nn::NetMap>(net), Shape{2, 5, 6}, options);
    layer->to(kFloat64);
    layer->to(device);
    return layer;
  };
  Generator gen(4);
  const Tensor z = randn({3, 2, 5, 6}, {.dtype = kFloat64}, &gen);
  const Tensor w = randn({3, 2, 5, 6}, {.dtype = kFloat64}, &gen);
  const auto run = [&](Device device) {
    return testing::output_and_gradients(*make_layer(device), z.to(device), w.to(device));
  };
  const Tensors cpu = run(kCPU), gpu = run(kGpu);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (std::size_t i = 0; i < cpu.size(); ++i) EXPECT_TRUE(matches_cpu(gpu[i], cpu[i], 1e-7)) << "result " << i;
}

}  // namespace
}  // namespace fpi
