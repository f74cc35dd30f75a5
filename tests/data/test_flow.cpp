// The optical-flow data and its tools: the generator's flow maps frame 1 onto frame 2 (the backward warp
// reproduces frame 1 where it is visible), batches are pure functions of their seeds, the splits' source
// images are disjoint; aEPE and the Middlebury colours on known vectors; the flow configs train.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "fpi/data/flow.hpp"
#include "fpi/data/image.hpp"
#include "fpi/grad_mode.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"
#include "test_util.hpp"

namespace fpi::data {
namespace {

FlowOptions small_options() {
  FlowOptions o;
  o.dir = std::string(FPI_SOURCE_DIR) + "/data/denoising";
  o.max_train_images = 6;
  o.validation_images = 2;
  o.max_test_images = 2;
  o.train_size = 16;
  o.validation_size = 4;
  o.test_size = 4;
  o.dtype = kFloat64;
  return o;
}

std::vector<double> values(const Tensor& t) { return t.contiguous().to_vector<double>(); }

TEST(FlowData, BackwardWarpOfFrame2ReproducesFrame1WhereVisible) {
  const Splits splits = flow_splits(small_options());
  const Batch batch = splits.train->batch(0, 0, 8);
  ASSERT_EQ(batch.at("frames").shape(), (Shape{8, 2, 64, 64}));
  ASSERT_EQ(batch.at("flow").shape(), (Shape{8, 2, 64, 64}));
  ASSERT_EQ(batch.at("visible").shape(), (Shape{8, 1, 64, 64}));
  double visible_pixels = 0, squared_error = 0, variance = 0, magnitude = 0, hidden_pixels = 0, hidden_error = 0;
  for (std::int64_t s = 0; s < 8; ++s) {
    const Tensor frames = batch.at("frames").select(0, s);
    const Tensor flow = batch.at("flow").select(0, s);
    const std::vector<double> frame1 = values(frames.narrow(0, 0, 1));
    const std::vector<double> warped = values(warp_backward(frames.narrow(0, 1, 1).contiguous(), flow.contiguous()));
    const std::vector<double> visible = values(batch.at("visible").select(0, s));
    const std::vector<double> f = values(flow);
    double mean = 0;
    for (double v : frame1) mean += v / static_cast<double>(frame1.size());
    for (std::size_t i = 0; i < frame1.size(); ++i) {
      variance += (frame1[i] - mean) * (frame1[i] - mean) / static_cast<double>(frame1.size()) / 8.0;
      magnitude += std::hypot(f[i], f[i + frame1.size()]) / static_cast<double>(frame1.size()) / 8.0;
      const double e = (warped[i] - frame1[i]) * (warped[i] - frame1[i]);
      if (visible[i] > 0.5) {
        visible_pixels += 1;
        squared_error += e;
      } else {
        hidden_pixels += 1;
        hidden_error += e;
      }
    }
  }
  const double total = 8.0 * 64 * 64;
  // Most pixels are visible, but occlusion happens; the motion is a few pixels, not nothing.
  EXPECT_GT(visible_pixels / total, 0.6);
  EXPECT_GT(hidden_pixels / total, 0.01);
  EXPECT_GT(magnitude, 1.0);
  EXPECT_LT(magnitude, 10.0);
  // Where visible, the warp is off only by bilinear interpolation of the texture: far below the image's
  // variance. Where hidden, frame 2 shows another surface, so the warp misses by much more.
  const double visible_mse = squared_error / visible_pixels;
  EXPECT_LT(visible_mse, 0.05 * variance) << "variance " << variance;
  EXPECT_GT(hidden_error / hidden_pixels, 5 * visible_mse);
}

TEST(FlowData, BatchesArePureFunctionsOfSeedEpochAndIndex) {
  const FlowOptions options = small_options();
  const Splits a = flow_splits(options), b = flow_splits(options);
  const Batch whole = a.train->batch(0, 0, 8), again = b.train->batch(0, 0, 8), second = a.train->batch(0, 1, 4);
  for (const char* field : {"frames", "flow", "visible"}) {
    EXPECT_EQ(values(whole.at(field)), values(again.at(field))) << field;
    EXPECT_EQ(values(whole.at(field).narrow(0, 4, 4)), values(second.at(field))) << field;
  }
  // Training pairs are new every epoch; validation and test pairs are fixed.
  EXPECT_NE(values(a.train->batch(1, 0, 8).at("flow")), values(whole.at("flow")));
  EXPECT_EQ(values(a.test->batch(0, 0, 4).at("frames")), values(a.test->batch(3, 0, 4).at("frames")));
  EXPECT_NE(values(a.test->batch(0, 0, 4).at("frames")), values(a.validation->batch(0, 0, 4).at("frames")));
  FlowOptions other = options;
  other.seed = 1;
  EXPECT_NE(values(flow_splits(other).train->batch(0, 0, 8).at("flow")), values(whole.at("flow")));
}

TEST(FlowData, SplitsUseDisjointSourceImages) {
  FlowOptions options = small_options();
  options.max_train_images = 0;
  options.max_test_images = 0;
  const FlowSources sources = flow_sources(options);
  EXPECT_EQ(sources.train.size() + sources.validation.size(), 400u);
  EXPECT_EQ(sources.validation.size(), 2u);
  EXPECT_EQ(sources.test.size(), 68u);
  std::set<std::string> seen(sources.train.begin(), sources.train.end());
  for (const auto* split : {&sources.validation, &sources.test})
    for (const std::string& name : *split) EXPECT_TRUE(seen.insert(name).second) << name << " is in two splits";
  for (const std::string& name : sources.test) EXPECT_TRUE(name.starts_with("BSD68/")) << name;
}

TEST(FlowData, BadOptionsNameTheOption) {
  FlowOptions options = small_options();
  options.objects = 17;
  EXPECT_THROW(
      {
        try {
          flow_splits(options);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("FlowOptions.objects"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
}

// Frames no image could hold are refused before any file is read, and no product of sizes overflows: the
// panels' helpers take sizes from their callers, so they check by division.
TEST(FlowData, SizesBeyondAnImageAreRefused) {
  using testing::error_of;
  FlowOptions options = small_options();
  options.height = kMaxImageSide + 1;
  options.dir = "no/such/dir";
  EXPECT_EQ(error_of([&] { flow_splits(options); }), "FlowOptions.height/width: from 8 to 16384 pixels each, got 16385x64");
  const RgbImage pixel{1, 1, {0, 0, 0}};
  EXPECT_EQ(error_of([&] { enlarge(pixel, std::int64_t{1} << 40); }),
            "enlarge: a 1x1 image enlarged 1099511627776 times has more than 268435456 pixels");
  EXPECT_EQ(error_of([&] { side_by_side({pixel, pixel, pixel}, std::numeric_limits<std::int64_t>::max() / 2 + 1); }),
            "side_by_side: 3 images of height 1 with gaps of 4611686018427387904 make more than 268435456 pixels");
  EXPECT_EQ(error_of([&] { encode_png_rgb8(RgbImage{std::int64_t{1} << 40, std::int64_t{1} << 40, {}}, "huge"); }),
            "huge: cannot encode a 1099511627776x1099511627776 image");
  EXPECT_EQ(enlarge(pixel, 3).pixels.size(), 27u);
  options = small_options();
  options.dir = "no/such/dir";
  options.test_size = kMaxEpochSamples + 1;
  EXPECT_EQ(error_of([&] { flow_splits(options); }),
            "FlowOptions.test_size: must be from 1 to 1000000000, got 1000000001");
  // 2 * 1e308 overflows in the uniform draw of a shift, and the texture lookups would index with NaN.
  options = small_options();
  options.dir = "no/such/dir";
  options.background_translation = 1e308;
  EXPECT_EQ(error_of([&] { flow_splits(options); }),
            "FlowOptions.background_translation: must be in [0, 16384] pixels, got 1e+308");
}

// RgbImage's fields are public: a negative side, or pixels that do not match the sides, is refused naming
// the argument, before a size product could turn into a huge allocation or a copy out of bounds.
TEST(FlowData, PanelsRefuseImagesWithBadSides) {
  using testing::error_of;
  const RgbImage pixel{1, 1, {0, 0, 0}};
  EXPECT_EQ(error_of([&] { enlarge(RgbImage{-2, -3, {}}, 2); }),
            "enlarge: image is -3x-2 (sides from 0, at most 268435456 pixels)");
  EXPECT_EQ(error_of([&] { enlarge(RgbImage{1, -1, {}}, 1); }),
            "enlarge: image is -1x1 (sides from 0, at most 268435456 pixels)");
  EXPECT_EQ(error_of([&] { side_by_side({pixel, RgbImage{1, -5, {}}}); }),
            "side_by_side: images[1] is -5x1 (sides from 0, at most 268435456 pixels)");
  EXPECT_EQ(error_of([&] { side_by_side({RgbImage{-1, 4, {}}, RgbImage{-1, 4, {}}}); }),
            "side_by_side: images[0] is 4x-1 (sides from 0, at most 268435456 pixels)");
  EXPECT_EQ(error_of([&] { side_by_side({pixel, RgbImage{1, 2, {0, 0, 0}}}); }),
            "side_by_side: images[1] has 3 bytes but is 2x1 RGB");
  EXPECT_EQ(error_of([&] { enlarge(RgbImage{std::int64_t{1} << 20, std::int64_t{1} << 20, {}}, 1); }),
            "enlarge: image is 1048576x1048576 (sides from 0, at most 268435456 pixels)");
  // A NaN flow vector has no pixel to sample.
  Tensor flow = zeros({2, 3, 3}, {.dtype = kFloat64});
  flow.narrow(0, 1, 1).fill_(std::nan(""));
  EXPECT_EQ(error_of([&] { warp_backward(zeros({1, 3, 3}, {.dtype = kFloat64}), flow); }),
            "warp_backward: the flow at (0, 0) is NaN");
  // Zero-size images are images: the panel of nothing is empty.
  EXPECT_EQ(side_by_side({RgbImage{0, 0, {}}}, 0).pixels.size(), 0u);
  EXPECT_EQ(enlarge(RgbImage{0, 3, {}}, 4).width, 12);
}

TEST(FlowMetrics, AverageEndPointError) {
  const Tensor target = zeros({2, 2, 3, 3}, {.dtype = kFloat64});
  Tensor prediction = zeros({2, 2, 3, 3}, {.dtype = kFloat64});
  prediction.narrow(1, 0, 1).fill_(3.0);
  prediction.narrow(1, 1, 1).fill_(-4.0);
  EXPECT_DOUBLE_EQ(average_epe(prediction, target), 5.0);
  EXPECT_DOUBLE_EQ(average_epe(target, target), 0.0);
  EXPECT_THROW(average_epe(prediction, zeros({2, 2, 3, 4})), Error);
}

TEST(FlowColor, MiddleburyWheelOnKnownVectors) {
  using Rgb = std::array<std::uint8_t, 3>;
  EXPECT_EQ(flow_color(0, 0, 1), (Rgb{255, 255, 255}));  // no motion: white
  EXPECT_EQ(flow_color(1, 0, 1), (Rgb{255, 0, 0}));      // right: red
  EXPECT_EQ(flow_color(-1, 0, 1), (Rgb{0, 209, 255}));   // left: cyan-blue
  EXPECT_EQ(flow_color(0, 1, 1), (Rgb{255, 229, 0}));    // down (image y grows downwards): yellow-orange
  EXPECT_EQ(flow_color(0, -1, 1), (Rgb{88, 0, 255}));    // up: violet
  // Saturation grows with magnitude: half way is half way to white; beyond the maximum, 75% brightness.
  const Rgb half = flow_color(-2, 0, 4);
  EXPECT_EQ(half[0], 127);
  EXPECT_NEAR(half[1], 232, 1);
  EXPECT_EQ(half[2], 255);
  const Rgb over = flow_color(-3, 0, 1);
  EXPECT_EQ(over[0], 0);
  EXPECT_NEAR(over[1], 156, 1);
  EXPECT_NEAR(over[2], 191, 1);
}

TEST(FlowColor, FieldsAndPanelsBecomePngs) {
  Tensor flow = zeros({2, 4, 5}, {.dtype = kFloat64});
  flow.narrow(0, 0, 1).fill_(2.0);  // everything moves right at the largest magnitude: red
  const RgbImage colours = flow_to_rgb(flow);
  ASSERT_EQ(colours.pixels.size(), 3u * 4 * 5);
  EXPECT_EQ(colours.pixels[0], 255);
  EXPECT_EQ(colours.pixels[1], 0);
  const RgbImage panel = side_by_side({colours, gray_to_rgb(full({1, 4, 3}, 0.5))}, 2);
  EXPECT_EQ(panel.width, 5 + 2 + 3);
  EXPECT_EQ(panel.pixels[3 * 5], 255);  // the white gap
  EXPECT_EQ(panel.pixels[3 * 7], 128);  // the gray image
  const RgbImage big = enlarge(panel, 3);
  EXPECT_EQ(big.width, 30);
  EXPECT_EQ(big.height, 12);
  EXPECT_EQ(big.pixels[3 * (30 * 5 + 22)], 128);  // row 5, column 22 comes from pixel (1, 7): the gray image
  const std::string png = encode_png_rgb8(panel, "panel");
  EXPECT_EQ(png.substr(1, 3), "PNG");
  // Decoded as gray, the red column has red's luminance and the gray image its value.
  const GrayImage gray = decode_png_gray8(png, "panel");
  EXPECT_EQ(gray.width, 10);
  EXPECT_NEAR(gray.pixels[7], 128, 1);
}

// 150 Adam steps on a tiny fixed set bring the FPI model's aEPE on that set down by a fifth (150, not
// 100: the Lipschitz bounds on the FPI map's layers slow its first steps).
TEST(FlowTraining, FewStepsReduceEpeOnATinySet) {
  const std::string models = std::string(FPI_SOURCE_DIR) + "/models/";
  const std::string dir = std::string(FPI_SOURCE_DIR) + "/data/denoising";
  for (const char* config : {"flow_fpi", "flow_feedforward"}) {
    SCOPED_TRACE(config);
    train::RunConfig run = train::load_config(
        models + config + ".json", {"data.dir=" + dir, "data.height=32", "data.width=32", "data.max_train_images=4",
                                    "data.validation_images=1", "data.max_test_images=1", "data.train_size=8",
                                    "data.validation_size=1", "data.test_size=1", "optimizer.lr=5e-3"});
    train::Experiment experiment(run);
    const Batch batch = experiment.split("train").batch(0, 0, 8);
    const auto epe = [&] {
      NoGrad no_grad;
      experiment.model().eval();
      const double value = average_epe(experiment.forward(batch).first, batch.at("flow"));
      experiment.model().train();
      return value;
    };
    const double before = epe();
    auto optimizer = train::make_optimizer(run.optimizer, experiment.model().parameters());
    for (int step = 0; step < 150; ++step) {
      optimizer->zero_grad();
      experiment.forward(batch).second.backward();
      optimizer->step();
    }
    const double after = epe();
    EXPECT_LT(after, 0.8 * before) << "before " << before << ", after " << after;
  }
}

}  // namespace
}  // namespace fpi::data
