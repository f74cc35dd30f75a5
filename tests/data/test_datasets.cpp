// The experiments' datasets on the bundled data: shapes and sizes, batches as pure functions of (epoch,
// index, batch size), Bibtex's validation rows carved out of the training file, the toy targets, and the
// denoising patches (real crops of the training images under the square's symmetries, noise of the right
// size, fixed noise for validation and test), with the checksums guarding the images; MSE and PSNR.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <thread>

#include "data/sampling.hpp"
#include "fpi/data/arff.hpp"
#include "fpi/data/dataset.hpp"
#include "fpi/data/datasets.hpp"
#include "fpi/data/image.hpp"
#include "fpi/data/metrics.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi::data {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

const std::string kData = std::string(FPI_SOURCE_DIR) + "/data/";

void expect_contains(const std::string& message, const std::string& fragment) {
  EXPECT_NE(message.find(fragment), std::string::npos) << "'" << message << "' lacks '" << fragment << "'";
}

bool equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector<double>() == b.to_vector<double>();
}

bool equal(const Batch& a, const Batch& b) {
  if (a.fields.size() != b.fields.size()) return false;
  for (std::size_t i = 0; i < a.fields.size(); ++i)
    if (a.fields[i].first != b.fields[i].first || !equal(a.fields[i].second, b.fields[i].second)) return false;
  return true;
}

// What every Dataset promises: batches of the declared fields and shapes (-1 matching any size) that
// cover the split once, and the same batch for the same arguments.
void check_contract(const Dataset& dataset, std::int64_t batch_size, std::int64_t epoch = 0) {
  SCOPED_TRACE(dataset.describe());
  const std::vector<FieldSpec> fields = dataset.fields();
  std::int64_t seen = 0;
  const std::int64_t batches = dataset.num_batches(batch_size);
  for (std::int64_t index = 0; index < batches; ++index) {
    const Batch batch = dataset.batch(epoch, index, batch_size);
    ASSERT_EQ(batch.fields.size(), fields.size());
    for (std::size_t f = 0; f < fields.size(); ++f) {
      EXPECT_EQ(batch.fields[f].first, fields[f].name);
      const Tensor& t = batch.fields[f].second;
      EXPECT_TRUE(t.device().is_cpu());
      ASSERT_EQ(t.dim(), static_cast<std::int64_t>(fields[f].shape.size()) + 1);
      EXPECT_EQ(t.size(0), batch.size());
      for (std::size_t d = 0; d < fields[f].shape.size(); ++d) {
        if (fields[f].shape[d] == -1) continue;
        EXPECT_EQ(t.size(static_cast<std::int64_t>(d) + 1), fields[f].shape[d]);
      }
    }
    EXPECT_LE(batch.size(), std::min(batch_size, dataset.max_batch_size()));
    seen += batch.size();
  }
  EXPECT_EQ(seen, dataset.size());
  if (batches > 0) {
    EXPECT_TRUE(equal(dataset.batch(epoch, batches - 1, batch_size), dataset.batch(epoch, batches - 1, batch_size)));
  }
  expect_contains(error_of([&] { dataset.batch(epoch, batches, batch_size); }), "is out of range");
}

// Each row of features and labels as one byte string, for multiset comparisons.
std::vector<std::string> row_strings(const Tensor& features, const Tensor& labels) {
  std::vector<std::string> rows;
  const std::vector<float> f = features.to_vector<float>(), l = labels.to_vector<float>();
  const std::size_t nf = static_cast<std::size_t>(features.size(1)), nl = static_cast<std::size_t>(labels.size(1));
  for (std::int64_t r = 0; r < features.size(0); ++r) {
    std::string row(reinterpret_cast<const char*>(f.data() + r * nf), nf * sizeof(float));
    row.append(reinterpret_cast<const char*>(l.data() + r * nl), nl * sizeof(float));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> all_rows(const Dataset& dataset, std::int64_t epoch) {
  std::vector<std::string> rows;
  for (std::int64_t i = 0; i < dataset.num_batches(500); ++i) {
    const Batch batch = dataset.batch(epoch, i, 500);
    for (std::string& row : row_strings(batch.at("features"), batch.at("labels"))) rows.push_back(std::move(row));
  }
  return rows;
}

class BibtexSplits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    splits_ = bibtex_splits({.dir = kData + "bibtex", .split_seed = 3, .shuffle_seed = 5});
    const MultiLabelData train = load_bibtex(kData + "bibtex", Split::Train);
    file_rows_ = new std::vector<std::string>(row_strings(train.features, train.labels));
  }
  static void TearDownTestSuite() {
    delete file_rows_;
    splits_ = {};
  }
  static Splits splits_;
  static std::vector<std::string>* file_rows_;
};
Splits BibtexSplits::splits_;
std::vector<std::string>* BibtexSplits::file_rows_ = nullptr;

TEST_F(BibtexSplits, SizesFieldsAndContract) {
  EXPECT_EQ(splits_.train->size(), 4392);
  EXPECT_EQ(splits_.validation->size(), 488);  // round(0.1 * 4880)
  EXPECT_EQ(splits_.test->size(), kBibtexTestRows);
  for (const auto& split : {splits_.train, splits_.validation, splits_.test}) {
    const std::vector<FieldSpec> fields = split->fields();
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0].name, "features");
    EXPECT_EQ(fields[0].shape, (Shape{kBibtexFeatures}));
    EXPECT_EQ(fields[1].name, "labels");
    EXPECT_EQ(fields[1].shape, (Shape{kBibtexLabels}));
  }
  check_contract(*splits_.train, 40);
  check_contract(*splits_.validation, 100, 2);
  check_contract(*splits_.test, 1000);
  EXPECT_EQ(splits_.train->describe(), "Bibtex train: 4392 of 4880 rows of bibtex-train.arff, shuffled per epoch");
}

TEST_F(BibtexSplits, TrainAndValidationPartitionTheTrainingFile) {
  std::vector<std::string> train = all_rows(*splits_.train, 0);
  std::vector<std::string> validation = all_rows(*splits_.validation, 0);
  // Validation keeps file order: its rows are a subsequence of the file (greedy matching is exact for that).
  std::size_t position = 0;
  for (const std::string& row : validation) {
    while (position < file_rows_->size() && (*file_rows_)[position] != row) ++position;
    ASSERT_LT(position, file_rows_->size()) << "a validation row is out of file order or not in the file";
    ++position;
  }
  std::vector<std::string> together = train;
  together.insert(together.end(), validation.begin(), validation.end());
  std::vector<std::string> file = *file_rows_;
  std::sort(together.begin(), together.end());
  std::sort(file.begin(), file.end());
  EXPECT_TRUE(together == file) << "train + validation is not the training file's rows, each once";
}

TEST_F(BibtexSplits, TrainIsReshuffledEachEpochAndEvaluationSplitsAreNot) {
  EXPECT_TRUE(equal(splits_.train->batch(1, 3, 40), splits_.train->batch(1, 3, 40)));
  EXPECT_FALSE(equal(splits_.train->batch(0, 0, 40), splits_.train->batch(1, 0, 40)));
  std::vector<std::string> epoch0 = all_rows(*splits_.train, 0), epoch1 = all_rows(*splits_.train, 1);
  EXPECT_NE(epoch0, epoch1);
  std::sort(epoch0.begin(), epoch0.end());
  std::sort(epoch1.begin(), epoch1.end());
  EXPECT_EQ(epoch0, epoch1);
  EXPECT_TRUE(equal(splits_.validation->batch(0, 0, 64), splits_.validation->batch(4, 0, 64)));
  // The test split is the test file in file order.
  const MultiLabelData test = load_bibtex(kData + "bibtex", Split::Test);
  const Batch first = splits_.test->batch(9, 0, 7);
  EXPECT_TRUE(equal(first.at("features"), test.features.slice(0, 0, 7)));
  EXPECT_TRUE(equal(first.at("labels"), test.labels.slice(0, 0, 7)));
}

TEST_F(BibtexSplits, SplitSeedChoosesOtherRowsAndZeroFractionKeepsAll) {
  const Splits other = bibtex_splits({.dir = kData + "bibtex", .validation_fraction = 0.0, .split_seed = 4});
  EXPECT_EQ(other.train->size(), kBibtexTrainRows);
  EXPECT_EQ(other.validation->size(), 0);
  EXPECT_EQ(other.validation->num_batches(10), 0);
  const Splits reseeded = bibtex_splits({.dir = kData + "bibtex", .split_seed = 4});
  EXPECT_NE(all_rows(*reseeded.validation, 0), all_rows(*splits_.validation, 0));
}

TEST(BibtexOptionsCheck, BadOptionsAreNamed) {
  expect_contains(error_of([] { bibtex_splits({.dir = kData + "bibtex", .validation_fraction = 0.6}); }),
                  "BibtexOptions.validation_fraction: 0.6 is outside [0, 0.5]");
  expect_contains(error_of([] { bibtex_splits({.dir = kData + "no_such_dir"}); }),
                  "BibtexOptions.dir: '" + kData + "no_such_dir' is not a folder");
}

TEST(ToySplits, TargetsAreClampedInputs) {
  const Splits splits = toy_splits({.dim = 7, .train_size = 300, .validation_size = 50, .test_size = 80, .seed = 2});
  EXPECT_EQ(splits.train->size(), 300);
  EXPECT_EQ(splits.validation->size(), 50);
  EXPECT_EQ(splits.test->size(), 80);
  std::int64_t clamped = 0, total = 0;
  for (const auto& split : {splits.train, splits.validation, splits.test}) {
    check_contract(*split, 32);
    EXPECT_EQ(split->fields()[0].name, "input");
    EXPECT_EQ(split->fields()[0].shape, (Shape{7}));
    EXPECT_EQ(split->fields()[1].name, "target");
    for (std::int64_t i = 0; i < split->num_batches(64); ++i) {
      const Batch batch = split->batch(0, i, 64);
      const std::vector<double> a = batch.at("input").to_vector<double>(), t = batch.at("target").to_vector<double>();
      for (std::size_t k = 0; k < a.size(); ++k) {
        EXPECT_EQ(t[k], std::clamp(a[k], -1.0, 1.0));
        clamped += std::abs(a[k]) > 1.0;
      }
      total += static_cast<std::int64_t>(a.size());
    }
  }
  // a ~ N(0, 4): P(|a| > 1) = P(|z| > 0.5) = 0.617.
  EXPECT_NEAR(static_cast<double>(clamped) / static_cast<double>(total), 0.617, 0.03);
}

TEST(ToySplits, DeterministicPerSeedAndShuffledPerEpoch) {
  const ToyOptions options{.train_size = 100, .validation_size = 20, .test_size = 20, .seed = 1};
  const Splits a = toy_splits(options), b = toy_splits(options);
  EXPECT_TRUE(equal(a.train->batch(3, 1, 16), b.train->batch(3, 1, 16)));
  EXPECT_TRUE(equal(a.test->batch(0, 0, 20), b.test->batch(5, 0, 20)));
  EXPECT_FALSE(equal(a.train->batch(0, 0, 16), a.train->batch(1, 0, 16)));
  const Splits other = toy_splits({.train_size = 100, .validation_size = 20, .test_size = 20, .seed = 2});
  EXPECT_FALSE(equal(a.test->batch(0, 0, 20), other.test->batch(0, 0, 20)));
  EXPECT_EQ(toy_splits({.dtype = kFloat64}).train->batch(0, 0, 4).at("input").dtype(), kFloat64);
}

TEST(ToySplits, BadOptionsAreNamed) {
  expect_contains(error_of([] { toy_splits({.dim = 0}); }), "ToyOptions.dim: must be at least 1, got 0");
  expect_contains(error_of([] { toy_splits({.train_size = 0}); }), "ToyOptions.train_size");
  expect_contains(error_of([] { toy_splits({.test_size = -1}); }), "ToyOptions.test_size");
  expect_contains(error_of([] { toy_splits({.input_scale = -1.0}); }), "ToyOptions.input_scale");
  expect_contains(error_of([] { toy_splits({.dim = 1 << 20, .train_size = 1 << 20}); }), "ToyOptions.train_size");
}

GrayImage bundled(const std::string& relative) {
  const std::string path = kData + "denoising/" + relative;
  std::ifstream in(path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return decode_png_gray8(bytes, path);
}

std::vector<std::uint8_t> to_bytes(const Tensor& clean) {
  std::vector<std::uint8_t> out;
  for (const double v : clean.to_vector<double>()) out.push_back(static_cast<std::uint8_t>(std::lround(v * 255.0)));
  return out;
}

// Whether `patch` (side p, row-major) is a crop of `image` under a symmetry of the square (or only the
// identity when `symmetries` is false).
bool is_crop(const std::vector<std::uint8_t>& patch, std::int64_t p, const GrayImage& image, bool symmetries) {
  for (int s = 0; s < (symmetries ? 8 : 1); ++s)
    for (std::int64_t y = 0; y + p <= image.height; ++y)
      for (std::int64_t x = 0; x + p <= image.width; ++x) {
        bool match = true;
        for (std::int64_t r = 0; match && r < p; ++r)
          for (std::int64_t c = 0; match && c < p; ++c) {
            std::int64_t a = r, b = c;
            if (s & 4) std::swap(a, b);
            if (s & 1) b = p - 1 - b;
            if (s & 2) a = p - 1 - a;
            match = patch[r * p + c] == image.pixels[(y + a) * image.width + x + b];
          }
        if (match) return true;
      }
  return false;
}

DenoisingOptions small_denoising() {
  return {.dir = kData + "denoising", .patches_per_epoch = 100, .validation_images = 2, .max_train_images = 3,
          .max_test_images = 4, .seed = 7, .test_noise_seed = 9};
}

TEST(DenoisingSplits, ShapesSizesAndContract) {
  const Splits splits = denoising_splits(small_denoising());
  EXPECT_EQ(splits.train->size(), 100);
  EXPECT_EQ(splits.validation->size(), 2);
  EXPECT_EQ(splits.test->size(), 4);
  EXPECT_EQ(splits.train->fields()[0].name, "noisy");
  EXPECT_EQ(splits.train->fields()[0].shape, (Shape{1, 40, 40}));
  EXPECT_EQ(splits.train->fields()[1].name, "clean");
  EXPECT_EQ(splits.test->fields()[1].shape, (Shape{1, -1, -1}));
  EXPECT_EQ(splits.test->max_batch_size(), 1);
  EXPECT_EQ(splits.test->num_batches(40), 4);
  check_contract(*splits.train, 32);
  check_contract(*splits.validation, 8);
  check_contract(*splits.test, 1);
  EXPECT_EQ(splits.test->batch(0, 0, 1).at("clean").shape(), (Shape{1, 1, 481, 321}));
  EXPECT_EQ(splits.test->batch(0, 3, 1).at("clean").shape(), (Shape{1, 1, 321, 481}));  // test004: landscape
  EXPECT_EQ(splits.validation->describe(),
            "Denoising validation: 2 whole Train400 images (test_399.png .. test_400.png), sigma 25, fixed noise");
}

TEST(DenoisingSplits, PatchesAreCropsOfTheTrainingImagesUnderSymmetries) {
  const std::vector<GrayImage> images = {bundled("Train400/test_001.png"), bundled("Train400/test_002.png"),
                                         bundled("Train400/test_003.png")};
  for (const bool flips : {true, false}) {
    DenoisingOptions options = small_denoising();
    options.flips = flips;
    options.patch_size = 12;
    const Tensor clean = denoising_splits(options).train->batch(0, 0, 6).at("clean");
    for (std::int64_t i = 0; i < 6; ++i) {
      const std::vector<std::uint8_t> patch = to_bytes(clean.select(0, i));
      const bool found = std::any_of(images.begin(), images.end(),
                                     [&](const GrayImage& image) { return is_crop(patch, 12, image, flips); });
      EXPECT_TRUE(found) << "patch " << i << (flips ? " (with flips)" : " (no flips)") << " is not a crop";
    }
  }
}

TEST(DenoisingSplits, PatchesArePureFunctionsOfEpochAndIndex) {
  const Splits splits = denoising_splits(small_denoising());
  const Batch whole = splits.train->batch(2, 0, 16);
  const Batch second_half = splits.train->batch(2, 1, 8);
  EXPECT_TRUE(equal(second_half.at("noisy"), whole.at("noisy").slice(0, 8, 16)));
  EXPECT_TRUE(equal(second_half.at("clean"), whole.at("clean").slice(0, 8, 16)));
  EXPECT_TRUE(equal(whole, splits.train->batch(2, 0, 16)));
  EXPECT_FALSE(equal(whole.at("clean"), splits.train->batch(3, 0, 16).at("clean")));
  // A second construction with the same options hands out the same batches.
  EXPECT_TRUE(equal(whole, denoising_splits(small_denoising()).train->batch(2, 0, 16)));
}

TEST(DenoisingSplits, BatchesFromSeveralThreadsMatchOneThread) {
  const Splits splits = denoising_splits(small_denoising());
  std::vector<Batch> expected;
  for (std::int64_t i = 0; i < 4; ++i) expected.push_back(splits.train->batch(1, i, 25));
  std::vector<Batch> got(4);
  std::vector<std::thread> threads;
  for (std::int64_t i = 0; i < 4; ++i) threads.emplace_back([&, i] { got[i] = splits.train->batch(1, i, 25); });
  for (std::thread& thread : threads) thread.join();
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(equal(got[i], expected[i])) << i;
}

TEST(DenoisingSplits, NoiseHasTheRequestedDistributionAndIsNotClipped) {
  DenoisingOptions options = small_denoising();
  options.patches_per_epoch = 64;
  const Batch batch = denoising_splits(options).train->batch(0, 0, 64);
  const std::vector<double> noisy = batch.at("noisy").to_vector<double>();
  const std::vector<double> clean = batch.at("clean").to_vector<double>();
  const double sigma = 25.0 / 255.0;
  double sum = 0.0, squares = 0.0;
  std::int64_t beyond_two = 0, outside_unit = 0;
  for (std::size_t i = 0; i < noisy.size(); ++i) {
    const double n = noisy[i] - clean[i];
    sum += n;
    squares += n * n;
    beyond_two += std::abs(n) > 2.0 * sigma;
    outside_unit += noisy[i] < 0.0 || noisy[i] > 1.0;
    ASSERT_TRUE(clean[i] >= 0.0 && clean[i] <= 1.0);
  }
  const auto count = static_cast<double>(noisy.size());  // 102400
  EXPECT_NEAR(sum / count, 0.0, 0.002);
  EXPECT_NEAR(std::sqrt(squares / count) / sigma, 1.0, 0.01);
  EXPECT_NEAR(static_cast<double>(beyond_two) / count, 0.0455, 0.003);  // P(|z| > 2)
  EXPECT_GT(outside_unit, 0);
}

TEST(DenoisingSplits, ZigguratMatchesTheNormalDistribution) {
  Generator generator(123);
  const int n = 2000001;  // odd: the last draw takes a 64-bit step of its own
  std::vector<double> draws(n);
  detail::Ziggurat::instance().fill(generator, 1.0, draws.data(), n);
  double sum = 0.0, squares = 0.0, fourth = 0.0;
  int beyond_one = 0, beyond_three = 0, beyond_tail = 0;
  for (const double z : draws) {
    sum += z;
    squares += z * z;
    fourth += z * z * z * z;
    beyond_one += std::abs(z) > 1.0;
    beyond_three += std::abs(z) > 3.0;
    beyond_tail += std::abs(z) > 3.6541528853610088;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.003);
  EXPECT_NEAR(squares / n, 1.0, 0.004);
  EXPECT_NEAR(fourth / n, 3.0, 0.03);
  EXPECT_NEAR(beyond_one / double(n), 0.317311, 0.0015);
  EXPECT_NEAR(beyond_three / double(n), 0.0026998, 0.0002);
  EXPECT_NEAR(beyond_tail / double(n), 0.000258, 0.00005);  // the tail sampler's share
  // The two halves of a 64-bit step are independent draws.
  double pairs = 0.0;
  for (int i = 0; i + 1 < n; i += 2) pairs += draws[i] * draws[i + 1];
  EXPECT_NEAR(pairs / (n / 2), 0.0, 0.005);
}

TEST(DenoisingSplits, EvaluationImagesAreWholeWithFixedNoise) {
  const Splits splits = denoising_splits(small_denoising());
  const Batch test = splits.test->batch(0, 0, 1);
  EXPECT_EQ(to_bytes(test.at("clean").select(0, 0)), bundled("BSD68/test001.png").pixels);
  EXPECT_TRUE(equal(test, splits.test->batch(5, 0, 3)));
  EXPECT_TRUE(equal(test, denoising_splits(small_denoising()).test->batch(0, 0, 1)));
  const Batch validation = splits.validation->batch(0, 1, 1);
  EXPECT_EQ(validation.at("clean").shape(), (Shape{1, 1, 180, 180}));
  EXPECT_EQ(to_bytes(validation.at("clean").select(0, 0)), bundled("Train400/test_400.png").pixels);
  DenoisingOptions reseeded = small_denoising();
  reseeded.test_noise_seed = 10;
  EXPECT_FALSE(equal(test.at("noisy"), denoising_splits(reseeded).test->batch(0, 0, 1).at("noisy")));
  // max_train_images leaves the held-out images where they are.
  reseeded.test_noise_seed = 9;
  reseeded.max_train_images = 1;
  EXPECT_TRUE(equal(validation, denoising_splits(reseeded).validation->batch(0, 1, 1)));
  const std::vector<double> noisy = test.at("noisy").to_vector<double>(), clean = test.at("clean").to_vector<double>();
  double squares = 0.0;
  for (std::size_t i = 0; i < noisy.size(); ++i) squares += (noisy[i] - clean[i]) * (noisy[i] - clean[i]);
  EXPECT_NEAR(std::sqrt(squares / static_cast<double>(noisy.size())) * 255.0, 25.0, 0.25);
}

TEST(DenoisingSplits, WholeBundledSetLoadsWithChecksums) {
  const Splits splits = denoising_splits({.dir = kData + "denoising"});
  EXPECT_EQ(splits.train->size(), 25600);
  EXPECT_EQ(splits.validation->size(), 8);
  EXPECT_EQ(splits.test->size(), 68);
  expect_contains(splits.train->describe(), "from 392 Train400 images (test_001.png .. test_392.png)");
  EXPECT_EQ(splits.train->batch(0, 199, 128).at("noisy").shape(), (Shape{128, 1, 40, 40}));
  EXPECT_EQ(splits.test->batch(0, 67, 1).at("noisy").shape(), (Shape{1, 1, 321, 481}));
  // data/denoising/PROVENANCE.md gives the mean of the per-image mean pixel values of BSD68, from an
  // independent decoder: 109.85.
  double means = 0.0;
  for (std::int64_t i = 0; i < 68; ++i) means += splits.test->batch(0, i, 1).at("clean").mean().item() * 255.0;
  EXPECT_NEAR(means / 68.0, 109.85, 0.005);
  EXPECT_EQ(denoising_splits({.dir = kData + "denoising", .dtype = kFloat64}).test->batch(0, 0, 1).at("noisy").dtype(),
            kFloat64);
}

TEST(DenoisingMetrics, MseAndPsnrOfKnownValues) {
  const Tensor target = zeros({2, 2});
  const Tensor prediction = tensor({0.0, 1.0, 2.0, 3.0}).reshape({2, 2});
  EXPECT_DOUBLE_EQ(mse(prediction, target), 3.5);
  EXPECT_DOUBLE_EQ(psnr(prediction, target), 10.0 * std::log10(1.0 / 3.5));
  EXPECT_DOUBLE_EQ(psnr(prediction, target, 255.0), 10.0 * std::log10(255.0 * 255.0 / 3.5));
  EXPECT_EQ(psnr(target, target), std::numeric_limits<double>::infinity());
  // The scale does not matter as long as the peak follows it.
  EXPECT_NEAR(psnr(prediction * 255.0, target, 255.0), psnr(prediction, target), 1e-12);
  expect_contains(error_of([&] { mse(prediction, zeros({4})); }), "mse: prediction [2, 2] and target [4]");
  expect_contains(error_of([&] { psnr(prediction, target, 0.0); }), "psnr: peak must be positive");
}

TEST(DenoisingMetrics, MeanPsnrAveragesPerImageValuesNotThePooledError) {
  // Image 0 has MSE 0.01 (20 dB), image 1 MSE 0.0001 (40 dB): the mean of PSNRs is 30 dB, while the PSNR of
  // the pooled MSE (0.00505) would be 22.97 dB.
  const Tensor targets = zeros({2, 1, 2, 2}, {.dtype = kFloat64});
  const Tensor predictions =
      tensor({0.1, 0.1, -0.1, 0.1, 0.01, -0.01, 0.01, 0.01}, {.dtype = kFloat64}).reshape({2, 1, 2, 2});
  const std::vector<double> each = psnr_per_sample(predictions, targets);
  ASSERT_EQ(each.size(), 2u);
  EXPECT_NEAR(each[0], 20.0, 1e-9);
  EXPECT_NEAR(each[1], 40.0, 1e-9);
  EXPECT_NEAR(mean_psnr(predictions, targets), 30.0, 1e-9);
  EXPECT_NEAR(psnr(predictions, targets), 10.0 * std::log10(1.0 / 0.00505), 1e-9);
}

TEST(DenoisingMetrics, NoisyTestImagesScoreTheNoiseLevelsPsnr) {
  // sigma 25 on the 0-255 scale: PSNR = 20 log10(255 / 25) = 20.17 dB, up to the sampled noise's deviation.
  const Splits splits = denoising_splits(small_denoising());
  for (std::int64_t i = 0; i < splits.test->size(); ++i) {
    const Batch batch = splits.test->batch(0, i, 1);
    EXPECT_NEAR(mean_psnr(batch.at("noisy"), batch.at("clean")), 20.0 * std::log10(255.0 / 25.0), 0.05) << i;
  }
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("fpi_test_datasets_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A copy of the bundled folder with Train400 test_001, test_002 (train) and test_400 (validation) and
// BSD68 test001, where `replace` (a path relative to the folder) gets the bytes of `with`.
void copy_small_set(const fs::path& to, const std::string& replace = "", const std::string& with = "") {
  fs::create_directories(to / "Train400");
  fs::create_directories(to / "BSD68");
  const fs::path from = kData + "denoising";
  for (const char* name : {"SHA256SUMS", "Train400/test_001.png", "Train400/test_002.png", "Train400/test_400.png",
                           "BSD68/test001.png"})
    fs::copy_file(from / (name == replace ? with : std::string(name)), to / name);
}

DenoisingOptions copied(const fs::path& dir) {
  return {.dir = dir.string(), .patches_per_epoch = 8, .validation_images = 1};
}

TEST(DenoisingChecksums, ACorruptedImageIsNamed) {
  const TempDir dir;
  copy_small_set(dir.path());
  EXPECT_EQ(denoising_splits(copied(dir.path())).train->describe().find("Denoising train: 8 random"), 0u);

  const TempDir changed;
  // A valid PNG, but not the one the sums list: only the checksum can tell.
  copy_small_set(changed.path(), "Train400/test_002.png", "Train400/test_003.png");
  const std::string path = (changed.path() / "Train400/test_002.png").string();
  expect_contains(error_of([&] { denoising_splits(copied(changed.path())); }),
                  path + ": sha256 mismatch (expected "
                         "a2a025c95437dbf27012e937254f39cebf4e86af6218219977447223a0696170");
  DenoisingOptions unchecked = copied(changed.path());
  unchecked.verify_checksums = false;
  EXPECT_EQ(denoising_splits(unchecked).train->size(), 8);

  const TempDir flipped;
  copy_small_set(flipped.path());
  const fs::path victim = flipped.path() / "BSD68/test001.png";
  {
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(5000);
    file.put('\x5a');
  }
  expect_contains(error_of([&] { denoising_splits(copied(flipped.path())); }),
                  victim.string() + ": sha256 mismatch");
}

TEST(DenoisingChecksums, AnUnlistedImageIsRefused) {
  const TempDir dir;
  copy_small_set(dir.path());
  fs::copy_file(dir.path() / "Train400/test_001.png", dir.path() / "Train400/extra.png");
  expect_contains(error_of([&] { denoising_splits(copied(dir.path())); }),
                  (dir.path() / "Train400/extra.png").string() + ": not listed in " +
                      (dir.path() / "SHA256SUMS").string());
}

// A split of near 2^63 samples (fpi's own datasets stop at kMaxEpochSamples, a user's Dataset need not)
// counts and bounds its batches exactly: ceil(size / batch) must not be computed as (size + batch - 1) / batch.
class HugeDataset final : public Dataset {
 public:
  std::vector<FieldSpec> fields() const override { return {}; }
  std::int64_t size() const override { return std::numeric_limits<std::int64_t>::max(); }
  Batch batch(std::int64_t, std::int64_t, std::int64_t) const override { return {}; }
  std::string describe() const override { return "huge"; }
};

TEST(BatchBounds, SizesNearTheInt64LimitDoNotOverflow) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_EQ(HugeDataset().num_batches(1000), kMax / 1000 + 1);
  EXPECT_EQ(HugeDataset().num_batches(kMax), 1);
  const std::int64_t last = kMax / 1000;  // the short last batch
  using Bounds = std::pair<std::int64_t, std::int64_t>;
  EXPECT_EQ(detail::batch_bounds("huge", kMax, kMax, 0, 0, 1000), Bounds(0, 1000));
  EXPECT_EQ(detail::batch_bounds("huge", kMax, kMax, 0, last, 1000), Bounds(last * 1000, kMax));
  EXPECT_EQ(detail::batch_bounds("huge", kMax, kMax, 0, 0, kMax), Bounds(0, kMax));
  expect_contains(error_of([&] { detail::batch_bounds("huge", kMax, kMax, 0, last + 1, 1000); }),
                  "huge: batch index 9223372036854776 is out of range (9223372036854776 batches of 1000)");
}

TEST(DenoisingOptionsCheck, BadOptionsAreNamed) {
  const auto with = [](auto change) {
    DenoisingOptions options = small_denoising();
    change(options);
    return error_of([&] { denoising_splits(options); });
  };
  expect_contains(with([](DenoisingOptions& o) { o.patch_size = 500; }),
                  "DenoisingOptions.patch_size: 500 is larger than the smallest training image (180)");
  // A patch no image can hold is refused before any file is read.
  expect_contains(with([](DenoisingOptions& o) {
                    o.patch_size = kMaxImageSide + 1;
                    o.dir = "no/such/dir";
                  }),
                  "DenoisingOptions.patch_size: must be from 1 to 16384 (the largest image side fpi reads), got 16385");
  expect_contains(with([](DenoisingOptions& o) { o.sigma = 0.0; }), "DenoisingOptions.sigma: 0 is outside (0, 255]");
  expect_contains(with([](DenoisingOptions& o) { o.sigma = std::nan(""); }), "DenoisingOptions.sigma: nan");
  expect_contains(with([](DenoisingOptions& o) { o.patches_per_epoch = 0; }), "DenoisingOptions.patches_per_epoch");
  expect_contains(with([](DenoisingOptions& o) { o.patches_per_epoch = kMaxEpochSamples + 1; }),
                  "DenoisingOptions.patches_per_epoch: must be from 1 to 1000000000, got 1000000001");
  expect_contains(with([](DenoisingOptions& o) { o.validation_images = 400; }),
                  "DenoisingOptions.validation_images: 400 leaves no training image");
  expect_contains(with([](DenoisingOptions& o) { o.max_test_images = -1; }), "DenoisingOptions.max_test_images");
  expect_contains(with([](DenoisingOptions& o) { o.dir = "no/such/dir"; }),
                  "DenoisingOptions.dir: 'no/such/dir' is not a folder");
}

}  // namespace
}  // namespace fpi::data
