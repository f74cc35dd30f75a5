// Reading Weka ARFF files (dense and sparse rows) into compressed sparse rows, and turning a
// multi-label ARFF file (MULAN convention: the labels are the last attributes) into dense feature and
// label tensors. The Bibtex benchmark bundled under data/bibtex/ is read with load_bibtex.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::data {

enum class ArffType : std::uint8_t { Numeric, Nominal };

struct ArffAttribute {
  std::string name;
  ArffType type = ArffType::Numeric;       // numeric, real and integer all read as Numeric
  std::vector<std::string> nominal_values;  // Nominal only; a value reads as its index in this list
};

struct ArffReadOptions {
  // '?' is an error unless this is set; then a missing value reads as NaN.
  bool allow_missing = false;
};

// The table of an ARFF file in compressed sparse rows: row r holds the entries
// [row_begin[r], row_begin[r + 1]) of `columns` (increasing) and `values`. Zeros are not stored (an
// entry a sparse row omits is 0, and for a nominal attribute that is its first value, as in Weka).
struct ArffData {
  std::string path;
  std::string relation;
  std::vector<ArffAttribute> attributes;
  std::int64_t rows = 0;
  std::vector<std::int64_t> row_begin{0};
  std::vector<std::int32_t> columns;
  std::vector<double> values;

  std::int64_t num_attributes() const { return static_cast<std::int64_t>(attributes.size()); }
  // The value at (row, column); meant for spot checks, not for loops over the table.
  double at(std::int64_t row, std::int64_t column) const;
  // Columns [column_begin, column_end) of every row as a dense (rows, column_end - column_begin)
  // CPU tensor.
  Tensor to_dense(std::int64_t column_begin, std::int64_t column_end, DType dtype = kFloat32) const;
};

// Reads `path`. Understands @relation, @attribute (numeric, real, integer, {nominal values}; names and
// values quoted with ' or " when they hold spaces), @data, '%' comments, blank lines, keywords in any
// case, dense rows "v1,v2,..." and sparse rows "{i v,j v,...}" (0-based indices, strictly increasing),
// '?' for missing values, LF or CRLF line ends, and a last line without a newline. A numeric value must
// be a finite double (nan, inf and out-of-range values are errors). string, date and relational
// attributes and instance weights are not supported. Every error names the file and line (an empty file
// is reported as empty), with control characters in quoted input escaped (\t, \x00).
ArffData read_arff(const std::string& path, const ArffReadOptions& options = {});

// read_arff on text already in memory; `name` stands for the path in ArffData::path and in every error
// message. The fuzz target in tools/fuzz/ goes through this, so it needs no file per input.
ArffData read_arff_text(std::string_view text, const std::string& name, const ArffReadOptions& options = {});

struct MultiLabelData {
  Tensor features;  // (rows, num_features)
  Tensor labels;    // (rows, num_labels), 0 or 1
  std::vector<std::string> feature_names;
  std::vector<std::string> label_names;
};

// Splits `data` into features (every attribute but the last `num_labels`) and labels (the last
// `num_labels`, MULAN's convention). A label attribute must be numeric or nominal {0,1}, and every
// label value must be 0 or 1.
MultiLabelData split_multilabel(const ArffData& data, std::int64_t num_labels, DType dtype = kFloat32);

// read_arff + split_multilabel, rejecting missing values.
MultiLabelData load_multilabel_arff(const std::string& path, std::int64_t num_labels, DType dtype = kFloat32);

enum class Split : std::uint8_t { Train, Test };

inline constexpr std::int64_t kBibtexFeatures = 1836;
inline constexpr std::int64_t kBibtexLabels = 159;
inline constexpr std::int64_t kBibtexTrainRows = 4880;
inline constexpr std::int64_t kBibtexTestRows = 2515;

// Reads data_dir/bibtex-train.arff or data_dir/bibtex-test.arff (the MULAN split of Katakis et al. 2008,
// bundled in the repository's data/bibtex/) and checks the shapes: 4880 or 2515 rows, 1836 features,
// 159 labels.
MultiLabelData load_bibtex(const std::string& data_dir, Split split, DType dtype = kFloat32);

}  // namespace fpi::data
