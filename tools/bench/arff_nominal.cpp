// How the ARFF reader's time grows with the number of values of a nominal attribute. A generated text
// (read_arff_text, so no disk is involved) declares a numeric attribute and a nominal one of V values,
// then R dense rows whose nominal entries are spread over all V values; each V is timed, and a last row
// times a file that only declares one attribute of --values values (the duplicate check of the
// declaration). A reader whose look-up is linear in V grows with V; a hashed one stays flat.
//
//   build/bin/bench_arff_nominal [--quick] [--values V] [--rows R] [--repeat N] [--json FILE]
#include <cstdio>
#include <string>

#include "fpi/data/arff.hpp"
#include "harness.hpp"

namespace {

std::string nominal_declaration(long long values) {
  std::string text = "@attribute label {";
  for (long long v = 0; v < values; ++v) text += (v ? ",v" : "v") + std::to_string(v);
  return text + "}\n";
}

std::string nominal_file(long long values, long long rows) {
  std::string text = "@relation nominal\n@attribute x numeric\n" + nominal_declaration(values) + "@data\n";
  // A stride coprime to V visits every value in a scattered order.
  const long long stride = values % 7919 == 0 ? 1 : 7919;
  for (long long r = 0; r < rows; ++r) text += std::to_string(r % 10) + ",v" + std::to_string(r * stride % values) + "\n";
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  long long values = 0, rows = 0;
  fpi::bench::Sampling sampling{.warmup = 0};
  fpi::bench::Harness harness("bench_arff_nominal", "Reading ARFF rows of a nominal attribute with many values.");
  harness.add_count("--values", values, {.full = 80000, .quick = 2000}, "values of the largest nominal attribute");
  harness.add_count("--rows", rows, {.full = 100000, .quick = 2000}, "data rows of each file");
  harness.add_count("--repeat", sampling.repeat, {.full = 3, .quick = 1}, "timed reads of each file");
  harness.parse(argc, argv);

  using fpi::bench::Align;
  fpi::bench::Table& table = harness.table(
      "reads", {{"file", 34, Align::Left}, {"values", 8}, {"rows", 8}, {"median ms", 10}, {"min ms", 10}});
  const auto report = [&](const std::string& what, long long v, long long r, const std::string& text) {
    const fpi::bench::Summary s = fpi::bench::time_calls([&] { fpi::data::read_arff_text(text, what); }, sampling);
    table.add({fpi::bench::text_cell(what), fpi::bench::number_cell(static_cast<double>(v), "%.0f"),
               fpi::bench::number_cell(static_cast<double>(r), "%.0f"),
               fpi::bench::number_cell(s.median * 1e3, "%.2f"), fpi::bench::number_cell(s.min * 1e3, "%.2f")});
  };
  for (long long v = 10; v < values; v *= 10) report("rows of a nominal attribute", v, rows, nominal_file(v, rows));
  report("rows of a nominal attribute", values, rows, nominal_file(values, rows));
  report("declaration only", values, 0, "@relation nominal\n" + nominal_declaration(values) + "@data\n");
  return harness.finish(0);
}
