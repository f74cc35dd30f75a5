// Matrix products: matmul (2-D and batched, broadcast batch dimensions) and linear; dense solves.
// Transposed operands (such as the views the backward passes create) go to GEMM as transpose flags
// instead of being copied.
#include "ops/linalg.hpp"

#include "ops/op_util.hpp"

namespace fpi {

using ops::backend_of;

namespace {

// How one operand is handed to GEMM: a base pointer, a row stride, a transpose flag and a uniform
// stride between the matrices of the batch.
struct MatrixOperand {
  Tensor storage_owner;  // keeps a materialised copy alive
  const void* data = nullptr;
  std::int64_t ld = 0;
  bool trans = false;
  std::int64_t batch_stride = 0;
};

// `t` is viewed as batch_shape + [rows, cols]. Returns how to address it without a copy when its
// strides allow, otherwise from a contiguous copy.
MatrixOperand as_operand(const Tensor& t, const Shape& batch_shape, std::int64_t rows, std::int64_t cols) {
  Shape full = batch_shape;
  full.push_back(rows);
  full.push_back(cols);
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Tensor v = attempt == 0 ? ops::broadcast_view(t, full) : ops::broadcast_view(t.detach(), full).contiguous();
    const auto& st = v.strides();
    const std::size_t nd = st.size();
    const std::int64_t rs = st[nd - 2], cs = st[nd - 1];
    MatrixOperand op;
    op.storage_owner = v;
    op.data = v.raw_data();
    if ((cs == 1 || cols == 1) && (rs >= cols || rows == 1)) {
      op.ld = rows == 1 ? cols : rs;
    } else if ((rs == 1 || rows == 1) && (cs >= rows || cols == 1)) {
      op.trans = true;
      op.ld = cols == 1 ? rows : cs;
    } else {
      continue;
    }
    // The batch dimensions must collapse to a single stride.
    bool uniform = true, found = false;
    std::int64_t expected = 0;
    for (std::size_t d = batch_shape.size(); d-- > 0;) {
      if (batch_shape[d] == 1) continue;
      if (!found) {
        op.batch_stride = st[d];
        expected = st[d] * batch_shape[d];
        found = true;
      } else if (st[d] == expected) {
        expected *= batch_shape[d];
      } else if (!(st[d] == 0 && op.batch_stride == 0)) {
        uniform = false;
      }
    }
    if (uniform) return op;
  }
  fail("matmul: internal error, a contiguous operand could not be addressed");
}

// "[i, j]" for the row-major index `flat` into `batch`.
std::string batch_index_str(std::int64_t flat, const Shape& batch) {
  Shape index(batch.size());
  for (std::size_t d = batch.size(); d-- > 0;) {
    index[d] = flat % batch[d];
    flat /= batch[d];
  }
  return shape_str(index);
}

}  // namespace

// y = a @ b;  da = g @ bᵀ,  db = aᵀ @ g  (summed over broadcast batch dimensions)
Tensor matmul(const Tensor& a, const Tensor& b) {
  ops::check_compatible(a, b, "matmul");
  FPI_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: both operands need at least 2 dimensions, got ",
            shape_str(a.shape()), " and ", shape_str(b.shape()), " (unsqueeze a vector first)");
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  FPI_CHECK(b.size(-2) == k, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
            " cannot be multiplied (", k, " columns vs ", b.size(-2), " rows)");
  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor y = ops::empty_as(out_shape, a);
  const std::int64_t batch_count = shape_numel(batch);

  if (k == 0) {
    backend_of(y).fill(y, 0.0);
  } else if (y.numel() > 0) {
    MatrixOperand A = as_operand(a, batch, m, k);
    const MatrixOperand B = as_operand(b, batch, k, n);
    backend::GemmDesc g;
    g.dtype = a.dtype();
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch = batch_count;
    // A batch of row-major A against one shared B is a single tall GEMM.
    if (batch_count > 1 && B.batch_stride == 0 && !A.trans && A.batch_stride == m * A.ld) {
      g.m = m * batch_count;
      g.batch = 1;
    }
    g.trans_a = A.trans;
    g.a = A.data;
    g.lda = A.ld;
    g.stride_a = A.batch_stride;
    g.trans_b = B.trans;
    g.b = B.data;
    g.ldb = B.ld;
    g.stride_b = B.batch_stride;
    g.c = y.raw_data();
    g.ldc = n;
    g.stride_c = m * n;
    backend_of(y).gemm(g);
  }

  autograd::record("matmul", {a, b}, y, {a, b}, [](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &a = ctx.saved(0), &b = ctx.saved(1);
    Tensor ga, gb;
    if (ctx.needs_grad(0)) ga = sum_to(matmul(g, b.transpose(-1, -2)), a.shape());
    if (ctx.needs_grad(1)) {
      if (b.dim() == 2 && a.dim() > 2) {
        // Fold the batch into rows instead of building a batch of products and summing it.
        gb = matmul(a.reshape({-1, a.size(-1)}).transpose(0, 1), g.reshape({-1, g.size(-1)}));
      } else {
        gb = sum_to(matmul(a.transpose(-1, -2), g), b.shape());
      }
    }
    return Tensors{ga, gb};
  });
  return y;
}

// y = x Wᵀ + b;  dx = g W,  dW = gᵀ x,  db = Σ_rows g
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  ops::check_compatible(x, weight, "linear");
  FPI_CHECK(weight.dim() == 2, "linear: weight must be 2-D (out_features, in_features), got ",
            shape_str(weight.shape()));
  FPI_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input of shape ", shape_str(x.shape()),
            " does not match weight of shape ", shape_str(weight.shape()), " (expected last dimension ",
            weight.size(1), ")");
  const std::int64_t in = weight.size(1), out = weight.size(0);
  if (bias.defined()) {
    ops::check_compatible(x, bias, "linear");
    FPI_CHECK(bias.dim() == 1 && bias.size(0) == out, "linear: bias of shape ", shape_str(bias.shape()),
              " does not match ", out, " output features");
  }
  Shape out_shape = x.shape();
  out_shape.back() = out;
  Tensor y = ops::empty_as(out_shape, x);
  const std::int64_t rows = x.numel() / std::max<std::int64_t>(in, 1);
  if (y.numel() > 0) {
    const Tensor x2 = x.detach().contiguous();
    const MatrixOperand W = as_operand(weight.detach(), {}, out, in);
    backend::GemmDesc g;
    g.dtype = x.dtype();
    g.m = rows;
    g.n = out;
    g.k = in;
    g.a = x2.raw_data();
    g.lda = in;
    // Wᵀ: W stored row-major (out, in) is Wᵀ transposed.
    g.trans_b = !W.trans;
    g.b = W.data;
    g.ldb = W.ld;
    g.c = y.raw_data();
    g.ldc = out;
    if (bias.defined()) {
      backend_of(y).copy(y, ops::broadcast_view(bias.detach(), out_shape));
      g.beta = 1.0;
    }
    if (in == 0) {
      if (!bias.defined()) backend_of(y).fill(y, 0.0);
    } else {
      backend_of(y).gemm(g);
    }
  }
  autograd::record("linear", {x, weight, bias}, y, {x, weight}, [in, out](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor &x = ctx.saved(0), &w = ctx.saved(1);
    const Tensor g2 = g.reshape({-1, out});
    Tensor gx, gw, gb;
    if (ctx.needs_grad(0)) gx = matmul(g2, w).reshape(x.shape());
    if (ctx.needs_grad(1)) gw = matmul(g2.transpose(0, 1), x.reshape({-1, in}));
    if (ctx.needs_grad(2)) gb = sum(g2, {0});
    return Tensors{gx, gw, gb};
  });
  return y;
}

// X = A⁻¹ B;  dB = A⁻ᵀ g,  dA = −dB Xᵀ  (summed over broadcast batch dimensions)
ops::SolveReport ops::solve_reporting_singular(const Tensor& a, const Tensor& b) {
  ops::check_compatible(a, b, "solve");
  FPI_CHECK(a.dim() >= 2 && a.size(-1) == a.size(-2), "solve: A must be square matrices (..., n, n), got shape ",
            shape_str(a.shape()));
  const std::int64_t n = a.size(-1);
  FPI_CHECK(b.dim() >= 2 && b.size(-2) == n, "solve: B of shape ", shape_str(b.shape()), " does not match A of shape ",
            shape_str(a.shape()), " (expected (..., ", n, ", k); unsqueeze a vector first)");
  const std::int64_t k = b.size(-1);
  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "solve");
  const std::int64_t count = shape_numel(batch);
  const auto with_matrix = [&](std::int64_t rows, std::int64_t cols) {
    Shape s = batch;
    s.push_back(rows);
    s.push_back(cols);
    return s;
  };
  // The backend's layout is LAPACK's: every matrix stored column by column, that is, transposed. Both
  // copies are also the buffers it overwrites with the factors and the solutions.
  Tensor lu = ops::empty_as(with_matrix(n, n), a);
  backend_of(lu).copy(lu, ops::broadcast_view(a.detach(), with_matrix(n, n)).transpose(-1, -2));
  Tensor rhs = ops::empty_as(with_matrix(k, n), a);
  backend_of(rhs).copy(rhs, ops::broadcast_view(b.detach(), with_matrix(n, k)).transpose(-1, -2));
  SolveReport report;
  report.singular = backend_of(lu).solve(lu.reshape({count, n, n}), rhs.reshape({count, k, n}));
  Tensor y = ops::empty_as(with_matrix(n, k), a);
  backend_of(y).copy(y, rhs.transpose(-1, -2));

  const auto backward = [b_shape = b.shape()](const Tensor& g, const autograd::BackwardContext& ctx) {
    const Tensor& a = ctx.saved(0);
    const Tensor gb_batch = solve(a.transpose(-1, -2), g);  // both gradients need it
    Tensor ga, gb;
    if (ctx.needs_grad(0)) ga = sum_to(-matmul(gb_batch, ctx.output().transpose(-1, -2)), a.shape());
    if (ctx.needs_grad(1)) gb = sum_to(gb_batch, b_shape);
    return Tensors{ga, gb};
  };
  autograd::record("solve", {a, b}, y, {a}, backward, autograd::SaveOutput::Yes);
  report.x = y;
  return report;
}

Tensor solve(const Tensor& a, const Tensor& b) {
  ops::SolveReport report = ops::solve_reporting_singular(a, b);
  if (!report.singular.empty()) {
    const Shape batch(report.x.shape().begin(), report.x.shape().end() - 2);
    const std::int64_t others = static_cast<std::int64_t>(report.singular.size()) - 1;
    fail("solve: A is singular", batch.empty() ? "" : " at batch index " + batch_index_str(report.singular[0], batch),
         others > 0 ? " (and in " + std::to_string(others) + " more of the batch " + shape_str(batch) + ")" : "",
         ": its LU factorisation has an exactly zero pivot");
  }
  return report.x;
}

}  // namespace fpi
