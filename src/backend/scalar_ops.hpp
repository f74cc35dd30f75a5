// The scalar formulas of the element-wise maps (the opcodes of op_codes.hpp), written once for both
// backends: src/backend/cpu/elementwise.cpp and kernels/elementwise.cu compile this same header. It
// lives beside op_codes.hpp rather than in kernels/ because src/ is on the include path of every
// build, while kernels/ is only on it when the CUDA backend is built.
//
// A formula reaches its caller as a callable on one element: the CPU makes one straight, vectorisable
// loop per opcode from it, the CUDA kernels apply it inside a switch that is uniform across the grid.
// The math calls are std:: overloads: on the host they pick the function of the argument's precision
// (std::exp(float) is expf), under nvcc they are CUDA's device functions of that precision. Comparisons
// go through max_of / min_of, which are std::max / std::min (not callable from device code), so NaN and
// -0 come out the same on both sides.
#pragma once

#include <cmath>

#include "backend/op_codes.hpp"

#if defined(__CUDACC__)
#define FPI_HOST_DEVICE __host__ __device__
#else
#define FPI_HOST_DEVICE
#endif

namespace fpi::backend {

template <class T>
FPI_HOST_DEVICE inline T max_of(T a, T b) {
  return a < b ? b : a;
}

template <class T>
FPI_HOST_DEVICE inline T min_of(T a, T b) {
  return b < a ? b : a;
}

// x ^ p, exact for the exponents the ops use most (square, cube, square root, reciprocal).
template <class T>
FPI_HOST_DEVICE inline T pow_scalar(T x, T p) {
  if (p == T(2)) return x * x;
  if (p == T(1)) return x;
  if (p == T(3)) return x * x * x;
  if (p == T(0.5)) return std::sqrt(x);
  if (p == T(-1)) return T(1) / x;
  return std::pow(x, p);
}

// g++ reports a switch on an enum that misses one of its values; here that is an error, so an opcode
// added without a formula stops the CPU backend (always built) from compiling, and both backends
// take their formulas from these two switches.
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"

// Calls use(formula), where formula(x) is op(x; a, b) with a and b as in Backend::unary. Calls
// nothing for a value that is not a UnaryOp.
template <class T, class Use>
FPI_HOST_DEVICE inline void with_unary_formula(UnaryOp op, T a, T b, Use&& use) {
  switch (op) {
    case UnaryOp::Neg: return use([](T x) { return -x; });
    case UnaryOp::Exp: return use([](T x) { return std::exp(x); });
    case UnaryOp::Log: return use([](T x) { return std::log(x); });
    case UnaryOp::Sqrt: return use([](T x) { return std::sqrt(x); });
    case UnaryOp::Abs: return use([](T x) { return std::fabs(x); });
    case UnaryOp::Sign: return use([](T x) { return T((x > T(0)) - (x < T(0))); });
    case UnaryOp::Relu: return use([](T x) { return x > T(0) ? x : T(0); });
    case UnaryOp::Step: return use([](T x) { return x > T(0) ? T(1) : T(0); });
    case UnaryOp::Sigmoid: return use([](T x) { return T(1) / (T(1) + std::exp(-x)); });
    case UnaryOp::Tanh: return use([](T x) { return std::tanh(x); });
    case UnaryOp::Softplus:  // max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|
      return use([](T x) { return max_of(x, T(0)) + std::log1p(std::exp(-std::fabs(x))); });
    case UnaryOp::Square: return use([](T x) { return x * x; });
    case UnaryOp::Reciprocal: return use([](T x) { return T(1) / x; });
    case UnaryOp::PowScalar: return use([a](T x) { return pow_scalar(x, a); });
    case UnaryOp::AddScalar: return use([a](T x) { return x + a; });
    case UnaryOp::MulScalar: return use([a](T x) { return x * a; });
    case UnaryOp::Clamp: return use([a, b](T x) { return std::isnan(x) ? x : min_of(max_of(x, a), b); });
    case UnaryOp::InRange: return use([a, b](T x) { return T(x >= a && x <= b); });
    case UnaryOp::NonFinite: return use([](T x) { return T(!std::isfinite(x)); });
  }
}

// Calls use(formula), where formula(x, y) is x op y. Calls nothing for a value that is not a BinaryOp.
template <class T, class Use>
FPI_HOST_DEVICE inline void with_binary_formula(BinaryOp op, Use&& use) {
  switch (op) {
    case BinaryOp::Add: return use([](T x, T y) { return x + y; });
    case BinaryOp::Sub: return use([](T x, T y) { return x - y; });
    case BinaryOp::Mul: return use([](T x, T y) { return x * y; });
    case BinaryOp::Div: return use([](T x, T y) { return x / y; });
    case BinaryOp::Minimum: return use([](T x, T y) { return (x < y || std::isnan(x)) ? x : y; });
    case BinaryOp::Maximum: return use([](T x, T y) { return (x > y || std::isnan(x)) ? x : y; });
    case BinaryOp::Gt: return use([](T x, T y) { return T(x > y); });
    case BinaryOp::Ge: return use([](T x, T y) { return T(x >= y); });
    case BinaryOp::Lt: return use([](T x, T y) { return T(x < y); });
    case BinaryOp::Le: return use([](T x, T y) { return T(x <= y); });
    case BinaryOp::Eq: return use([](T x, T y) { return T(x == y); });
  }
}

#pragma GCC diagnostic pop

}  // namespace fpi::backend
