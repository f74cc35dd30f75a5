// Looking at and scoring flow fields (include/fpi/data/flow.hpp): the average end-point error, the
// backward warp the generator's test checks its flow with, and the Middlebury colour coding written as
// RGB PNG through libpng's simplified API.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "fpi/data/flow.hpp"
#include "fpi/data/image.hpp"
#include "fpi/io/file.hpp"

namespace fpi::data {
namespace {

// The Middlebury wheel (Baker et al., "A Database and Evaluation Methodology for Optical Flow", 2011):
// six ramps between the primary and secondary colours, with more steps where the eye tells hues apart
// better (15 red-yellow, 6 yellow-green, 4 green-cyan, 11 cyan-blue, 13 blue-magenta, 6 magenta-red).
struct Wheel {
  Wheel() {
    const struct {
      int steps;
      std::array<int, 3> from, to;
    } ramps[] = {{15, {255, 0, 0}, {255, 255, 0}}, {6, {255, 255, 0}, {0, 255, 0}}, {4, {0, 255, 0}, {0, 255, 255}},
                 {11, {0, 255, 255}, {0, 0, 255}}, {13, {0, 0, 255}, {255, 0, 255}}, {6, {255, 0, 255}, {255, 0, 0}}};
    for (const auto& ramp : ramps)
      for (int i = 0; i < ramp.steps; ++i) {
        std::array<double, 3> colour{};
        // The changing channel moves by floor(255 * i / steps), as the reference wheel does.
        for (int c = 0; c < 3; ++c) {
          const int delta = (ramp.to[c] - ramp.from[c]) * (255 * i / ramp.steps) / 255;
          colour[c] = (ramp.from[c] + delta) / 255.0;
        }
        colours.push_back(colour);
      }
  }
  std::vector<std::array<double, 3>> colours;
};

const Wheel& wheel() {
  static const Wheel instance;
  return instance;
}

void check_flow(const Tensor& flow, const std::string& who) {
  FPI_CHECK(flow.dim() == 3 && flow.size(0) == 2, who, ": the flow must be (2, H, W), got ", shape_str(flow.shape()));
}

}  // namespace

double average_epe(const Tensor& prediction, const Tensor& target) {
  FPI_CHECK(prediction.shape() == target.shape(), "average_epe: the prediction is ", shape_str(prediction.shape()),
            " but the target is ", shape_str(target.shape()));
  FPI_CHECK(prediction.dim() == 4 && prediction.size(1) == 2, "average_epe: expected (N, 2, H, W) flows, got ",
            shape_str(prediction.shape()));
  const std::vector<double> p = prediction.detach().to(kCPU).to_vector<double>();
  const std::vector<double> t = target.detach().to(kCPU).to_vector<double>();
  const std::int64_t n = prediction.size(0), plane = prediction.size(2) * prediction.size(3);
  FPI_CHECK(n * plane > 0, "average_epe: the flows are empty");
  double sum = 0.0;
  for (std::int64_t s = 0; s < n; ++s) {
    const std::int64_t u = s * 2 * plane, v = u + plane;
    for (std::int64_t i = 0; i < plane; ++i)
      sum += std::hypot(p[static_cast<std::size_t>(u + i)] - t[static_cast<std::size_t>(u + i)],
                        p[static_cast<std::size_t>(v + i)] - t[static_cast<std::size_t>(v + i)]);
  }
  return sum / static_cast<double>(n * plane);
}

Tensor warp_backward(const Tensor& image, const Tensor& flow) {
  check_flow(flow, "warp_backward");
  FPI_CHECK(image.dim() == 3 && image.size(0) == 1 && image.size(1) == flow.size(1) && image.size(2) == flow.size(2),
            "warp_backward: the image must be (1, H, W) of the flow's size, got ", shape_str(image.shape()), " for ",
            shape_str(flow.shape()));
  const std::int64_t h = image.size(1), w = image.size(2), plane = h * w;
  FPI_CHECK(h >= 2 && w >= 2, "warp_backward: the image must be at least 2x2");
  const std::vector<double> pixels = image.detach().to(kCPU).to_vector<double>();
  const std::vector<double> f = flow.detach().to(kCPU).to_vector<double>();
  std::vector<double> out(static_cast<std::size_t>(plane));
  for (std::int64_t y = 0; y < h; ++y)
    for (std::int64_t x = 0; x < w; ++x) {
      const std::int64_t i = y * w + x;
      const double u = f[static_cast<std::size_t>(i)], v = f[static_cast<std::size_t>(plane + i)];
      // std::clamp passes NaN through, and NaN converted to an index is undefined.
      FPI_CHECK(!std::isnan(u) && !std::isnan(v), "warp_backward: the flow at (", y, ", ", x, ") is NaN");
      const double sx = std::clamp(static_cast<double>(x) + u, 0.0, double(w - 1));
      const double sy = std::clamp(static_cast<double>(y) + v, 0.0, double(h - 1));
      const auto x0 = std::min(static_cast<std::int64_t>(sx), w - 2);
      const auto y0 = std::min(static_cast<std::int64_t>(sy), h - 2);
      const double fx = sx - double(x0), fy = sy - double(y0);
      const auto at = [&](std::int64_t yy, std::int64_t xx) { return pixels[static_cast<std::size_t>(yy * w + xx)]; };
      const double top = at(y0, x0) + fx * (at(y0, x0 + 1) - at(y0, x0));
      const double bottom = at(y0 + 1, x0) + fx * (at(y0 + 1, x0 + 1) - at(y0 + 1, x0));
      out[static_cast<std::size_t>(i)] = top + fy * (bottom - top);
    }
  return from_vector(out, {1, h, w}, {.dtype = image.dtype()});
}

std::array<std::uint8_t, 3> flow_color(double u, double v, double max_magnitude) {
  FPI_CHECK(max_magnitude > 0, "flow_color: max_magnitude must be positive, got ", max_magnitude);
  FPI_CHECK(std::isfinite(u) && std::isfinite(v), "flow_color: the vector (", u, ", ", v, ") is not finite");
  const std::vector<std::array<double, 3>>& colours = wheel().colours;
  const auto count = static_cast<double>(colours.size());
  const double radius = std::hypot(u, v) / max_magnitude;
  // The angle of the reversed vector, mapped to [0, count - 1]: motion to the right lands on the
  // magenta-red end of the wheel, as in the reference images.
  const double position = (std::atan2(-v, -u) / std::numbers::pi + 1.0) / 2.0 * (count - 1.0);
  const auto k0 = static_cast<std::size_t>(std::floor(position));
  const std::size_t k1 = (k0 + 1) % colours.size();
  const double f = position - std::floor(position);
  std::array<std::uint8_t, 3> out{};
  for (int c = 0; c < 3; ++c) {
    double value = (1 - f) * colours[k0 % colours.size()][c] + f * colours[k1][c];
    value = radius <= 1.0 ? 1.0 - radius * (1.0 - value) : value * 0.75;
    out[c] = static_cast<std::uint8_t>(std::floor(255.0 * value));
  }
  return out;
}

RgbImage flow_to_rgb(const Tensor& flow, double max_magnitude) {
  check_flow(flow, "flow_to_rgb");
  const std::int64_t h = flow.size(1), w = flow.size(2), plane = h * w;
  const std::vector<double> f = flow.detach().to(kCPU).to_vector<double>();
  if (max_magnitude <= 0) {
    for (std::int64_t i = 0; i < plane; ++i)
      max_magnitude = std::max(max_magnitude, std::hypot(f[static_cast<std::size_t>(i)],
                                                         f[static_cast<std::size_t>(plane + i)]));
    if (max_magnitude <= 0) max_magnitude = 1.0;  // no motion anywhere: all white
  }
  RgbImage out{h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(3 * plane))};
  for (std::int64_t i = 0; i < plane; ++i) {
    const auto colour =
        flow_color(f[static_cast<std::size_t>(i)], f[static_cast<std::size_t>(plane + i)], max_magnitude);
    std::copy(colour.begin(), colour.end(), out.pixels.begin() + 3 * i);
  }
  return out;
}

RgbImage gray_to_rgb(const Tensor& image) {
  const Shape& shape = image.shape();
  FPI_CHECK(shape.size() == 2 || (shape.size() == 3 && shape[0] == 1),
            "gray_to_rgb: expected (1, H, W) or (H, W), got ", shape_str(shape));
  const std::int64_t h = shape[shape.size() - 2], w = shape.back();
  const std::vector<double> values = image.detach().to(kCPU).to_vector<double>();
  RgbImage out{h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(3 * h * w))};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = std::isnan(values[i]) ? 0.0 : std::clamp(values[i], 0.0, 1.0);
    const auto byte = static_cast<std::uint8_t>(std::lround(255.0 * v));
    std::fill_n(out.pixels.begin() + static_cast<std::ptrdiff_t>(3 * i), 3, byte);
  }
  return out;
}

namespace {

// RgbImage's fields are public, so its sides and pixel count are checked before any index into it is
// computed: a negative side would turn the size products below into huge allocations or wild copies.
void check_rgb(const RgbImage& image, const char* where, const std::string& argument) {
  FPI_CHECK(image.height >= 0 && image.width >= 0 &&
                image.height <= kMaxImagePixels / std::max<std::int64_t>(image.width, 1),
            where, ": ", argument, " is ", image.width, "x", image.height, " (sides from 0, at most ",
            kMaxImagePixels, " pixels)");
  FPI_CHECK(std::ssize(image.pixels) == 3 * image.height * image.width, where, ": ", argument, " has ",
            image.pixels.size(), " bytes but is ", image.width, "x", image.height, " RGB");
}

}  // namespace

RgbImage side_by_side(const std::vector<RgbImage>& images, std::int64_t gap) {
  FPI_CHECK(!images.empty(), "side_by_side: no image");
  FPI_CHECK(gap >= 0, "side_by_side: gap must be at least 0, got ", gap);
  for (std::size_t i = 0; i < images.size(); ++i)
    check_rgb(images[i], "side_by_side", "images[" + std::to_string(i) + "]");
  const std::int64_t h = images.front().height;
  std::int64_t w = 0;
  bool fits = !__builtin_mul_overflow(gap, std::ssize(images) - 1, &w);
  for (const RgbImage& image : images) {
    FPI_CHECK(image.height == h, "side_by_side: heights differ (", image.height, " and ", h, ")");
    fits = fits && !__builtin_add_overflow(w, image.width, &w);
  }
  FPI_CHECK(fits && h <= kMaxImagePixels / std::max<std::int64_t>(w, 1), "side_by_side: ", images.size(),
            " images of height ", h, " with gaps of ", gap, " make more than ", kMaxImagePixels, " pixels");
  RgbImage out{h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(3 * h * w), 255)};
  std::int64_t left = 0;
  for (const RgbImage& image : images) {
    for (std::int64_t y = 0; y < h; ++y)
      std::copy_n(image.pixels.begin() + 3 * y * image.width, 3 * image.width,
                  out.pixels.begin() + 3 * (y * w + left));
    left += image.width + gap;
  }
  return out;
}

RgbImage enlarge(const RgbImage& image, std::int64_t factor) {
  FPI_CHECK(factor >= 1, "enlarge: factor must be at least 1, got ", factor);
  check_rgb(image, "enlarge", "image");
  // Divisions, not products: the bound must hold before anything of the enlarged size is computed.
  FPI_CHECK(image.width <= kMaxImagePixels / factor &&
                image.height <= kMaxImagePixels / std::max<std::int64_t>(image.width * factor, 1) / factor,
            "enlarge: a ", image.width, "x", image.height, " image enlarged ", factor, " times has more than ",
            kMaxImagePixels, " pixels");
  const std::int64_t w = image.width * factor;
  RgbImage out{image.height * factor, w, {}};
  out.pixels.resize(static_cast<std::size_t>(3 * w * out.height));
  for (std::int64_t y = 0; y < out.height; ++y)
    for (std::int64_t x = 0; x < w; ++x)
      std::copy_n(image.pixels.begin() + 3 * ((y / factor) * image.width + x / factor), 3,
                  out.pixels.begin() + 3 * (y * w + x));
  return out;
}

std::string encode_png_rgb8(const RgbImage& image, const std::string& name) {
  FPI_CHECK(image.height >= 1 && image.width >= 1 && image.height <= kMaxImagePixels / image.width, name,
            ": cannot encode a ", image.width, "x", image.height, " image");
  FPI_CHECK(std::ssize(image.pixels) == 3 * image.height * image.width, name, ": the image has ",
            image.pixels.size(), " bytes but is ", image.width, "x", image.height, " RGB");
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  const bool sized = png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr) != 0;
  std::string bytes(sized ? size : 0, '\0');
  const bool written =
      sized && png_image_write_to_memory(&png, bytes.data(), &size, 0, image.pixels.data(), 0, nullptr) != 0;
  const std::string message = png.message;
  png_image_free(&png);
  FPI_CHECK(written, name, ": cannot encode: ", message);
  bytes.resize(size);
  return bytes;
}

void write_png_rgb(const std::string& path, const RgbImage& image) {
  io::write_file_atomically(path, encode_png_rgb8(image, path));
}

}  // namespace fpi::data
