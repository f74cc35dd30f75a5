// The flying-shapes optical-flow generator (include/fpi/data/flow.hpp). A pair is drawn from a generator
// seeded by what identifies it, so batches need no shared state: every layer (the background, then the
// foreground patches back to front) is a texture with a random placement, an affine motion and, for the
// patches, a mask; a pixel of either frame takes the front-most layer that covers it. Everything is
// evaluated in continuous coordinates at pixel centres, so the flow of frame 1 is exact and frame 2 is
// the same textures seen through the inverse motions.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <numbers>
#include <utility>

#include "data/sampling.hpp"
#include "fpi/data/checksum.hpp"
#include "fpi/data/flow.hpp"
#include "fpi/data/image.hpp"
#include "fpi/io/file.hpp"

namespace fpi::data {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kTrainStream = 21, kValidationStream = 22, kTestStream = 23;
const std::string kTrainFolder = "Train400", kTestFolder = "BSD68";
// A mask's boundary radius varies by at most 4 * kWobble around its ellipse, so a point beyond
// 1 + 4 * kWobble ellipse radii is outside without computing the boundary.
constexpr double kWobble = 0.1, kMaskReach = 1.0 + 4 * kWobble;

using ImageList = std::shared_ptr<const std::vector<GrayImage>>;

struct Point {
  double x, y;
};

// p -> centre + shift + zoom * R(angle) * (p - centre), with (a, b) = zoom * (cos, sin).
struct Affine {
  double cx = 0, cy = 0, tx = 0, ty = 0, a = 1, b = 0;

  Point apply(double x, double y) const {
    const double dx = x - cx, dy = y - cy;
    return {cx + tx + a * dx - b * dy, cy + ty + b * dx + a * dy};
  }
  Point invert(double x, double y) const {
    const double rx = x - cx - tx, ry = y - cy - ty, d = a * a + b * b;
    return {cx + (a * rx + b * ry) / d, cy + (-b * rx + a * ry) / d};
  }
};

// One layer: its texture at frame-1 position p is image(source + zoom R(turn) (p - anchor)) / 255, and
// frame 2 shows position p of it at motion(p).
struct Layer {
  const GrayImage* image = nullptr;
  Point anchor{}, source{};
  double ta = 1, tb = 0;  // zoom * (cos, sin) of the texture's placement
  Affine motion;
  // The mask (foreground only): an ellipse of radii (ra, rb) turned by (ca, sa), its radius wobbled by
  // low harmonics of the angle, in frame-1 coordinates around `anchor`.
  bool masked = false;
  double ra = 1, rb = 1, ca = 1, sa = 0;
  std::array<double, 4> wobble{};

  double texture(double x, double y) const {
    const double dx = x - anchor.x, dy = y - anchor.y;
    const double sx = source.x + ta * dx - tb * dy, sy = source.y + tb * dx + ta * dy;
    return bilinear(sx, sy);
  }

  bool covers(double x, double y) const {
    if (!masked) return true;
    const double dx = x - anchor.x, dy = y - anchor.y;
    const double ex = (ca * dx + sa * dy) / ra, ey = (-sa * dx + ca * dy) / rb;
    const double r2 = ex * ex + ey * ey;
    if (r2 >= kMaskReach * kMaskReach) return false;
    if (r2 == 0.0) return true;
    const double r = std::sqrt(r2), c = ex / r, s = ey / r;
    // cos 2t, sin 2t, cos 3t, sin 3t from cos t and sin t: no trigonometric call per pixel.
    const double edge = 1.0 + wobble[0] * (c * c - s * s) + wobble[1] * 2 * c * s +
                        wobble[2] * (4 * c * c * c - 3 * c) + wobble[3] * (3 * s - 4 * s * s * s);
    return r < edge;
  }

  // Bilinear, with coordinates clamped to the image: a texture never reads outside its image.
  double bilinear(double x, double y) const {
    const double w = static_cast<double>(image->width - 1), h = static_cast<double>(image->height - 1);
    x = std::clamp(x, 0.0, w);
    y = std::clamp(y, 0.0, h);
    const auto x0 = std::min(static_cast<std::int64_t>(x), image->width - 2);
    const auto y0 = std::min(static_cast<std::int64_t>(y), image->height - 2);
    const double fx = x - static_cast<double>(x0), fy = y - static_cast<double>(y0);
    const std::uint8_t* p = image->pixels.data() + y0 * image->width + x0;
    const double top = p[0] + fx * (p[1] - p[0]);
    const double bottom = p[image->width] + fx * (p[image->width + 1] - p[image->width]);
    return (top + fy * (bottom - top)) / 255.0;
  }
};

double uniform(Generator& generator, double low, double high) { return low + (high - low) * generator.uniform(); }

// A texture placement on `image` anchored at canvas point `anchor`, and a motion about that point.
Layer random_layer(const std::vector<GrayImage>& images, Generator& generator, Point anchor, double translation,
                   double degrees, double scale) {
  Layer layer;
  layer.image = &images[generator.next_u64() % images.size()];
  layer.anchor = anchor;
  const double w = static_cast<double>(layer.image->width), h = static_cast<double>(layer.image->height);
  layer.source = {uniform(generator, 0.25 * w, 0.75 * w), uniform(generator, 0.25 * h, 0.75 * h)};
  const double zoom = uniform(generator, 0.7, 1.3), turn = uniform(generator, -std::numbers::pi, std::numbers::pi);
  layer.ta = zoom * std::cos(turn);
  layer.tb = zoom * std::sin(turn);
  const double angle = uniform(generator, -degrees, degrees) * std::numbers::pi / 180.0;
  const double factor = uniform(generator, 1.0 - scale, 1.0 + scale);
  layer.motion = {anchor.x, anchor.y, uniform(generator, -translation, translation),
                  uniform(generator, -translation, translation), factor * std::cos(angle), factor * std::sin(angle)};
  return layer;
}

std::vector<Layer> random_scene(const std::vector<GrayImage>& images, const FlowOptions& o, Generator& generator) {
  const double w = static_cast<double>(o.width), h = static_cast<double>(o.height);
  std::vector<Layer> layers;
  layers.push_back(random_layer(images, generator, {(w - 1) / 2, (h - 1) / 2}, o.background_translation,
                                o.max_rotation / 4, o.max_scale / 3));
  const double size = std::min(w, h);
  for (std::int64_t k = 0; k < o.objects; ++k) {
    const Point anchor{uniform(generator, 0.1 * w, 0.9 * w), uniform(generator, 0.1 * h, 0.9 * h)};
    Layer layer = random_layer(images, generator, anchor, o.max_translation, o.max_rotation, o.max_scale);
    layer.masked = true;
    layer.ra = uniform(generator, 0.12, 0.3) * size;
    layer.rb = uniform(generator, 0.12, 0.3) * size;
    const double tilt = uniform(generator, -std::numbers::pi, std::numbers::pi);
    layer.ca = std::cos(tilt);
    layer.sa = std::sin(tilt);
    for (double& c : layer.wobble) c = uniform(generator, -kWobble, kWobble);
    layers.push_back(layer);
  }
  return layers;
}

// One pair into frames (2, H, W), flow (2, H, W) and visible (1, H, W).
template <class T>
void draw_pair(const std::vector<GrayImage>& images, const FlowOptions& o, Generator& generator, T* frames, T* flow,
               T* visible) {
  const std::vector<Layer> layers = random_scene(images, o, generator);
  const std::int64_t h = o.height, w = o.width, plane = h * w;
  const auto top = [&](auto&& covers) {
    for (std::size_t k = layers.size() - 1; k > 0; --k)
      if (covers(layers[k])) return k;
    return std::size_t{0};
  };
  // Frame 2 first: which layer each pixel shows, for the visibility test of frame 1's pixels.
  std::vector<std::uint8_t> shown(static_cast<std::size_t>(plane));
  for (std::int64_t y = 0; y < h; ++y) {
    for (std::int64_t x = 0; x < w; ++x) {
      const auto fx = static_cast<double>(x), fy = static_cast<double>(y);
      const std::size_t k = top([&](const Layer& l) {
        const Point p = l.motion.invert(fx, fy);
        return l.covers(p.x, p.y);
      });
      const Point p = layers[k].motion.invert(fx, fy);
      frames[plane + y * w + x] = static_cast<T>(layers[k].texture(p.x, p.y));
      shown[static_cast<std::size_t>(y * w + x)] = static_cast<std::uint8_t>(k);
    }
  }
  for (std::int64_t y = 0; y < h; ++y) {
    for (std::int64_t x = 0; x < w; ++x) {
      const auto fx = static_cast<double>(x), fy = static_cast<double>(y);
      const std::size_t k = top([&](const Layer& l) { return l.covers(fx, fy); });
      const Point to = layers[k].motion.apply(fx, fy);
      const std::int64_t i = y * w + x;
      frames[i] = static_cast<T>(layers[k].texture(fx, fy));
      flow[i] = static_cast<T>(to.x - fx);
      flow[plane + i] = static_cast<T>(to.y - fy);
      // Visible: all four pixels around the target are inside frame 2 and show this layer, so frame 2
      // interpolated there is this surface.
      const double x0 = std::floor(to.x), y0 = std::floor(to.y);
      bool seen = x0 >= 0 && y0 >= 0 && x0 + 1 <= static_cast<double>(w - 1) && y0 + 1 <= static_cast<double>(h - 1);
      if (seen) {
        const auto j = static_cast<std::size_t>(static_cast<std::int64_t>(y0) * w + static_cast<std::int64_t>(x0));
        const auto wu = static_cast<std::size_t>(w);
        seen = shown[j] == k && shown[j + 1] == k && shown[j + wu] == k && shown[j + wu + 1] == k;
      }
      visible[i] = seen ? T(1) : T(0);
    }
  }
}

class PairDataset final : public Dataset {
 public:
  // per_epoch: a fresh set of pairs every epoch (training); else the same pairs whatever the epoch.
  PairDataset(ImageList images, const FlowOptions& options, std::uint64_t stream, std::int64_t size, bool per_epoch,
              std::string description)
      : images_(std::move(images)),
        options_(options),
        stream_(stream),
        size_(size),
        per_epoch_(per_epoch),
        description_(std::move(description)) {}

  std::vector<FieldSpec> fields() const override {
    const std::int64_t h = options_.height, w = options_.width;
    return {{"frames", {2, h, w}}, {"flow", {2, h, w}}, {"visible", {1, h, w}}};
  }
  std::int64_t size() const override { return size_; }
  std::string describe() const override { return description_; }

  Batch batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const override {
    const auto [begin, end] = detail::batch_bounds(description_, size_, size_, epoch, index, batch_size);
    const std::int64_t h = options_.height, w = options_.width, n = end - begin;
    Tensor frames = empty({n, 2, h, w}, {.dtype = options_.dtype});
    Tensor flow = empty({n, 2, h, w}, {.dtype = options_.dtype});
    Tensor visible = empty({n, 1, h, w}, {.dtype = options_.dtype});
    if (options_.dtype == kFloat32)
      fill(epoch, begin, end, frames.data<float>(), flow.data<float>(), visible.data<float>());
    else
      fill(epoch, begin, end, frames.data<double>(), flow.data<double>(), visible.data<double>());
    return {{{"frames", std::move(frames)}, {"flow", std::move(flow)}, {"visible", std::move(visible)}}};
  }

 private:
  template <class T>
  void fill(std::int64_t epoch, std::int64_t begin, std::int64_t end, T* frames, T* flow, T* visible) const {
    const std::int64_t plane = options_.height * options_.width;
    for (std::int64_t j = begin; j < end; ++j) {
      const std::uint64_t e = per_epoch_ ? static_cast<std::uint64_t>(epoch) : 0;
      Generator generator(detail::mix_seed({options_.seed, stream_, e, static_cast<std::uint64_t>(j)}));
      const std::int64_t at = j - begin;
      draw_pair(*images_, options_, generator, frames + at * 2 * plane, flow + at * 2 * plane, visible + at * plane);
    }
  }

  ImageList images_;
  FlowOptions options_;
  std::uint64_t stream_;
  std::int64_t size_;
  bool per_epoch_;
  std::string description_;
};

std::vector<std::string> png_names(const std::string& dir, const std::string& folder) {
  const fs::path path = fs::path(dir) / folder;
  std::error_code ec;
  FPI_CHECK(fs::is_directory(path, ec), "FlowOptions.dir: '", path.string(), "' is not a folder");
  std::vector<std::string> names;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".png") names.push_back(folder + "/" + it->path().filename().string());
  FPI_CHECK(!ec, "FlowOptions.dir: cannot list '", path.string(), "': ", ec.message());
  std::sort(names.begin(), names.end());
  FPI_CHECK(!names.empty(), "FlowOptions.dir: '", path.string(), "' holds no .png file");
  return names;
}

ImageList load_images(const FlowOptions& o, const std::vector<std::string>& names) {
  std::map<std::string, std::string> sums;
  const std::string sums_path = (fs::path(o.dir) / "SHA256SUMS").string();
  if (o.verify_checksums)
    for (Sha256Entry& entry : parse_sha256sums(io::read_file(sums_path), sums_path))
      sums.emplace(fs::path(entry.path).lexically_normal().string(), std::move(entry.sha256));
  auto images = std::make_shared<std::vector<GrayImage>>();
  for (const std::string& name : names) {
    const std::string path = (fs::path(o.dir) / name).string();
    const std::string bytes = io::read_file(path);
    if (o.verify_checksums) {
      const auto found = sums.find(name);
      FPI_CHECK(found != sums.end(), path, ": not listed in ", sums_path,
                "; add its sha256 there or set verify_checksums to false");
      check_sha256(bytes, found->second, path);
    }
    GrayImage image = decode_png_gray8(bytes, path);
    FPI_CHECK(image.height >= 2 && image.width >= 2, path, ": a texture needs at least 2x2 pixels");
    images->push_back(std::move(image));
  }
  return images;
}

void check_options(const FlowOptions& o) {
  FPI_CHECK(o.height >= 8 && o.width >= 8 && o.height <= kMaxImageSide && o.width <= kMaxImageSide,
            "FlowOptions.height/width: from 8 to ", kMaxImageSide, " pixels each, got ", o.height, "x", o.width);
  for (const auto& [name, size] : {std::pair<const char*, std::int64_t>{"train_size", o.train_size},
                                   {"validation_size", o.validation_size}, {"test_size", o.test_size}})
    FPI_CHECK(size >= 1 && size <= kMaxEpochSamples, "FlowOptions.", name, ": must be from 1 to ", kMaxEpochSamples,
              ", got ", size);
  FPI_CHECK(o.validation_images >= 1, "FlowOptions.validation_images: must be at least 1, got ", o.validation_images);
  FPI_CHECK(o.max_train_images >= 0, "FlowOptions.max_train_images: must be at least 0 (0: all), got ",
            o.max_train_images);
  FPI_CHECK(o.max_test_images >= 0, "FlowOptions.max_test_images: must be at least 0 (0: all), got ",
            o.max_test_images);
  FPI_CHECK(o.objects >= 0 && o.objects <= 16, "FlowOptions.objects: must be in [0, 16], got ", o.objects);
  // Beyond the largest frame side a shift moves everything out of the frame; near DBL_MAX the uniform
  // draw in [-t, t] overflows and the texture lookups would convert NaN coordinates to indices.
  for (const auto& [name, shift] : {std::pair<const char*, double>{"max_translation", o.max_translation},
                                    {"background_translation", o.background_translation}})
    FPI_CHECK(shift >= 0 && shift <= static_cast<double>(kMaxImageSide), "FlowOptions.", name, ": must be in [0, ",
              kMaxImageSide, "] pixels, got ", shift);
  FPI_CHECK(o.max_rotation >= 0 && o.max_rotation <= 90, "FlowOptions.max_rotation: must be in [0, 90] degrees, got ",
            o.max_rotation);
  FPI_CHECK(o.max_scale >= 0 && o.max_scale < 0.5, "FlowOptions.max_scale: must be in [0, 0.5), got ", o.max_scale);
}

}  // namespace

FlowSources flow_sources(const FlowOptions& o) {
  check_options(o);
  const std::vector<std::string> train_names = png_names(o.dir, kTrainFolder);
  const std::int64_t available = std::ssize(train_names) - o.validation_images;
  FPI_CHECK(available >= 1, "FlowOptions.validation_images: ", o.validation_images, " leaves no training image (",
            o.dir, "/", kTrainFolder, " has ", train_names.size(), ")");
  const std::int64_t train_count = o.max_train_images > 0 ? std::min(o.max_train_images, available) : available;
  const std::vector<std::string> test_names = png_names(o.dir, kTestFolder);
  const std::int64_t test_available = std::ssize(test_names);
  const std::int64_t test_count = o.max_test_images > 0 ? std::min(o.max_test_images, test_available) : test_available;
  return {{train_names.begin(), train_names.begin() + train_count},
          {train_names.begin() + available, train_names.end()},
          {test_names.begin(), test_names.begin() + test_count}};
}

Splits flow_splits(const FlowOptions& o) {
  const FlowSources sources = flow_sources(o);
  const std::string motion =
      fpi::detail::concat(", ", o.height, "x", o.width, ", ", o.objects, " moving patches on a moving background");
  const auto range = [](const std::vector<std::string>& names) {
    return " (" + names.front() + " .. " + names.back() + ")";
  };
  Splits out;
  out.train = std::make_shared<PairDataset>(
      load_images(o, sources.train), o, kTrainStream, o.train_size, true,
      fpi::detail::concat("Flow train: ", o.train_size, " new pairs per epoch from ", sources.train.size(),
                          " textures", range(sources.train), motion));
  out.validation = std::make_shared<PairDataset>(
      load_images(o, sources.validation), o, kValidationStream, o.validation_size, false,
      fpi::detail::concat("Flow validation: ", o.validation_size, " fixed pairs from ", sources.validation.size(),
                          " held-out textures", range(sources.validation), motion));
  out.test = std::make_shared<PairDataset>(
      load_images(o, sources.test), o, kTestStream, o.test_size, false,
      fpi::detail::concat("Flow test: ", o.test_size, " fixed pairs from ", sources.test.size(), " textures",
                          range(sources.test), motion));
  return out;
}

}  // namespace fpi::data
