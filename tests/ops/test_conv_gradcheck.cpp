// Float64 finite-difference checks of conv2d and conv_transpose2d: first derivatives w.r.t. input,
// weight and bias, and second derivatives — the gradient of <dL/dx, v> w.r.t. x, w and b against
// central differences of that first gradient — which exercise the conv ops' backward rules being
// each other's adjoints. L = sum(R * y^2) so that the second derivative w.r.t. x is not zero.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;
using fpi::Tensors;

// Central differences of f with respect to every entry of the float64 tensor t.
std::vector<double> numeric_gradient(const Tensor& t, const std::function<double()>& f) {
  constexpr double step = 1e-6;
  double* p = t.data<double>();
  std::vector<double> g(t.numel());
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double saved = p[i];
    p[i] = saved + step;
    const double up = f();
    p[i] = saved - step;
    const double down = f();
    p[i] = saved;
    g[i] = (up - down) / (2 * step);
  }
  return g;
}

void expect_gradient(const Tensor& analytic, const std::vector<double>& numeric, const std::string& what) {
  ASSERT_TRUE(analytic.defined()) << what << ": no gradient";
  const auto a = analytic.to_vector<double>();
  ASSERT_EQ(a.size(), numeric.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_NEAR(a[i], numeric[i], 1e-6 * (1 + std::abs(numeric[i]))) << what << ": element " << i;
}

using Layer = std::function<Tensor(const Tensor& x, const Tensor& w, const Tensor& b)>;

struct Problem {
  std::string name;
  fpi::Shape x, w, b;
  Layer layer;
};

std::vector<Problem> problems() {
  const fpi::Conv2dOptions same{.padding = {1, 1}};
  const fpi::Conv2dOptions strided{.stride = {1, 2}, .padding = {2, 1}, .dilation = {2, 1}};
  const fpi::Conv2dOptions up{.stride = {2, 3}, .padding = {1, 0}, .dilation = {1, 2}, .output_padding = {1, 2}};
  return {
      {"conv2d 3x3 same", {2, 2, 5, 6}, {3, 2, 3, 3}, {3},
       [same](const Tensor& x, const Tensor& w, const Tensor& b) { return fpi::conv2d(x, w, b, same); }},
      {"conv2d strided dilated", {2, 3, 6, 7}, {2, 3, 2, 3}, {2},
       [strided](const Tensor& x, const Tensor& w, const Tensor& b) { return fpi::conv2d(x, w, b, strided); }},
      {"conv_transpose2d", {2, 3, 4, 3}, {3, 2, 3, 2}, {2},
       [same](const Tensor& x, const Tensor& w, const Tensor& b) { return fpi::conv_transpose2d(x, w, b, same); }},
      {"conv_transpose2d strided output_padding", {1, 2, 3, 4}, {2, 3, 2, 2}, {3},
       [up](const Tensor& x, const Tensor& w, const Tensor& b) { return fpi::conv_transpose2d(x, w, b, up); }},
  };
}

struct Inputs {
  Tensor x, w, b, r, v;
  Inputs(const Problem& p, fpi::Generator& gen) {
    const fpi::TensorOptions o{.dtype = fpi::kFloat64};
    x = fpi::uniform(p.x, -1, 1, o, &gen).requires_grad_();
    w = fpi::uniform(p.w, -1, 1, o, &gen).requires_grad_();
    b = fpi::uniform(p.b, -1, 1, o, &gen).requires_grad_();
    fpi::NoGrad no_grad;
    r = fpi::uniform(p.layer(x, w, b).shape(), -1, 1, o, &gen);
    v = fpi::uniform(p.x, -1, 1, o, &gen);
  }
  Tensor loss(const Problem& p) const { return fpi::sum(r * fpi::square(p.layer(x, w, b))); }
  // <dL/dx, v>, recorded so that it can be differentiated again.
  Tensor directional(const Problem& p) const {
    fpi::autograd::GradOptions keep_graph;
    keep_graph.create_graph = true;
    const Tensors gx = fpi::autograd::grad({loss(p)}, {x}, {}, keep_graph);
    return fpi::sum(gx[0] * v);
  }
};

TEST(ConvGradcheck, FirstDerivatives) {
  fpi::Generator gen(21);
  for (const Problem& p : problems()) {
    const Inputs in(p, gen);
    const Tensors g = fpi::autograd::grad({in.loss(p)}, {in.x, in.w, in.b});
    const auto value = [&] {
      fpi::NoGrad no_grad;
      return in.loss(p).item();
    };
    expect_gradient(g[0], numeric_gradient(in.x, value), p.name + " d/dx");
    expect_gradient(g[1], numeric_gradient(in.w, value), p.name + " d/dw");
    expect_gradient(g[2], numeric_gradient(in.b, value), p.name + " d/db");
  }
}

TEST(ConvGradcheck, SecondDerivatives) {
  fpi::Generator gen(22);
  for (const Problem& p : problems()) {
    const Inputs in(p, gen);
    const Tensors g = fpi::autograd::grad({in.directional(p)}, {in.x, in.w, in.b});
    const auto value = [&] { return in.directional(p).item(); };
    expect_gradient(g[0], numeric_gradient(in.x, value), p.name + " d<dL/dx, v>/dx");
    expect_gradient(g[1], numeric_gradient(in.w, value), p.name + " d<dL/dx, v>/dw");
    expect_gradient(g[2], numeric_gradient(in.b, value), p.name + " d<dL/dx, v>/db");
  }
}

}  // namespace
