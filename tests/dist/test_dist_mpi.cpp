// Data-parallel training through the real launcher: `mpirun -np 2 fpi train` against `-np 1` on the
// toy configs (FPI_NN and feed-forward), a rank killed with SIGKILL, and a run written by two ranks
// resumed by one. They need a build with MPI, the fpi binary and mpirun, and skip otherwise; a build
// without MPI checks instead that it refuses to run as one of several processes.
//
// Every rank runs with FPI_NUM_THREADS=1, so the two processes share the CI machine's two cores. The
// sanitizer build runs these too: Open MPI's library keeps allocations until the process exits, which
// LeakSanitizer would report as leaks in every rank, so the launched commands (only these) run with
// ASAN_OPTIONS=detect_leaks=0; every other sanitizer check stays on.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_testing.hpp"
#include "fpi/dist/communicator.hpp"
#include "fpi/io/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using fpi::testing::run_shell;

bool mpirun_found() { return run_shell(fs::temp_directory_path(), "command -v mpirun >/dev/null").status == 0; }

#define SKIP_WITHOUT_MPI()                                                                       \
  do {                                                                                           \
    if (!fpi::dist::mpi_built()) GTEST_SKIP() << "fpi was built without MPI (FPI_MPI=OFF)";      \
    if (!fpi::testing::cli_built()) GTEST_SKIP() << "the fpi command line is not built";         \
    if (!mpirun_found()) GTEST_SKIP() << "mpirun is not on PATH (Debian: openmpi-bin)";          \
  } while (0)

// 203 training samples in global batches of 50: the last batch has 3, and neither 203 nor 3 divides
// among 2 ranks evenly; 51 validation samples do not split evenly into the ranks' batches either.
const std::string kShrink = " --set data.train_size=203 --set data.validation_size=51 --set data.test_size=20";

fs::path fresh_folder(const std::string& name) {
  const fs::path folder = fs::temp_directory_path() / ("fpi_dist_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

const std::string kEnv = "FPI_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 ";

// mpirun on `ranks` processes, run in a test's own folder. Open MPI 4 keeps its session directory at
// $TMPDIR/ompi.HOST.UID, shared by every mpirun of the user, and two launchers that create it at the same
// moment can fail ("mkdir ... File exists", CI saw it with ctest -j2): each launch gets its folder instead.
std::string mpirun(int ranks) {
  return "TMPDIR=\"$PWD\" mpirun --oversubscribe --allow-run-as-root -x FPI_NUM_THREADS -x ASAN_OPTIONS -np " +
         std::to_string(ranks) + " ";
}

// `fpi train ARGS` on `ranks` processes (ranks 0: without mpirun).
std::string launch(int ranks, const std::string& args) {
  if (ranks == 0) return kEnv + "\"$FPI\" train " + args;
  return kEnv + mpirun(ranks) + "\"$FPI\" train " + args;
}

std::vector<nlohmann::json> read_metrics(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The last epoch's line, or an empty object where the run wrote none, so that a failed run fails the
// expectations that read it instead of reading past an empty vector.
nlohmann::json last_epoch(const fs::path& run) {
  const std::vector<nlohmann::json> lines = read_metrics(run);
  return lines.empty() ? nlohmann::json::object() : lines.back();
}

// The bound. One step's gradient on N ranks is the sum over ranks of (n_r / B) * g_r, each g_r a float32
// mean over the rank's rows, added in float64 and rounded once; one process sums the same B terms in
// float32 in another order. Either way an element carries a relative rounding error of at most about
// B * 2^-24 ≈ 3e-6 (B = 50) of the sum of |terms|, and Adam's update m / sqrt(v) passes a relative change
// of the gradient through unamplified: each step moves a weight by at most lr * 3e-6 = 3e-8 differently.
// Over T = 3 epochs * 5 steps = 15 steps that is 5e-7 (6e-7 for the 20 steps of the resume test), and
// the losses (smooth in the weights, O(1)) move by the same order. The training dynamics can amplify it
// (each step's gradient depends on the weights), so the tests allow 40x that: 2e-5 on weights (absolute,
// weights are O(0.1..1)) and relative on losses. Measured here: weights within 6e-8 (2 float32 ulps at
// 0.4), losses within 1e-7 relative.
constexpr double kWeightTolerance = 2e-5;
constexpr double kLossTolerance = 2e-5;

void expect_same_losses(const fs::path& a, const fs::path& b) {
  const std::vector<nlohmann::json> ma = read_metrics(a), mb = read_metrics(b);
  ASSERT_EQ(ma.size(), mb.size());
  ASSERT_FALSE(ma.empty());
  for (std::size_t e = 0; e < ma.size(); ++e) {
    EXPECT_EQ(ma[e]["epoch"], mb[e]["epoch"]);
    EXPECT_EQ(ma[e]["step"], mb[e]["step"]);
    for (const char* split : {"train", "validation"}) {
      if (!ma[e].contains(split)) continue;
      const double la = ma[e][split]["loss"].get<double>(), lb = mb[e][split]["loss"].get<double>();
      EXPECT_NEAR(la, lb, kLossTolerance * std::abs(la)) << split << " loss, epoch " << e + 1;
      // The FPI statistics are counts over all samples: the same samples on any number of ranks.
      if (!ma[e][split].contains("fixed_point")) continue;
      for (const auto& [layer, stats] : ma[e][split]["fixed_point"].items()) {
        EXPECT_EQ(stats["forward"]["samples"], mb[e][split]["fixed_point"][layer]["forward"]["samples"]);
      }
    }
  }
}

void expect_same_weights(const fs::path& a, const fs::path& b) {
  const fpi::io::Safetensors wa = fpi::io::load_safetensors((a / "checkpoints/last/model.safetensors").string());
  const fpi::io::Safetensors wb = fpi::io::load_safetensors((b / "checkpoints/last/model.safetensors").string());
  ASSERT_EQ(wa.tensors.size(), wb.tensors.size());
  for (const auto& [name, tensor] : wa.tensors) {
    const fpi::Tensor* other = wb.find(name);
    ASSERT_NE(other, nullptr) << name;
    const std::vector<double> x = tensor.to_vector(), y = other->to_vector();
    ASSERT_EQ(x.size(), y.size()) << name;
    double worst = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
    EXPECT_LE(worst, kWeightTolerance) << name;
  }
}

// Every path under `folder` (recursive) or just its entries, relative to it, sorted.
std::vector<std::string> listing(const fs::path& folder, bool recursive = true) {
  std::vector<std::string> out;
  if (recursive)
    for (const auto& entry : fs::recursive_directory_iterator(folder))
      out.push_back(fs::relative(entry.path(), folder));
  else
    for (const auto& entry : fs::directory_iterator(folder)) out.push_back(fs::relative(entry.path(), folder));
  std::sort(out.begin(), out.end());
  return out;
}

// Trains `args` on one process into folder/one and on two ranks into folder/two, the ranks compared after
// every step, and expects the same losses and weights.
void expect_two_ranks_train_as_one(const fs::path& folder, const std::string& args) {
  const auto one = run_shell(folder, launch(1, args + " --out one"));
  ASSERT_EQ(one.status, 0) << one.output;
  const auto two = run_shell(folder, launch(2, args + " --out two --dist-check-every 1"));
  ASSERT_EQ(two.status, 0) << two.output;
  expect_same_losses(folder / "one", folder / "two");
  expect_same_weights(folder / "one", folder / "two");
}

void expect_two_ranks_equal_one(const std::string& config) {
  const fs::path folder = fresh_folder(config);
  ASSERT_NO_FATAL_FAILURE(expect_two_ranks_train_as_one(
      folder, fpi::testing::source_path("models/" + config + ".json") + " --epochs 3 --quiet" + kShrink));
  // Rank 1 wrote nothing: the run directories hold the same files, and nothing else appeared.
  EXPECT_EQ(listing(folder / "one"), listing(folder / "two"));
  EXPECT_EQ(listing(folder, false), (std::vector<std::string>{"one", "two"}));
  fs::remove_all(folder);
}

// Bibtex (the loader wants the whole files), one epoch in global batches of 275: 16 steps, a last batch of
// 267 that does not split evenly over 2 ranks. FPI_NN's hidden layer is cut from 600 units to 64 with
// --set (its forward iterates a 1995 x 600 matmul ~20 times per step, 15 s an epoch here): the same
// layer structure, a few seconds per run. The bound above holds with B = 275: B * 2^-24 = 1.6e-5
// relative per gradient element, lr * 1.6e-5 = 1.6e-8 per step through Adam, 3e-7 over the 16 steps.
void expect_two_ranks_equal_one_on_bibtex(const std::string& config, const std::string& settings) {
  const fs::path folder = fresh_folder(config);
  ASSERT_NO_FATAL_FAILURE(expect_two_ranks_train_as_one(
      folder, fpi::testing::source_path("models/" + config + ".json") + " --epochs 1 --quiet --set data.dir=" +
                  fpi::testing::source_path("data/bibtex") +
                  " --set train.batch_size=275 --set eval.batch_size=500" + settings));
  // The default 4 MiB buckets (524,288 values): the feed-forward net's 1,197,759 gradients make three,
  // the cut FPI_NN's 138,079 one.
  EXPECT_EQ(last_epoch(folder / "two")["train"]["dist"]["buckets"], config == "bibtex_feedforward" ? 3 : 1);
  fs::remove_all(folder);
}

TEST(DistMpi, TwoRanksTrainTheBibtexFpiNnAsOneProcess) {
  SKIP_WITHOUT_MPI();
  expect_two_ranks_equal_one_on_bibtex("bibtex_fpi_nn", " --set model.layers[0].map.layers[1].units=64");
}

TEST(DistMpi, TwoRanksTrainTheBibtexFeedForwardAsOneProcess) {
  SKIP_WITHOUT_MPI();
  expect_two_ranks_equal_one_on_bibtex("bibtex_feedforward", "");
}

// Buckets of 1 KiB (128 values: the toy's 1994 gradients make 16, parameters cut across them) started
// during the backward give bit for bit what one all-reduce after the backward gives: each element is the
// same float64 sum of the same two terms.
TEST(DistMpi, BucketedGradientsEqualOneAllReduce) {
  SKIP_WITHOUT_MPI();
  const fs::path folder = fresh_folder("buckets");
  const std::string args =
      fpi::testing::source_path("models/toy_fpi_nn.json") + " --epochs 2 --quiet --dist-check-every 1" + kShrink;
  const auto whole = run_shell(folder, launch(2, args + " --out whole --dist-bucket-mb 0"));
  ASSERT_EQ(whole.status, 0) << whole.output;
  const auto bucketed = run_shell(folder, launch(2, args + " --out bucketed --dist-bucket-mb 0.0009765625"));
  ASSERT_EQ(bucketed.status, 0) << bucketed.output;
  EXPECT_EQ(last_epoch(folder / "whole")["train"]["dist"]["buckets"], 1);
  EXPECT_EQ(last_epoch(folder / "bucketed")["train"]["dist"]["buckets"], 16);
  const std::vector<nlohmann::json> mw = read_metrics(folder / "whole"), mb = read_metrics(folder / "bucketed");
  ASSERT_EQ(mw.size(), mb.size());
  for (std::size_t e = 0; e < mw.size(); ++e) EXPECT_EQ(mw[e]["train"]["loss"], mb[e]["train"]["loss"]);
  const auto wa = fpi::io::load_safetensors((folder / "whole/checkpoints/last/model.safetensors").string());
  const auto wb = fpi::io::load_safetensors((folder / "bucketed/checkpoints/last/model.safetensors").string());
  ASSERT_EQ(wa.tensors.size(), wb.tensors.size());
  for (const auto& [name, tensor] : wa.tensors) {
    const fpi::Tensor* other = wb.find(name);
    ASSERT_NE(other, nullptr) << name;
    EXPECT_EQ(tensor.to_vector(), other->to_vector()) << name;
  }
  fs::remove_all(folder);
}

// `fpi eval` under mpirun: each rank evaluates every second batch, the metrics are reduced, and rank 0
// alone prints and writes --json. The sums behind the metrics are added in another order: float64 sums
// of float32 values, so they agree to about 1e-7 relative.
TEST(DistMpi, EvalOnTwoRanksEqualsOneProcess) {
  SKIP_WITHOUT_MPI();
  const fs::path folder = fresh_folder("eval");
  const auto train = run_shell(folder, launch(0, fpi::testing::source_path("models/toy_fpi_nn.json") +
                                                     " --epochs 1 --quiet --out run" + kShrink));
  ASSERT_EQ(train.status, 0) << train.output;
  const std::string eval = "\"$FPI\" eval run --split validation --batch-size 10 --json ";
  const auto one = run_shell(folder, kEnv + eval + "one.json");
  ASSERT_EQ(one.status, 0) << one.output;
  const auto two = run_shell(folder, kEnv + mpirun(2) + eval + "two.json");
  ASSERT_EQ(two.status, 0) << two.output;
  const auto printed = [](const std::string& text) {
    std::size_t count = 0;
    for (std::size_t at = text.find("toy_fpi_nn ("); at != std::string::npos; at = text.find("toy_fpi_nn (", at + 1))
      ++count;
    return count;
  };
  EXPECT_EQ(printed(one.output), 1u) << one.output;
  EXPECT_EQ(printed(two.output), 1u) << two.output;
  std::ifstream a(folder / "one.json"), b(folder / "two.json");
  const nlohmann::json ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  ASSERT_FALSE(ja["metrics"].empty());
  for (const auto& [name, value] : ja["metrics"].items())
    EXPECT_NEAR(value.get<double>(), jb["metrics"][name].get<double>(), 1e-6 * std::abs(value.get<double>()))
        << name;
  for (const auto& [layer, stats] : ja["fixed_point"].items())
    EXPECT_EQ(stats["forward"]["samples"], jb["fixed_point"][layer]["forward"]["samples"]);
  EXPECT_EQ(ja["fixed_point"]["fpi"]["forward"]["samples"], 51);
  fs::remove_all(folder);
}

// With dropout each rank draws its masks from a stream of its own for the step, then every rank moves
// the shared generator on by one draw: the ranks stay identical (checked every step) and the generator
// state a checkpoint keeps is the same for 2 and 3 ranks, so a run with dropout resumes on any N.
TEST(DistMpi, DropoutKeepsOneGeneratorStateWhateverTheNumberOfRanks) {
  SKIP_WITHOUT_MPI();
  const fs::path folder = fresh_folder("dropout");
  const std::string args = fpi::testing::source_path("models/toy_feedforward.json") +
                           " --epochs 1 --quiet --dist-check-every 1"
                           " --set 'model.layers[1]={\"name\": \"drop\", \"type\": \"dropout\", \"p\": 0.5}'" +
                           kShrink;
  const auto two = run_shell(folder, launch(2, args + " --out two"));
  ASSERT_EQ(two.status, 0) << two.output;
  const auto three = run_shell(folder, launch(3, args + " --out three"));
  ASSERT_EQ(three.status, 0) << three.output;
  const auto a = fpi::io::load_safetensors((folder / "two/checkpoints/last/training.safetensors").string());
  const auto b = fpi::io::load_safetensors((folder / "three/checkpoints/last/training.safetensors").string());
  // The generator's words are integers: training.safetensors keeps them in its metadata.
  const auto generator_entries = [](const fpi::io::Safetensors& file) {
    fpi::io::Metadata entries;
    for (const auto& entry : file.metadata)
      if (entry.first.rfind("generator.", 0) == 0) entries.push_back(entry);
    return entries;
  };
  EXPECT_FALSE(generator_entries(a).empty());
  EXPECT_EQ(generator_entries(a), generator_entries(b));
  fs::remove_all(folder);
}

TEST(DistMpi, TwoRanksTrainTheToyFpiNnAsOneProcess) {
  SKIP_WITHOUT_MPI();
  expect_two_ranks_equal_one("toy_fpi_nn");
}

TEST(DistMpi, TwoRanksTrainTheToyFeedForwardAsOneProcess) {
  SKIP_WITHOUT_MPI();
  expect_two_ranks_equal_one("toy_feedforward");
}

// Two epochs on two ranks, then two more on one process, equal an uninterrupted one-process run of four.
TEST(DistMpi, ARunOfTwoRanksResumesOnOne) {
  SKIP_WITHOUT_MPI();
  const fs::path folder = fresh_folder("resume");
  const std::string args = fpi::testing::source_path("models/toy_fpi_nn.json") + " --quiet" + kShrink;
  const auto two = run_shell(folder, launch(2, args + " --epochs 2 --out resumed"));
  ASSERT_EQ(two.status, 0) << two.output;
  const auto resumed = run_shell(folder, launch(0, "--resume resumed --epochs 4 --quiet"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  const auto whole = run_shell(folder, launch(0, args + " --epochs 4 --out whole"));
  ASSERT_EQ(whole.status, 0) << whole.output;
  ASSERT_EQ(read_metrics(folder / "resumed").size(), 4u);
  expect_same_losses(folder / "whole", folder / "resumed");
  expect_same_weights(folder / "whole", folder / "resumed");
  fs::remove_all(folder);
}

// SIGKILL to rank 1 once the run has written a checkpoint: mpirun must end rank 0 and exit non-zero
// within the time limit (no hang in a collective), and the last checkpoint must still load.
TEST(DistMpi, KillingOneRankEndsTheRunAndKeepsTheLastCheckpoint) {
  SKIP_WITHOUT_MPI();
  const fs::path folder = fresh_folder("kill");
  const std::string args = fpi::testing::source_path("models/toy_fpi_nn.json") +
                           " --epochs 100000 --quiet --out run --set 'checkpoint={\"every\": 1}'" + kShrink;
  const std::string script =
      launch(2, args) + " & launcher=$!\n"
      "for i in $(seq 600); do [ -e run/checkpoints/last ] && break; sleep 0.1; done\n"
      "[ -e run/checkpoints/last ] || { echo 'no checkpoint after 60 s'; kill $launcher; exit 90; }\n"
      "victim=''\n"
      "for pid in $(pgrep -P $launcher); do\n"
      "  tr '\\0' '\\n' < /proc/$pid/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$pid\n"
      "done\n"
      "[ -n \"$victim\" ] || { echo 'rank 1 not found'; kill $launcher; exit 91; }\n"
      "kill -KILL $victim\n"
      "for i in $(seq 300); do kill -0 $launcher 2>/dev/null || break; sleep 0.1; done\n"
      "if kill -0 $launcher 2>/dev/null; then echo 'still running 30 s after the kill'; kill -KILL $launcher; "
      "exit 92; fi\n"
      "wait $launcher; echo \"launcher exit status $?\"\n";
  const auto outcome = run_shell(folder, script);
  ASSERT_EQ(outcome.status, 0) << outcome.output;
  EXPECT_EQ(outcome.output.find("launcher exit status 0"), std::string::npos) << outcome.output;
  EXPECT_NE(outcome.output.find("launcher exit status"), std::string::npos) << outcome.output;
  const auto eval = run_shell(folder, "FPI_NUM_THREADS=1 \"$FPI\" eval run --checkpoint run/checkpoints/last "
                                      "--split validation");
  EXPECT_EQ(eval.status, 0) << eval.output;
  fs::remove_all(folder);
}

// Only a build without MPI can show this: started as one of two processes (the launcher's variable is
// enough), it must refuse before it writes anything instead of training a copy of its own.
TEST(DistMpi, ABuildWithoutMpiRefusesToRunAsOneOfSeveralProcesses) {
  if (fpi::dist::mpi_built()) GTEST_SKIP() << "this build has MPI; the refusal is for builds without it";
  if (!fpi::testing::cli_built()) GTEST_SKIP() << "the fpi command line is not built";
  const fs::path folder = fresh_folder("refuse");
  const auto outcome = run_shell(folder, "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 " +
                                             launch(0, fpi::testing::source_path("models/toy_fpi_nn.json") +
                                                           " --out run"));
  EXPECT_EQ(outcome.status, 1) << outcome.output;
  EXPECT_NE(outcome.output.find("built without MPI but was started as one of 2 processes"), std::string::npos)
      << outcome.output;
  EXPECT_FALSE(fs::exists(folder / "run"));
  fs::remove_all(folder);
}

}  // namespace
