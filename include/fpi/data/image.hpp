// Gray-scale PNG images for the denoising experiment, through libpng's simplified API. Any PNG (gray,
// palette, RGB, with or without alpha, 1 to 16 bits, interlaced or not) decodes to 8-bit gray; tensors
// hold it as (1, H, W) on the [0, 1] scale, pixel / 255.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::data {

// The largest image the decoders accept (2^28 pixels, 256 MiB of 8-bit gray): a PNG header of a few
// bytes can claim 2^31 x 2^31 pixels, and the check comes before anything that size is allocated.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 28;
// The largest height or width the data options accept (a patch, a generated frame): a square of this side
// is kMaxImagePixels, so no product of two sides overflows or asks for more than an image may hold.
inline constexpr std::int64_t kMaxImageSide = std::int64_t{1} << 14;

// 8-bit gray pixels, row-major: pixels[y * width + x].
struct GrayImage {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::vector<std::uint8_t> pixels;
};

// Decodes PNG bytes to 8-bit gray. Colour is converted by libpng (sRGB luminance), as is a file whose
// gAMA or iCCP chunk says it is not sRGB-encoded; an alpha channel is composited onto black; 16-bit values
// v become round(v * 255 / 65535). Files without colour-space chunks (all the bundled ones) keep their
// stored values exactly. Errors name `name` and carry libpng's message ("<name>: not a PNG file",
// "<name>: ... CRC error", a truncated stream), or say the image has more than `max_pixels` pixels.
GrayImage decode_png_gray8(std::string_view bytes, const std::string& name, std::int64_t max_pixels = kMaxImagePixels);
// The PNG file's bytes for `image` (8-bit gray, not interlaced).
std::string encode_png_gray8(const GrayImage& image, const std::string& name);

// (1, H, W) CPU tensor of pixel / 255, and back: values clamped to [0, 1], scaled by 255 and rounded to
// the nearest integer. `name` names the image in errors (a NaN pixel, a wrong shape).
Tensor gray_to_tensor(const GrayImage& image, DType dtype = kFloat32);
GrayImage tensor_to_gray(const Tensor& image, const std::string& name);

// read_png reads and decodes the file at `path`; decode_png decodes bytes already in memory, `name`
// standing for the path in errors (the fuzz target in tools/fuzz/ goes through it).
Tensor read_png(const std::string& path, DType dtype = kFloat32);
Tensor decode_png(std::string_view bytes, const std::string& name, DType dtype = kFloat32);

// Writes a (1, H, W) or (H, W) tensor of any dtype and device as an 8-bit gray PNG (tensor_to_gray's
// rounding), crash-safely (io::write_file_atomically): the file at `path` is the old one or the new one.
void write_png(const std::string& path, const Tensor& image);

}  // namespace fpi::data
