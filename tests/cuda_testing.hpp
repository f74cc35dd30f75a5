// Helpers of the CUDA tests: a fixture that skips, saying why, where no CUDA tensor can be made (a
// CPU-only build, no driver, no GPU), and the comparison of a GPU result with the CPU's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "fpi/device.hpp"
#include "fpi/ops.hpp"

namespace fpi::testing {

// "" when cuda:0 can hold a tensor, else the error fpi gives when asked to make one.
inline const std::string& cuda_unavailable_reason() {
  static const std::string reason = [] {
    try {
      zeros({1}, {.device = cuda(0)});
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  }();
  return reason;
}

template <class Base>
class SkipWithoutCuda : public Base {
 protected:
  void SetUp() override {
    if (!cuda_unavailable_reason().empty()) GTEST_SKIP() << "no CUDA device: " << cuda_unavailable_reason();
  }
};

using CudaTest = SkipWithoutCuda<::testing::Test>;
template <class Param>
using CudaParamTest = SkipWithoutCuda<::testing::TestWithParam<Param>>;

inline const Device kGpu = cuda(0);

// The GPU sums in another order and uses its own math library, so results agree to rounding, not
// bit for bit. The bound is relative to each element, with a floor at a tenth of the largest
// magnitude so that cancellation to near zero does not demand impossible relative accuracy.
inline double parity_rtol(DType dtype) { return dtype == kFloat32 ? 2e-4 : 1e-9; }

inline ::testing::AssertionResult matches_cpu(const Tensor& gpu, const Tensor& cpu, double rtol) {
  if (!gpu.defined() || !cpu.defined())
    return ::testing::AssertionFailure() << "undefined " << (gpu.defined() ? "CPU" : "GPU") << " result";
  if (gpu.shape() != cpu.shape() || gpu.dtype() != cpu.dtype())
    return ::testing::AssertionFailure() << "GPU " << shape_str(gpu.shape()) << " " << gpu.dtype() << " vs CPU "
                                         << shape_str(cpu.shape()) << " " << cpu.dtype();
  const auto a = gpu.to_vector<double>(), b = cpu.to_vector<double>();
  double scale = 0.0;
  for (double v : b)
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.size(); ++i) {
    // NaN and infinities must come out the same; finite values within the bound.
    const bool finite = std::isfinite(a[i]) && std::isfinite(b[i]);
    const double bound = rtol * (std::abs(b[i]) + 0.1 * scale + 1e-6);
    const bool ok = finite ? std::abs(a[i] - b[i]) <= bound : (std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i];
    if (!ok)
      return ::testing::AssertionFailure() << "element " << i << " of " << a.size() << ": GPU " << a[i] << ", CPU "
                                           << b[i] << " (allowed difference " << bound << ")";
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult matches_cpu(const Tensor& gpu, const Tensor& cpu) {
  return matches_cpu(gpu, cpu, parity_rtol(cpu.defined() ? cpu.dtype() : kFloat64));
}

}  // namespace fpi::testing
