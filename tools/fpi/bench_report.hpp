// The results of `fpi bench paper` (bench.cpp) and how they are shown: each run's metrics.jsonl read back
// into a RunResult, the paper's and the clean protocol taken from it, and the tables, CSV, gnuplot plots,
// results.json rows and the report page made from those.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_backward.hpp"

namespace fpi_cli::bench {

// One training run of the suite: a config of models/ and the overrides that make it this row.
struct Run {
  std::string experiment;  // "toy", "bibtex", "denoise", "flow"
  std::string config;      // the config's file name without .json, "bibtex_fpi_nn"
  std::string label;       // the row's name in the paper's tables
  std::string name;        // the folder under OUT/runs ("denoising_fpi_nn_s15")
  std::optional<int> sigma;
  std::optional<double> paper;  // the paper's number for this row, on the table's scale
  std::vector<std::string> overrides;
};

// One epoch's line of metrics.jsonl, the parts the tables use.
struct EpochRecord {
  std::int64_t epoch = 0;
  double train_loss = 0.0;
  std::optional<double> validation_loss, test_loss, validation_metric, test_metric;
  // F1 runs: the threshold the validation split chose ("tune"), and the F1 at 0.5, the authors' rule
  // (reported beside a tuned F1, or the F1 itself at a fixed threshold of 0.5).
  std::optional<double> threshold, validation_f1_half, test_f1_half;
  bool best = false;
  double seconds = 0.0;
};

// A fixed-point layer's solves summed over epochs.
struct Solve {
  std::int64_t samples = 0;
  double iterations = 0.0;  // summed over samples until finished
  int max_iterations = 0;
  double converged = 0.0;   // summed over samples until finished

  void add(const nlohmann::ordered_json& summary);
  nlohmann::ordered_json to_json() const;
};

struct RunResult {
  Run run;
  std::string metric, mode;  // the config's eval.metric and its direction
  std::optional<double> threshold;  // the config's eval.threshold; empty for "tune"
  std::string device;        // where it trained ("cpu", "cuda:0")
  std::vector<EpochRecord> epochs;
  std::int64_t parameters = 0;
  std::size_t peak_bytes = 0;
  double seconds = 0.0;
  std::map<std::string, std::pair<Solve, Solve>> solves;  // per FPI layer: training forward, backward
  std::vector<std::string> images;                         // relative to OUT
};

// Fills result.epochs and result.solves from a run's metrics.jsonl (result.metric and result.threshold must
// be set).
void read_metrics(const std::filesystem::path& path, RunResult& result);
// The clean protocol's epoch: the last one the trainer marked best on the validation split (with eval.threshold
// "tune", on the F1 at the threshold that split chose, so epoch and threshold both come from validation).
const EpochRecord& clean_epoch(const RunResult& r);
// The paper's protocol: the best test number over all epochs.
const EpochRecord& paper_epoch(const RunResult& r);
// The same two protocols on the F1 at 0.5 (the authors' rule); null for a run without that F1.
const EpochRecord* clean_epoch_at_half(const RunResult& r);
const EpochRecord* paper_epoch_at_half(const RunResult& r);
// The run's row of results.json.
nlohmann::ordered_json result_json(const RunResult& r);

std::string fixed(double value, int digits);
std::string shell_quote(const std::string& word);

struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> notes;
};

void print_table(std::ostream& out, const Table& t);
std::string markdown_table(const Table& t);

// The paper's layout of each experiment, and the columns every row has (both protocols, the FPI solves,
// the costs).
Table toy_table(const std::vector<const RunResult*>& rows);
Table bibtex_table(const std::vector<const RunResult*>& rows);
Table denoise_table(const std::vector<const RunResult*>& rows);
// aEPE per model, the costs and the FPI layer's extra parameters over the feed-forward row's.
Table flow_table(const std::vector<const RunResult*>& rows);
Table detail_table(const std::string& title, const std::vector<const RunResult*>& rows, int digits);

// The plotted numbers: train and test loss per epoch, two columns per run.
std::string curve_csv(const std::vector<const RunResult*>& rows);
// Writes OUT/<name>.gp for OUT/<name>.csv and runs gnuplot on it; returns the PNG's name, or empty with
// `problem` set (gnuplot missing or failing).
std::string plot(const std::filesystem::path& out, const std::string& name, const std::string& title,
                 const std::vector<const RunResult*>& rows, std::string& problem);
// The test metric per epoch, one column per run, and its plot (as plot() does, one line per run).
std::string metric_csv(const std::vector<const RunResult*>& rows);
std::string plot_metric(const std::filesystem::path& out, const std::string& name, const std::string& title,
                        const std::string& ylabel, const std::vector<const RunResult*>& rows, std::string& problem);

// The backward experiment: a row per forward iteration count, the implicit and the unrolled backward side by
// side with unrolled / implicit; its CSV (one line per iteration count), its plot (peak memory and time
// against iterations, drawn from OUT/<name>.csv as plot() does) and its part of results.json.
Table backward_table(const BackwardSetup& setup, const std::vector<BackwardPoint>& points);
std::string backward_csv(const BackwardSetup& setup, const std::vector<BackwardPoint>& points);
std::string plot_backward(const std::filesystem::path& out, const std::string& name, const std::string& title,
                          std::string& problem);
nlohmann::ordered_json backward_json(const BackwardSetup& setup, const std::vector<BackwardPoint>& points);

// One experiment's part of the report page; file names are relative to OUT.
struct Section {
  std::string experiment, title;
  std::vector<Table> tables;
  std::string csv, plot;  // plot empty when gnuplot made none, plot_problem then says why
  std::string plot_problem;
  std::string plot_alt = "train and test loss per epoch";
  std::vector<std::string> images;
  std::string images_caption = "Test images, noisy | denoised | clean:";
  std::string note;
};

// The self-contained page: inline CSS, the PNGs by relative path.
std::string html_report(const nlohmann::ordered_json& machine, const std::string& command, const std::string& profile,
                        const std::vector<Section>& sections);

}  // namespace fpi_cli::bench
