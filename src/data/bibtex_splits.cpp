// Bibtex as three splits: MULAN's training file divided by a seeded permutation into training and
// validation rows (each kept in file order), and MULAN's test file.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "data/sampling.hpp"
#include "fpi/data/arff.hpp"
#include "fpi/data/datasets.hpp"

namespace fpi::data {
namespace {

// Distinguishes the seeds of the validation choice from other uses of the same seed value.
constexpr std::uint64_t kSplitStream = 0xb1b7e5;

Tensor rows_of(const Tensor& t, const std::vector<std::int64_t>& rows) {
  return TensorDataset({t}).gather(rows).front();
}

}  // namespace

Splits bibtex_splits(const BibtexOptions& options) {
  const double fraction = options.validation_fraction;
  FPI_CHECK(fraction >= 0.0 && fraction <= 0.5, "BibtexOptions.validation_fraction: ", fraction,
            " is outside [0, 0.5]");
  std::error_code ec;
  FPI_CHECK(std::filesystem::is_directory(options.dir, ec), "BibtexOptions.dir: '", options.dir,
            "' is not a folder (a relative path is resolved against the current directory, ",
            std::filesystem::current_path(ec).string(), ")");
  const MultiLabelData train_file = load_bibtex(options.dir, Split::Train, options.dtype);
  const MultiLabelData test_file = load_bibtex(options.dir, Split::Test, options.dtype);

  const std::int64_t rows = train_file.features.size(0);
  const auto held_out = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(rows)));
  const std::vector<std::int64_t> order =
      detail::permutation(rows, detail::mix_seed({options.split_seed, kSplitStream}));
  std::vector<std::int64_t> validation_rows(order.begin(), order.begin() + held_out);
  std::vector<std::int64_t> train_rows(order.begin() + held_out, order.end());
  std::sort(validation_rows.begin(), validation_rows.end());
  std::sort(train_rows.begin(), train_rows.end());

  const std::vector<std::string> names = {"features", "labels"};
  const auto split = [&](const std::vector<std::int64_t>& chosen, bool shuffle, const std::string& what) {
    return std::make_shared<detail::RowsDataset>(
        names, std::vector<Tensor>{rows_of(train_file.features, chosen), rows_of(train_file.labels, chosen)}, shuffle,
        options.shuffle_seed, "Bibtex " + what + ": " + std::to_string(chosen.size()) + " of " + std::to_string(rows) +
                                  " rows of bibtex-train.arff" + (shuffle ? ", shuffled per epoch" : ""));
  };
  Splits out;
  out.train = split(train_rows, true, "train");
  out.validation = split(validation_rows, false, "validation");
  out.test = std::make_shared<detail::RowsDataset>(
      names, std::vector<Tensor>{test_file.features, test_file.labels}, false, 0,
      "Bibtex test: " + std::to_string(test_file.features.size(0)) + " rows of bibtex-test.arff");
  return out;
}

}  // namespace fpi::data
