// Element-wise ops: arithmetic, activations, comparisons. Each op's forward is one backend call and
// its backward, right below it, is written in these same ops.

#include "ops/op_util.hpp"

namespace fpi {

using backend::BinaryOp;
using backend::UnaryOp;
using ops::backend_of;

namespace {

Tensor unary_forward(UnaryOp op, const Tensor& a, const char* name, double p = 0.0, double q = 0.0) {
  ops::check_defined(a, name, "the input");
  Tensor out = empty_like(a);
  backend_of(a).unary(op, out, a, p, q);
  return out;
}

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  ops::check_compatible(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = ops::empty_as(shape, a);
  backend_of(a).binary(op, out, ops::broadcast_view(a, shape), ops::broadcast_view(b, shape));
  return out;
}

}  // namespace

// y = a + b
Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Add, a, b, "add");
  const Shape sa = a.shape(), sb = b.shape();
  autograd::record("add", {a, b}, y, {}, [sa, sb](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{ctx.needs_grad(0) ? sum_to(g, sa) : Tensor(), ctx.needs_grad(1) ? sum_to(g, sb) : Tensor()};
  });
  return y;
}

// y = a - b
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Sub, a, b, "sub");
  const Shape sa = a.shape(), sb = b.shape();
  autograd::record("sub", {a, b}, y, {}, [sa, sb](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{ctx.needs_grad(0) ? sum_to(g, sa) : Tensor(), ctx.needs_grad(1) ? sum_to(-g, sb) : Tensor()};
  });
  return y;
}

// y = a * b
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Mul, a, b, "mul");
  autograd::record("mul", {a, b}, y, {a, b}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    return Tensors{ctx.needs_grad(0) ? sum_to(g * b, a.shape()) : Tensor(),
                   ctx.needs_grad(1) ? sum_to(g * a, b.shape()) : Tensor()};
  });
  return y;
}

// y = a / b;  da = g / b,  db = -g a / b²
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Div, a, b, "div");
  autograd::record("div", {a, b}, y, {a, b}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    return Tensors{ctx.needs_grad(0) ? sum_to(g / b, a.shape()) : Tensor(),
                   ctx.needs_grad(1) ? sum_to(-(g * a) / (b * b), b.shape()) : Tensor()};
  });
  return y;
}

// y = a + s
Tensor add(const Tensor& a, double s) {
  Tensor y = unary_forward(UnaryOp::AddScalar, a, "add", s);
  autograd::record("add_scalar", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{g};
  });
  return y;
}

// y = a * s
Tensor mul(const Tensor& a, double s) {
  Tensor y = unary_forward(UnaryOp::MulScalar, a, "mul", s);
  autograd::record("mul_scalar", {a}, y, {}, [s](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{g * s};
  });
  return y;
}

// y = s - a
Tensor rsub(const Tensor& a, double s) {
  Tensor y = unary_forward(UnaryOp::Neg, a, "rsub");
  backend_of(y).unary(UnaryOp::AddScalar, y, y, s);
  autograd::record("rsub", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{-g};
  });
  return y;
}

// y = -a
Tensor neg(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Neg, a, "neg");
  autograd::record("neg", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext&) {
    return Tensors{-g};
  });
  return y;
}

// y = exp(a);  da = g y
Tensor exp(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Exp, a, "exp");
  autograd::record("exp", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * ctx.output()};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = log(a);  da = g / a
Tensor log(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Log, a, "log");
  autograd::record("log", {a}, y, {a}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g / ctx.saved(0)};
  });
  return y;
}

// y = √a;  da = g / (2y)
Tensor sqrt(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Sqrt, a, "sqrt");
  autograd::record("sqrt", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{(g * 0.5) / ctx.output()};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = a^p;  da = g p a^(p-1)
Tensor pow(const Tensor& a, double p) {
  Tensor y = unary_forward(UnaryOp::PowScalar, a, "pow", p);
  autograd::record("pow", {a}, y, {a}, [p](const Tensor& g, const autograd::BackwardContext& ctx) {
    if (p == 0.0) return Tensors{zeros_like(g)};
    return Tensors{g * (pow(ctx.saved(0), p - 1.0) * p)};
  });
  return y;
}

// y = a²;  da = 2 g a
Tensor square(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Square, a, "square");
  autograd::record("square", {a}, y, {a}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * (ctx.saved(0) * 2.0)};
  });
  return y;
}

// y = |a|;  da = g sign(a)
Tensor abs(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Abs, a, "abs");
  autograd::record("abs", {a}, y, {a}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * sign(ctx.saved(0))};
  });
  return y;
}

// y = 1 / a;  da = -g y²
Tensor reciprocal(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Reciprocal, a, "reciprocal");
  autograd::record("reciprocal", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor& y = ctx.output();
    return Tensors{-(g * (y * y))};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = min(a, b); a tie sends half the gradient each way.
Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Minimum, a, b, "minimum");
  autograd::record("minimum", {a, b}, y, {a, b}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    const Tensor half_ties = eq(a, b) * 0.5;
    return Tensors{ctx.needs_grad(0) ? sum_to(g * (lt(a, b) + half_ties), a.shape()) : Tensor(),
                   ctx.needs_grad(1) ? sum_to(g * (gt(a, b) + half_ties), b.shape()) : Tensor()};
  });
  return y;
}

// y = max(a, b); a tie sends half the gradient each way.
Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Maximum, a, b, "maximum");
  autograd::record("maximum", {a, b}, y, {a, b}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    const Tensor half_ties = eq(a, b) * 0.5;
    return Tensors{ctx.needs_grad(0) ? sum_to(g * (gt(a, b) + half_ties), a.shape()) : Tensor(),
                   ctx.needs_grad(1) ? sum_to(g * (lt(a, b) + half_ties), b.shape()) : Tensor()};
  });
  return y;
}

// y = min(max(a, low), high);  da = g [low <= a <= high]
Tensor clamp(const Tensor& a, double low, double high) {
  FPI_CHECK(!(low > high), "clamp: low (", low, ") is greater than high (", high, ")");
  Tensor y = unary_forward(UnaryOp::Clamp, a, "clamp", low, high);
  autograd::record("clamp", {a}, y, {a}, [low, high](const Tensor& g, const autograd::BackwardContext& ctx) {
    Tensor mask = empty_like(ctx.saved(0));
    backend_of(mask).unary(UnaryOp::InRange, mask, ctx.saved(0), low, high);
    return Tensors{g * mask};
  });
  return y;
}

// y = max(a, 0);  da = g [a > 0]
Tensor relu(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Relu, a, "relu");
  autograd::record("relu", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * step(ctx.output())};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = 1 / (1 + e^-a);  da = g y (1 - y)
Tensor sigmoid(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Sigmoid, a, "sigmoid");
  autograd::record("sigmoid", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor& y = ctx.output();
    return Tensors{g * (y * rsub(y, 1.0))};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = tanh(a);  da = g (1 - y²)
Tensor tanh(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Tanh, a, "tanh");
  autograd::record("tanh", {a}, y, {}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * rsub(square(ctx.output()), 1.0)};
  }, autograd::SaveOutput::Yes);
  return y;
}

// y = log(1 + e^a);  da = g sigmoid(a)
Tensor softplus(const Tensor& a) {
  Tensor y = unary_forward(UnaryOp::Softplus, a, "softplus");
  autograd::record("softplus", {a}, y, {a}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    return Tensors{g * sigmoid(ctx.saved(0))};
  });
  return y;
}

Tensor sign(const Tensor& a) { return unary_forward(UnaryOp::Sign, a, "sign"); }
Tensor step(const Tensor& a) { return unary_forward(UnaryOp::Step, a, "step"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Gt, a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ge, a, b, "ge"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Lt, a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Le, a, b, "le"); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Eq, a, b, "eq"); }

Tensor isfinite_mask(const Tensor& a) {
  Tensor bad = unary_forward(UnaryOp::NonFinite, a, "isfinite");
  backend_of(bad).unary(UnaryOp::AddScalar, bad, bad, -1.0);
  backend_of(bad).unary(UnaryOp::Neg, bad, bad);
  return bad;
}

bool all_finite(const Tensor& a) {
  if (a.numel() == 0) return true;
  const Tensor bad = unary_forward(UnaryOp::NonFinite, a, "all_finite");
  Tensor count = ops::empty_as(Shape(a.dim(), 1), a);
  backend_of(a).reduce(backend::ReduceOp::Max, count, bad);
  return count.item() == 0.0;
}

}  // namespace fpi
