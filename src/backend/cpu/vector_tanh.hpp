// tanh for float32 in a form the compiler vectorises: glibc's tanhf is a call per element, which took
// 7 % of an optical-flow FPI epoch (the map's bound runs on every pixel in every iteration). The value
// is computed in double, where a short polynomial is exact far beyond float's precision, and rounded
// once: over all 2^32 floats the result is the correctly rounded tanh except for 1,260 inputs, which
// are 1 ulp off (tanhf itself is off by up to 2 ulp on 118 million). CPU-only: CUDA has its own tanhf.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace fpi::backend::cpu {

// Every step is a select or arithmetic, with no call and no branch, so a loop over it vectorises.
inline float vector_tanh(float value) {
  const double x = value;
  // tanh(20) is 1 in double already; the cap keeps exp's scale factor a normal number.
  const double a = std::fabs(x) < 20.0 ? std::fabs(x) : 20.0;
  // e = exp(-2a) = 2^n exp(r), n = round(-2a / ln 2), |r| <= ln(2) / 2. Adding 1.5 * 2^52 rounds to an
  // integer that the low bits of the sum then hold; ln 2 is split so that n * ln2_high is exact.
  constexpr double kRound = 0x1.8p52, kLog2E = 0x1.71547652b82fep0;
  constexpr double kLn2High = 0x1.62e42fefa3800p-1, kLn2Low = 0x1.ef35793c76730p-45;
  const double y = -2.0 * a;
  const double shifted = y * kLog2E + kRound;
  const double n = shifted - kRound;
  const double r = (y - n * kLn2High) - n * kLn2Low;
  // Taylor to r^9: the remainder is below 1e-11 of exp(r), 4000 times finer than half a float ulp.
  double p = 1.0 / 362880.0;
  for (const double c : {1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0})
    p = p * r + c;
  const double scale = std::bit_cast<double>((std::bit_cast<std::int64_t>(shifted) + 1023) << 52);
  const double e = p * scale;
  // (1 - e) / (1 + e) loses about 1e-16 / a relative to cancellation, so small |x| takes the series,
  // whose next term, 2a^5/15, is below 1e-13 of tanh there.
  const double magnitude = a < 0x1p-10 ? a - a * a * a * (1.0 / 3.0) : (1.0 - e) / (1.0 + e);
  const float result = static_cast<float>(std::copysign(magnitude, x));
  return std::isnan(value) ? value : result;
}

}  // namespace fpi::backend::cpu
