// Finite-difference gradient checks in float64, first and second order, used by the op table and by
// the tests of composite layers (the FPI layer among them).
#pragma once

#include <gtest/gtest.h>

#include <functional>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace fpi::testing {

using Fn = std::function<Tensor(const Tensors&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  std::uint64_t seed = 1234;
};

// Compares d<f(x), w>/dx (from the tape) with central differences, for every input that requires grad.
::testing::AssertionResult gradcheck(const Fn& f, const Tensors& inputs, GradcheckOptions options = {});

// Compares d/d(x, w) of <d<f(x), w>/dx, v> (grad of grad, built with create_graph) with central
// differences of the first-order gradient. Checks the derivative w.r.t. the output weights w too, so
// the backward rules are checked as functions of their incoming gradient.
::testing::AssertionResult gradgradcheck(const Fn& f, const Tensors& inputs, GradcheckOptions options = {});

}  // namespace fpi::testing
