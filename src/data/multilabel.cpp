// From a parsed ARFF table to tensors: ArffData's dense views, the MULAN multi-label split (labels are
// the last attributes) and the Bibtex loader with the shape checks that catch a wrong or truncated file.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "fpi/data/arff.hpp"

namespace fpi::data {
namespace {

template <class T>
void scatter_rows(const ArffData& data, std::int64_t column_begin, std::int64_t column_end, T* out) {
  const std::int64_t width = column_end - column_begin;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    const auto first = data.columns.begin() + data.row_begin[r];
    const auto last = data.columns.begin() + data.row_begin[r + 1];
    for (auto it = std::lower_bound(first, last, column_begin); it != last && *it < column_end; ++it) {
      out[r * width + (*it - column_begin)] = static_cast<T>(data.values[it - data.columns.begin()]);
    }
  }
}

}  // namespace

double ArffData::at(std::int64_t row, std::int64_t column) const {
  FPI_CHECK(row >= 0 && row < rows && column >= 0 && column < num_attributes(), "ArffData::at(", row, ", ",
            column, "): out of range for ", path, ", which has ", rows, " rows and ", num_attributes(), " attributes");
  const auto first = columns.begin() + row_begin[row];
  const auto last = columns.begin() + row_begin[row + 1];
  const auto it = std::lower_bound(first, last, column);
  return it != last && *it == column ? values[it - columns.begin()] : 0.0;
}

Tensor ArffData::to_dense(std::int64_t column_begin, std::int64_t column_end, DType dtype) const {
  FPI_CHECK(column_begin >= 0 && column_begin <= column_end && column_end <= num_attributes(),
            "ArffData::to_dense: columns [", column_begin, ", ", column_end, ") are not a range of the ",
            num_attributes(), " attributes of ", path);
  Tensor out = zeros({rows, column_end - column_begin}, {.dtype = dtype});
  if (dtype == kFloat32) {
    scatter_rows(*this, column_begin, column_end, out.data<float>());
  } else {
    scatter_rows(*this, column_begin, column_end, out.data<double>());
  }
  return out;
}

MultiLabelData split_multilabel(const ArffData& data, std::int64_t num_labels, DType dtype) {
  const std::int64_t n = data.num_attributes();
  FPI_CHECK(num_labels >= 1 && num_labels < n, "split_multilabel: ", data.path, " has ", n,
            " attributes, so it cannot hold ", num_labels, " labels and at least one feature (the labels are "
            "the last num_labels attributes, MULAN's convention)");
  const std::int64_t num_features = n - num_labels;
  MultiLabelData out;
  for (std::int64_t c = 0; c < n; ++c) {
    const ArffAttribute& attr = data.attributes[c];
    if (c < num_features) {
      out.feature_names.push_back(attr.name);
      continue;
    }
    out.label_names.push_back(attr.name);
    const bool binary = attr.type == ArffType::Numeric ||
                        attr.nominal_values == std::vector<std::string>{"0", "1"};
    FPI_CHECK(binary, "split_multilabel: label attribute '", attr.name, "' of ", data.path,
              " must be numeric or nominal {0,1}, so that its values read as 0 and 1");
  }
  for (std::int64_t r = 0; r < data.rows; ++r) {
    for (std::int64_t k = data.row_begin[r]; k < data.row_begin[r + 1]; ++k) {
      if (data.columns[k] < num_features) continue;
      FPI_CHECK(data.values[k] == 1.0, "split_multilabel: label '", data.attributes[data.columns[k]].name,
                "' of data row ", r, " in ", data.path, " is ", data.values[k], "; a label must be 0 or 1");
    }
  }
  out.features = data.to_dense(0, num_features, dtype);
  out.labels = data.to_dense(num_features, n, dtype);
  return out;
}

MultiLabelData load_multilabel_arff(const std::string& path, std::int64_t num_labels, DType dtype) {
  return split_multilabel(read_arff(path), num_labels, dtype);
}

MultiLabelData load_bibtex(const std::string& data_dir, Split split, DType dtype) {
  const bool train = split == Split::Train;
  const std::string path = (std::filesystem::path(data_dir) / (train ? "bibtex-train.arff" : "bibtex-test.arff")).string();
  const ArffData data = read_arff(path);
  const std::int64_t expected_rows = train ? kBibtexTrainRows : kBibtexTestRows;
  const char* hint = "; expected MULAN's Bibtex file (see data/bibtex/PROVENANCE.md)";
  FPI_CHECK(data.num_attributes() == kBibtexFeatures + kBibtexLabels, "load_bibtex: ", path, " has ",
            data.num_attributes(), " attributes, not ", kBibtexFeatures, " features + ", kBibtexLabels, " labels", hint);
  FPI_CHECK(data.rows == expected_rows, "load_bibtex: ", path, " has ", data.rows, " rows, not ", expected_rows, hint);
  return split_multilabel(data, kBibtexLabels, dtype);
}

}  // namespace fpi::data
