// Linear, Conv2d and ConvTranspose2d: parameter shapes, PyTorch's default initialisation, and the
// forward as one op call.
#include "fpi/nn/layers.hpp"

#include <cmath>

#include "fpi/nn/init.hpp"
#include "fpi/ops.hpp"

namespace fpi::nn {

namespace {

TensorOptions parameter_options(TensorOptions options) {
  options.requires_grad = false;
  return options;
}

// PyTorch's reset_parameters for Linear and the convolutions: weight ~ kaiming_uniform_(a = √5), which
// is U(±1/√fan_in), and bias ~ U(±1/√fan_in), with fan_in taken from the weight's layout.
void default_init(const Tensor& weight, const Tensor& bias, Generator* generator) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::FanIn, init::Nonlinearity::LeakyRelu, generator);
  if (!bias.defined()) return;
  const auto fan_in = init::calculate_fan_in_and_fan_out(weight).first;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  init::uniform_(bias, -bound, bound, generator);
}

void check_at_least(const char* layer, const char* field, std::int64_t value, std::int64_t least) {
  FPI_CHECK(value >= least, layer, ": ", field, " must be at least ", least, ", got ", value);
}

void check_at_least(const char* layer, const char* field, const Size2& value, std::int64_t least) {
  FPI_CHECK(value[0] >= least && value[1] >= least, layer, ": ", field, " must be at least ", least,
            " in both dimensions, got (", value[0], ", ", value[1], ")");
}

std::string tuple_str(const Size2& v) { return detail::concat("(", v[0], ", ", v[1], ")"); }

// The checks both convolution layers make; the op repeats the geometry's, but a layer's error names
// the layer and the field at construction rather than at the first forward.
void check_config(const char* layer, const Conv2dConfig& c) {
  check_at_least(layer, "in_channels", c.in_channels, 1);
  check_at_least(layer, "out_channels", c.out_channels, 1);
  check_at_least(layer, "kernel_size", c.kernel_size, 1);
  check_at_least(layer, "stride", c.geometry.stride, 1);
  check_at_least(layer, "padding", c.geometry.padding, 0);
  check_at_least(layer, "dilation", c.geometry.dilation, 1);
}

// PyTorch's _ConvNd.extra_repr: the settings that differ from their defaults.
std::string conv_repr(const Conv2dConfig& c) {
  const Conv2dOptions& g = c.geometry;
  std::string s = detail::concat(c.in_channels, ", ", c.out_channels, ", kernel_size=", tuple_str(c.kernel_size),
                                 ", stride=", tuple_str(g.stride));
  if (g.padding != Size2{0, 0}) s += ", padding=" + tuple_str(g.padding);
  if (g.dilation != Size2{1, 1}) s += ", dilation=" + tuple_str(g.dilation);
  if (g.output_padding != Size2{0, 0}) s += ", output_padding=" + tuple_str(g.output_padding);
  if (!c.bias) s += ", bias=False";
  return s;
}

}  // namespace

// ---- Linear -------------------------------------------------------------------------------------------

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, TensorOptions options,
               Generator* generator)
    : Module("Linear"), in_features_(in_features), out_features_(out_features) {
  check_at_least("Linear", "in_features", in_features, 0);
  check_at_least("Linear", "out_features", out_features, 0);
  options = parameter_options(options);
  weight = register_parameter("weight", empty({out_features, in_features}, options));
  if (bias) this->bias = register_parameter("bias", empty({out_features}, options));
  reset_parameters(generator);
}

void Linear::reset_parameters(Generator* generator) { default_init(weight, bias, generator); }

// y = x Wᵀ + b
Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  return detail::concat("in_features=", in_features_, ", out_features=", out_features_,
                        ", bias=", bias.defined() ? "True" : "False");
}

// ---- Conv2d ------------------------------------------------------------------------------------------

Conv2d::Conv2d(const Conv2dConfig& config, TensorOptions options, Generator* generator)
    : Module("Conv2d"), config_(config) {
  check_config("Conv2d", config);
  FPI_CHECK(config.geometry.output_padding == (Size2{0, 0}), "Conv2d: output_padding ",
            tuple_str(config.geometry.output_padding), " is ConvTranspose2d's; a convolution has none");
  options = parameter_options(options);
  weight = register_parameter("weight", empty({config.out_channels, config.in_channels, config.kernel_size[0],
                                               config.kernel_size[1]}, options));
  if (config.bias) bias = register_parameter("bias", empty({config.out_channels}, options));
  reset_parameters(generator);
}

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, std::int64_t stride,
               std::int64_t padding, std::int64_t dilation, bool bias, TensorOptions options, Generator* generator)
    : Conv2d(Conv2dConfig{in_channels, out_channels, {kernel_size, kernel_size},
                          {.stride = {stride, stride}, .padding = {padding, padding}, .dilation = {dilation, dilation}},
                          bias},
             options, generator) {}

void Conv2d::reset_parameters(Generator* generator) { default_init(weight, bias, generator); }

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, config_.geometry);
}

std::string Conv2d::extra_repr() const { return conv_repr(config_); }

// ---- ConvTranspose2d ---------------------------------------------------------------------------------

ConvTranspose2d::ConvTranspose2d(const Conv2dConfig& config, TensorOptions options, Generator* generator)
    : Module("ConvTranspose2d"), config_(config) {
  check_config("ConvTranspose2d", config);
  const Conv2dOptions& g = config.geometry;
  check_at_least("ConvTranspose2d", "output_padding", g.output_padding, 0);
  for (int d = 0; d < 2; ++d) {
    FPI_CHECK(g.output_padding[d] < std::max(g.stride[d], g.dilation[d]), "ConvTranspose2d: output_padding ",
              tuple_str(g.output_padding), " must be smaller than the stride ", tuple_str(g.stride),
              " or the dilation ", tuple_str(g.dilation), " in each dimension");
  }
  options = parameter_options(options);
  weight = register_parameter("weight", empty({config.in_channels, config.out_channels, config.kernel_size[0],
                                               config.kernel_size[1]}, options));
  if (config.bias) bias = register_parameter("bias", empty({config.out_channels}, options));
  reset_parameters(generator);
}

ConvTranspose2d::ConvTranspose2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
                                 std::int64_t stride, std::int64_t padding, std::int64_t output_padding,
                                 std::int64_t dilation, bool bias, TensorOptions options, Generator* generator)
    : ConvTranspose2d(Conv2dConfig{in_channels, out_channels, {kernel_size, kernel_size},
                                   {.stride = {stride, stride}, .padding = {padding, padding},
                                    .dilation = {dilation, dilation}, .output_padding = {output_padding, output_padding}},
                                   bias},
                      options, generator) {}

void ConvTranspose2d::reset_parameters(Generator* generator) { default_init(weight, bias, generator); }

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, config_.geometry);
}

std::string ConvTranspose2d::extra_repr() const { return conv_repr(config_); }

}  // namespace fpi::nn
