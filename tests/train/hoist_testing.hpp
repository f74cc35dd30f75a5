// What the hoisting tests of net and energy maps share: building a config model in float64, its summary,
// and the comparison of a hoisted model with its plain twin (same fixed point, same gradients for z and
// every parameter).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "fpi/autograd.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"

namespace fpi::testing {

// `model` built on a "features" input of `input`'s shape, in float64, from one seed.
inline std::shared_ptr<train::GraphModule> build_f64(const nlohmann::json& model, const Shape& input) {
  Generator generator(5);
  return train::build_model(model, {{"features", input}}, {.dtype = kFloat64}, generator).module;
}

inline std::string summary_of(const train::GraphModule& graph) {
  std::ostringstream out;
  graph.print_summary(out);
  return out.str();
}

// Output and gradients (z first, then the parameters in order) of <model(z), w>.
inline Tensors output_and_gradients(train::GraphModule& graph, const Tensor& z, const Tensor& w) {
  const Tensor zv = z.detach().requires_grad_();
  const Tensor out = graph.forward({{"features", zv}});
  Tensors targets{zv};
  for (const auto& p : graph.parameters()) targets.push_back(p);
  Tensors result{out.detach()};
  for (const Tensor& g : autograd::grad({sum(out * w)}, targets)) result.push_back(g);
  return result;
}

// The hoisted model `a` and the plain `b` give the same output and gradients within 1e-11 on a random
// batch of shape `batch`; every compared value must be far from zero, or the comparison says nothing.
inline void expect_hoisted_same_as_plain(train::GraphModule& a, train::GraphModule& b, const Shape& batch) {
  EXPECT_NE(summary_of(a).find("z part hoisted"), std::string::npos) << summary_of(a);
  EXPECT_EQ(summary_of(b).find("hoisted"), std::string::npos) << summary_of(b);
  Generator gen(8);
  const Tensor z = randn(batch, {.dtype = kFloat64}, &gen);
  Shape out_shape;
  {
    NoGrad no_grad;  // on both, so that bounded layers take the same power-iteration steps
    out_shape = a.forward({{"features", z}}).shape();
    b.forward({{"features", z}});
  }
  const Tensor w = randn(out_shape, {.dtype = kFloat64}, &gen);
  const Tensors ga = output_and_gradients(a, z, w), gb = output_and_gradients(b, z, w);
  ASSERT_EQ(ga.size(), gb.size());
  for (std::size_t i = 0; i < ga.size(); ++i) {
    ASSERT_TRUE(ga[i].defined() && gb[i].defined()) << i;
    EXPECT_LT(max(abs(ga[i] - gb[i])).item(), 1e-11) << "output/gradient " << i;
    EXPECT_GT(max(abs(gb[i])).item(), 1e-6) << "gradient " << i << " is zero; the comparison says nothing";
  }
}

}  // namespace fpi::testing
