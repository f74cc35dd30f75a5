// Maps with known fixed points and gradients for the FPI layer tests: an affine contraction, a
// contractive MLP, and gradient descent on a quadratic energy. All in float64.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "fpi/autograd.hpp"
#include "fpi/fixed_point.hpp"
#include "fpi/generator.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"

namespace fpi::testing {

inline const TensorOptions kF64{.dtype = kFloat64};

// Solves M X = R for a dense d x d matrix M (row-major) and the columns of R (d x k), by Gaussian
// elimination with partial pivoting: a reference independent of the library under test.
inline std::vector<double> dense_solve(std::vector<double> m, std::vector<double> r, int d, int k) {
  for (int col = 0; col < d; ++col) {
    int pivot = col;
    for (int row = col + 1; row < d; ++row)
      if (std::abs(m[row * d + col]) > std::abs(m[pivot * d + col])) pivot = row;
    for (int c = 0; c < d; ++c) std::swap(m[col * d + c], m[pivot * d + c]);
    for (int c = 0; c < k; ++c) std::swap(r[col * k + c], r[pivot * k + c]);
    for (int row = col + 1; row < d; ++row) {
      const double f = m[row * d + col] / m[col * d + col];
      for (int c = col; c < d; ++c) m[row * d + c] -= f * m[col * d + c];
      for (int c = 0; c < k; ++c) r[row * k + c] -= f * r[col * k + c];
    }
  }
  for (int row = d - 1; row >= 0; --row)
    for (int c = 0; c < k; ++c) {
      for (int j = row + 1; j < d; ++j) r[row * k + c] -= m[row * d + j] * r[j * k + c];
      r[row * k + c] /= m[row * d + row];
    }
  return r;
}

// Solves (I − M) X = R with R's rows as right-hand sides; returns X with rows as solutions.
inline Tensor solve_identity_minus(const Tensor& m, const Tensor& rows) {
  const int d = static_cast<int>(m.size(0)), k = static_cast<int>(rows.size(0));
  const Tensor system = (eye(m.size(0), kF64) - m).contiguous();
  const auto solution = dense_solve(system.to_vector<double>(), rows.t().contiguous().to_vector<double>(), d, k);
  return from_vector(solution, Shape{d, k}, kF64).t().contiguous();
}

// A Householder reflection I − 2vvᵀ/‖v‖²: orthogonal, so U diag(λ) V has spectral norm max |λ|.
inline Tensor householder(std::int64_t d, Generator& gen) {
  const Tensor v = randn({d, 1}, kF64, &gen);
  return eye(d, kF64) - matmul(v, v.t()) * (2.0 / sum(square(v)).item());
}

// g(x, z) = A x + B z + b with ‖A‖₂ = `norm` exactly.
struct LinearMap {
  Tensor A, B, b, z;
  LinearMap(std::int64_t d, std::int64_t p, std::int64_t batch, double norm, std::uint64_t seed = 3) {
    Generator gen(seed);
    std::vector<double> spectrum(d);
    for (std::int64_t i = 0; i < d; ++i) spectrum[i] = norm * (d == 1 ? 1.0 : -1.0 + 2.0 * i / (d - 1));
    const Tensor lambda = from_vector(spectrum, kF64);
    A = matmul(householder(d, gen) * lambda.unsqueeze(0), householder(d, gen)).detach().requires_grad_();
    B = randn({d, p}, kF64, &gen).requires_grad_();
    b = randn({d}, kF64, &gen).requires_grad_();
    z = randn({batch, p}, kF64, &gen).requires_grad_();
  }
  FixedPointFn fn() const {
    return [this](const Tensor& x, const Tensor& zz) { return linear(x, A) + linear(zz, B, b); };
  }
  Tensor loss_weights() const {
    Generator gen(77);
    return randn({z.size(0), A.size(0)}, kF64, &gen);
  }
  Tensor closed_form_solution() const {
    NoGrad no_grad;
    return solve_identity_minus(A, linear(z, B, b));
  }
  struct Gradients {
    Tensor A, B, b, z;
  };
  Gradients closed_form_gradients(const Tensor& w) const {
    NoGrad no_grad;
    const Tensor c = solve_identity_minus(A.t().contiguous(), w);
    const Tensor x = closed_form_solution();
    return {matmul(c.t(), x), matmul(c.t(), z), sum(c, {0}), matmul(c, B)};
  }
};

// g(x, z) = W2 tanh(W1 [z, x] + b1), scaled so that its Lipschitz constant in x is at most 0.6.
struct ContractiveMlp {
  Tensor W1, b1, W2, z;
  std::int64_t width;
  ContractiveMlp(std::int64_t d, std::int64_t hidden, std::int64_t batch, std::uint64_t seed = 4) : width(d) {
    Generator gen(seed);
    W1 = (randn({hidden, 2 * d}, kF64, &gen) * (1.0 / std::sqrt(2.0 * d))).detach();
    const Tensor raw = randn({d, hidden}, kF64, &gen);
    W2 = (raw * (0.6 / (norm(W1).item() * norm(raw).item()))).detach().requires_grad_();
    W1.requires_grad_();
    b1 = (randn({hidden}, kF64, &gen) * 0.5).detach().requires_grad_();
    z = randn({batch, d}, kF64, &gen).requires_grad_();
  }
  FixedPointFn fn() const {
    return [this](const Tensor& x, const Tensor& zz) { return linear(tanh(linear(concat({zz, x}, 1), W1, b1)), W2); };
  }
  std::vector<Tensor> params() const { return {W1, b1, W2}; }
  Tensor loss_weights() const {
    Generator gen(78);
    return randn({z.size(0), width}, kF64, &gen);
  }
};

// E(x, z) = ½ xᵀQx − xᵀWz per sample, Q symmetric positive definite; g = x − γ∇ₓE.
struct QuadraticEnergy {
  Tensor Q, W, z;
  QuadraticEnergy(std::int64_t d, std::int64_t p, std::int64_t batch, std::uint64_t seed = 6) {
    Generator gen(seed);
    const Tensor r = randn({d, d}, kF64, &gen);
    Q = eye(r.size(0), kF64) * 0.5 + matmul(r, r.t()) * (0.5 / static_cast<double>(d));
    W = randn({d, p}, kF64, &gen).requires_grad_();
    z = randn({batch, p}, kF64, &gen).requires_grad_();
  }
  // ∇ₓE is taken with autograd inside g, so the backward pass needs Hessian-vector products.
  FixedPointFn fn(double gamma) const {
    return [this, gamma](const Tensor& x, const Tensor& zz) {
      const bool differentiable = autograd::grad_enabled();
      Tensor gradient;
      {
        EnableGrad enable;
        const Tensor xv = x.requires_grad() ? x : x.detach().requires_grad_();
        const Tensor energy = sum(matmul(xv, Q) * xv) * 0.5 - sum(xv * linear(zz, W));
        gradient = autograd::grad({energy}, {xv}, {}, {.create_graph = differentiable})[0];
      }
      return x - gradient * gamma;
    };
  }
  Tensor solution() const {
    NoGrad no_grad;
    return solve_identity_minus(eye(Q.size(0), kF64) - Q, linear(z, W));
  }
  Tensor q_inverse_times(const Tensor& rows) const { return solve_identity_minus(eye(Q.size(0), kF64) - Q, rows); }
  Tensor loss_weights() const {
    Generator gen(79);
    return randn({z.size(0), Q.size(0)}, kF64, &gen);
  }
};

enum class SmallMap { Net, Energy };

// A small FPI layer for comparing solver settings or devices on one model: FPI_NN (g a tanh MLP on
// concat(z, x), both layers bounded to a contraction) or FPI_GD (gradient descent on a softplus energy),
// z of width 6 and a state of width 5. Built in float64 from one seed, then converted to `dtype`.
inline std::shared_ptr<nn::FixedPointLayer> small_fpi_layer(SmallMap kind, FixedPointSolver solver, DType dtype,
                                                            int check_every = 0) {
  constexpr std::int64_t in = 6, hidden = 16, state = 5;
  Generator gen(21);
  FixedPointOptions o;
  o.forward.solver = o.backward.solver = solver;
  o.forward.tolerance = o.backward.tolerance = dtype == kFloat64 ? 1e-10 : 1e-5;
  o.forward.max_iterations = o.backward.max_iterations = 300;
  o.forward.check_every = o.backward.check_every = check_every;
  o.on_nonconvergence = NonConvergencePolicy::Ignore;
  std::shared_ptr<nn::FixedPointMap> map;
  if (kind == SmallMap::Net) {
    auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(in + state, hidden, true, kF64, &gen), 0.95),
        std::make_shared<nn::Tanh>(),
        std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(hidden, state, true, kF64, &gen), 0.95)});
    map = std::make_shared<nn::NetMap>(net);
  } else {
    auto net = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::Linear>(in + state, hidden, true, kF64, &gen), std::make_shared<nn::Softplus>(),
        std::make_shared<nn::Linear>(hidden, 1, true, kF64, &gen)});
    map = std::make_shared<nn::EnergyDescentMap>(net, 0.5, nn::EnergyReduction::MeanSquare);
  }
  auto layer = std::make_shared<nn::FixedPointLayer>(map, Shape{state}, o);
  layer->to(dtype);
  layer->eval();
  return layer;
}

// {x, ∂z, ∂θ...}: the layer's output x for `z` and the gradients of ⟨x, w⟩ with respect to z and each
// parameter, on the layer's device (z and w must be there too).
inline Tensors output_and_gradients(nn::FixedPointLayer& layer, const Tensor& z, const Tensor& w) {
  const Tensor input = z.detach().requires_grad_();
  const Tensor x = layer.forward(input);
  Tensors wrt{input};
  for (const Tensor& p : layer.parameters()) wrt.push_back(p);
  Tensors out = autograd::grad({sum(x * w)}, wrt);
  out.insert(out.begin(), x.detach());
  return out;
}

// A hoisted map's {x̂, gradients} against the plain map's (output_and_gradients): equal within 1e-11 of
// each one's scale, and that scale far from zero, or the comparison says nothing.
inline void expect_hoisted_same(const Tensors& hoisted, const Tensors& plain) {
  ASSERT_EQ(hoisted.size(), plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const double scale = max(abs(plain[i])).item();
    EXPECT_GT(scale, 1e-6) << i << ": a zero gradient makes the comparison say nothing";
    EXPECT_TRUE(allclose(hoisted[i], plain[i], 0.0, 1e-11 * scale))
        << (i == 0 ? "the fixed point" : "gradient " + std::to_string(i - 1)) << ": "
        << max(abs(hoisted[i] - plain[i])).item();
  }
}

}  // namespace fpi::testing
