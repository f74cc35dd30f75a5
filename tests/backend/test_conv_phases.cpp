// The CPU convolution's two sources for strides above 1 (src/backend/cpu/conv.hpp): the phase split
// against im2col, all three primitives, on the optical-flow net's exact layer shapes and on strides,
// paddings, dilations, kernels, odd sizes, batch 1 and cropped outputs, in float64 and float32. Both
// sum the same products; only the order of some sums differs (the weight gradient's grid is a
// phase plane wide), so they agree to rounding. tests/ops/test_conv.cpp checks the default path
// against the definition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/conv.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;
using fpi::backend::Conv2dDesc;
using fpi::backend::cpu::ConvSource;

// Restores the default source however a test ends.
struct SourceGuard {
  ~SourceGuard() { fpi::backend::cpu::set_conv_source(ConvSource::Auto); }
};

struct Geometry {
  std::int64_t n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, dh = 1, dw = 1, crop = 0;
};

Conv2dDesc describe(const Geometry& g) {
  Conv2dDesc d;
  d.batch = g.n, d.in_channels = g.c_in, d.in_h = g.h, d.in_w = g.w, d.out_channels = g.c_out;
  d.kernel_h = g.kh, d.kernel_w = g.kw, d.stride_h = g.sh, d.stride_w = g.sw, d.pad_h = g.ph, d.pad_w = g.pw;
  d.dilation_h = g.dh, d.dilation_w = g.dw;
  d.out_h = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1 - g.crop;
  d.out_w = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1 - g.crop;
  return d;
}

std::string name(const Conv2dDesc& d) {
  std::ostringstream out;
  out << "N" << d.batch << " " << d.in_channels << "->" << d.out_channels << " " << d.in_h << "x" << d.in_w << " k"
      << d.kernel_h << "x" << d.kernel_w << " s" << d.stride_h << "," << d.stride_w << " p" << d.pad_h << ","
      << d.pad_w << " d" << d.dilation_h << "," << d.dilation_w << " out " << d.out_h << "x" << d.out_w;
  return out.str();
}

// The optical-flow models' strided layers at 64x64, batch 8 (models/flow_fpi.json); a transposed
// convolution appears as the convolution whose input gradient it is (4x4, stride 2, padding 1).
const std::vector<Geometry> kFlowLayers = {
    {8, 2, 16, 64, 64, 3, 3, 2, 2, 1, 1},   // conv1
    {8, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1},  // conv2
    {8, 32, 32, 16, 16, 3, 3, 2, 2, 1, 1},  // conv3
    {8, 32, 32, 16, 16, 4, 4, 2, 2, 1, 1},  // up3
    {8, 16, 64, 32, 32, 4, 4, 2, 2, 1, 1},  // up2
    {8, 16, 32, 64, 64, 4, 4, 2, 2, 1, 1},  // up1
    {8, 2, 8, 64, 64, 3, 3, 2, 2, 1, 1},    // the FPI map's conv, the x part of its input
    {8, 20, 8, 64, 64, 3, 3, 2, 2, 1, 1},   // the same, all of its input
    {8, 2, 8, 64, 64, 4, 4, 2, 2, 1, 1},    // the FPI map's deconv
};

// Stride 3 and mixed strides, no padding and padding beyond the stride, dilation with a stride,
// kernels smaller than the stride (pixels no tap reads), 1x1, odd sizes, one channel, batch 1 and
// cropped outputs.
const std::vector<Geometry> kOddLayers = {
    {1, 3, 5, 11, 13, 3, 3, 3, 3, 1, 1},         {2, 2, 3, 9, 7, 3, 3, 2, 1, 0, 2},
    {2, 3, 4, 10, 11, 2, 3, 1, 3, 2, 0},         {1, 4, 6, 13, 12, 3, 3, 2, 2, 2, 2, 2, 2},
    {3, 1, 1, 9, 9, 1, 1, 2, 2, 0, 0},           {2, 5, 7, 12, 9, 2, 2, 3, 3, 0, 1},
    {1, 6, 3, 15, 17, 5, 3, 2, 2, 2, 1, 1, 2},   {2, 3, 4, 12, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1},
    {1, 7, 17, 21, 19, 4, 4, 2, 2, 1, 1, 1, 1, 2}, {2, 1, 33, 8, 8, 3, 3, 2, 2, 1, 1},
};

struct Results {
  std::vector<double> y, gx, gw;
};

Results run(const Conv2dDesc& d, ConvSource source, const Tensor& x, const Tensor& w, const Tensor& gy) {
  fpi::backend::cpu::set_conv_source(source);
  auto& backend = fpi::backend::backend_for(fpi::kCPU);
  const fpi::TensorOptions o{.dtype = x.dtype()};
  // NaN first, so that an element a path forgets to write fails the comparison.
  Tensor y = fpi::full(gy.shape(), NAN, o), gx = fpi::full(x.shape(), NAN, o), gw = fpi::full(w.shape(), NAN, o);
  backend.conv2d_forward(x, w, y, d);
  backend.conv2d_backward_data(gy, w, gx, d);
  backend.conv2d_backward_filter(x, gy, gw, d);
  return {y.to_vector<double>(), gx.to_vector<double>(), gw.to_vector<double>()};
}

// |a - b| within `tolerance` of the larger magnitude (at least 1: the sums have terms of size 1).
void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tolerance,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double scale = std::max({1.0, std::abs(a[i]), std::abs(b[i])});
    ASSERT_LE(std::abs(a[i] - b[i]), tolerance * scale) << what << ": element " << i << " " << a[i] << " vs " << b[i];
  }
}

void compare_sources(const std::vector<Geometry>& layers, fpi::DType dtype) {
  SourceGuard guard;
  fpi::Generator gen(11);
  const fpi::TensorOptions o{.dtype = dtype};
  const double tolerance = dtype == fpi::kFloat64 ? 1e-12 : 2e-5;
  for (const Geometry& g : layers) {
    const Conv2dDesc d = describe(g);
    const Tensor x = fpi::uniform({d.batch, d.in_channels, d.in_h, d.in_w}, -1, 1, o, &gen);
    const Tensor w = fpi::uniform({d.out_channels, d.in_channels, d.kernel_h, d.kernel_w}, -1, 1, o, &gen);
    const Tensor gy = fpi::uniform({d.batch, d.out_channels, d.out_h, d.out_w}, -1, 1, o, &gen);
    const Results phases = run(d, ConvSource::PhaseSplit, x, w, gy);
    const Results im2col = run(d, ConvSource::Im2col, x, w, gy);
    const Results automatic = run(d, ConvSource::Auto, x, w, gy);
    expect_near(phases.y, im2col.y, tolerance, "forward " + name(d));
    expect_near(phases.gx, im2col.gx, tolerance, "backward data " + name(d));
    expect_near(phases.gw, im2col.gw, tolerance, "backward filter " + name(d));
    // Auto picks one of the two per primitive: the forward and the weight gradient always the phases.
    EXPECT_EQ(automatic.y, phases.y) << name(d);
    EXPECT_EQ(automatic.gw, phases.gw) << name(d);
    EXPECT_TRUE(automatic.gx == phases.gx || automatic.gx == im2col.gx) << name(d);
  }
}

class ConvPhases : public ::testing::TestWithParam<fpi::DType> {};

TEST_P(ConvPhases, FlowLayersMatchIm2col) { compare_sources(kFlowLayers, GetParam()); }

TEST_P(ConvPhases, OddGeometriesMatchIm2col) { compare_sources(kOddLayers, GetParam()); }

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvPhases, ::testing::Values(fpi::kFloat32, fpi::kFloat64),
                         [](const auto& info) { return std::string(fpi::dtype_name(info.param)); });

}  // namespace
