// Parameter-free modules: each forward is one op (or, for Dropout, a mask and a product).
#include "fpi/nn/activation.hpp"

#include <charconv>

#include "fpi/ops.hpp"

namespace fpi::nn {

namespace {

// A double as Python's repr prints it (shortest round-trip digits, "0.0" rather than "0").
std::string python_float(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  std::string s(buf, end);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Softplus::forward(const Tensor& x) { return softplus(x); }

Tensor Flatten::forward(const Tensor& x) { return x.flatten(start_dim_, end_dim_); }

std::string Flatten::extra_repr() const { return detail::concat("start_dim=", start_dim_, ", end_dim=", end_dim_); }

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  FPI_CHECK(p >= 0.0 && p <= 1.0, "Dropout: the probability p must lie in [0, 1], got ", p);
}

// y = x · mask / (1 - p), mask ~ Bernoulli(1 - p) elementwise
Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  if (p_ == 1.0) return x * 0.0;
  const Tensor keep = step(rand(x.shape(), x.options()) - p_);
  return x * (keep * (1.0 / (1.0 - p_)));
}

std::string Dropout::extra_repr() const { return "p=" + python_float(p_) + ", inplace=False"; }

}  // namespace fpi::nn
