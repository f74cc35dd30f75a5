// The paper's toy problem (Section 4.1): inputs a ~ N(0, input_scale^2) per element and targets
// t = argmin_{-1<=x<=1} ||x - a||^2, which is clamp(a, -1, 1) element by element. Each split draws its
// inputs from its own stream of `seed`, so changing one split's size leaves the others unchanged.
#include <algorithm>
#include <cmath>
#include <memory>

#include "data/sampling.hpp"
#include "fpi/data/datasets.hpp"

namespace fpi::data {
namespace {

constexpr std::uint64_t kTrainStream = 1, kValidationStream = 2, kTestStream = 3, kShuffleStream = 4;
// A split may hold at most 2^28 values (1 GiB in float32), which catches a size typed with extra digits.
constexpr std::int64_t kMaxValues = std::int64_t{1} << 28;

std::shared_ptr<detail::RowsDataset> toy_split(const ToyOptions& options, std::int64_t rows, std::uint64_t stream,
                                               bool shuffle, const std::string& what) {
  Generator generator(detail::mix_seed({options.seed, stream}));
  std::vector<double> inputs(static_cast<std::size_t>(rows * options.dim));
  std::vector<double> targets(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    inputs[i] = options.input_scale * generator.normal();
    targets[i] = std::clamp(inputs[i], -1.0, 1.0);
  }
  const TensorOptions as{.dtype = options.dtype};
  return std::make_shared<detail::RowsDataset>(
      std::vector<std::string>{"input", "target"},
      std::vector<Tensor>{from_vector(inputs, {rows, options.dim}, as), from_vector(targets, {rows, options.dim}, as)},
      shuffle, detail::mix_seed({options.seed, kShuffleStream}),
      fpi::detail::concat("Toy ", what, ": ", rows, " samples of t = clamp(a, -1, 1), a ~ N(0, ", options.input_scale,
                          "^2) in ", options.dim, " dimensions", shuffle ? ", shuffled per epoch" : ""));
}

}  // namespace

Splits toy_splits(const ToyOptions& options) {
  FPI_CHECK(options.dim >= 1, "ToyOptions.dim: must be at least 1, got ", options.dim);
  FPI_CHECK(options.train_size >= 1, "ToyOptions.train_size: must be at least 1, got ", options.train_size);
  FPI_CHECK(options.validation_size >= 0, "ToyOptions.validation_size: must be at least 0, got ",
            options.validation_size);
  FPI_CHECK(options.test_size >= 0, "ToyOptions.test_size: must be at least 0, got ", options.test_size);
  for (const auto& [name, rows] : {std::pair<const char*, std::int64_t>{"train_size", options.train_size},
                                   {"validation_size", options.validation_size}, {"test_size", options.test_size}})
    FPI_CHECK(rows <= kMaxValues / options.dim, "ToyOptions.", name, ": ", rows, " samples of ", options.dim,
              " values are more than the ", kMaxValues, " values a split may hold");
  FPI_CHECK(std::isfinite(options.input_scale) && options.input_scale > 0.0, "ToyOptions.input_scale: must be ",
            "positive and finite, got ", options.input_scale);
  return {toy_split(options, options.train_size, kTrainStream, true, "train"),
          toy_split(options, options.validation_size, kValidationStream, false, "validation"),
          toy_split(options, options.test_size, kTestStream, false, "test")};
}

}  // namespace fpi::data
