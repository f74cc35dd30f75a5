// libFuzzer target for the ARFF reader (read_arff_text) and the multi-label split after it. A
// rejected input is a correct outcome when it throws fpi::Error whose message names the input and holds
// no raw control character; anything else is a finding: another exception, a sanitizer report, a hang,
// or an accepted table that breaks ArffData's invariants. Run it with tools/fuzz.sh arff SECONDS.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "fpi/data/arff.hpp"

namespace {

using fpi::data::ArffData;
using fpi::data::ArffType;

const std::string kName = "fuzz-input";

// A broken promise must crash, so that libFuzzer saves the input.
void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_arff: %s\n", what);
  std::abort();
}

std::optional<ArffData> parse(std::string_view text, bool allow_missing) {
  try {
    return fpi::data::read_arff_text(text, kName, {.allow_missing = allow_missing});
  } catch (const fpi::Error& e) {
    const std::string_view message = e.what();
    require(message.starts_with("read_arff: " + kName + ":"), "an error message does not name the input");
    for (const char c : message) require(static_cast<unsigned char>(c) >= 0x20, "an error message holds a control character");
    return std::nullopt;
  }
}

void check_table(const ArffData& d, bool allow_missing) {
  const std::int64_t n = d.num_attributes();
  require(n >= 1 && !d.relation.empty(), "a table without attributes or relation was accepted");
  require(d.row_begin.size() == static_cast<std::size_t>(d.rows) + 1 && d.row_begin.front() == 0 &&
              d.row_begin.back() == static_cast<std::int64_t>(d.columns.size()) && d.columns.size() == d.values.size(),
          "row_begin, columns and values disagree");
  for (std::int64_t r = 0; r < d.rows; ++r) {
    require(d.row_begin[r] <= d.row_begin[r + 1], "row_begin decreases");
    for (std::int64_t k = d.row_begin[r]; k < d.row_begin[r + 1]; ++k) {
      const std::int32_t c = d.columns[k];
      const double v = d.values[k];
      require(c >= 0 && c < n, "a column is out of range");
      require(k == d.row_begin[r] || d.columns[k - 1] < c, "the columns of a row are not increasing");
      require(v != 0.0, "a zero was stored");
      require(std::isfinite(v) || (allow_missing && std::isnan(v)), "a non-finite value was accepted");
      const auto& attr = d.attributes[c];
      if (attr.type == ArffType::Nominal && !std::isnan(v))
        require(v == std::floor(v) && v < static_cast<double>(attr.nominal_values.size()), "a nominal index is out of range");
    }
  }
}

bool same_table(const ArffData& a, const ArffData& b) {
  if (a.relation != b.relation || a.rows != b.rows || a.row_begin != b.row_begin || a.columns != b.columns ||
      a.values != b.values || a.attributes.size() != b.attributes.size())
    return false;
  for (std::size_t i = 0; i < a.attributes.size(); ++i)
    if (a.attributes[i].name != b.attributes[i].name || a.attributes[i].type != b.attributes[i].type ||
        a.attributes[i].nominal_values != b.attributes[i].nominal_values)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  // allow_missing only turns '?' from an error into NaN, so the two readings must agree wherever the
  // strict one succeeds.
  const std::optional<ArffData> lenient = parse(text, true);
  const std::optional<ArffData> strict = parse(text, false);
  require(lenient || !strict, "a file read strictly was rejected with allow_missing");
  if (!lenient) return 0;
  check_table(*lenient, true);
  if (strict) require(same_table(*strict, *lenient), "allow_missing changed a file without '?'");
  if (lenient->num_attributes() < 2) return 0;
  try {
    const auto split = fpi::data::split_multilabel(*lenient, 1, fpi::kFloat64);
    require(split.features.shape()[0] == lenient->rows && split.labels.shape()[1] == 1, "split_multilabel's shapes are wrong");
  } catch (const fpi::Error&) {
    // Labels that are not 0 or 1 are the input's fault, not the split's.
  }
  return 0;
}
