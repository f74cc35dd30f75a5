// Seeding, permutations, the ziggurat and RowsDataset (src/data/sampling.hpp).
#include "data/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace fpi::data::detail {
namespace {

std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Marsaglia & Tsang's constants for 256 layers: where the tail starts and the area of each layer.
constexpr double kTail = 3.6541528853610088;
constexpr double kArea = 0.00492867323399;

double density(double v) { return std::exp(-0.5 * v * v); }

}  // namespace

std::uint64_t mix_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t h = 0x6a09e667f3bcc908ULL;
  for (const std::uint64_t part : parts) h = splitmix64(h ^ splitmix64(part));
  return h;
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  Generator generator(seed);
  // The modulo bias of a 64-bit draw is about n / 2^64, negligible at any dataset size.
  for (std::size_t i = order.size(); i-- > 1;) std::swap(order[i], order[generator.next_u64() % (i + 1)]);
  return order;
}

Ziggurat::Ziggurat() {
  x_[0] = kArea / density(kTail);
  x_[1] = kTail;
  for (std::size_t i = 1; i < 255; ++i) x_[i + 1] = std::sqrt(-2.0 * std::log(kArea / x_[i] + density(x_[i])));
  x_[256] = 0.0;
  for (std::size_t i = 0; i < 257; ++i) f_[i] = density(x_[i]);
}

const Ziggurat& Ziggurat::instance() {
  static const Ziggurat table;
  return table;
}

double Ziggurat::edge(Generator& generator, std::size_t layer, double v, bool negative) const {
  for (;;) {
    if (layer == 0) {
      // The tail beyond kTail, by Marsaglia's exponential rejection; 1 - uniform() is in (0, 1].
      double a = 0.0, b = 0.0;
      do {
        a = -std::log(1.0 - generator.uniform()) / kTail;
        b = -std::log(1.0 - generator.uniform());
      } while (b + b < a * a);
      return negative ? -(kTail + a) : kTail + a;
    }
    const double height = f_[layer] + generator.uniform() * (f_[layer + 1] - f_[layer]);
    if (height < density(v)) return negative ? -v : v;
    // Rejected: a fresh draw, which may land in any layer.
    const std::uint64_t bits = generator.next_u64();
    layer = static_cast<std::size_t>(bits & 0xff);
    negative = (bits & 0x100) != 0;
    v = static_cast<double>(bits >> 11) * 0x1.0p-53 * x_[layer];
    if (v < x_[layer + 1]) return negative ? -v : v;
  }
}

std::pair<std::int64_t, std::int64_t> batch_bounds(const std::string& who, std::int64_t size,
                                                    std::int64_t max_batch_size, std::int64_t epoch,
                                                    std::int64_t index, std::int64_t batch_size) {
  FPI_CHECK(epoch >= 0, who, ": epoch must be at least 0, got ", epoch);
  FPI_CHECK(batch_size >= 1, who, ": batch_size must be at least 1, got ", batch_size);
  const std::int64_t b = std::min(batch_size, std::max<std::int64_t>(max_batch_size, 1));
  const std::int64_t batches = ceil_div(size, b);
  FPI_CHECK(index >= 0 && index < batches, who, ": batch index ", index, " is out of range (", batches,
            " batches of ", b, ")");
  // index < batches makes begin < size, so neither the product nor size - begin can overflow.
  const std::int64_t begin = index * b;
  return {begin, begin + std::min(b, size - begin)};
}

RowsDataset::RowsDataset(std::vector<std::string> names, std::vector<Tensor> tensors, bool shuffle,
                         std::uint64_t shuffle_seed, std::string description)
    : names_(std::move(names)),
      rows_(std::move(tensors)),
      shuffle_(shuffle),
      shuffle_seed_(shuffle_seed),
      description_(std::move(description)) {}

std::vector<FieldSpec> RowsDataset::fields() const {
  std::vector<FieldSpec> out;
  for (std::size_t i = 0; i < names_.size(); ++i) {
    const Shape& shape = rows_.tensors()[i].shape();
    out.push_back({names_[i], Shape(shape.begin() + 1, shape.end())});
  }
  return out;
}

Batch RowsDataset::batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const {
  const auto [begin, end] = batch_bounds(description_, size(), size(), epoch, index, batch_size);
  std::vector<std::int64_t> rows;
  if (shuffle_) {
    const std::vector<std::int64_t> order = permutation(size(), mix_seed({shuffle_seed_, std::uint64_t(epoch)}));
    rows.assign(order.begin() + begin, order.begin() + end);
  } else {
    rows.resize(static_cast<std::size_t>(end - begin));
    std::iota(rows.begin(), rows.end(), begin);
  }
  std::vector<Tensor> parts = rows_.gather(rows);
  Batch out;
  for (std::size_t i = 0; i < names_.size(); ++i) out.fields.emplace_back(names_[i], std::move(parts[i]));
  return out;
}

}  // namespace fpi::data::detail
