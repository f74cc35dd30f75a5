// The opcodes of the element-wise and reduction primitives. They live apart from backend.hpp so the
// CUDA kernels (kernels/*.cu) can switch on them without compiling the tensor headers.
#pragma once

namespace fpi::backend {

enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Abs,
  Sign,        // -1, 0, 1
  Relu,
  Step,        // 1 where x > 0 else 0: the derivative of relu
  Sigmoid,
  Tanh,
  Softplus,    // log(1 + exp(x)), computed without overflow
  Square,
  Reciprocal,
  PowScalar,   // x ^ a
  AddScalar,   // x + a
  MulScalar,   // x * a
  Clamp,       // min(max(x, a), b)
  InRange,     // 1 where a <= x <= b else 0: the derivative of clamp
  NonFinite,   // 1 where x is NaN or ±Inf else 0
};

enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Minimum,
  Maximum,
  Gt,  // comparisons produce 1 or 0 in the operands' dtype
  Ge,
  Lt,
  Le,
  Eq,
};

enum class ReduceOp { Sum, Max, Min };

}  // namespace fpi::backend
