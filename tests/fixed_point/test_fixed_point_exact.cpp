// The FPI layer's exact backward (src/fixed_point/backward.cpp), which builds each sample's Jacobian
// on the tensors' device and solves (I − Jᵀ) c = ∇x̂L with fpi::solve: its refusals (a singular system,
// a state above exact_max_state), float32 layers, and a CUDA layer against the CPU's (skipped without a
// GPU). Its agreement with the implicit backward is in test_fixed_point.cpp.
#include <gtest/gtest.h>

#include <string>

#include "cuda_testing.hpp"
#include "fixed_point_fixtures.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using testing::ContractiveMlp;
using testing::error_of;

FixedPointOptions exact(const std::string& name) {
  FixedPointOptions o;
  o.name = name;
  o.backward_mode = FixedPointBackward::Exact;
  o.forward.tolerance = 1e-12;
  o.forward.max_iterations = 2000;
  o.on_nonconvergence = NonConvergencePolicy::Error;
  return o;
}

// g(x, z) = z x + (1 − z), element-wise: x = 1 is the fixed point of every sample and ∂g/∂x = diag(z),
// so I − (∂g/∂x)ᵀ is singular exactly for a sample with a coordinate z = 1.
TEST(FixedPointExact, NamesTheLayerAndSampleOfASingularSystem) {
  const Tensor z = tensor({0.5, 0.5, 0.5, 1.0, 0.25, 0.5}, {.dtype = kFloat64}).reshape({3, 2}).requires_grad_();
  const FixedPointFn g = [](const Tensor& x, const Tensor& zz) { return zz * x + (1.0 - zz); };
  const Tensor x = fixed_point(g, z, {}, ones({3, 2}, {.dtype = kFloat64}), exact("probe"));
  EXPECT_EQ(error_of([&] { sum(x).backward(); }),
            "fixed_point 'probe': exact backward: I - (dg/dx)^T is singular for sample 1; g is not a contraction "
            "there");
}

TEST(FixedPointExact, RefusesStatesAboveExactMaxState) {
  ContractiveMlp g(3, 4, 2);
  FixedPointOptions o = exact("big");
  o.exact_max_state = 2;
  const Tensor x = fixed_point(g.fn(), g.z, g.params(), zeros({2, 3}, {.dtype = kFloat64}), o);
  EXPECT_EQ(error_of([&] { sum(x).backward(); }),
            "fixed_point 'big': the exact backward needs a 3 x 3 Jacobian per sample, above exact_max_state = 2; use "
            "the implicit backward for states this large");
}

// Gradients of the layer for `dtype` on `device`, from the MLP fixture's float64 values.
Tensors layer_gradients(FixedPointBackward mode, DType dtype, Device device) {
  ContractiveMlp g(3, 4, 5);
  const auto moved = [&](const Tensor& t) { return t.detach().to(dtype).to(device).requires_grad_(); };
  const Tensor z = moved(g.z), w1 = moved(g.W1), b1 = moved(g.b1), w2 = moved(g.W2);
  const FixedPointFn fn = [&](const Tensor& x, const Tensor& zz) {
    return linear(tanh(linear(concat({zz, x}, 1), w1, b1)), w2);
  };
  FixedPointOptions o = exact("mlp");
  o.backward_mode = mode;
  o.forward.tolerance = o.backward.tolerance = dtype == kFloat32 ? 1e-6 : 1e-12;
  o.backward.max_iterations = 2000;
  const Tensor x = fixed_point(fn, z, {w1, b1, w2}, zeros({5, 3}, {.dtype = dtype, .device = device}), o);
  return autograd::grad({sum(x * g.loss_weights().to(dtype).to(device))}, {z, w1, b1, w2});
}

TEST(FixedPointExact, Float32LayerAgreesWithTheImplicitBackward) {
  const Tensors exact_grads = layer_gradients(FixedPointBackward::Exact, kFloat32, kCPU);
  const Tensors implicit_grads = layer_gradients(FixedPointBackward::Implicit, kFloat32, kCPU);
  for (std::size_t i = 0; i < exact_grads.size(); ++i) {
    EXPECT_EQ(exact_grads[i].dtype(), kFloat32);
    EXPECT_TRUE(allclose(exact_grads[i], implicit_grads[i], 1e-4, 1e-5)) << i;
  }
}

class CudaFixedPointExact : public testing::CudaTest {};

TEST_F(CudaFixedPointExact, GradientsMatchTheCpu) {
  const Tensors cpu = layer_gradients(FixedPointBackward::Exact, kFloat64, kCPU);
  const Tensors gpu = layer_gradients(FixedPointBackward::Exact, kFloat64, testing::kGpu);
  for (std::size_t i = 0; i < cpu.size(); ++i) EXPECT_TRUE(testing::matches_cpu(gpu[i], cpu[i], 1e-8)) << i;
}

}  // namespace
}  // namespace fpi
