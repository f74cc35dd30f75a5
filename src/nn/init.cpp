// torch.nn.init's formulas. The random values are drawn on the host in row-major order and copied into
// the target, so a seed gives the same weights whatever the target's dtype, device or strides.
#include "fpi/nn/init.hpp"

#include <cmath>

#include "fpi/autograd.hpp"

namespace fpi::nn::init {

namespace {

Tensor write(const Tensor& t, const Tensor& values) {
  NoGrad no_grad;
  Tensor target = t;
  target.copy_(values);
  return t;
}

void check_target(const Tensor& t, const char* op) {
  FPI_CHECK(t.defined(), "nn::init::", op, ": the tensor is undefined");
}

// Only called for tensors with elements (so the fan is positive): like PyTorch, the variance-scaled
// initialisers leave an empty tensor untouched.
double fan(const Tensor& t, FanMode mode) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return static_cast<double>(mode == FanMode::FanIn ? fan_in : fan_out);
}

bool is_empty(const Tensor& t, const char* op) {
  check_target(t, op);
  return t.numel() == 0;
}

}  // namespace

std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  check_target(t, "calculate_fan_in_and_fan_out");
  FPI_CHECK(t.dim() >= 2, "nn::init::calculate_fan_in_and_fan_out: needs a tensor with at least 2 dimensions, "
            "got shape ", shape_str(t.shape()));
  std::int64_t receptive_field = 1;
  for (std::int64_t d = 2; d < t.dim(); ++d) receptive_field *= t.size(d);
  return {t.size(1) * receptive_field, t.size(0) * receptive_field};
}

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv:
    case Nonlinearity::Sigmoid: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::Relu: return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Selu: return 3.0 / 4.0;
  }
  fail("nn::init::calculate_gain: unknown nonlinearity");
}

Tensor uniform_(const Tensor& t, double low, double high, Generator* generator) {
  check_target(t, "uniform_");
  FPI_CHECK(low <= high, "nn::init::uniform_: low (", low, ") must not exceed high (", high, ")");
  return write(t, uniform(t.shape(), low, high, {t.dtype(), kCPU}, generator));
}

Tensor normal_(const Tensor& t, double mean, double stddev, Generator* generator) {
  check_target(t, "normal_");
  FPI_CHECK(stddev >= 0.0, "nn::init::normal_: the standard deviation must be non-negative, got ", stddev);
  Tensor values = randn(t.shape(), {kFloat64, kCPU}, generator);
  double* v = values.data<double>();
  for (std::int64_t i = 0; i < values.numel(); ++i) v[i] = mean + stddev * v[i];
  return write(t, values);
}

Tensor constant_(const Tensor& t, double value) {
  check_target(t, "constant_");
  NoGrad no_grad;
  Tensor target = t;
  target.fill_(value);
  return t;
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* generator) {
  if (is_empty(t, "kaiming_uniform_")) return t;
  const double stddev = calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode));
  const double bound = std::sqrt(3.0) * stddev;
  return uniform_(t, -bound, bound, generator);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* generator) {
  if (is_empty(t, "kaiming_normal_")) return t;
  const double stddev = calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode));
  return normal_(t, 0.0, stddev, generator);
}

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* generator) {
  if (is_empty(t, "xavier_uniform_")) return t;
  const double stddev = gain * std::sqrt(2.0 / (fan(t, FanMode::FanIn) + fan(t, FanMode::FanOut)));
  const double bound = std::sqrt(3.0) * stddev;
  return uniform_(t, -bound, bound, generator);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* generator) {
  if (is_empty(t, "xavier_normal_")) return t;
  const double stddev = gain * std::sqrt(2.0 / (fan(t, FanMode::FanIn) + fan(t, FanMode::FanOut)));
  return normal_(t, 0.0, stddev, generator);
}

}  // namespace fpi::nn::init
