// Parameter initialisers with PyTorch's formulas (torch.nn.init), so that a network built by fpi starts
// from the same distribution as its PyTorch twin. Each writes into the given tensor in place, under
// NoGrad, drawing from `generator` (the global one when null), and returns the same handle.
#pragma once

#include <cstdint>
#include <utility>

#include "fpi/generator.hpp"
#include "fpi/tensor.hpp"

namespace fpi::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, Relu, LeakyRelu, Selu };

// (fan_in, fan_out) = (size(1), size(0)) times the receptive field (the product of the sizes after the
// first two). Needs at least two dimensions.
std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

// The gain PyTorch recommends for a nonlinearity; `param` is LeakyRelu's negative slope.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

Tensor uniform_(const Tensor& t, double low = 0.0, double high = 1.0, Generator* generator = nullptr);
Tensor normal_(const Tensor& t, double mean = 0.0, double stddev = 1.0, Generator* generator = nullptr);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);

// He initialisation: std = gain(nonlinearity, a) / sqrt(fan); the uniform variant draws from ±√3·std.
Tensor kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, Generator* generator = nullptr);
Tensor kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                       Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, Generator* generator = nullptr);

// Glorot initialisation: std = gain · sqrt(2 / (fan_in + fan_out)); the uniform variant draws from ±√3·std.
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* generator = nullptr);
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, Generator* generator = nullptr);

}  // namespace fpi::nn::init
