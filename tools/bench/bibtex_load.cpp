// How long loading the bundled Bibtex benchmark takes: read_arff alone (file read + parse into sparse
// rows), split_multilabel alone (the dense float32 feature and label tensors), and load_bibtex end to
// end, each for the train (2.3 MB) and test (1.2 MB) files. Reports the median and minimum of N runs;
// the file is in the page cache after the first run, so this measures parsing, not the disk.
//
//   build/bin/bench_bibtex_load [--data DIR] [--reps N]     (DIR defaults to data/bibtex)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fpi/data/arff.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void report(const char* what, int reps, const std::function<void()>& run) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-34s median %7.2f ms   min %7.2f ms\n", what, ms[ms.size() / 2], ms.front());
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "data/bibtex";
  int reps = 15;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--data" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--data DIR] [--reps N]\n", argv[0]);
      return 2;
    }
  }
  using fpi::data::Split;
  for (const Split split : {Split::Train, Split::Test}) {
    const bool train = split == Split::Train;
    const std::string path = dir + (train ? "/bibtex-train.arff" : "/bibtex-test.arff");
    const fpi::data::ArffData parsed = fpi::data::read_arff(path);
    std::printf("%s: %lld rows, %zu stored entries\n", path.c_str(), static_cast<long long>(parsed.rows),
                parsed.values.size());
    report(train ? "train read_arff" : "test read_arff", reps, [&] { fpi::data::read_arff(path); });
    report(train ? "train split_multilabel (float32)" : "test split_multilabel (float32)", reps,
           [&] { fpi::data::split_multilabel(parsed, fpi::data::kBibtexLabels); });
    report(train ? "train load_bibtex" : "test load_bibtex", reps, [&] { fpi::data::load_bibtex(dir, split); });
  }
  return 0;
}
