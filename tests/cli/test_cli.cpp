// The `fpi` binary against a catalogue of bad input: each row is a command line (and the files it
// reads), the exit status it must end with (2 usage or config, 1 runtime failure) and the one line it
// must print. Then `fpi train` followed by `fpi eval` end to end on a tiny config of each experiment.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fpi/io/file.hpp"

#include "cli/cli_testing.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using fpi::testing::Outcome;
using fpi::testing::run_fpi;
using fpi::testing::run_shell;
using fpi::testing::source_path;

// A small valid toy config; the rows below break one thing in it at a time.
json toy_config() {
  return json::parse(R"({
    "name": "cli_toy",
    "data": {"type": "toy", "dim": 4, "train_size": 64, "validation_size": 32, "test_size": 32},
    "model": {"layers": [
      {"name": "fpi", "type": "fixed_point", "input": "input", "state_shape": [4],
       "map": {"type": "net", "layers": [
         {"name": "join", "type": "concat", "inputs": ["z", "x"]},
         {"name": "fc1", "type": "dense", "units": 12},
         {"name": "act", "type": "relu"},
         {"name": "fc2", "type": "dense", "units": 4}]}}]},
    "loss": {"type": "mse", "target": "target"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "train": {"epochs": 2, "batch_size": 16}
  })");
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fpi::testing::cli_built()) GTEST_SKIP() << "the fpi command line is not built (FPI_BUILD_TOOLS=OFF)";
    dir_ = fs::temp_directory_path() / ("fpi_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

 public:
  void write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  void write_config(const std::string& name, const json& config) { write(name, config.dump(2)); }

 protected:
  fs::path dir_;
};

struct BadInput {
  const char* name;
  // Edits the toy config (written as config.json) and may write other files into the folder.
  std::function<void(json& config, CliTest& test)> setup;
  const char* args;
  int status;
  const char* message;  // must appear in the output
};

class BadInputTest : public CliTest, public ::testing::WithParamInterface<BadInput> {};

const auto kNoChange = [](json&, CliTest&) {};

// Issue 9's catalogue: every row is checked against the real binary.
const BadInput kBadInputs[] = {
    // The command line.
    {"no_command", kNoChange, "", 2, "A subcommand is required"},
    {"unknown_command", kNoChange, "fly", 2, "fpi: unknown command 'fly'"},
    {"unknown_option", kNoChange, "train config.json --epoch 3", 2,
     "The following arguments were not expected: 3 --epoch"},
    {"epochs_not_a_number", kNoChange, "train config.json --epochs abc", 2,
     "needs a whole number from 1 to 1000000, got 'abc'"},
    {"epochs_zero", kNoChange, "train config.json --epochs 0", 2, "needs a whole number from 1 to 1000000, got '0'"},
    {"seed_negative", kNoChange, "train config.json --seed -1", 2, "got '-1'"},
    {"eval_without_config", kNoChange, "eval", 2, "config is required"},
    {"eval_bad_split", kNoChange, "eval config.json --split dev --checkpoint x", 2,
     "dev not in {test,validation,train}"},
    {"train_without_config", kNoChange, "train", 2, "give a CONFIG file, or --resume RUN_DIR"},
    {"also_evaluate_bad_split", kNoChange, "train config.json --also-evaluate dev", 2,
     "--also-evaluate: dev not in {train,validation,test}"},
    {"demo_bad_steps", kNoChange, "demo --steps 0", 2, "needs a whole number from 1 to 1000000, got '0'"},
    {"set_without_equals", kNoChange, "validate config.json --set train.epochs", 2, "--set train.epochs"},
    {"set_into_missing_object", kNoChange, "validate config.json --set nothing.here=1", 2, "--set nothing.here=1"},
    // Files.
    {"missing_config", kNoChange, "validate missing.json", 2, "missing.json"},
    {"config_is_a_directory", [](json&, CliTest& t) { t.write("folder/keep", ""); }, "validate folder", 2, "folder"},
    {"malformed_json", [](json&, CliTest& t) { t.write("broken.json", "{\n  \"name\": \"x\",\n  oops\n}"); },
     "validate broken.json", 2, "broken.json: line 3"},
    {"empty_config_file", [](json&, CliTest& t) { t.write("empty.json", ""); }, "validate empty.json", 2, "empty.json"},
    {"config_not_an_object", [](json&, CliTest& t) { t.write("list.json", "[1, 2]"); }, "validate list.json", 2,
     "list.json"},
    // Config keys and values.
    {"unknown_top_level_key", [](json& c, CliTest&) { c["epochs"] = 3; }, "validate config.json", 2, "epochs"},
    {"missing_name", [](json& c, CliTest&) { c.erase("name"); }, "validate config.json", 2, "name"},
    {"missing_loss", [](json& c, CliTest&) { c.erase("loss"); }, "validate config.json", 2, "loss"},
    {"epochs_zero_in_config", [](json& c, CliTest&) { c["train"]["epochs"] = 0; }, "validate config.json", 2,
     "train.epochs"},
    {"batch_size_string", [](json& c, CliTest&) { c["train"]["batch_size"] = "abc"; }, "validate config.json", 2,
     "train.batch_size"},
    {"epochs_fractional", [](json& c, CliTest&) { c["train"]["epochs"] = 1.5; }, "validate config.json", 2,
     "train.epochs"},
    {"negative_lr", [](json& c, CliTest&) { c["optimizer"]["lr"] = -1; }, "validate config.json", 2, "optimizer.lr"},
    {"unknown_optimizer", [](json& c, CliTest&) { c["optimizer"]["type"] = "adm"; }, "validate config.json", 2,
     "optimizer.type"},
    {"sgd_key_on_adam", [](json& c, CliTest&) { c["optimizer"]["momentum"] = 0.9; }, "validate config.json", 2,
     "momentum"},
    {"unknown_device", [](json& c, CliTest&) { c["device"] = "tpu"; }, "validate config.json", 2, "device"},
    {"unknown_data_type", [](json& c, CliTest&) { c["data"]["type"] = "mnist"; }, "validate config.json", 2,
     "data.type"},
    {"loss_target_not_a_field", [](json& c, CliTest&) { c["loss"]["target"] = "labels"; }, "validate config.json", 2,
     "loss.target"},
    {"eval_metric_not_configured", [](json& c, CliTest&) { c["eval"] = {{"metric", "f1"}}; }, "validate config.json",
     2, "eval.metric"},
    {"unknown_layer_type",
     [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][1]["type"] = "dens"; }, "validate config.json",
     2, "model.layers[0].map.layers[1].type: unknown layer type 'dens'"},
    {"units_not_a_number", [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][1]["units"] = "abc"; },
     "validate config.json", 2, "model.layers[0].map.layers[1].units"},
    {"unknown_layer_key", [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][1]["unitz"] = 3; },
     "validate config.json", 2, "unitz"},
    {"reference_to_missing_layer",
     [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][1]["input"] = "nowhere"; },
     "validate config.json", 2, "nowhere"},
    {"duplicate_layer_name", [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][2]["name"] = "fc1"; },
     "validate config.json", 2, "fc1"},
    {"map_output_has_wrong_shape",
     [](json& c, CliTest&) { c["model"]["layers"][0]["map"]["layers"][3]["units"] = 5; }, "validate config.json", 2,
     "model.layers[0]"},
    {"tolerance_zero", [](json& c, CliTest&) { c["model"]["layers"][0]["forward"] = {{"tolerance", 0}}; },
     "validate config.json", 2, "model.layers[0].forward.tolerance"},
    {"unknown_backward_mode", [](json& c, CliTest&) { c["model"]["layers"][0]["backward_mode"] = "magic"; },
     "validate config.json", 2, "model.layers[0].backward_mode"},
    // Runtime failures.
    {"cuda_without_gpu_or_build", kNoChange, "train config.json --device cuda:7 --out run", 1, "device 'cuda:7'"},
    {"existing_run_directory", [](json&, CliTest& t) { t.write("run/keep.txt", "precious"); },
     "train config.json --out run", 1, "exists; pass --force to replace it"},
    {"resume_a_folder_that_is_not_a_run", [](json&, CliTest& t) { t.write("notrun/keep.txt", ""); },
     "train --resume notrun", 1, "is not a run directory"},
    {"missing_bibtex_folder",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "bibtex"}, {"dir", "nowhere/bibtex"}};
       c["model"]["layers"][0]["input"] = "features";
       c["model"]["layers"][0]["state_shape"] = {159};
       c["model"]["layers"][0]["map"]["layers"][3]["units"] = 159;
       c["loss"]["target"] = "labels";
     },
     "train config.json --out run", 1, "nowhere/bibtex"},
    {"malformed_arff_row",
     [](json& c, CliTest& t) {
       t.write("bad/bibtex-train.arff", "@relation r\n@attribute a numeric\n@data\n1\nfoo\n");
       t.write("bad/bibtex-test.arff", "@relation r\n@attribute a numeric\n@data\n1\n");
       c["data"] = {{"type", "bibtex"}, {"dir", "bad"}};
       c["model"]["layers"][0]["input"] = "features";
       c["model"]["layers"][0]["state_shape"] = {159};
       c["model"]["layers"][0]["map"]["layers"][3]["units"] = 159;
       c["loss"]["target"] = "labels";
     },
     "train config.json --out run", 1,
     "bad/bibtex-train.arff:5: 'foo' is not a number, but attribute 'a' (column 0) is numeric"},
    {"checkpoint_missing", kNoChange, "eval config.json --checkpoint nowhere", 1,
     "checkpoint 'nowhere' does not exist"},
    {"checkpoint_truncated",
     [](json&, CliTest& t) { t.write("ckpt/model.safetensors", std::string("\x40\0\0\0\0\0\0\0{\"a\":", 13)); },
     "eval config.json --checkpoint ckpt", 1, "ckpt/model.safetensors"},
    {"checkpoint_not_safetensors", [](json&, CliTest& t) { t.write("ckpt/model.safetensors", "PK\x03\x04zipfile"); },
     "eval config.json --checkpoint ckpt", 1, "ckpt/model.safetensors"},
    {"save_outputs_on_vectors", kNoChange, "eval config.json --checkpoint x --save-outputs out", 2,
     "--save-outputs writes images"},
    {"nonfinite_data", [](json& c, CliTest&) { c["data"]["input_scale"] = 1e300; }, "train config.json --out run", 1,
     "epoch 1, step 1 (batch 1 of 4): layer 'fpi' (fixed_point): fixed_point 'fpi' forward: iteration 1 "
     "produced a non-finite value"},
    // Sizes no batch or image can have: refused by their config key before any data is read.
    {"batch_size_huge", [](json& c, CliTest&) { c["train"]["batch_size"] = 1000000000000; }, "validate config.json",
     2, "train.batch_size: expected an integer from 1 to 1000000, got 1000000000000"},
    {"eval_batch_size_huge", [](json& c, CliTest&) { c["eval"] = {{"batch_size", 2000000}}; }, "validate config.json",
     2, "eval.batch_size: expected an integer from 1 to 1000000, got 2000000"},
    {"patch_size_huge",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "denoising"}, {"patch_size", 100000}};
       c["loss"]["target"] = "clean";
     },
     "validate config.json", 2, "data.patch_size: expected an integer from 1 to 16384, got 100000"},
    {"patches_per_epoch_huge",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "denoising"}, {"patches_per_epoch", 10000000000}};
       c["loss"]["target"] = "clean";
     },
     "validate config.json", 2, "data.patches_per_epoch: expected an integer from 1 to 1000000000, got 10000000000"},
    {"flow_split_huge",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "flow"}, {"test_size", 1000000000000}};
       c["loss"]["target"] = "flow";
     },
     "validate config.json", 2, "data.test_size: expected an integer from 1 to 1000000000, got 1000000000000"},
    {"flow_translation_huge",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "flow"}, {"max_translation", 1e308}};
       c["loss"]["target"] = "flow";
     },
     "validate config.json", 2, "data.max_translation: expected a number from 0 to 16384, got 1e+308"},
    // Control characters from argv are escaped, not echoed: CLI11's own messages (an unknown option, a
    // bad value) and fpi's print as one line with \xNN in their place (/bin/sh has no $'...', hence printf).
    {"unknown_option_with_escape_sequence", kNoChange, "train config.json \"--a$(printf '\\033[2J')b\"", 2,
     "fpi: The following argument was not expected: --a\\x1b[2Jb (run 'fpi --help' for more)"},
    {"unknown_command_with_newline", kNoChange, "\"$(printf 'fly\\nfpi: forged line')\"", 2,
     "fpi: unknown command 'fly\\x0afpi: forged line'"},
    {"bad_value_with_bell", kNoChange, "demo --steps \"$(printf '1\\a')\"", 2, "got '1\\x07'"},
    {"flow_frames_huge",
     [](json& c, CliTest&) {
       c["data"] = {{"type", "flow"}, {"height", 64}, {"width", 4294967296}};
       c["loss"]["target"] = "flow";
     },
     "validate config.json", 2, "data.width: expected an integer from 8 to 16384, got 4294967296"},
};

TEST_P(BadInputTest, FailsWithItsStatusAndMessage) {
  const BadInput& row = GetParam();
  json config = toy_config();
  row.setup(config, *this);
  write_config("config.json", config);
  const Outcome outcome = run_fpi(dir_, row.args);
  EXPECT_EQ(outcome.status, row.status) << outcome.output;
  EXPECT_NE(outcome.output.find(row.message), std::string::npos)
      << "expected the output to contain: " << row.message << "\noutput:\n"
      << outcome.output;
  EXPECT_EQ(outcome.output.find("terminate called"), std::string::npos) << outcome.output;
}

// Whatever an argument holds, fpi's complaint about it is one line on stderr with no control character
// in it: a terminal cannot be driven, nor a log line forged, through a file name or an option.
TEST_F(CliTest, ErrorMessagesAreOneLineWithoutControlCharacters) {
  write_config("config.json", toy_config());
  for (const char* args :
       {"\"--$(printf 'x\\033]0;title\\007')\"", "\"$(printf 'a\\rb\\nc')\"",
        "train config.json \"--$(printf 'e\\npochs')\" 3",
        "demo --steps \"$(printf '\\t')\"", "validate \"$(printf 'no\\nsuch\\033.json')\"",
        "train config.json --out run --device \"$(printf 'cu\\nda')\"",
        "validate config.json --set \"$(printf 'train.epochs=\\001')\""}) {
    const Outcome outcome = run_fpi(dir_, std::string(args) + " 2>&1 >/dev/null");
    EXPECT_TRUE(outcome.status == 1 || outcome.status == 2) << args << "\n" << outcome.output;
    ASSERT_FALSE(outcome.output.empty()) << args;
    EXPECT_EQ(outcome.output.find('\n'), outcome.output.size() - 1) << args << "\n" << outcome.output;
    for (const char c : outcome.output.substr(0, outcome.output.size() - 1))
      EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) << args << "\n" << outcome.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInputTest, ::testing::ValuesIn(kBadInputs),
                         [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

TEST_F(CliTest, TrainThenEvalOnTheToyProblem) {
  write_config("config.json", toy_config());
  const Outcome trained = run_fpi(dir_, "train config.json --out run --quiet");
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("cli_toy: 2 epochs; best validation loss"), std::string::npos) << trained.output;
  const Outcome evaluated = run_fpi(dir_, "eval run --split test --json metrics.json");
  ASSERT_EQ(evaluated.status, 0) << evaluated.output;
  const json metrics = json::parse(fpi::io::read_file((dir_ / "metrics.json").string()));
  EXPECT_EQ(metrics["split"], "test");
  EXPECT_GT(metrics["metrics"]["loss"].get<double>(), 0.0);
  // The FPI layer's solves over the 32 test samples, as metrics.jsonl records them for training.
  const json& forward = metrics["fixed_point"]["fpi"]["forward"];
  EXPECT_EQ(forward["samples"], 32);
  EXPECT_GE(forward["mean_iterations"].get<double>(), 1.0);
  EXPECT_GE(forward["max_iterations"].get<int>(), forward["mean_iterations"].get<double>());
  EXPECT_GE(forward["converged_fraction"].get<double>(), 0.0);
  EXPECT_LE(forward["converged_fraction"].get<double>(), 1.0);
  EXPECT_GE(forward["fell_back"].get<int>(), forward["best_iterate"].get<int>());
  EXPECT_FALSE(metrics["fixed_point"]["fpi"].contains("backward"));
  // The same run directory again is refused, and --force replaces it.
  EXPECT_EQ(run_fpi(dir_, "train config.json --out run --quiet").status, 1);
  EXPECT_EQ(run_fpi(dir_, "train config.json --out run --quiet --force").status, 0);
}

TEST_F(CliTest, AlsoEvaluateRecordsTheTestSplitEveryEpochWithoutChoosingOnIt) {
  write_config("config.json", toy_config());
  const Outcome trained = run_fpi(dir_, "train config.json --out run --quiet --also-evaluate test");
  ASSERT_EQ(trained.status, 0) << trained.output;
  std::istringstream lines(fpi::io::read_file((dir_ / "run" / "metrics.jsonl").string()));
  int epochs = 0;
  for (std::string line; std::getline(lines, line); ++epochs) {
    const json record = json::parse(line);
    EXPECT_GT(record["test"]["loss"].get<double>(), 0.0) << line;
    EXPECT_NE(record["test"]["loss"], record["validation"]["loss"]) << line;
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_NE(trained.output.find("best validation loss"), std::string::npos) << trained.output;
}

TEST_F(CliTest, ResumeWithEpochsContinuesTheRun) {
  write_config("config.json", toy_config());
  ASSERT_EQ(run_fpi(dir_, "train config.json --out run --quiet --epochs 1").status, 0);
  const Outcome resumed = run_fpi(dir_, "train --resume run --epochs 2 --quiet");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("cli_toy: 2 epochs"), std::string::npos) << resumed.output;
  // A config that describes another run cannot resume this one.
  json other = toy_config();
  other["optimizer"]["lr"] = 0.5;
  write_config("other.json", other);
  const Outcome refused = run_fpi(dir_, "train other.json --resume run --epochs 3");
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("differs from the run being resumed at '/optimizer/lr'"), std::string::npos)
      << refused.output;
}

TEST_F(CliTest, TrainThenEvalOnBibtexAndDenoising) {
  json bibtex = json::parse(fpi::io::read_file(source_path("models/bibtex_fpi_nn.json")));
  bibtex["data"]["dir"] = source_path("data/bibtex");
  bibtex["train"]["epochs"] = 1;
  write_config("bibtex.json", bibtex);
  const Outcome bibtex_run = run_fpi(dir_, "train bibtex.json --out bibtex --quiet --set model.layers[0].map."
                                           "layers[1].units=16");
  ASSERT_EQ(bibtex_run.status, 0) << bibtex_run.output;
  const Outcome bibtex_eval = run_fpi(dir_, "eval bibtex --split test");
  ASSERT_EQ(bibtex_eval.status, 0) << bibtex_eval.output;
  EXPECT_NE(bibtex_eval.output.find("f1"), std::string::npos) << bibtex_eval.output;

  json denoising = json::parse(fpi::io::read_file(source_path("models/denoising_fpi_nn.json")));
  denoising["data"]["dir"] = source_path("data/denoising");
  denoising["data"]["max_train_images"] = 4;
  denoising["data"]["max_test_images"] = 2;
  denoising["data"]["validation_images"] = 1;
  denoising["data"]["patches_per_epoch"] = 32;
  denoising["train"]["epochs"] = 1;
  write_config("denoising.json", denoising);
  const Outcome denoising_run = run_fpi(dir_, "train denoising.json --out denoising --quiet");
  ASSERT_EQ(denoising_run.status, 0) << denoising_run.output;
  const Outcome saved = run_fpi(dir_, "eval denoising --split test --save-outputs images");
  ASSERT_EQ(saved.status, 0) << saved.output;
  EXPECT_NE(saved.output.find("psnr"), std::string::npos) << saved.output;
  EXPECT_TRUE(fs::exists(dir_ / "images" / "test-000.png"));
  EXPECT_TRUE(fs::exists(dir_ / "images" / "test-001.png"));
}

TEST_F(CliTest, InterruptWritesACheckpointAndExitsWith130) {
  write_config("config.json", toy_config());
  // Once the first checkpoint exists the run is well under way; SIGINT then asks it to stop.
  const Outcome outcome = run_shell(
      dir_, "\"$FPI\" train config.json --out run --epochs 1000000 --quiet & pid=$!; "
            "while [ ! -e run/checkpoints/last ]; do sleep 0.05; done; kill -INT $pid; wait $pid; echo \"status $?\"");
  EXPECT_NE(outcome.output.find("status 130"), std::string::npos) << outcome.output;
  EXPECT_NE(fpi::io::read_file((dir_ / "run" / "log.txt").string()).find("checkpoint written; continue with --resume"),
            std::string::npos);
  const Outcome evaluated = run_fpi(dir_, "eval run --checkpoint run/checkpoints/last");
  EXPECT_EQ(evaluated.status, 0) << evaluated.output;
}

// SIGKILL gives no chance to clean up. 100 times, a run is resumed, killed after a delay spread over 15
// steps and its last checkpoint is evaluated: it must always be whole, and the next trial's --resume must
// always continue from it. The delays span 0 to 1.5 times what the first run (start, one epoch, one
// checkpoint) took, at least 0 to 140 ms: fixed delays let a slow build (the sanitizers on a loaded
// machine) be killed before its first epoch every time, and then no kill lands in a checkpoint write.
TEST_F(CliTest, KilledAtAnyMomentTheLastCheckpointStaysWhole) {
  write_config("config.json", toy_config());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run_fpi(dir_, "train config.json --out run --quiet --epochs 1").status, 0);
  const double first_run_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const int step_ms = static_cast<int>(std::clamp(first_run_ms * 1.5, 140.0, 3000.0) / 14);
  const Outcome trials = run_shell(
      dir_,
      "for i in $(seq 0 99); do "
      "  \"$FPI\" train --resume run --epochs 1000000 --quiet > /dev/null 2> resume.err & pid=$!; "
      "  ms=$(( (i * 37) % 15 * " + std::to_string(step_ms) + " )); "
      "  sleep $(printf '%d.%03d' $(( ms / 1000 )) $(( ms % 1000 ))); kill -KILL $pid; wait $pid; killed=$?; "
      "  \"$FPI\" eval run --checkpoint run/checkpoints/last > /dev/null 2> eval.err; evaluated=$?; "
      "  echo \"trial $i killed $killed evaluated $evaluated\"; "
      "  if [ $evaluated -ne 0 ]; then cat eval.err; fi; "
      "  if [ $killed -ne 137 ]; then cat resume.err; fi; "
      "done");
  int trials_run = 0;
  std::istringstream lines(trials.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("trial ")) continue;
    ++trials_run;
    // 137: killed while running; the run never stops on its own with a million epochs to go.
    EXPECT_NE(line.find(" killed 137 "), std::string::npos) << line << "\n" << trials.output;
    EXPECT_NE(line.find(" evaluated 0"), std::string::npos) << line << "\n" << trials.output;
  }
  EXPECT_EQ(trials_run, 100) << trials.output;
  // The trials made progress, so kills landed at many points of the loop (a manual run of 30 left an
  // unfinished checkpoint folder behind in 14); the delays scaled to the first run make that hold on a
  // slow build too.
  const Outcome epochs = run_shell(dir_, "grep -c . run/metrics.jsonl");
  EXPECT_GT(std::stoi(epochs.output), 3) << epochs.output;
}

TEST_F(CliTest, ValidatePrintsTheModelSummary) {
  const Outcome outcome = run_fpi(dir_, "validate '" + source_path("models/bibtex_fpi_nn.json") + "'");
  ASSERT_EQ(outcome.status, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("Total params: 1,293,159"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find(": valid"), std::string::npos) << outcome.output;
}

}  // namespace
