// PNG through libpng's simplified API (png_image_*), which reports errors by return value and a message
// in the png_image, so no longjmp ever crosses our frames. Files are read whole and written crash-safely
// through fpi/io/file.hpp. A png_image holds libpng state between
// begin_read and finish_read; ImageGuard frees it on every path out, including our own throws.
#include "fpi/data/image.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "fpi/io/file.hpp"


namespace fpi::data {
namespace {

class ImageGuard {
 public:
  ImageGuard() { image_.version = PNG_IMAGE_VERSION; }
  ~ImageGuard() { png_image_free(&image_); }
  ImageGuard(const ImageGuard&) = delete;
  ImageGuard& operator=(const ImageGuard&) = delete;

  png_image& get() { return image_; }
  // libpng's message, which is empty for some failures (an allocation that failed, say).
  std::string message() const {
    return image_.message[0] != '\0' ? std::string(image_.message) : std::string("libpng failed without a message");
  }

 private:
  png_image image_{};
};

template <class T>
void fill_scaled(T* out, const GrayImage& image) {
  const std::size_t n = image.pixels.size();
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(image.pixels[i]) / T(255);
}

}  // namespace

GrayImage decode_png_gray8(std::string_view bytes, const std::string& name, std::int64_t max_pixels) {
  ImageGuard guard;
  png_image& image = guard.get();
  FPI_CHECK(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) != 0, name, ": ", guard.message());
  const std::int64_t height = image.height, width = image.width;
  // libpng has checked both sides are from 1 to 2^31 - 1; shape_numel still checks their product.
  const std::int64_t pixels = shape_numel({height, width});
  FPI_CHECK(pixels <= max_pixels, name, ": the image is ", width, "x", height, " = ", pixels,
            " pixels, more than the ", max_pixels, " this reader accepts");
  GrayImage out{height, width, std::vector<std::uint8_t>(static_cast<std::size_t>(pixels))};
  if ((image.format & PNG_FORMAT_FLAG_LINEAR) != 0) {
    // A 16-bit file. Asked for 8-bit output, libpng would treat its values as linear light and encode
    // them as sRGB (32896 would become 186, not 128); fpi takes stored values as they are, like 8-bit
    // files, so it reads 16-bit gray (compositing any alpha onto black) and scales it by 255 / 65535.
    image.format = PNG_FORMAT_LINEAR_Y;
    std::vector<std::uint16_t> wide(out.pixels.size());
    FPI_CHECK(png_image_finish_read(&image, nullptr, wide.data(), 0, nullptr) != 0, name, ": ", guard.message());
    for (std::size_t i = 0; i < wide.size(); ++i)
      out.pixels[i] = static_cast<std::uint8_t>((std::uint32_t{wide[i]} * 255 + 32767) / 65535);
    return out;
  }
  image.format = PNG_FORMAT_GRAY;
  // Compositing onto a solid colour rather than onto the buffer keeps the result independent of what the
  // buffer held.
  const png_color black{0, 0, 0};
  FPI_CHECK(png_image_finish_read(&image, &black, out.pixels.data(), 0, nullptr) != 0, name, ": ",
            guard.message());
  return out;
}

std::string encode_png_gray8(const GrayImage& image, const std::string& name) {
  // Sides of any size can reach here (a GrayImage is a plain struct), so the bound is checked by division.
  FPI_CHECK(image.height >= 1 && image.width >= 1 && image.height <= kMaxImagePixels / image.width, name,
            ": cannot encode a ", image.width, "x", image.height, " image");
  FPI_CHECK(static_cast<std::int64_t>(image.pixels.size()) == image.height * image.width, name, ": the image has ",
            image.pixels.size(), " pixels but is ", image.width, "x", image.height);
  ImageGuard guard;
  png_image& png = guard.get();
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  FPI_CHECK(png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr) != 0, name,
            ": cannot encode: ", guard.message());
  std::string bytes(size, '\0');
  FPI_CHECK(png_image_write_to_memory(&png, bytes.data(), &size, 0, image.pixels.data(), 0, nullptr) != 0, name,
            ": cannot encode: ", guard.message());
  bytes.resize(size);
  return bytes;
}

Tensor gray_to_tensor(const GrayImage& image, DType dtype) {
  Tensor out = empty({1, image.height, image.width}, {.dtype = dtype});
  if (dtype == kFloat32) fill_scaled(out.data<float>(), image);
  else fill_scaled(out.data<double>(), image);
  return out;
}

GrayImage tensor_to_gray(const Tensor& image, const std::string& name) {
  FPI_CHECK(image.defined(), name, ": the image tensor is undefined");
  const Shape& shape = image.shape();
  const bool gray = shape.size() == 2 || (shape.size() == 3 && shape[0] == 1);
  FPI_CHECK(gray, name, ": an image must be (1, H, W) or (H, W), got ", shape_str(shape));
  GrayImage out{shape[shape.size() - 2], shape.back(), {}};
  FPI_CHECK(out.height >= 1 && out.width >= 1, name, ": the image ", shape_str(shape), " is empty");
  const std::vector<double> values = image.detach().to_vector<double>();
  out.pixels.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    FPI_CHECK(!std::isnan(v), name, ": pixel (", static_cast<std::int64_t>(i) / out.width, ", ",
              static_cast<std::int64_t>(i) % out.width, ") is NaN");
    out.pixels[i] = static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
  }
  return out;
}

Tensor read_png(const std::string& path, DType dtype) { return decode_png(io::read_file(path), path, dtype); }

Tensor decode_png(std::string_view bytes, const std::string& name, DType dtype) {
  return gray_to_tensor(decode_png_gray8(bytes, name), dtype);
}

void write_png(const std::string& path, const Tensor& image) {
  io::write_file_atomically(path, encode_png_gray8(tensor_to_gray(image, path), path));
}

}  // namespace fpi::data
