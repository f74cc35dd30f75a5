// PNG reading and writing: the fixtures of tests/data/fixtures/png/ (written by make_fixtures.py there
// with its own encoder) decode to the pixels they were made from, whatever the PNG colour type; broken
// files give errors naming the file; writing and reading back is exact on 8-bit values.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "fpi/data/image.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi::data {
namespace {

using testing::error_of;

const std::string kFixtures = std::string(FPI_SOURCE_DIR) + "/tests/data/fixtures/png/";
const std::vector<std::uint8_t> kPixels = {0, 128, 255, 17, 200, 64};  // the fixtures' 3 x 2 image

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("fpi_test_image_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void expect_contains(const std::string& message, const std::string& fragment) {
  EXPECT_NE(message.find(fragment), std::string::npos) << "'" << message << "' lacks '" << fragment << "'";
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Png, ReadsGray8AsScaledTensor) {
  for (const DType dtype : {kFloat32, kFloat64}) {
    const Tensor image = read_png(kFixtures + "gray8_3x2.png", dtype);
    EXPECT_EQ(image.shape(), (Shape{1, 2, 3}));
    EXPECT_EQ(image.dtype(), dtype);
    const std::vector<double> values = image.to_vector<double>();
    for (std::size_t i = 0; i < kPixels.size(); ++i) {
      const double expected = dtype == kFloat32 ? double(static_cast<float>(kPixels[i]) / 255.0f) : kPixels[i] / 255.0;
      EXPECT_EQ(values[i], expected) << i;
    }
  }
}

TEST(Png, EveryColourTypeDecodesToTheSameGrayPixels) {
  for (const char* name : {"gray8_3x2.png", "gray16_3x2.png", "rgb_gray_3x2.png", "palette_3x2.png"}) {
    const GrayImage image = decode_png_gray8(bytes_of(kFixtures + name), name);
    EXPECT_EQ(image.height, 2) << name;
    EXPECT_EQ(image.width, 3) << name;
    EXPECT_EQ(image.pixels, kPixels) << name;
  }
}

TEST(Png, AlphaIsCompositedOntoBlackAndOneBitGrayExpands) {
  const GrayImage alpha = decode_png_gray8(bytes_of(kFixtures + "gray_alpha_3x2.png"), "alpha");
  EXPECT_EQ(alpha.pixels, (std::vector<std::uint8_t>{0, 128, 255, 17, 200, 0}));
  const GrayImage one_bit = decode_png_gray8(bytes_of(kFixtures + "gray1_3x2.png"), "one bit");
  EXPECT_EQ(one_bit.pixels, (std::vector<std::uint8_t>{255, 0, 255, 0, 255, 255}));
}

TEST(Png, BrokenFilesGiveErrorsNamingThem) {
  for (const char* name : {"truncated.png", "bad_crc.png", "not_a_png.png", "empty.png"}) {
    const std::string path = kFixtures + name;
    const std::string message = error_of([&] { read_png(path); });
    expect_contains(message, path + ": ");
    EXPECT_GT(message.size(), path.size() + 4) << "no reason given: " << message;
  }
  expect_contains(error_of([] { read_png(kFixtures + "not_a_png.png"); }), "Not a PNG file");
  expect_contains(error_of([] { read_png(kFixtures + "bad_crc.png"); }), "CRC error");
  expect_contains(error_of([] { read_png(kFixtures + "no_such.png"); }),
                  "cannot open '" + kFixtures + "no_such.png': No such file or directory");
}

TEST(Png, RefusesImagesOverThePixelLimitBeforeAllocating) {
  expect_contains(error_of([] { read_png(kFixtures + "huge_header.png"); }),
                  "huge_header.png: the image is 65535x65535 = 4294836225 pixels, more than the 268435456");
  expect_contains(error_of([] { decode_png_gray8(bytes_of(kFixtures + "gray8_3x2.png"), "small", 5); }),
                  "small: the image is 3x2 = 6 pixels, more than the 5");
}

// A GrayImage is a plain struct, so its sides can be anything; their product must not overflow in the check.
TEST(Png, EncodeRefusesSidesWhoseProductOverflows) {
  const GrayImage huge{std::int64_t{1} << 40, std::int64_t{1} << 40, {}};
  expect_contains(error_of([&] { encode_png_gray8(huge, "huge"); }),
                  "huge: cannot encode a 1099511627776x1099511627776 image");
}

TEST(Png, WriteThenReadIsExactOnEightBitValues) {
  const TempDir dir;
  std::vector<double> values(256);
  for (int v = 0; v < 256; ++v) values[v] = v / 255.0;
  for (const DType dtype : {kFloat32, kFloat64}) {
    const Tensor image = from_vector(values, {1, 16, 16}, {.dtype = dtype});
    const std::string path = dir.file("all_values.png");
    write_png(path, image);
    const Tensor back = read_png(path, dtype);
    EXPECT_EQ(back.shape(), (Shape{1, 16, 16}));
    EXPECT_EQ(back.to_vector<double>(), image.to_vector<double>());
    EXPECT_EQ(decode_png_gray8(bytes_of(path), path).pixels[200], 200);
  }
}

TEST(Png, WriteClampsRoundsAndAcceptsTwoDimensions) {
  const TempDir dir;
  const std::string path = dir.file("clamped.png");
  write_png(path, tensor({-0.5, 1.7, 0.4 / 255, 0.6 / 255, 127.49 / 255, 127.51 / 255}).reshape({2, 3}));
  EXPECT_EQ(decode_png_gray8(bytes_of(path), path).pixels, (std::vector<std::uint8_t>{0, 255, 0, 1, 127, 128}));
}

TEST(Png, WriteRejectsNanWrongShapesAndUnwritablePaths) {
  const TempDir dir;
  const std::string path = dir.file("bad.png");
  expect_contains(error_of([&] { write_png(path, tensor({0.0, std::nan(""), 0.0, 0.0}).reshape({1, 2, 2})); }),
                  path + ": pixel (0, 1) is NaN");
  expect_contains(error_of([&] { write_png(path, zeros({3, 2, 2})); }),
                  path + ": an image must be (1, H, W) or (H, W), got [3, 2, 2]");
  EXPECT_FALSE(std::filesystem::exists(path));
  // A refused image leaves the file that was there as it was.
  write_png(path, full({1, 2, 2}, 0.5));
  EXPECT_THROW(write_png(path, full({1, 2, 2}, std::nan(""))), Error);
  EXPECT_EQ(decode_png_gray8(bytes_of(path), path).pixels, (std::vector<std::uint8_t>(4, 128)));
  const std::string nowhere = dir.file("no_such_dir/x.png");
  expect_contains(error_of([&] { write_png(nowhere, zeros({2, 2})); }), nowhere);
  EXPECT_FALSE(std::filesystem::exists(nowhere));
}

TEST(Png, EncodeDecodeRoundTripOfAnOddSizedImage) {
  GrayImage image{3, 7, {}};
  for (int i = 0; i < 21; ++i) image.pixels.push_back(static_cast<std::uint8_t>(i * 12));
  const GrayImage back = decode_png_gray8(encode_png_gray8(image, "odd"), "odd");
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.width, 7);
  EXPECT_EQ(back.pixels, image.pixels);
}

TEST(Png, ReadsABundledBsd68Image) {
  // test001 is one of the 15 portrait images: 321 wide, 481 high.
  const Tensor image = read_png(std::string(FPI_SOURCE_DIR) + "/data/denoising/BSD68/test001.png");
  EXPECT_EQ(image.shape(), (Shape{1, 481, 321}));
  const std::vector<float> values = image.to_vector<float>();
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  EXPECT_GE(*low, 0.0f);
  EXPECT_LE(*high, 1.0f);
  EXPECT_GT(*high - *low, 0.5f);  // a natural photograph, not a flat field
}

}  // namespace
}  // namespace fpi::data
