// The trainer end to end on a tiny toy config: run directory contents, exact resume (at an epoch
// boundary and mid-epoch), a diverging run that keeps its last good checkpoint, and checkpoints that do
// not fit the model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fpi/io/file.hpp"
#include "fpi/io/safetensors.hpp"
#include "fpi/grad_mode.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/trainer.hpp"

namespace {

namespace fs = std::filesystem;
using fpi::train::RunConfig;
using fpi::train::TrainOptions;

// A dense layer and dropout in front of an FPI_NN layer, so that a resumed run depends on the weights,
// the optimizer's moments, the global generator (dropout) and the data order all being restored.
const char* kToyConfig = R"({
  "name": "tiny_toy",
  "data": {"type": "toy", "dim": 4, "train_size": 64, "validation_size": 32, "test_size": 32, "seed": 3},
  "model": {"layers": [
    {"name": "embed", "type": "dense", "input": "input", "units": 6},
    {"name": "drop", "type": "dropout", "p": 0.25},
    {"name": "fpi", "type": "fixed_point", "input": "drop", "state_shape": [4],
     "map": {"type": "net", "layers": [
       {"name": "join", "type": "concat", "inputs": ["z", "x"]},
       {"name": "fc1", "type": "dense", "units": 12},
       {"name": "act", "type": "tanh"},
       {"name": "fc2", "type": "dense", "units": 4},
       {"name": "squash", "type": "tanh"}]}}]},
  "loss": {"type": "mse", "target": "target"},
  "metrics": ["loss", "mse"],
  "optimizer": {"type": "adam", "lr": 0.01},
  "schedule": {"type": "multistep", "milestones": [2], "gamma": 0.5},
  "train": {"epochs": 3, "batch_size": 16, "clip_grad_norm": 1.0}
})";

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("fpi_trainer_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  RunConfig config(const std::vector<std::string>& overrides = {}) {
    nlohmann::json json = nlohmann::json::parse(kToyConfig);
    fpi::train::apply_overrides(json, overrides);
    return fpi::train::parse_config(json, "tiny_toy.json");
  }
  std::string run(const std::string& name) const { return (root_ / name).string(); }

  // Trains into `run_dir` and stops (as Ctrl-C does) after `steps` optimizer steps.
  static fpi::train::TrainResult train_and_stop_after(const RunConfig& config, const std::string& run_dir,
                                                      int steps) {
    std::atomic<bool> stop{false};
    int taken = 0;
    TrainOptions options;
    options.run_dir = run_dir;
    options.stop_requested = &stop;
    options.after_backward = [&](const std::vector<fpi::Tensor>&) {
      if (++taken == steps) stop.store(true);
    };
    return fpi::train::train(config, options);
  }

  fs::path root_;
};

// metrics.jsonl without its timings, which are the only numbers allowed to differ between runs.
std::vector<nlohmann::json> metrics_without_time(const std::string& run_dir) {
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  std::vector<nlohmann::json> records;
  std::string line;
  const auto strip = [](auto& self, nlohmann::json& j) -> void {
    if (!j.is_object()) return;
    j.erase("seconds");
    for (auto& [key, value] : j.items()) self(self, value);
  };
  while (std::getline(in, line)) {
    nlohmann::json record = nlohmann::json::parse(line);
    strip(strip, record);
    records.push_back(record);
  }
  return records;
}

std::string last_weights(const std::string& run_dir) {
  return fpi::io::read_file((fs::path(run_dir) / "checkpoints" / "last" / "model.safetensors").string());
}

TEST_F(TrainerTest, RunDirectoryHoldsResolvedConfigMetricsLogAndCheckpoints) {
  TrainOptions options;
  options.run_dir = run("a");
  const fpi::train::TrainResult result = fpi::train::train(config(), options);
  EXPECT_EQ(result.epochs_completed, 3);
  EXPECT_FALSE(result.interrupted);
  ASSERT_TRUE(result.best_metric.has_value());

  const nlohmann::json resolved = nlohmann::json::parse(fpi::io::read_file(run("a") + "/config.json"));
  EXPECT_EQ(resolved["eval"]["split"], "validation");
  EXPECT_EQ(resolved["model"]["layers"][0]["bias"], true);  // a layer default, filled in
  EXPECT_EQ(resolved["data"]["input_scale"], 2.0);
  // The resolved config alone reproduces the run: it parses to the same resolved config.
  EXPECT_EQ(fpi::train::parse_config(resolved, "config.json").resolved["train"], resolved["train"]);

  const auto records = metrics_without_time(run("a"));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2]["epoch"], 3);
  EXPECT_EQ(records[2]["step"], 12);
  EXPECT_TRUE(records[0]["validation"].contains("mse"));
  EXPECT_EQ(records[0]["train"]["fixed_point"]["fpi"]["forward"]["samples"], 64);
  EXPECT_EQ(records[0]["train"]["fixed_point"]["fpi"]["backward"]["samples"], 64);
  EXPECT_DOUBLE_EQ(records[2]["lr"].get<double>(), 0.005);  // the multistep milestone at epoch 2

  EXPECT_TRUE(fs::is_symlink(run("a") + "/checkpoints/last"));
  EXPECT_TRUE(fs::is_symlink(run("a") + "/checkpoints/best"));
  EXPECT_TRUE(fs::exists(run("a") + "/checkpoints/last/training.safetensors"));
  EXPECT_NE(fpi::io::read_file(run("a") + "/log.txt").find("epoch 3/3"), std::string::npos);

  // The weights load into a fresh model under PyTorch's names and give the same validation loss.
  fpi::train::Experiment experiment(config());
  fpi::train::load_weights(experiment.model(), run("a") + "/checkpoints/last");
  EXPECT_TRUE(fpi::io::load_safetensors(run("a") + "/checkpoints/last/model.safetensors")
                  .find("fpi.map.net.fc1.weight") != nullptr);
  const double loss = experiment.evaluate("validation", 16).metric("loss");
  EXPECT_DOUBLE_EQ(loss, records[2]["validation"]["loss"].get<double>());
}

TEST_F(TrainerTest, AlsoEvaluatedSplitsAreRecordedButDoNotChooseTheBest) {
  TrainOptions options;
  options.run_dir = run("both");
  options.also_evaluate = {"test"};
  fpi::train::train(config({"train.epochs=2"}), options);
  TrainOptions plain;
  plain.run_dir = run("plain");
  fpi::train::train(config({"train.epochs=2"}), plain);
  const auto both = metrics_without_time(run("both"));
  const auto alone = metrics_without_time(run("plain"));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_TRUE(both[1]["test"].contains("mse"));
  EXPECT_EQ(both[1]["validation"], alone[1]["validation"]);  // evaluating more changes nothing else
  EXPECT_EQ(both[1]["best"], alone[1]["best"]);
  EXPECT_FALSE(alone[1].contains("test"));
}

TEST_F(TrainerTest, ResumingAtAnEpochBoundaryEqualsAnUninterruptedRunBitForBit) {
  TrainOptions whole;
  whole.run_dir = run("whole");
  fpi::train::train(config(), whole);

  TrainOptions part;
  part.run_dir = run("part");
  fpi::train::train(config({"train.epochs=1"}), part);
  part.resume = true;
  fpi::train::train(fpi::train::load_run_config(run("part"), {"train.epochs=3"}), part);

  EXPECT_EQ(metrics_without_time(run("part")), metrics_without_time(run("whole")));
  EXPECT_EQ(last_weights(run("part")), last_weights(run("whole")));
}

TEST_F(TrainerTest, ResumingMidEpochAfterAStopEqualsAnUninterruptedRunBitForBit) {
  TrainOptions whole;
  whole.run_dir = run("whole");
  fpi::train::train(config(), whole);

  // Stop after step 6: epoch 2, batch 2 of 4.
  const fpi::train::TrainResult stopped = train_and_stop_after(config(), run("part"), 6);
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.epochs_completed, 1);

  TrainOptions resumed;
  resumed.run_dir = run("part");
  resumed.resume = true;
  fpi::train::train(fpi::train::load_run_config(run("part")), resumed);
  EXPECT_EQ(metrics_without_time(run("part")), metrics_without_time(run("whole")));
  EXPECT_EQ(last_weights(run("part")), last_weights(run("whole")));
}

TEST_F(TrainerTest, GradientChecksAreRecordedPerEpochAndResumeOnTheSameSteps) {
  // Every 3rd of the 12 steps (0, 3, 6, 9): 2, 1 and 1 checks in the three epochs of 4 steps.
  const std::vector<std::string> checked = {R"(model.layers[2].gradient_check={"every": 3})"};
  TrainOptions whole;
  whole.run_dir = run("whole");
  fpi::train::train(config(checked), whole);
  const auto records = metrics_without_time(run("whole"));
  ASSERT_EQ(records.size(), 3u);
  std::vector<std::int64_t> checks;
  for (const auto& record : records) {
    const nlohmann::json& check = record["train"]["fixed_point"]["fpi"]["gradient_check"];
    checks.push_back(check["checks"].get<std::int64_t>());
    EXPECT_EQ(check["unsettled"], 0);
    EXPECT_EQ(check["flagged"], 0);
    EXPECT_LT(check["max_angle_degrees"].get<double>(), 1.0) << "the implicit backward meets its reference";
  }
  EXPECT_EQ(checks, (std::vector<std::int64_t>{2, 1, 1}));

  // Stopped after step 5 (epoch 2, batch 1), the resumed run checks step 6 as the whole run did.
  train_and_stop_after(config(checked), run("part"), 5);
  TrainOptions resumed;
  resumed.run_dir = run("part");
  resumed.resume = true;
  fpi::train::train(fpi::train::load_run_config(run("part")), resumed);
  EXPECT_EQ(metrics_without_time(run("part")), records);
}

TEST_F(TrainerTest, ANonFiniteLossStopsTheRunNamingTheStepAndKeepsTheLastGoodCheckpoint) {
  TrainOptions options;
  options.run_dir = run("nan");
  int steps = 0;
  // After the first epoch's checkpoint, poison a weight: the next loss is NaN.
  options.after_backward = [&](const std::vector<fpi::Tensor>& parameters) {
    if (++steps == 5) {
      fpi::NoGrad no_grad;
      fpi::Tensor weight = parameters[0];
      weight.fill_(std::nan(""));
    }
  };
  try {
    fpi::train::train(config(), options);
    FAIL() << "a NaN loss must stop the run";
  } catch (const fpi::Error& e) {
    // The poisoned weight feeds the FPI layer, whose solver stops first, naming itself; the trainer
    // adds where it happened and what is kept.
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("epoch 2, step 6 (batch 2 of 4): layer 'fpi' (fixed_point): fixed_point 'fpi' "
                            "forward: iteration 1 produced a "
                            "non-finite value", 0), 0u) << message;
    EXPECT_NE(message.find("; stopping. The last good checkpoint is "), std::string::npos) << message;
  }
  // The checkpoint of epoch 1 is still the last one, whole and loadable.
  fpi::train::Experiment experiment(config());
  fpi::train::load_weights(experiment.model(), run("nan") + "/checkpoints/last");
  EXPECT_TRUE(fpi::all_finite(experiment.model().parameters()[0]));
  EXPECT_EQ(metrics_without_time(run("nan")).size(), 1u);
}

TEST_F(TrainerTest, AnExistingRunDirectoryIsNeverReplacedWithoutForce) {
  fs::create_directories(run("taken"));
  std::ofstream(run("taken") + "/precious.txt") << "keep me";
  TrainOptions options;
  options.run_dir = run("taken");
  try {
    fpi::train::train(config({"train.epochs=1"}), options);
    FAIL() << "an existing run directory must be refused";
  } catch (const fpi::Error& e) {
    EXPECT_NE(std::string(e.what()).find("exists; pass --force to replace it"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(run("taken") + "/precious.txt"));
  options.force = true;
  fpi::train::train(config({"train.epochs=1"}), options);
  EXPECT_FALSE(fs::exists(run("taken") + "/precious.txt"));
}

TEST_F(TrainerTest, CheckpointsThatDoNotFitTheModelAreRefusedNamingTheTensor) {
  TrainOptions options;
  options.run_dir = run("small");
  fpi::train::train(config({"train.epochs=1", "model.layers[2].map.layers[1].units=13"}), options);
  fpi::train::Experiment experiment(config());
  try {
    fpi::train::load_weights(experiment.model(), run("small") + "/checkpoints/last");
    FAIL() << "a checkpoint of another shape must be refused";
  } catch (const fpi::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fpi.map.net.fc1.weight: shape [13, 10] in the checkpoint, [12, 10] in "
                                         "the model"),
              std::string::npos)
        << e.what();
  }
  // A truncated file is refused by the reader, before any weight is touched.
  const std::string weights = run("small") + "/checkpoints/last/model.safetensors";
  const std::string bytes = fpi::io::read_file(weights);
  fpi::io::write_file_atomically(weights, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(fpi::train::load_weights(experiment.model(), run("small") + "/checkpoints/last"), fpi::Error);
}

}  // namespace
