// Optical-flow data made the way Flying Chairs was made (Flying Chairs itself is not available): a
// textured background moving under one affine motion and a few foreground patches with random masks,
// each under its own affine motion, in front of it. Frame 2 shows, at each pixel, the front-most layer
// there, so occlusions are real; the flow is exact (each pixel of frame 1 is mapped by its layer's
// motion). Textures are cut, with bilinear sampling, from the bundled gray denoising images: Train400 for
// training and validation (disjoint images), BSD68 for testing. Also here: the average end-point error
// and the Middlebury flow colour wheel (Baker et al. 2011) to look at flow fields.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fpi/data/dataset.hpp"
#include "fpi/tensor.hpp"

namespace fpi::data {

struct FlowOptions {
  std::string dir = "data/denoising";  // Train400/, BSD68/, SHA256SUMS: the textures
  std::int64_t height = 64, width = 64;
  std::int64_t train_size = 2000;      // pairs per training epoch, drawn afresh each epoch
  std::int64_t validation_size = 200;  // fixed pairs from the held-out Train400 images
  std::int64_t test_size = 200;        // fixed pairs from BSD68
  std::int64_t validation_images = 8;  // the last Train400 images in name order, never used for training
  std::int64_t max_train_images = 0;   // 0: all the others (small numbers make tests fast)
  std::int64_t max_test_images = 0;    // 0: all 68
  std::int64_t objects = 3;            // foreground patches per pair, 0 or more
  double max_translation = 5.0;        // pixels, each axis, foreground motion
  double background_translation = 3.0; // pixels, each axis, background motion
  double max_rotation = 10.0;          // degrees, foreground (the background turns by at most a quarter)
  double max_scale = 0.1;              // foreground zoom in [1 - max_scale, 1 + max_scale] (background: a third)
  std::uint64_t seed = 0;              // every pair; train, validation and test draw from separate streams
  bool verify_checksums = true;
  DType dtype = kFloat32;
};

// fields: "frames" (2, H, W): frame 1 and frame 2, gray, pixel / 255; "flow" (2, H, W): (u, v), where
// pixel (x, y) of frame 1 is at (x + u, y + v) in frame 2; "visible" (1, H, W): 1 where the surface of
// frame 1's pixel is what frame 2 shows around (x + u, y + v) (not occluded, not moved out of the image).
// Training pair j of epoch e depends only on (seed, e, j); validation and test pair j only on (seed, j).
Splits flow_splits(const FlowOptions& options);

// The source images of each split (paths relative to options.dir), without loading them: training and
// validation are disjoint parts of Train400, test is BSD68.
struct FlowSources {
  std::vector<std::string> train, validation, test;
};
FlowSources flow_sources(const FlowOptions& options);

// The mean over samples and pixels of ||prediction - target||_2 over the 2 flow channels, for
// (N, 2, H, W) tensors of equal shape, in float64.
double average_epe(const Tensor& prediction, const Tensor& target);

// Frame 2 sampled at (x + u, y + v) for every pixel of frame 1 (bilinear, clamped to the border):
// frame 1 again where the flow is right and the pixel is visible. image (1, H, W), flow (2, H, W).
Tensor warp_backward(const Tensor& image, const Tensor& flow);

// 8-bit RGB pixels, row-major, 3 bytes a pixel.
struct RgbImage {
  std::int64_t height = 0, width = 0;
  std::vector<std::uint8_t> pixels;
};

// The Middlebury colour of one flow vector: hue is the direction, saturation grows with the magnitude up
// to max_magnitude (white is no motion); beyond it the colour is darkened to 75% to show the overflow.
std::array<std::uint8_t, 3> flow_color(double u, double v, double max_magnitude);
// A (2, H, W) flow as colours; max_magnitude <= 0 takes the largest magnitude in the field.
RgbImage flow_to_rgb(const Tensor& flow, double max_magnitude = 0.0);
// A (1, H, W) or (H, W) image of [0, 1] values as gray RGB.
RgbImage gray_to_rgb(const Tensor& image);
// Images of equal height side by side, with a white column of `gap` pixels between them.
RgbImage side_by_side(const std::vector<RgbImage>& images, std::int64_t gap = 2);
// Each pixel as a factor x factor block, so small frames can be looked at.
RgbImage enlarge(const RgbImage& image, std::int64_t factor);
// The PNG file's bytes (8-bit RGB), and written crash-safely to `path`.
std::string encode_png_rgb8(const RgbImage& image, const std::string& name);
void write_png_rgb(const std::string& path, const RgbImage& image);

}  // namespace fpi::data
