// eval.threshold "tune" end to end on Bibtex with a small dense model: the threshold an evaluation of the
// validation split chooses is the grid's argmax of the F1 of that split's outputs, other splits reuse it,
// every checkpoint keeps its epoch's choice, and `fpi eval RUN --split test` evaluates at that choice; the F1 at
// 0.5 (the authors' rule) is reported beside the tuned one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/cli_testing.hpp"
#include "fpi/data/metrics.hpp"
#include "fpi/io/file.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json small_bibtex_config() {
  json config = json::parse(R"({
    "name": "bibtex_small",
    "data": {"type": "bibtex"},
    "model": {"layers": [
      {"name": "fc1", "type": "dense", "input": "features", "units": 16},
      {"name": "act1", "type": "relu"},
      {"name": "fc2", "type": "dense", "units": 159},
      {"name": "out", "type": "sigmoid"}]},
    "loss": {"type": "bce", "target": "labels"},
    "metrics": ["loss", "f1"],
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 100},
    "eval": {"metric": "f1", "threshold": "tune", "batch_size": 200}
  })");
  config["data"]["dir"] = fpi::testing::source_path("data/bibtex");
  return config;
}

// The model's outputs and the targets of a whole split, evaluated batch by batch.
struct SplitOutputs {
  std::vector<Tensor> scores, targets;
  Tensor all_scores() const { return concat(scores, 0); }
  Tensor all_targets() const { return concat(targets, 0); }
};

EvalResult evaluate_keeping_outputs(Experiment& experiment, const std::string& split, SplitOutputs& out) {
  return experiment.evaluate(split, 200, [&](const data::Batch& batch, const Tensor& output) {
    out.scores.push_back(output);
    out.targets.push_back(batch.at("labels"));
  });
}

class F1ThresholdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("fpi_f1_threshold_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
};

TEST_F(F1ThresholdTest, ValidationChoosesTheGridArgmaxAndEveryCheckpointKeepsIt) {
  const RunConfig config = parse_config(small_bibtex_config(), "bibtex_small.json");
  TrainOptions options;
  options.run_dir = (root_ / "run").string();
  const TrainResult result = train(config, options);
  ASSERT_EQ(result.epochs_completed, 2);

  // metrics.jsonl records each epoch's choice; the best checkpoint holds its own epoch's.
  std::vector<double> recorded;
  std::ifstream lines(root_ / "run" / "metrics.jsonl");
  for (std::string line; std::getline(lines, line);)
    recorded.push_back(json::parse(line)["validation"]["f1_threshold"]);
  ASSERT_EQ(recorded.size(), 2u);
  const std::optional<double> kept = checkpoint_f1_threshold((root_ / "run" / "checkpoints" / "best").string());
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, recorded[static_cast<std::size_t>(result.best_epoch - 1)]);

  Experiment experiment(config);
  load_weights(experiment.model(), (root_ / "run" / "checkpoints" / "best").string());
  EXPECT_FALSE(experiment.f1_threshold().has_value());
  EXPECT_THROW(experiment.evaluate("test", 200), Error) << "no threshold chosen yet";

  SplitOutputs validation;
  const EvalResult tuned = evaluate_keeping_outputs(experiment, "validation", validation);
  const std::vector<double> grid = data::spen_threshold_grid();
  const data::ThresholdChoice expected = data::best_threshold(validation.all_scores(), validation.all_targets(), grid);
  EXPECT_EQ(tuned.metric("f1_threshold"), expected.threshold);
  EXPECT_EQ(tuned.metric("f1_threshold"), *kept) << "the same weights choose the same threshold again";
  EXPECT_NEAR(tuned.metric("f1"), expected.f1, 1e-12);
  // A real choice: the trained model's best threshold is not 0.5, and it is better there than at 0.5.
  EXPECT_NE(expected.threshold, 0.5);
  EXPECT_GT(expected.f1, data::example_f1(validation.all_scores(), validation.all_targets(), 0.5));
  // The F1 at 0.5, the authors' rule, is reported beside the tuned one for the paper's protocol.
  EXPECT_NEAR(tuned.metric("f1_at_0.5"), data::example_f1(validation.all_scores(), validation.all_targets(), 0.5),
              1e-12);

  SplitOutputs test;
  const EvalResult on_test = evaluate_keeping_outputs(experiment, "test", test);
  EXPECT_EQ(on_test.metric("f1_threshold"), expected.threshold);
  EXPECT_NEAR(on_test.metric("f1"), data::example_f1(test.all_scores(), test.all_targets(), expected.threshold),
              1e-12);
  EXPECT_NEAR(on_test.metric("f1_at_0.5"), data::example_f1(test.all_scores(), test.all_targets(), 0.5), 1e-12);

  // A kept threshold is used on validation too; a threshold outside [0, 1] is refused.
  experiment.set_f1_threshold(0.5, true);
  const EvalResult kept_half = experiment.evaluate("validation", 200);
  EXPECT_EQ(kept_half.metric("f1_threshold"), 0.5);
  EXPECT_NEAR(kept_half.metric("f1"), data::example_f1(validation.all_scores(), validation.all_targets(), 0.5),
              1e-12);
  EXPECT_THROW(experiment.set_f1_threshold(1.5, true), Error);

  if (!fpi::testing::cli_built()) GTEST_SKIP() << "the fpi command line is not built";
  const fpi::testing::Outcome evaluated = fpi::testing::run_fpi(root_, "eval run --split test");
  ASSERT_EQ(evaluated.status, 0) << evaluated.output;
  EXPECT_NE(evaluated.output.find("f1_threshold " + format_number(*kept)), std::string::npos) << evaluated.output;
}

TEST_F(F1ThresholdTest, AFixedThresholdIsUsedOnEverySplitAndNotRecorded) {
  json config = small_bibtex_config();
  config["eval"]["threshold"] = 0.3;
  Experiment experiment(parse_config(config, "bibtex_small.json"));
  EXPECT_EQ(experiment.f1_threshold(), 0.3);
  for (const std::string split : {"validation", "test"}) {
    SplitOutputs outputs;
    const EvalResult result = evaluate_keeping_outputs(experiment, split, outputs);
    EXPECT_NEAR(result.metric("f1"), data::example_f1(outputs.all_scores(), outputs.all_targets(), 0.3), 1e-12);
    EXPECT_THROW(result.metric("f1_threshold"), Error);
    EXPECT_THROW(result.metric("f1_at_0.5"), Error) << "f1 is the F1 at the fixed threshold";
  }
}

}  // namespace
}  // namespace fpi::train
