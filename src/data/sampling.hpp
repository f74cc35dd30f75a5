// What the datasets share: seeds derived from (seed, split, epoch, index), permutations, fast normal
// draws, batch bounds, and a dataset of rows held in memory (Bibtex, toy).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "fpi/data/dataset.hpp"
#include "fpi/data/loader.hpp"
#include "fpi/generator.hpp"

namespace fpi::data::detail {

// SplitMix64's finaliser chained over `parts`: a seed for a Generator that depends on every part, so
// (seed, epoch, index) and (seed, index, epoch) give unrelated streams.
std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts);

// A uniformly random permutation of 0..n-1 (Fisher-Yates driven by Generator(seed)).
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed);

// Standard normal draws by the ziggurat method (Marsaglia & Tsang 2000, 256 layers). 99% of draws cost
// 32 random bits, a multiply and a compare, inline, where Box-Muller (Generator::normal) costs a log, a
// square root and a sine or cosine: image noise needs ~2 * 10^5 draws per batch of patches, and the
// generator's 64-bit step is most of what is left, so each step feeds two draws. The ziggurat of
// f(x) = exp(-x^2 / 2) has 256 layers of equal area, the base layer a rectangle of height f(x[1]) plus
// the tail beyond x[1]. x[i] is the right edge of layer i (x[0] the base's width as if the tail were a
// rectangle too), decreasing to x[256] = 0.
class Ziggurat {
 public:
  static const Ziggurat& instance();

  // out[i] = scale * N(0, 1) for i < n. A draw's position within its layer has 23 bits, as fine as a
  // float32 mantissa.
  template <class T>
  void fill(Generator& generator, double scale, T* out, std::int64_t n) const {
    std::int64_t i = 0;
    for (; i + 1 < n; i += 2) {
      const std::uint64_t bits = generator.next_u64();
      out[i] = static_cast<T>(scale * draw(generator, static_cast<std::uint32_t>(bits)));
      out[i + 1] = static_cast<T>(scale * draw(generator, static_cast<std::uint32_t>(bits >> 32)));
    }
    if (i < n) out[i] = static_cast<T>(scale * draw(generator, static_cast<std::uint32_t>(generator.next_u64())));
  }

 private:
  Ziggurat();

  // Bits 0-7 pick the layer, bit 8 the sign, bits 9-31 the position within the layer.
  double draw(Generator& generator, std::uint32_t bits) const {
    const std::size_t layer = bits & 0xff;
    const double v = static_cast<double>(bits >> 9) * 0x1.0p-23 * x_[layer];
    if (v < x_[layer + 1]) [[likely]]
      return (bits & 0x100) != 0 ? -v : v;
    return edge(generator, layer, v, (bits & 0x100) != 0);
  }
  // The draws that land outside the layer's inner rectangle: the wedge test, or the tail for layer 0.
  double edge(Generator& generator, std::size_t layer, double v, bool negative) const;

  std::array<double, 257> x_{};
  std::array<double, 257> f_{};  // f(x[i])
};

// ceil(size / batch) for size >= 0 and batch >= 1, without forming size + batch - 1, which overflows for
// a size near 2^63 (a config may ask for that many patches or pairs per epoch).
inline std::int64_t ceil_div(std::int64_t size, std::int64_t batch) { return size / batch + (size % batch != 0); }

// Samples [begin, end) of batch `index` for a dataset of `size` samples, after checking the arguments;
// `batch_size` is capped by `max_batch_size`. `who` names the dataset in errors.
std::pair<std::int64_t, std::int64_t> batch_bounds(const std::string& who, std::int64_t size,
                                                    std::int64_t max_batch_size, std::int64_t epoch,
                                                    std::int64_t index, std::int64_t batch_size);

// Rows of named tensors (row = index along dimension 0), handed out in order, or in a fresh permutation
// per epoch seeded by mix_seed({shuffle_seed, epoch}).
class RowsDataset final : public Dataset {
 public:
  RowsDataset(std::vector<std::string> names, std::vector<Tensor> tensors, bool shuffle, std::uint64_t shuffle_seed,
              std::string description);

  std::vector<FieldSpec> fields() const override;
  std::int64_t size() const override { return rows_.size(); }
  Batch batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const override;
  std::string describe() const override { return description_; }

 private:
  std::vector<std::string> names_;
  TensorDataset rows_;
  bool shuffle_ = false;
  std::uint64_t shuffle_seed_ = 0;
  std::string description_;
};

}  // namespace fpi::data::detail
