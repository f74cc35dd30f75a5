// How long loading the bundled Bibtex benchmark takes: read_arff alone (file read + parse into sparse
// rows), split_multilabel alone (the dense float32 feature and label tensors), and load_bibtex end to
// end, each for the train (2.3 MB) and test (1.2 MB) files. Reports the median and minimum of N runs;
// the file is in the page cache after the first run, so this measures parsing, not the disk.
//
//   build/bin/bench_bibtex_load [--quick] [--data DIR] [--repeat N] [--threads N] [--json FILE]
//   (DIR defaults to data/bibtex)
#include <cstdio>
#include <string>

#include "fpi/data/arff.hpp"
#include "harness.hpp"

int main(int argc, char** argv) {
  std::string dir = "data/bibtex";
  fpi::bench::Sampling sampling{.warmup = 0};
  fpi::bench::Harness harness("bench_bibtex_load", "Reading and splitting the bundled Bibtex ARFF files.");
  harness.add_text("--data", dir, "DIR", "the Bibtex folder");
  harness.add_count("--repeat", sampling.repeat, {.full = 15, .quick = 2}, "timed runs of each step");
  harness.parse(argc, argv);

  using fpi::data::Split;
  const std::string paths[] = {dir + "/bibtex-train.arff", dir + "/bibtex-test.arff"};
  const fpi::data::ArffData parsed[] = {fpi::data::read_arff(paths[0]), fpi::data::read_arff(paths[1])};
  for (int i = 0; i < 2; ++i)
    std::printf("%s: %lld rows, %zu stored entries\n", paths[i].c_str(), static_cast<long long>(parsed[i].rows),
                parsed[i].values.size());

  using fpi::bench::Align;
  fpi::bench::Table& table =
      harness.table("steps", {{"step", 34, Align::Left}, {"median ms", 9}, {"min ms", 9}});
  const auto report = [&](const char* what, auto&& run) {
    const fpi::bench::Summary s = fpi::bench::time_calls(run, sampling);
    table.add({fpi::bench::text_cell(what), fpi::bench::number_cell(s.median * 1e3, "%.2f"),
               fpi::bench::number_cell(s.min * 1e3, "%.2f")});
  };
  for (const Split split : {Split::Train, Split::Test}) {
    const bool train = split == Split::Train;
    const std::string& path = paths[train ? 0 : 1];
    report(train ? "train read_arff" : "test read_arff", [&] { fpi::data::read_arff(path); });
    report(train ? "train split_multilabel (float32)" : "test split_multilabel (float32)",
           [&] { fpi::data::split_multilabel(parsed[train ? 0 : 1], fpi::data::kBibtexLabels); });
    report(train ? "train load_bibtex" : "test load_bibtex", [&] { fpi::data::load_bibtex(dir, split); });
  }
  return harness.finish(0);
}
