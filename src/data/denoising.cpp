// Gaussian denoising data (DnCNN's standard sets): random patches of Train400 for training, whole
// held-out Train400 images for validation and whole BSD68 images for testing. Images stay in memory as
// 8-bit gray (24 MB for all 468) and every batch is cut, scaled and noised on demand from a generator
// seeded by what identifies its samples, so batches need no shared state and cost no memory up front.
#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <memory>

#include "data/sampling.hpp"
#include "fpi/data/checksum.hpp"
#include "fpi/data/datasets.hpp"
#include "fpi/data/image.hpp"
#include "fpi/io/file.hpp"

namespace fpi::data {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kPatchStream = 11, kValidationStream = 12, kTestStream = 13;
const std::string kTrainFolder = "Train400", kTestFolder = "BSD68";

using ImageList = std::shared_ptr<const std::vector<GrayImage>>;

// pixel / 255 for every 8-bit value, so cutting a patch is a table look-up per pixel.
template <class T>
const std::array<T, 256>& pixel_scale() {
  static const std::array<T, 256> table = [] {
    std::array<T, 256> out{};
    for (int v = 0; v < 256; ++v) out[v] = static_cast<T>(v) / T(255);
    return out;
  }();
  return table;
}

// Writes a rows x cols block of `image`, starting at pixel `start` and stepping `row_step` between rows
// and `col_step` along them (negative for flips), as clean values and clean + noise_scale * N(0, 1).
template <class T>
void cut(const GrayImage& image, std::int64_t start, std::int64_t row_step, std::int64_t col_step, std::int64_t rows,
         std::int64_t cols, double noise_scale, Generator& generator, T* noisy, T* clean) {
  detail::Ziggurat::instance().fill(generator, noise_scale, noisy, rows * cols);
  const std::array<T, 256>& scale = pixel_scale<T>();
  const std::uint8_t* pixels = image.pixels.data();
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint8_t* row = pixels + start + r * row_step;
    for (std::int64_t c = 0; c < cols; ++c) {
      const T value = scale[row[c * col_step]];
      *clean++ = value;
      *noisy++ += value;
    }
  }
}

class PatchDataset final : public Dataset {
 public:
  PatchDataset(ImageList images, const DenoisingOptions& options, std::string description)
      : images_(std::move(images)), options_(options), description_(std::move(description)) {}

  std::vector<FieldSpec> fields() const override {
    const std::int64_t p = options_.patch_size;
    return {{"noisy", {1, p, p}}, {"clean", {1, p, p}}};
  }
  std::int64_t size() const override { return options_.patches_per_epoch; }
  std::string describe() const override { return description_; }

  Batch batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const override {
    const auto [begin, end] = detail::batch_bounds(description_, size(), size(), epoch, index, batch_size);
    const std::int64_t p = options_.patch_size;
    Tensor noisy = empty({end - begin, 1, p, p}, {.dtype = options_.dtype});
    Tensor clean = empty(noisy.shape(), {.dtype = options_.dtype});
    if (options_.dtype == kFloat32) fill(epoch, begin, end, noisy.data<float>(), clean.data<float>());
    else fill(epoch, begin, end, noisy.data<double>(), clean.data<double>());
    return {{{"noisy", std::move(noisy)}, {"clean", std::move(clean)}}};
  }

 private:
  // Patch j of an epoch: an image, a position, one of the 8 symmetries of the square (when flips are on)
  // and its noise, all from one generator seeded by (seed, epoch, j): the same patch whatever the batch
  // size or the order batches are asked for.
  template <class T>
  void fill(std::int64_t epoch, std::int64_t begin, std::int64_t end, T* noisy, T* clean) const {
    const std::int64_t p = options_.patch_size;
    const double noise_scale = options_.sigma / 255.0;
    for (std::int64_t j = begin; j < end; ++j) {
      Generator generator(detail::mix_seed({options_.seed, kPatchStream, std::uint64_t(epoch), std::uint64_t(j)}));
      const GrayImage& image = (*images_)[generator.next_u64() % images_->size()];
      const auto y0 = static_cast<std::int64_t>(generator.next_u64() % std::uint64_t(image.height - p + 1));
      const auto x0 = static_cast<std::int64_t>(generator.next_u64() % std::uint64_t(image.width - p + 1));
      const std::uint64_t symmetry = options_.flips ? generator.next_u64() & 7 : 0;
      // Where output pixel (r, c) comes from: transpose first (bit 2), then mirror the columns (bit 0)
      // and the rows (bit 1) of the patch. The map is affine, so two differences give its steps.
      const auto source = [&](std::int64_t r, std::int64_t c) {
        if (symmetry & 4) std::swap(r, c);
        if (symmetry & 1) c = p - 1 - c;
        if (symmetry & 2) r = p - 1 - r;
        return (y0 + r) * image.width + x0 + c;
      };
      const std::int64_t start = source(0, 0);
      const std::int64_t offset = (j - begin) * p * p;
      cut(image, start, source(1, 0) - start, source(0, 1) - start, p, p, noise_scale, generator, noisy + offset,
          clean + offset);
    }
  }

  ImageList images_;
  DenoisingOptions options_;
  std::string description_;
};

// Whole images with noise fixed by (test_noise_seed, stream, image index), whatever the epoch.
class ImageDataset final : public Dataset {
 public:
  ImageDataset(ImageList images, const DenoisingOptions& options, std::uint64_t stream, std::string description)
      : images_(std::move(images)), options_(options), stream_(stream), description_(std::move(description)) {}

  std::vector<FieldSpec> fields() const override { return {{"noisy", {1, -1, -1}}, {"clean", {1, -1, -1}}}; }
  std::int64_t size() const override { return static_cast<std::int64_t>(images_->size()); }
  std::int64_t max_batch_size() const override { return 1; }
  std::string describe() const override { return description_; }

  Batch batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const override {
    detail::batch_bounds(description_, size(), 1, epoch, index, batch_size);
    const GrayImage& image = (*images_)[static_cast<std::size_t>(index)];
    Generator generator(detail::mix_seed({options_.test_noise_seed, stream_, std::uint64_t(index)}));
    Tensor noisy = empty({1, 1, image.height, image.width}, {.dtype = options_.dtype});
    Tensor clean = empty(noisy.shape(), {.dtype = options_.dtype});
    const double noise_scale = options_.sigma / 255.0;
    if (options_.dtype == kFloat32)
      cut(image, 0, image.width, 1, image.height, image.width, noise_scale, generator, noisy.data<float>(),
          clean.data<float>());
    else
      cut(image, 0, image.width, 1, image.height, image.width, noise_scale, generator, noisy.data<double>(),
          clean.data<double>());
    return {{{"noisy", std::move(noisy)}, {"clean", std::move(clean)}}};
  }

 private:
  ImageList images_;
  DenoisingOptions options_;
  std::uint64_t stream_;
  std::string description_;
};

// The names of the .png files in dir/folder, sorted.
std::vector<std::string> png_names(const std::string& dir, const std::string& folder) {
  const fs::path path = fs::path(dir) / folder;
  std::error_code ec;
  FPI_CHECK(fs::is_directory(path, ec), "DenoisingOptions.dir: '", path.string(), "' is not a folder");
  std::vector<std::string> names;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".png") names.push_back(it->path().filename().string());
  FPI_CHECK(!ec, "DenoisingOptions.dir: cannot list '", path.string(), "': ", ec.message());
  std::sort(names.begin(), names.end());
  FPI_CHECK(!names.empty(), "DenoisingOptions.dir: '", path.string(), "' holds no .png file");
  return names;
}

class ImageLoader {
 public:
  explicit ImageLoader(const DenoisingOptions& options) : dir_(options.dir) {
    if (!options.verify_checksums) return;
    sums_path_ = (fs::path(dir_) / "SHA256SUMS").string();
    for (Sha256Entry& entry : parse_sha256sums(io::read_file(sums_path_), sums_path_))
      sums_.emplace(fs::path(entry.path).lexically_normal().string(), std::move(entry.sha256));
    verify_ = true;
  }

  ImageList load(const std::string& folder, const std::vector<std::string>& names) const {
    auto images = std::make_shared<std::vector<GrayImage>>();
    images->reserve(names.size());
    for (const std::string& name : names) {
      const std::string relative = folder + "/" + name;
      const std::string path = (fs::path(dir_) / relative).string();
      const std::string bytes = io::read_file(path);
      if (verify_) {
        const auto found = sums_.find(relative);
        FPI_CHECK(found != sums_.end(), path, ": not listed in ", sums_path_,
                  "; add its sha256 there or set verify_checksums to false");
        check_sha256(bytes, found->second, path);
      }
      images->push_back(decode_png_gray8(bytes, path));
    }
    return images;
  }

 private:
  std::string dir_;
  bool verify_ = false;
  std::string sums_path_;
  std::map<std::string, std::string> sums_;
};

std::vector<std::string> first(const std::vector<std::string>& names, std::int64_t count) {
  return {names.begin(), names.begin() + std::min<std::int64_t>(count, std::ssize(names))};
}

}  // namespace

Splits denoising_splits(const DenoisingOptions& options) {
  const DenoisingOptions& o = options;
  FPI_CHECK(o.sigma > 0.0 && o.sigma <= 255.0, "DenoisingOptions.sigma: ", o.sigma, " is outside (0, 255]");
  FPI_CHECK(o.patch_size >= 1 && o.patch_size <= kMaxImageSide, "DenoisingOptions.patch_size: must be from 1 to ",
            kMaxImageSide, " (the largest image side fpi reads), got ", o.patch_size);
  FPI_CHECK(o.patches_per_epoch >= 1 && o.patches_per_epoch <= kMaxEpochSamples,
            "DenoisingOptions.patches_per_epoch: must be from 1 to ", kMaxEpochSamples, ", got ", o.patches_per_epoch);
  FPI_CHECK(o.validation_images >= 0, "DenoisingOptions.validation_images: must be at least 0, got ",
            o.validation_images);
  FPI_CHECK(o.max_train_images >= 0, "DenoisingOptions.max_train_images: must be at least 0 (0: all), got ",
            o.max_train_images);
  FPI_CHECK(o.max_test_images >= 0, "DenoisingOptions.max_test_images: must be at least 0 (0: all), got ",
            o.max_test_images);
  std::error_code ec;
  FPI_CHECK(fs::is_directory(o.dir, ec), "DenoisingOptions.dir: '", o.dir, "' is not a folder (a relative ",
            "path is resolved against the current directory, ", fs::current_path(ec).string(), ")");

  // Validation holds out the last images of Train400, so max_train_images never changes which they are.
  const std::vector<std::string> train_names = png_names(o.dir, kTrainFolder);
  const std::int64_t available = std::ssize(train_names) - o.validation_images;
  FPI_CHECK(available >= 1, "DenoisingOptions.validation_images: ", o.validation_images, " leaves no training ",
            "image (", o.dir, "/", kTrainFolder, " has ", train_names.size(), ")");
  const std::vector<std::string> train_used =
      first(train_names, o.max_train_images > 0 ? o.max_train_images : available);
  const std::vector<std::string> validation_used(train_names.begin() + available, train_names.end());
  const std::vector<std::string> test_names = png_names(o.dir, kTestFolder);
  const std::vector<std::string> test_used =
      first(test_names, o.max_test_images > 0 ? o.max_test_images : std::ssize(test_names));

  const ImageLoader loader(o);
  const ImageList train = loader.load(kTrainFolder, train_used);
  std::int64_t smallest = train->front().height;
  for (const GrayImage& image : *train) smallest = std::min({smallest, image.height, image.width});
  FPI_CHECK(o.patch_size <= smallest, "DenoisingOptions.patch_size: ", o.patch_size,
            " is larger than the smallest training image (", smallest, ")");
  const ImageList validation = loader.load(kTrainFolder, validation_used);
  const ImageList test = loader.load(kTestFolder, test_used);

  const std::string noise = fpi::detail::concat(", sigma ", o.sigma, ", fixed noise");
  const auto range = [](const std::vector<std::string>& names) {
    return names.empty() ? std::string() : " (" + names.front() + " .. " + names.back() + ")";
  };
  Splits out;
  out.train = std::make_shared<PatchDataset>(
      train, o,
      fpi::detail::concat("Denoising train: ", o.patches_per_epoch, " random ", o.patch_size, "x", o.patch_size,
                          " patches per epoch from ", train->size(), " ", kTrainFolder, " images", range(train_used),
                          ", sigma ", o.sigma, o.flips ? ", random flips and transposes" : ""));
  out.validation = std::make_shared<ImageDataset>(
      validation, o, kValidationStream,
      fpi::detail::concat("Denoising validation: ", validation->size(), " whole ", kTrainFolder, " images",
                          range(validation_used), noise));
  out.test = std::make_shared<ImageDataset>(
      test, o, kTestStream,
      fpi::detail::concat("Denoising test: ", test->size(), " whole ", kTestFolder, " images", range(test_used),
                          noise));
  return out;
}

}  // namespace fpi::data
