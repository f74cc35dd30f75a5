// `fpi bench paper` through the real binary: the quick profile end to end on toy and Bibtex, on optical
// flow and on the backward experiment (every file written, every row present, the report page pointing
// only at files that exist), and the usage errors. It runs from the source tree, where models/ and data/
// are, and writes only under --out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli_testing.hpp"
#include "fpi/io/file.hpp"

namespace {

namespace fs = std::filesystem;
using fpi::testing::Outcome;
using json = nlohmann::json;

// Runs `fpi ARGS` in the source tree, with `environment` ("NAME=value ") set for it.
Outcome run_fpi(const std::string& args, const std::string& environment = "") {
  return fpi::testing::run_shell(FPI_SOURCE_DIR, environment + "\"$FPI\" " + args);
}

class BenchCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fpi::testing::cli_built()) GTEST_SKIP() << "the fpi command line is not built (FPI_BUILD_TOOLS=OFF)";
    out_ = fs::temp_directory_path() / ("fpi_bench_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(out_);
  }
  void TearDown() override { fs::remove_all(out_); }

  fs::path out_;
};

// Every src="..." and href="..." of the page, which must all be files beside it.
std::set<std::string> references(const std::string& html) {
  std::set<std::string> found;
  const std::regex attribute(R"re((?:src|href)="([^"]*)")re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), attribute); it != std::sregex_iterator(); ++it)
    found.insert((*it)[1].str());
  return found;
}

TEST_F(BenchCliTest, QuickToyAndBibtexWriteEveryFileAndRow) {
  const Outcome run = run_fpi("bench paper --profile quick --only toy,bibtex --out '" + out_.string() + "'");
  ASSERT_EQ(run.status, 0) << run.output;
  // A progress line per model, and the tables printed in the paper's layout.
  EXPECT_NE(run.output.find("[bench 1/6] toy: toy_fpi_gd (FPI_GD)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[bench 6/6] bibtex: bibtex_feedforward"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("Toy (Section 4.1, Figures 2-3)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("Bibtex (Section 4.4, Table 2)"), std::string::npos) << run.output;

  const json results = json::parse(fpi::io::read_file((out_ / "results.json").string()));
  EXPECT_EQ(results["profile"], "quick");
  EXPECT_NE(results["command"].get<std::string>().find("bench paper --profile quick --only toy,bibtex"),
            std::string::npos);
  EXPECT_FALSE(results["machine"]["cpu"].get<std::string>().empty());
  EXPECT_GE(results["machine"]["cores"].get<int>(), 1);
  EXPECT_EQ(results["machine"]["device"], "cpu");
  const struct {
    const char* experiment;
    const char* model;
    int epochs;
    double paper;  // 0: the paper has no number for the row
    bool fixed_point;
  } expected[] = {{"toy", "FPI_GD", 3, 0.0, true},          {"toy", "FPI_NN", 3, 0.0, true},
                  {"toy", "feed-forward", 3, 0.0, false},   {"bibtex", "FPI_NN", 1, 43.4, true},
                  {"bibtex", "FPI_GD", 1, 43.2, true},      {"bibtex", "feed-forward (MLP)", 1, 39.6, false}};
  ASSERT_EQ(results["results"].size(), std::size(expected));
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    const json& row = results["results"][i];
    SCOPED_TRACE(row.dump());
    EXPECT_EQ(row["experiment"], expected[i].experiment);
    EXPECT_EQ(row["model"], expected[i].model);
    EXPECT_EQ(row["epochs"], expected[i].epochs);
    if (expected[i].paper > 0) EXPECT_EQ(row["paper"].get<double>(), expected[i].paper);
    else EXPECT_TRUE(row["paper"].is_null());
    ASSERT_EQ(row["curve"].size(), static_cast<std::size_t>(expected[i].epochs));
    for (const json& epoch : row["curve"]) {
      EXPECT_TRUE(std::isfinite(epoch["train_loss"].get<double>()));
      EXPECT_TRUE(std::isfinite(epoch["test_loss"].get<double>()));
    }
    EXPECT_GT(row["parameters"].get<long long>(), 0);
    EXPECT_GT(row["peak_memory_bytes"].get<long long>(), 0);
    EXPECT_GT(row["seconds_per_epoch"].get<double>(), 0.0);
    const double best_test = row["paper_protocol"]["test"].get<double>();
    const double clean_test = row["clean_protocol"]["test"].get<double>();
    // The paper's protocol takes the best test number over epochs, so it is never worse than the clean one:
    // lower for the toy's loss, higher for Bibtex's F1.
    if (row["metric"] == "loss") EXPECT_LE(best_test, clean_test);
    else EXPECT_GE(best_test, clean_test);
    if (row["metric"] == "f1") {
      EXPECT_GE(best_test, 0.0);
      EXPECT_LE(best_test, 1.0);
      // The Bibtex configs tune the threshold on validation; the F1 at 0.5 (the authors' rule) is kept
      // beside it for the paper's own protocol, and every threshold is one of SPEN's grid.
      EXPECT_EQ(row["threshold"], "tune");
      const double threshold = row["clean_protocol"]["threshold"].get<double>();
      EXPECT_TRUE(threshold >= 0.0 && threshold <= 0.75) << threshold;
      const json& half = row["f1_at_0.5"];
      ASSERT_TRUE(half.is_object());
      EXPECT_GE(half["paper_protocol"]["test"].get<double>(), half["clean_protocol"]["test"].get<double>());
      EXPECT_LE(half["paper_protocol"]["test"].get<double>(), 1.0);
      EXPECT_GE(half["clean_protocol"]["validation"].get<double>(), 0.0);
      for (const json& epoch : row["curve"]) {
        EXPECT_TRUE(epoch["threshold"].is_number());
        EXPECT_TRUE(epoch["test_f1_at_0.5"].is_number());
        // The tuned threshold is the validation split's best, so it does at least as well there as 0.5.
        EXPECT_GE(epoch["validation"].get<double>(), epoch["validation_f1_at_0.5"].get<double>());
      }
    } else {
      EXPECT_TRUE(row["f1_at_0.5"].is_null());
    }
    EXPECT_TRUE(fs::exists(out_ / row["run_dir"].get<std::string>() / "metrics.jsonl"));
    if (expected[i].fixed_point) {
      const json& forward = row["fixed_point"]["fpi"]["forward"];
      EXPECT_GE(forward["converged_fraction"].get<double>(), 0.0);
      EXPECT_LE(forward["converged_fraction"].get<double>(), 1.0);
      EXPECT_GE(forward["max_iterations"].get<int>(), 1);
      EXPECT_GT(row["fixed_point"]["fpi"]["backward"]["samples"].get<long long>(), 0);
    } else {
      EXPECT_TRUE(row["fixed_point"].empty());
    }
  }

  const std::string tables = fpi::io::read_file((out_ / "tables.md").string());
  for (const auto& row : expected)
    EXPECT_NE(tables.find(std::string("| ") + row.model + " |"), std::string::npos) << row.model;
  EXPECT_NE(tables.find("| model | paper protocol, 0.5 | paper protocol, tuned | clean | clean: epoch, threshold | "
                        "clean at 0.5 | paper |"),
            std::string::npos)
      << tables;
  EXPECT_NE(tables.find("| DVN (paper) | - | - | - | - | - | 42.9 / 44.7 |"), std::string::npos) << tables;
  // Each measured Bibtex row fills every column: both thresholds, both protocols, the clean choice.
  const std::regex measured(R"(\| FPI_NN \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 1, [0-9.]+ \| [0-9.]+ \| 43\.4 \|)");
  EXPECT_TRUE(std::regex_search(tables, measured)) << tables;

  std::istringstream csv(fpi::io::read_file((out_ / "toy.csv").string()));
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "epoch,toy_fpi_gd_train_loss,toy_fpi_gd_test_loss,toy_fpi_nn_train_loss,toy_fpi_nn_test_loss,"
                    "toy_feedforward_train_loss,toy_feedforward_test_loss");
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, 3);

  const std::string html = fpi::io::read_file((out_ / "report.html").string());
  EXPECT_NE(html.find(results["machine"]["commit"].get<std::string>()), std::string::npos);
  const std::set<std::string> referenced = references(html);
  EXPECT_TRUE(referenced.count("toy.csv"));
  EXPECT_TRUE(referenced.count("bibtex.csv"));
  for (const std::string& file : referenced) EXPECT_TRUE(fs::is_regular_file(out_ / file)) << file;
  // Without gnuplot the page has no plot and results.json says why; with it, the plots are on the page.
  if (results["notes"].empty()) {
    EXPECT_TRUE(referenced.count("toy.png"));
    EXPECT_TRUE(referenced.count("bibtex.png"));
  } else {
    EXPECT_NE(results["notes"][0].get<std::string>().find("gnuplot"), std::string::npos);
  }
}

// Without gnuplot on the PATH the run still succeeds: the CSV and the gnuplot script stay, and
// results.json and the page say why there is no plot.
TEST_F(BenchCliTest, WithoutGnuplotKeepsTheCsv) {
  const Outcome run = run_fpi("bench paper --only toy --out '" + out_.string() + "'", "PATH=/nonexistent ");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("note: gnuplot was not found"), std::string::npos) << run.output;
  const json results = json::parse(fpi::io::read_file((out_ / "results.json").string()));
  ASSERT_EQ(results["notes"].size(), 1u);
  EXPECT_NE(results["notes"][0].get<std::string>().find("gnuplot-nox"), std::string::npos);
  EXPECT_TRUE(fs::is_regular_file(out_ / "toy.csv"));
  EXPECT_TRUE(fs::is_regular_file(out_ / "toy.gp"));
  EXPECT_FALSE(fs::exists(out_ / "toy.png"));
  const std::string html = fpi::io::read_file((out_ / "report.html").string());
  EXPECT_NE(html.find("No plot: gnuplot was not found"), std::string::npos);
  for (const std::string& file : references(html)) EXPECT_TRUE(fs::is_regular_file(out_ / file)) << file;
}

TEST_F(BenchCliTest, KeepsEarlierResultsWithoutForce) {
  fs::create_directories(out_ / "runs" / "toy_fpi_nn");
  Outcome run = run_fpi("bench paper --only toy --out '" + out_.string() + "'");
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("runs/toy_fpi_nn' exists; pass --force"), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(out_ / "runs" / "toy_fpi_gd"));

  fpi::io::write_file_atomically((out_ / "results.json").string(), "{}");
  run = run_fpi("bench paper --only toy --out '" + out_.string() + "'");
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("holds the results of an earlier run; pass --force"), std::string::npos) << run.output;
  EXPECT_EQ(fpi::io::read_file((out_ / "results.json").string()), "{}");

  run = run_fpi("bench paper --only toy --force --out '" + out_.string() + "'");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(json::parse(fpi::io::read_file((out_ / "results.json").string()))["results"].size(), 3u);
}

// The optical-flow section: both rows with aEPE per epoch, the FPI layer's solves and extra parameters,
// the Figure 5 plot's numbers and the flow pictures on the page.
TEST_F(BenchCliTest, QuickFlowWritesTheFigureAndFlowPictures) {
  const Outcome run = run_fpi("bench paper --profile quick --only flow --out '" + out_.string() + "'");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("Optical flow (Section 4.3, Figure 5)"), std::string::npos) << run.output;
  const json results = json::parse(fpi::io::read_file((out_ / "results.json").string()));
  ASSERT_EQ(results["results"].size(), 2u);
  const json& fpi_row = results["results"][0];
  const json& ff_row = results["results"][1];
  EXPECT_EQ(fpi_row["config"], "flow_fpi");
  EXPECT_EQ(ff_row["config"], "flow_feedforward");
  for (const json* row : {&fpi_row, &ff_row}) {
    EXPECT_EQ((*row)["metric"], "epe");
    ASSERT_EQ((*row)["curve"].size(), 2u);
    for (const json& epoch : (*row)["curve"]) EXPECT_GT(epoch["test"].get<double>(), 0.0);
    ASSERT_EQ((*row)["images"].size(), 3u);
    for (const json& image : (*row)["images"]) EXPECT_TRUE(fs::is_regular_file(out_ / image.get<std::string>()));
  }
  // The FPI layer adds a few parameters and runs solves; the feed-forward net has none.
  const long long extra = fpi_row["parameters"].get<long long>() - ff_row["parameters"].get<long long>();
  EXPECT_GT(extra, 0);
  EXPECT_LT(extra, ff_row["parameters"].get<long long>() / 10);
  EXPECT_GE(fpi_row["fixed_point"]["fpi"]["forward"]["max_iterations"].get<int>(), 1);
  EXPECT_TRUE(ff_row["fixed_point"].empty());
  const std::string tables = fpi::io::read_file((out_ / "tables.md").string());
  EXPECT_NE(tables.find("| FlowNet-style + FPI layer |"), std::string::npos) << tables;
  EXPECT_NE(tables.find("+" + std::to_string(extra) + " ("), std::string::npos) << tables;
  std::istringstream csv(fpi::io::read_file((out_ / "flow.csv").string()));
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "epoch,flow_fpi_test_epe,flow_feedforward_test_epe");
  const std::string html = fpi::io::read_file((out_ / "report.html").string());
  EXPECT_NE(html.find("true flow | predicted flow"), std::string::npos);
  for (const std::string& file : references(html)) EXPECT_TRUE(fs::is_regular_file(out_ / file)) << file;
}

// The backward experiment alone: its progress lines, table, CSV, plot and results.json rows, with the
// paper's memory argument holding at the quick profile's size (the allocator's figures are deterministic).
TEST_F(BenchCliTest, QuickBackwardMeasuresBothModesAtEveryIterationCount) {
  const Outcome run = run_fpi("bench paper --profile quick --only backward --out '" + out_.string() + "'");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("[bench backward 1/6] implicit backward, 10 iterations"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("[bench backward 6/6] unrolled backward, 1000 iterations"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("Implicit against unrolled backward"), std::string::npos) << run.output;

  const json results = json::parse(fpi::io::read_file((out_ / "results.json").string()));
  EXPECT_TRUE(results["results"].empty());
  EXPECT_EQ(results["machine"]["device"], "cpu");
  const json& backward = results["backward"];
  EXPECT_EQ(backward["hidden"], 32);
  EXPECT_EQ(backward["device"], "cpu");
  const json& rows = backward["rows"];
  ASSERT_EQ(rows.size(), 6u);
  std::map<std::string, std::vector<double>> peaks;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    SCOPED_TRACE(row.dump());
    const int iterations = i < 2 ? 10 : i < 4 ? 100 : 1000;
    EXPECT_EQ(row["mode"], i % 2 ? "unrolled" : "implicit");
    EXPECT_EQ(row["iterations"], iterations);
    EXPECT_EQ(row["forward"]["max_iterations"], iterations);
    EXPECT_DOUBLE_EQ(row["forward"]["mean_iterations"].get<double>(), iterations);
    EXPECT_GT(row["seconds_median"].get<double>(), 0.0);
    EXPECT_GT(row["peak_memory_bytes"].get<double>(), row["baseline_bytes"].get<double>());
    // The implicit backward solves its own FPI; the unrolled one walks the recorded iterations instead.
    if (row["mode"] == "implicit") EXPECT_GE(row["backward"]["max_iterations"].get<int>(), 1);
    else EXPECT_TRUE(row["backward"].is_null());
    peaks[row["mode"]].push_back(row["peak_memory_bytes"].get<double>());
  }
  EXPECT_LE(peaks["implicit"][2], 1.05 * peaks["implicit"][0]);
  EXPECT_GT(peaks["unrolled"][1], 3 * peaks["unrolled"][0]);
  EXPECT_GT(peaks["unrolled"][2], 5 * peaks["unrolled"][1]);
  ASSERT_EQ(backward["unrolled_over_implicit"].size(), 3u);
  EXPECT_GT(backward["unrolled_over_implicit"][2]["peak_memory"].get<double>(), 10.0);

  const std::string tables = fpi::io::read_file((out_ / "tables.md").string());
  EXPECT_NE(tables.find("### Implicit against unrolled backward"), std::string::npos) << tables;
  EXPECT_NE(tables.find("| 1000 |"), std::string::npos) << tables;
  std::istringstream csv(fpi::io::read_file((out_ / "backward.csv").string()));
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "iterations,implicit_peak_mib,unrolled_peak_mib,implicit_seconds,unrolled_seconds");
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, 3);
  const std::string html = fpi::io::read_file((out_ / "report.html").string());
  const std::set<std::string> referenced = references(html);
  EXPECT_TRUE(referenced.count("backward.csv"));
  for (const std::string& file : referenced) EXPECT_TRUE(fs::is_regular_file(out_ / file)) << file;
  if (results["notes"].empty()) {
    EXPECT_TRUE(referenced.count("backward.png"));
  }
}

TEST_F(BenchCliTest, RejectsBadArguments) {
  const struct {
    const char* args;
    const char* message;
  } rows[] = {
      {"bench paper --only toy,chairs --out ", "chairs not in {toy,bibtex,denoise,flow,backward}"},
      {"bench paper --profile fast --out ", "fast not in {quick,cpu,gpu}"},
      {"bench paper --only --out ", "--only: --out not in {toy,bibtex,denoise,flow,backward}"},
      {"bench", "A subcommand is required"},
      {"bench paper --models no-such-folder --out ", "no folder 'no-such-folder' of model configs here"},
  };
  for (const auto& row : rows) {
    const std::string args = row.args;
    const Outcome run = run_fpi(args.back() == ' ' ? args + "'" + out_.string() + "'" : args);
    EXPECT_EQ(run.status, 2) << row.args << "\n" << run.output;
    EXPECT_NE(run.output.find(row.message), std::string::npos) << row.args << "\n" << run.output;
    EXPECT_FALSE(fs::exists(out_)) << row.args;
  }
}

}  // namespace
