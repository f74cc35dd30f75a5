// libFuzzer target for the PNG decoder (decode_png_gray8, decode_png) and the encoder behind write_png.
// Each input is decoded twice: as it is, and with every chunk's CRC recomputed, since almost any mutation
// breaks a CRC and would otherwise stop libpng before the code behind the check is reached. A rejected
// input is a correct outcome when it throws fpi::Error naming the input; anything else is a finding:
// another exception, a sanitizer report, a hang, or an accepted image that re-encodes to other pixels or
// whose tensor differs from its pixels. Run it with tools/fuzz.sh png SECONDS.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/data/image.hpp"

namespace {

using fpi::data::GrayImage;

const std::string kName = "fuzz-input";
// 4 Mi pixels: far above anything the seeds hold, and small enough that a header claiming the most we
// accept costs milliseconds, not a 256 MiB allocation per input.
constexpr std::int64_t kMaxPixels = std::int64_t{1} << 22;

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_png: %s\n", what);
  std::abort();
}

std::uint32_t crc32(std::string_view bytes) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xffffffffu;
  for (const char byte : bytes) c = table[(c ^ static_cast<unsigned char>(byte)) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

// The input with the CRC of every complete chunk after the 8-byte signature set to the right value.
std::string with_fixed_crcs(std::string bytes) {
  std::size_t at = 8;
  while (at + 12 <= bytes.size()) {
    const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
    const std::uint32_t length = byte(at) << 24 | byte(at + 1) << 16 | byte(at + 2) << 8 | byte(at + 3);
    if (length > bytes.size() - at - 12) break;
    const std::uint32_t crc = crc32(std::string_view(bytes).substr(at + 4, 4 + length));
    for (int i = 0; i < 4; ++i) bytes[at + 8 + length + i] = static_cast<char>(crc >> (24 - 8 * i));
    at += 12 + length;
  }
  return bytes;
}

std::optional<GrayImage> decode(std::string_view bytes) {
  try {
    return fpi::data::decode_png_gray8(bytes, kName, kMaxPixels);
  } catch (const fpi::Error& e) {
    require(std::string_view(e.what()).starts_with(kName + ": "), "an error message does not name the input");
    return std::nullopt;
  }
}

void check(std::string_view bytes) {
  const std::optional<GrayImage> image = decode(bytes);
  if (!image) return;
  require(image->height >= 1 && image->width >= 1 && image->height * image->width <= kMaxPixels,
          "an accepted image has an impossible size");
  require(static_cast<std::int64_t>(image->pixels.size()) == image->height * image->width,
          "the pixel count disagrees with the size");
  const GrayImage again = fpi::data::decode_png_gray8(fpi::data::encode_png_gray8(*image, kName), kName);
  require(again.height == image->height && again.width == image->width && again.pixels == image->pixels,
          "encoding and decoding again changed the image");
  const fpi::Tensor tensor = fpi::data::decode_png(bytes, kName, fpi::kFloat64);
  require(tensor.shape() == fpi::Shape{1, image->height, image->width}, "decode_png's shape is wrong");
  const std::vector<double> values = tensor.to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i)
    require(values[i] == image->pixels[i] / 255.0, "decode_png's values are not the pixels / 255");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  check(bytes);
  check(with_fixed_crcs(bytes));
  return 0;
}
