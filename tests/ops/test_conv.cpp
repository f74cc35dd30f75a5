// Convolution: the three CPU backend primitives and the conv2d / conv_transpose2d ops against a naive
// direct convolution written here from the definition, in float32 and float64, over geometries that
// reach every path of the backend (stride 1 through a padded source, other strides through im2col,
// crops where padding exceeds the kernel's reach, channel counts that leave partial tiles); then
// float64 finite-difference checks of first and second derivatives.
//
// Tolerances are error bounds, not fudge factors: a sum of n products computed in precision eps is
// within about n * eps * sum|terms| of the exact value, so each output is compared against
// depth * eps * (its sum of absolute terms), which the naive reference computes alongside.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;
using fpi::backend::Conv2dDesc;

struct Case {
  std::int64_t n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, dh, dw;
  std::int64_t oph = 0, opw = 0;  // output padding, for the transposed convolution
};

std::string name(const Case& c) {
  std::ostringstream out;
  out << "N" << c.n << " Cin" << c.c_in << " Cout" << c.c_out << " " << c.h << "x" << c.w << " k" << c.kh << "x"
      << c.kw << " s" << c.sh << "," << c.sw << " p" << c.ph << "," << c.pw << " d" << c.dh << "," << c.dw;
  return out.str();
}

// Every backend path: stride-1 padded sources (tile edges in rows and on the grid, 1x1 kernels,
// rows sharing their padding with the next row's, padding beyond the kernel's reach so the
// input-gradient source crops), im2col for other strides,
// C_in = 1 and C_out = 1, batch 1 and larger, channel counts of 1 to 5 vectors.
const std::vector<Case> kCases = {
    {2, 3, 5, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 1, 4, 6, 5, 3, 2, 1, 1, 0, 1, 1, 1},
    {3, 4, 1, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
    {2, 2, 3, 9, 7, 3, 3, 1, 2, 2, 0, 2, 1, 0, 1},
    {2, 3, 2, 10, 11, 2, 3, 3, 2, 1, 2, 1, 2, 2, 1},
    {1, 17, 19, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1},
    {2, 3, 4, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 5, 6, 6, 7, 2, 2, 1, 1, 2, 2, 1, 1},
    {2, 3, 4, 9, 10, 3, 3, 1, 1, 2, 3, 2, 2},
    {1, 2, 3, 5, 6, 3, 3, 1, 1, 3, 3, 1, 1},
    {2, 20, 33, 13, 21, 3, 3, 1, 1, 1, 1, 1, 1},
    {1, 9, 80, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1},
    {2, 70, 17, 4, 9, 3, 1, 1, 1, 1, 0, 1, 1},
    {1, 64, 1, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1},
    {3, 1, 64, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1},
    // Weight gradients by lane-wise dot products, the output channels in groups of 8, 4, 2 and 1: 7 is
    // all three smaller groups; 8 and 18 -> 8 are the optical-flow FPI map's first convolution.
    {2, 3, 7, 11, 9, 3, 3, 2, 2, 1, 1, 1, 1},
    {2, 18, 8, 14, 13, 3, 3, 2, 2, 1, 1, 1, 1},
    // Large enough to be shared between threads: one image split between them, and images split
    // mid-way for the weight gradient's per-thread sums.
    {1, 16, 32, 40, 36, 3, 3, 1, 1, 1, 1, 1, 1},
    {3, 16, 24, 30, 26, 3, 3, 2, 2, 1, 1, 1, 1},
    {1, 12, 20, 33, 31, 3, 3, 2, 1, 1, 1, 1, 1},
    {3, 18, 8, 40, 38, 3, 3, 2, 2, 1, 1, 1, 1},
    // Stride 1 with dilation: the transposed convolution's output padding exceeds what the stride
    // absorbs, so its input is embedded in zeros first.
    {2, 2, 3, 5, 6, 3, 2, 1, 1, 1, 0, 2, 3, 1, 2},
};

Conv2dDesc describe(const Case& c) {
  Conv2dDesc d;
  d.batch = c.n, d.in_channels = c.c_in, d.in_h = c.h, d.in_w = c.w, d.out_channels = c.c_out;
  d.kernel_h = c.kh, d.kernel_w = c.kw, d.stride_h = c.sh, d.stride_w = c.sw, d.pad_h = c.ph, d.pad_w = c.pw;
  d.dilation_h = c.dh, d.dilation_w = c.dw;
  d.out_h = (c.h + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh + 1;
  d.out_w = (c.w + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw + 1;
  return d;
}

fpi::Conv2dOptions options(const Case& c) {
  return {.stride = {c.sh, c.sw}, .padding = {c.ph, c.pw}, .dilation = {c.dh, c.dw}};
}

fpi::Conv2dOptions transposed_options(const Case& c) {
  fpi::Conv2dOptions o = options(c);
  o.output_padding = {c.oph, c.opw};
  return o;
}

// A value with the sum of the absolute values of its terms and their count, for the error bound.
struct Exact {
  std::vector<double> value, magnitude;
  std::int64_t depth = 0;
};

// Calls f(n, m, c, oh, ow, i, j, h, w) for every product of the convolution whose input index (h, w)
// is inside the image: the definition of conv2d, from which all three references follow.
void for_each_product(const Conv2dDesc& d, const std::function<void(std::int64_t, std::int64_t, std::int64_t,
                                                                     std::int64_t, std::int64_t, std::int64_t,
                                                                     std::int64_t, std::int64_t, std::int64_t)>& f) {
  for (std::int64_t n = 0; n < d.batch; ++n)
    for (std::int64_t m = 0; m < d.out_channels; ++m)
      for (std::int64_t c = 0; c < d.in_channels; ++c)
        for (std::int64_t oh = 0; oh < d.out_h; ++oh)
          for (std::int64_t ow = 0; ow < d.out_w; ++ow)
            for (std::int64_t i = 0; i < d.kernel_h; ++i)
              for (std::int64_t j = 0; j < d.kernel_w; ++j) {
                const std::int64_t h = oh * d.stride_h - d.pad_h + i * d.dilation_h;
                const std::int64_t w = ow * d.stride_w - d.pad_w + j * d.dilation_w;
                if (h >= 0 && h < d.in_h && w >= 0 && w < d.in_w) f(n, m, c, oh, ow, i, j, h, w);
              }
}

struct Index {
  const Conv2dDesc& d;
  std::int64_t x(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) const {
    return ((n * d.in_channels + c) * d.in_h + h) * d.in_w + w;
  }
  std::int64_t y(std::int64_t n, std::int64_t m, std::int64_t oh, std::int64_t ow) const {
    return ((n * d.out_channels + m) * d.out_h + oh) * d.out_w + ow;
  }
  std::int64_t k(std::int64_t m, std::int64_t c, std::int64_t i, std::int64_t j) const {
    return ((m * d.in_channels + c) * d.kernel_h + i) * d.kernel_w + j;
  }
};

enum class Primitive { Forward, BackwardData, BackwardFilter };

// The reference for one primitive from operands a, b (x, w / gy, w / x, gy).
Exact reference(Primitive p, const Conv2dDesc& d, const std::vector<double>& a, const std::vector<double>& b) {
  const Index at{d};
  Exact e;
  const std::int64_t size = p == Primitive::Forward        ? d.batch * d.out_channels * d.out_h * d.out_w
                            : p == Primitive::BackwardData ? d.batch * d.in_channels * d.in_h * d.in_w
                                                           : d.out_channels * d.in_channels * d.kernel_h * d.kernel_w;
  e.value.assign(size, 0.0);
  e.magnitude.assign(size, 0.0);
  e.depth = p == Primitive::Forward        ? d.in_channels * d.kernel_h * d.kernel_w
            : p == Primitive::BackwardData ? d.out_channels * d.kernel_h * d.kernel_w
                                           : d.batch * d.out_h * d.out_w;
  for_each_product(d, [&](auto n, auto m, auto c, auto oh, auto ow, auto i, auto j, auto h, auto w) {
    std::int64_t out = 0;
    double term = 0;
    if (p == Primitive::Forward) out = at.y(n, m, oh, ow), term = a[at.x(n, c, h, w)] * b[at.k(m, c, i, j)];
    if (p == Primitive::BackwardData) out = at.x(n, c, h, w), term = a[at.y(n, m, oh, ow)] * b[at.k(m, c, i, j)];
    if (p == Primitive::BackwardFilter) out = at.k(m, c, i, j), term = a[at.x(n, c, h, w)] * b[at.y(n, m, oh, ow)];
    e.value[out] += term;
    e.magnitude[out] += std::abs(term);
  });
  return e;
}

double epsilon(fpi::DType t) {
  return t == fpi::kFloat32 ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
}

void expect_close(const Tensor& got, const Exact& want, fpi::DType dtype, const std::string& what) {
  const auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.value.size()) << what;
  const double eps = epsilon(dtype) * static_cast<double>(want.depth + 2);
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_LE(std::abs(g[i] - want.value[i]), eps * want.magnitude[i] + 1e-300)
        << what << ": element " << i << " is " << g[i] << ", expected " << want.value[i];
  }
}

class ConvPrimitives : public ::testing::TestWithParam<fpi::DType> {};

// Runs the three primitives on random operands of geometry d and compares them with the references.
void check_primitives(const Conv2dDesc& d, fpi::DType dtype, fpi::Generator& gen, const std::string& what) {
  auto& backend = fpi::backend::backend_for(fpi::kCPU);
  const fpi::TensorOptions o{.dtype = dtype};
  const Tensor x = fpi::uniform({d.batch, d.in_channels, d.in_h, d.in_w}, -1, 1, o, &gen);
  const Tensor w = fpi::uniform({d.out_channels, d.in_channels, d.kernel_h, d.kernel_w}, -1, 1, o, &gen);
  const Tensor gy = fpi::uniform({d.batch, d.out_channels, d.out_h, d.out_w}, -1, 1, o, &gen);
  // Outputs start as NaN so that an element the primitive forgets to write fails the comparison.
  Tensor y = fpi::full(gy.shape(), NAN, o), gx = fpi::full(x.shape(), NAN, o), gw = fpi::full(w.shape(), NAN, o);
  backend.conv2d_forward(x, w, y, d);
  backend.conv2d_backward_data(gy, w, gx, d);
  backend.conv2d_backward_filter(x, gy, gw, d);
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), gyv = gy.to_vector<double>();
  expect_close(y, reference(Primitive::Forward, d, xv, wv), dtype, "forward " + what);
  expect_close(gx, reference(Primitive::BackwardData, d, gyv, wv), dtype, "backward data " + what);
  expect_close(gw, reference(Primitive::BackwardFilter, d, xv, gyv), dtype, "backward filter " + what);
}

TEST_P(ConvPrimitives, MatchNaiveConvolution) {
  fpi::Generator gen(7);
  for (const Case& c : kCases) check_primitives(describe(c), GetParam(), gen, name(c));
}

// An output smaller than the convolution's natural size computes the leading rows and columns only:
// the transposed convolution's output padding asks the primitives for that.
TEST_P(ConvPrimitives, CroppedOutputMatchesNaive) {
  fpi::Generator gen(8);
  // Stride 1, stride 2, mixed strides with dilation, dilated stride 1 with padding.
  for (const Case& c : {kCases[0], kCases[2], kCases[4], kCases[8]}) {
    Conv2dDesc d = describe(c);
    d.out_h -= 1;
    d.out_w -= 2;
    check_primitives(d, GetParam(), gen, "cropped " + name(c));
  }
}

TEST_P(ConvPrimitives, EmptyBatchGivesZeroWeightGradient) {
  const fpi::TensorOptions o{.dtype = GetParam()};
  Case c = kCases[0];
  c.n = 0;
  const Conv2dDesc d = describe(c);
  Tensor gw = fpi::full({d.out_channels, d.in_channels, d.kernel_h, d.kernel_w}, NAN, o);
  fpi::backend::backend_for(fpi::kCPU)
      .conv2d_backward_filter(fpi::zeros({0, d.in_channels, d.in_h, d.in_w}, o),
                              fpi::zeros({0, d.out_channels, d.out_h, d.out_w}, o), gw, d);
  for (double v : gw.to_vector<double>()) EXPECT_EQ(v, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvPrimitives, ::testing::Values(fpi::kFloat32, fpi::kFloat64),
                         [](const auto& info) { return std::string(fpi::dtype_name(info.param)); });

class ConvOps : public ::testing::TestWithParam<fpi::DType> {};

// conv2d with bias, and its gradients through backward(), against the references.
TEST_P(ConvOps, Conv2dAndItsGradientsMatchNaive) {
  const fpi::DType dtype = GetParam();
  fpi::Generator gen(11);
  for (const Case& c : kCases) {
    const Conv2dDesc d = describe(c);
    const fpi::TensorOptions o{.dtype = dtype};
    Tensor x = fpi::uniform({d.batch, d.in_channels, d.in_h, d.in_w}, -1, 1, o, &gen).requires_grad_();
    Tensor w = fpi::uniform({d.out_channels, d.in_channels, d.kernel_h, d.kernel_w}, -1, 1, o, &gen).requires_grad_();
    Tensor b = fpi::uniform({d.out_channels}, -1, 1, o, &gen).requires_grad_();
    const Tensor gy = fpi::uniform({d.batch, d.out_channels, d.out_h, d.out_w}, -1, 1, o, &gen);
    const Tensor y = fpi::conv2d(x, w, b, options(c));
    y.backward(gy);

    const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), gyv = gy.to_vector<double>();
    Exact want = reference(Primitive::Forward, d, xv, wv);
    const auto bv = b.to_vector<double>();
    const std::int64_t plane = d.out_h * d.out_w;
    for (std::size_t i = 0; i < want.value.size(); ++i) {
      want.value[i] += bv[i / plane % d.out_channels];
      want.magnitude[i] += std::abs(bv[i / plane % d.out_channels]);
    }
    expect_close(y, want, dtype, "conv2d " + name(c));
    expect_close(x.grad(), reference(Primitive::BackwardData, d, gyv, wv), dtype, "conv2d dx " + name(c));
    expect_close(w.grad(), reference(Primitive::BackwardFilter, d, xv, gyv), dtype, "conv2d dw " + name(c));
    Exact db{std::vector<double>(d.out_channels), std::vector<double>(d.out_channels), d.batch * plane};
    for (std::size_t i = 0; i < gyv.size(); ++i) {
      db.value[i / plane % d.out_channels] += gyv[i];
      db.magnitude[i / plane % d.out_channels] += std::abs(gyv[i]);
    }
    expect_close(b.grad(), db, dtype, "conv2d db " + name(c));
  }
}

// conv_transpose2d(x, w) with w (C_in, C_out, kH, kW) scatters x[n, c, ih, iw] w[c, o, i, j] to
// output position (ih * stride - pad + i * dilation, ...): checked directly from that definition.
TEST_P(ConvOps, ConvTranspose2dMatchesNaive) {
  const fpi::DType dtype = GetParam();
  fpi::Generator gen(13);
  for (const Case& c : kCases) {
    const fpi::TensorOptions o{.dtype = dtype};
    // The transposed op maps c_out channels of the case's output size back to c_in channels.
    const Conv2dDesc cd = describe(c);
    const std::int64_t in_h = cd.out_h, in_w = cd.out_w;
    const std::int64_t out_h = (in_h - 1) * c.sh - 2 * c.ph + c.dh * (c.kh - 1) + c.oph + 1;
    const std::int64_t out_w = (in_w - 1) * c.sw - 2 * c.pw + c.dw * (c.kw - 1) + c.opw + 1;
    const Tensor x = fpi::uniform({c.n, c.c_out, in_h, in_w}, -1, 1, o, &gen);
    const Tensor w = fpi::uniform({c.c_out, c.c_in, c.kh, c.kw}, -1, 1, o, &gen);
    const Tensor b = fpi::uniform({c.c_in}, -1, 1, o, &gen);
    const Tensor y = fpi::conv_transpose2d(x, w, b, transposed_options(c));
    ASSERT_EQ(y.shape(), (fpi::Shape{c.n, c.c_in, out_h, out_w})) << name(c);

    const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
    Exact want{std::vector<double>(y.numel()), std::vector<double>(y.numel()), c.c_out * c.kh * c.kw + 1};
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      want.value[i] = bv[i / (out_h * out_w) % c.c_in];
      want.magnitude[i] = std::abs(want.value[i]);
    }
    for (std::int64_t n = 0; n < c.n; ++n)
      for (std::int64_t ci = 0; ci < c.c_out; ++ci)
        for (std::int64_t ih = 0; ih < in_h; ++ih)
          for (std::int64_t iw = 0; iw < in_w; ++iw)
            for (std::int64_t oc = 0; oc < c.c_in; ++oc)
              for (std::int64_t i = 0; i < c.kh; ++i)
                for (std::int64_t j = 0; j < c.kw; ++j) {
                  const std::int64_t h = ih * c.sh - c.ph + i * c.dh, ww = iw * c.sw - c.pw + j * c.dw;
                  if (h < 0 || h >= out_h || ww < 0 || ww >= out_w) continue;
                  const double term = xv[((n * c.c_out + ci) * in_h + ih) * in_w + iw] *
                                      wv[((ci * c.c_in + oc) * c.kh + i) * c.kw + j];
                  const std::int64_t at = ((n * c.c_in + oc) * out_h + h) * out_w + ww;
                  want.value[at] += term;
                  want.magnitude[at] += std::abs(term);
                }
    expect_close(y, want, dtype, "conv_transpose2d " + name(c));
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvOps, ::testing::Values(fpi::kFloat32, fpi::kFloat64),
                         [](const auto& info) { return std::string(fpi::dtype_name(info.param)); });

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const fpi::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Options are the caller's, so the output size is computed without overflow (a padding of 2^62 made
// in + 2 * pad wrap), and an input shorter than the dilated kernel is refused (truncating division
// rounded its negative room up to one row).
TEST(ConvGeometry, HugeOptionsAndShortInputsAreRefused) {
  const Tensor x = fpi::ones({1, 1, 2, 2});
  const Tensor w = fpi::ones({1, 1, 3, 3});
  constexpr std::int64_t kHuge = std::int64_t{1} << 62;
  EXPECT_EQ(error_of([&] { fpi::conv2d(x, w, Tensor(), {.padding = {kHuge, 0}}); }),
            "conv2d: the output size is more than a 64-bit size can hold");
  EXPECT_NE(error_of([&] { fpi::conv2d(x, w, Tensor(), {.stride = {2, 2}}); }).find("is too small for kernel"),
            std::string::npos);
  EXPECT_NE(error_of([&] { fpi::conv2d(x, w, Tensor(), {.dilation = {kHuge, 1}}); }).find("is too small for kernel"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { fpi::conv_transpose2d(fpi::ones({1, 1, 3, 3}), w, Tensor(), {.stride = {kHuge, 1}}); }),
            "conv_transpose2d: the output size is more than a 64-bit size can hold");
  EXPECT_NE(error_of([&] { fpi::conv_transpose2d(x, w, Tensor(), {.padding = {kHuge, 0}}); }).find("empty output"),
            std::string::npos);
  // Padding makes up for the short input, as before.
  EXPECT_EQ(fpi::conv2d(x, w, Tensor(), {.stride = {2, 2}, .padding = {1, 1}}).shape(), (fpi::Shape{1, 1, 1, 1}));
}

}  // namespace
