// `fpi bench paper`: the paper's experiments (toy, denoising, optical flow, Bibtex) trained from the configs in models/
// with a profile's overrides, FPI layers beside their feed-forward twins, into OUT/runs/<run>, and the paper's
// memory argument measured (the `backward` experiment, bench_backward.hpp: no training); then
// OUT/results.json, OUT/tables.md (also printed), a CSV and a gnuplot PNG per experiment and OUT/report.html
// (bench_report.hpp makes those).
//
// Runs are trained in this process through fpi::train::train, so the numbers come from the same code as
// `fpi train`; everything the tables say is read back from each run's metrics.jsonl, which the trainer
// writes with the test split evaluated every epoch beside the validation split (TrainOptions::
// also_evaluate). That gives both protocols from one run: the paper's (the best test number over epochs)
// and the clean one (the epoch chosen on validation, its test number).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_backward.hpp"
#include "bench_report.hpp"
#include "commands.hpp"
#include "fpi/data/flow.hpp"
#include "fpi/data/image.hpp"
#include "fpi/device.hpp"
#include "fpi/io/file.hpp"
#include "fpi/ops.hpp"
#include "fpi/storage.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/json_reader.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi_cli {
namespace {

namespace fs = std::filesystem;
using fpi::train::ConfigError;
using json = nlohmann::ordered_json;
using namespace bench;

struct BenchArgs {
  std::string profile = "quick";
  std::vector<std::string> only;
  std::string device;
  std::string out;
  std::string models = "models";
  bool force = false;
};

// What a profile changes, per experiment, and what the report says about it.
struct Profile {
  std::string device;
  std::vector<std::string> toy, bibtex, denoise, flow;
  BackwardSetup backward;  // its device comes from --device or the profile's
  std::string toy_note, bibtex_note, denoise_note, flow_note, backward_note;
};

bool wanted(const BenchArgs& args, const std::string& experiment) {
  return args.only.empty() || std::find(args.only.begin(), args.only.end(), experiment) != args.only.end();
}

// The hidden sizes sit at different places in each config; the quick profile shrinks them to stay fast.
std::vector<std::string> shrink(const std::string& config, int units, int channels) {
  const std::string u = std::to_string(units), c = std::to_string(channels);
  if (config == "bibtex_fpi_nn") return {"model.layers[0].map.layers[1].units=" + u};
  if (config == "bibtex_fpi_gd") return {"model.layers[0].map.layers[2].units=" + u};
  if (config == "bibtex_feedforward") return {"model.layers[0].units=" + u};
  if (config == "denoising_fpi_nn")
    return {"model.layers[0].map.layers[1].channels=" + c, "model.layers[0].map.layers[3].channels=" + c};
  if (config == "denoising_feedforward") return {"model.layers[0].channels=" + c, "model.layers[2].channels=" + c};
  return {};
}

Profile make_profile(const std::string& name) {
  Profile p;
  if (name == "quick") {
    p.toy = {"train.epochs=3", "data.train_size=200", "data.validation_size=100", "data.test_size=100"};
    p.bibtex = {"train.epochs=1"};
    p.denoise = {"train.epochs=1",          "train.batch_size=16",      "data.patches_per_epoch=64",
                 "data.max_train_images=4", "data.validation_images=1", "data.max_test_images=2"};
    p.toy_note = "quick profile: 3 epochs on 200 training, 100 validation and 100 test samples.";
    p.bibtex_note = "quick profile: 1 epoch, hidden layers shrunk to 32 units (the paper: 600 and 512).";
    p.denoise_note = "quick profile: 1 epoch of 64 patches from 4 Train400 images, 8 channels instead of 32, "
                     "1 validation image, the first 2 BSD68 test images.";
    p.flow = {"train.epochs=2",          "data.height=32",          "data.width=32",
              "data.train_size=64",      "data.validation_size=16", "data.test_size=16",
              "data.max_train_images=8", "data.validation_images=2", "data.max_test_images=2"};
    p.flow_note = "quick profile: 2 epochs of 64 new 32x32 pairs from 8 Train400 textures, 16 validation and 16 "
                  "test pairs.";
    p.backward = {.batch = 10, .features = 200, .hidden = 32, .labels = 20, .repeats = 1};
    p.backward_note = "quick profile: the layer shrunk to 200 + 20 -> 32 -> 20, batch 10, one pass per point.";
  } else if (name == "cpu") {
    p.toy = {"train.epochs=40"};
    p.bibtex = {"train.epochs=20"};
    p.denoise = {"train.epochs=8", "data.patches_per_epoch=6400", "schedule.milestones=[6]"};
    p.flow = {};
    p.toy_note = "cpu profile: the paper's setting, 40 epochs.";
    p.bibtex_note = "cpu profile: 20 epochs (the paper trained for hundreds).";
    p.denoise_note = "cpu profile: 8 epochs of 6400 40x40 patches (the paper: far more; the learning rate drops "
                     "10x after epoch 6), a 3x3 conv stack with 32 channels (the configs' size), PSNR on all 68 "
                     "BSD68 images.";
    p.flow_note = "cpu profile: the configs' size, 12 epochs of 2000 new 64x64 pairs each, aEPE on 200 fixed test "
                  "pairs made from BSD68 textures.";
    p.backward_note = "cpu profile: the paper's Bibtex layer at full size (1995 + 159 -> 600 -> 159, batch 40), "
                      "the median of 3 passes per point.";
  } else {
    p.device = "cuda";
    p.toy = {"train.epochs=40"};
    p.bibtex = {"train.epochs=100"};
    p.denoise = {"train.epochs=10", "data.patches_per_epoch=25600"};
    p.toy_note = "gpu profile: the paper's setting, 40 epochs.";
    p.bibtex_note = "gpu profile: 100 epochs.";
    p.denoise_note = "gpu profile: 10 epochs of 25600 40x40 patches, PSNR on all 68 BSD68 images.";
    p.flow = {"train.epochs=20",       "data.height=128",         "data.width=128",
              "data.train_size=8000",  "data.max_translation=10", "data.background_translation=6",
              "data.test_size=500",    "train.batch_size=32"};
    p.flow_note = "gpu profile: 20 epochs of 8000 new 128x128 pairs each, motions doubled with the size, aEPE on 500 "
                  "fixed test pairs made from BSD68 textures.";
    p.backward.repeats = 5;
    p.backward_note = "gpu profile: the paper's Bibtex layer at full size (1995 + 159 -> 600 -> 159, batch 40), "
                      "the median of 5 passes per point.";
  }
  return p;
}

std::vector<Run> make_suite(const BenchArgs& args, const Profile& profile) {
  const bool quick = args.profile == "quick";
  std::vector<Run> suite;
  const auto add = [&](Run run, const std::vector<std::string>& overrides) {
    run.overrides = overrides;
    if (quick) {
      for (const std::string& o : shrink(run.config, 32, 8)) run.overrides.push_back(o);
    }
    if (run.name.empty()) run.name = run.config;
    suite.push_back(std::move(run));
  };
  if (wanted(args, "toy")) {
    add({"toy", "toy_fpi_gd", "FPI_GD", "", {}, {}, {}}, profile.toy);
    add({"toy", "toy_fpi_nn", "FPI_NN", "", {}, {}, {}}, profile.toy);
    add({"toy", "toy_feedforward", "feed-forward", "", {}, {}, {}}, profile.toy);
  }
  if (wanted(args, "denoise")) {
    const int sigmas[] = {15, 20, 25};
    const double fpi_paper[] = {32.43, 31.00, 29.74}, ff_paper[] = {32.18, 30.44, 29.09};
    for (int i = 0; i < 3; ++i) {
      std::vector<std::string> overrides = profile.denoise;
      overrides.push_back("data.sigma=" + std::to_string(sigmas[i]));
      const std::string suffix = "_s" + std::to_string(sigmas[i]);
      add({"denoise", "denoising_fpi_nn", "FPI_NN", "denoising_fpi_nn" + suffix, sigmas[i], fpi_paper[i], {}},
          overrides);
      add({"denoise", "denoising_feedforward", "feed-forward", "denoising_feedforward" + suffix, sigmas[i],
           ff_paper[i], {}},
          overrides);
    }
  }
  if (wanted(args, "flow")) {
    add({"flow", "flow_fpi", "FlowNet-style + FPI layer", "", {}, {}, {}}, profile.flow);
    add({"flow", "flow_feedforward", "FlowNet-style", "", {}, {}, {}}, profile.flow);
  }
  if (wanted(args, "bibtex")) {
    add({"bibtex", "bibtex_fpi_nn", "FPI_NN", "", {}, 43.4, {}}, profile.bibtex);
    add({"bibtex", "bibtex_fpi_gd", "FPI_GD", "", {}, 43.2, {}}, profile.bibtex);
    add({"bibtex", "bibtex_feedforward", "feed-forward (MLP)", "", {}, 39.6, {}}, profile.bibtex);
  }
  const std::string device = args.device.empty() ? profile.device : args.device;
  if (!device.empty()) {
    for (Run& run : suite) run.overrides.push_back("device=\"" + device + "\"");
  }
  return suite;
}

std::int64_t count_parameters(const fpi::train::RunConfig& config) {
  fpi::Generator generator(config.seed);
  const fpi::train::BuiltModel built = fpi::train::build_model(
      config.model, fpi::train::data_fields(config), fpi::TensorOptions{.dtype = config.dtype}, generator);
  std::int64_t total = 0;
  for (const fpi::Tensor& p : built.module->parameters()) total += p.numel();
  return total;
}

// Noisy | denoised | clean panels of the first test images, from the run's best checkpoint; the data is
// reloaded with the fewest training images, which does not change the test images or their noise.
std::vector<std::string> write_denoised_images(const fs::path& out, const Run& run) {
  const fs::path run_dir = out / "runs" / run.name;
  fpi::train::RunConfig config = fpi::train::load_run_config(
      run_dir.string(), {"data.max_train_images=1", "data.validation_images=1", "data.max_test_images=2"});
  fpi::train::Experiment experiment(config);
  fpi::train::load_weights(experiment.model(), (run_dir / "checkpoints" / "best").string());
  std::vector<std::string> images;
  std::error_code error;
  fs::create_directories(out / "images", error);
  FPI_CHECK(!error, "cannot create '", (out / "images").string(), "': ", error.message());
  experiment.evaluate("test", 1, [&](const fpi::data::Batch& batch, const fpi::Tensor& output) {
    const fpi::Tensor panel =
        fpi::concat({batch.at("noisy"), fpi::clamp(output, 0.0, 1.0), batch.at("clean")}, 3);
    for (std::int64_t i = 0; i < panel.size(0); ++i) {
      const std::string name = "images/" + run.name + "-test-" + std::to_string(images.size()) + ".png";
      fpi::data::write_png((out / name).string(), panel.select(0, i));
      images.push_back(name);
    }
  });
  return images;
}

// Frame 1 | frame 2 | true flow | predicted flow for the first test pairs, from the run's best checkpoint,
// both flows coloured on one scale (the pair's largest true motion). Reloading with one training texture
// and fewer test pairs leaves the first test pairs as they were: they depend on (seed, index) and the
// test textures only.
std::vector<std::string> write_flow_images(const fs::path& out, const Run& run) {
  const fs::path run_dir = out / "runs" / run.name;
  fpi::train::RunConfig config = fpi::train::load_run_config(
      run_dir.string(), {"data.max_train_images=1", "data.validation_images=1", "data.test_size=3"});
  fpi::train::Experiment experiment(config);
  fpi::train::load_weights(experiment.model(), (run_dir / "checkpoints" / "best").string());
  std::vector<std::string> images;
  std::error_code error;
  fs::create_directories(out / "images", error);
  FPI_CHECK(!error, "cannot create '", (out / "images").string(), "': ", error.message());
  experiment.evaluate("test", 3, [&](const fpi::data::Batch& batch, const fpi::Tensor& output) {
    for (std::int64_t i = 0; i < output.size(0); ++i) {
      const fpi::Tensor frames = batch.at("frames").select(0, i), truth = batch.at("flow").select(0, i);
      double scale = 0.0;
      const std::vector<double> f = truth.contiguous().to_vector<double>();
      const std::size_t plane = f.size() / 2;
      for (std::size_t j = 0; j < plane; ++j) scale = std::max(scale, std::hypot(f[j], f[plane + j]));
      scale = scale > 0 ? scale : 1.0;
      // Enlarged to about 192 pixels high, because 64x64 frames are too small to look at.
      const std::int64_t factor = std::max<std::int64_t>(1, 192 / frames.size(1));
      const auto big = [&](const fpi::data::RgbImage& image) { return fpi::data::enlarge(image, factor); };
      const fpi::data::RgbImage panel = fpi::data::side_by_side(
          {big(fpi::data::gray_to_rgb(frames.narrow(0, 0, 1))), big(fpi::data::gray_to_rgb(frames.narrow(0, 1, 1))),
           big(fpi::data::flow_to_rgb(truth, scale)), big(fpi::data::flow_to_rgb(output.select(0, i), scale))},
          4);
      const std::string name = "images/" + run.name + "-test-" + std::to_string(images.size()) + ".png";
      fpi::data::write_png_rgb((out / name).string(), panel);
      images.push_back(name);
    }
  });
  return images;
}

RunResult run_one(const BenchArgs& args, const fs::path& out, const Run& run) {
  const std::string path = (fs::path(args.models) / (run.config + ".json")).string();
  const fpi::train::RunConfig config = fpi::train::load_config(path, run.overrides);
  RunResult result;
  result.run = run;
  result.metric = config.eval.metric;
  result.mode = config.eval.mode;
  if (!config.eval.tune_threshold) result.threshold = config.eval.threshold;
  result.parameters = count_parameters(config);

  fpi::train::TrainOptions options;
  options.run_dir = (out / "runs" / run.name).string();
  options.force = args.force;
  options.console = &std::cout;
  options.progress_bar = isatty(STDOUT_FILENO);
  options.also_evaluate = {"test"};
  const fpi::Device device = fpi::train::resolve_device(config.device);
  std::ostringstream device_name;
  device_name << device;
  result.device = device_name.str();
  fpi::reset_allocator_stats(device);
  const auto start = std::chrono::steady_clock::now();
  fpi::train::train(config, options);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.peak_bytes = fpi::allocator_stats(device).peak_bytes_in_use;
  read_metrics(fs::path(options.run_dir) / "metrics.jsonl", result);
  return result;
}

// --- the machine and the command ---------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

// The command as typed, from the kernel's copy of argv.
std::string exact_command() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string command;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\0', start);
    const std::string word = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    command += (command.empty() ? "" : " ") + shell_quote(word);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return command;
}

// The first line a shell command prints, empty when it fails.
std::string first_line_of(const std::string& command) {
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) return {};
  char buffer[256] = {};
  const bool got = std::fgets(buffer, sizeof buffer, pipe) != nullptr;
  const int status = pclose(pipe);
  if (!got || status != 0) return {};
  std::string line = buffer;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

// The checkout the bench runs from (it reads models/ there); "-dirty" when files differ from the commit.
std::string git_commit() {
  const std::string commit = first_line_of("git rev-parse HEAD");
  if (commit.empty()) return "unknown (git is missing or this is not a git checkout)";
  return first_line_of("git status --porcelain --untracked-files=no").empty() ? commit : commit + "-dirty";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return buffer;
}

std::vector<const RunResult*> of(const std::vector<RunResult>& results, const std::string& experiment) {
  std::vector<const RunResult*> rows;
  for (const RunResult& r : results)
    if (r.run.experiment == experiment) rows.push_back(&r);
  return rows;
}

int run_paper(const BenchArgs& args) {
  const Profile profile = make_profile(args.profile);
  const std::vector<Run> suite = make_suite(args, profile);
  // Resolved before any training, so that a device this machine lacks stops the run at once.
  const bool backward = wanted(args, "backward");
  BackwardSetup backward_setup = profile.backward;
  if (backward) {
    const std::string device = args.device.empty() ? profile.device : args.device;
    backward_setup.device = fpi::train::resolve_device(device.empty() ? "cpu" : device);
  }
  const fs::path out = args.out.empty() ? fs::path("runs") / ("bench-" + args.profile) : fs::path(args.out);
  std::error_code error;
  if (!fs::is_directory(args.models, error))
    throw ConfigError("bench paper: no folder '" + args.models + "' of model configs here; run from the repository "
                      "root (the configs' data dirs are relative to it too) or pass --models DIR");
  if (!args.force) {
    if (fs::exists(out / "results.json", error))
      throw ConfigError("bench paper: '" + out.string() + "' holds the results of an earlier run; pass --force to "
                        "replace them or choose another --out");
    for (const Run& run : suite)
      if (fs::exists(out / "runs" / run.name, error))
        throw ConfigError("bench paper: '" + (out / "runs" / run.name).string() + "' exists; pass --force to "
                          "replace it or choose another --out");
  }
  // A run that fails half-way must not leave the previous results looking like this run's.
  for (const char* file : {"results.json", "tables.md", "report.html"}) fs::remove(out / file, error);
  fs::create_directories(out / "runs", error);
  if (error) fpi::fail("bench paper: cannot create '", (out / "runs").string(), "': ", error.message());

  const std::string command = exact_command();
  // Read before the runs, not after: a checkout that moves during an hour's run would otherwise name a
  // commit the results did not come from.
  const std::string commit = git_commit();
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  std::vector<RunResult> results;
  for (std::size_t i = 0; i < suite.size(); ++i) {
    const Run& run = suite[i];
    std::cout << "\n[bench " << i + 1 << "/" << suite.size() << "] " << run.experiment << ": " << run.name << " ("
              << run.label << "), " << fixed(elapsed(), 0) << " s elapsed";
    if (i > 0)
      std::cout << ", about " << fixed(elapsed() / static_cast<double>(i) * static_cast<double>(suite.size() - i), 0)
                << " s left";
    std::cout << std::endl;
    results.push_back(run_one(args, out, run));
  }
  // The images come from the largest sigma's runs: the hardest noise shows the difference best.
  int max_sigma = 0;
  for (const RunResult& r : results)
    if (r.run.sigma) max_sigma = std::max(max_sigma, *r.run.sigma);
  for (RunResult& r : results)
    if (r.run.sigma && *r.run.sigma == max_sigma) r.images = write_denoised_images(out, r.run);
  for (RunResult& r : results)
    if (r.run.experiment == "flow") r.images = write_flow_images(out, r.run);

  std::vector<BackwardPoint> backward_points;
  if (backward) {
    const std::size_t total = 2 * backward_setup.iterations.size();
    std::size_t started = 0;
    backward_points = run_backward(backward_setup, [&](const std::string& what) {
      std::cout << "\n[bench backward " << ++started << "/" << total << "] " << what << ", " << fixed(elapsed(), 0)
                << " s elapsed" << std::endl;
    });
  }
  std::ostringstream backward_device;
  backward_device << backward_setup.device;

  json machine = {{"cpu", cpu_model()},
                  {"cores", std::thread::hardware_concurrency()},
                  {"fpi_threads", fpi::num_threads()},
                  {"device", !results.empty() ? results[0].device : backward ? backward_device.str() : "none"},
                  {"commit", commit},
                  {"date", utc_now()}};

  std::vector<Section> sections;
  std::string tables_md = "# fpi bench paper (" + args.profile + ")\n\n`" + command + "`\n\ncommit `" +
                          machine["commit"].get<std::string>() + "`, " + machine["cpu"].get<std::string>() + ", " +
                          std::to_string(machine["cores"].get<unsigned>()) + " cores, device " +
                          machine["device"].get<std::string>() + "\n\n";
  const struct {
    const char* experiment;
    const char* title;
    const std::string& note;
    int digits;
  } experiments[] = {{"toy", "Toy problem (Section 4.1)", profile.toy_note, 5},
                     {"denoise", "Image denoising (Section 4.2)", profile.denoise_note, 2},
                     {"flow", "Optical flow (Section 4.3, Figure 5)", profile.flow_note, 3},
                     {"bibtex", "Bibtex multi-label classification (Section 4.4)", profile.bibtex_note, 2}};
  std::vector<std::string> problems;
  // Prints the section's tables and adds it to tables.md and the page.
  const auto add_section = [&](Section s) {
    if (!s.plot_problem.empty()) problems.push_back(s.plot_problem);
    tables_md += "## " + s.title + "\n\n" + s.note + "\n\n";
    for (const Table& t : s.tables) {
      print_table(std::cout, t);
      tables_md += markdown_table(t);
    }
    tables_md += s.plot.empty() ? "No plot: " + s.plot_problem + "\n\n" : "![" + s.title + "](" + s.plot + ")\n\n";
    sections.push_back(std::move(s));
  };
  for (const auto& e : experiments) {
    const std::vector<const RunResult*> rows = of(results, e.experiment);
    if (rows.empty()) continue;
    Section s;
    s.experiment = e.experiment;
    s.title = e.title;
    s.csv = s.experiment + ".csv";
    s.note = e.note;
    const std::string name = e.experiment;
    if (name == "toy") s.tables.push_back(toy_table(rows));
    if (name == "denoise") s.tables.push_back(denoise_table(rows));
    if (name == "bibtex") s.tables.push_back(bibtex_table(rows));
    if (name == "flow") s.tables.push_back(flow_table(rows));
    s.tables.push_back(detail_table(std::string(e.title) + ": every run", rows, e.digits));
    if (name == "flow") {
      // Figure 5: the test aEPE per epoch, not the losses.
      fpi::io::write_file_atomically((out / s.csv).string(), metric_csv(rows));
      s.plot = plot_metric(out, name, s.title + ": test aEPE (pixels) per epoch", "aEPE (pixels)", rows,
                           s.plot_problem);
      s.plot_alt = "test aEPE per epoch";
      s.images_caption = "Test pairs: frame 1 | frame 2 | true flow | predicted flow (Middlebury colours: hue is "
                         "the direction, saturation the magnitude, one scale per pair):";
    } else {
      fpi::io::write_file_atomically((out / s.csv).string(), curve_csv(rows));
      s.plot = plot(out, name, s.title + ": train (solid) and test (dashed) loss", rows, s.plot_problem);
    }
    for (const RunResult* r : rows)
      for (const std::string& image : r->images) s.images.push_back(image);
    add_section(std::move(s));
  }
  if (backward) {
    Section s;
    s.experiment = "backward";
    s.title = "Memory of the implicit and the unrolled backward (Sections 3.2-3.3)";
    s.csv = "backward.csv";
    s.note = profile.backward_note;
    s.tables.push_back(backward_table(backward_setup, backward_points));
    fpi::io::write_file_atomically((out / s.csv).string(), backward_csv(backward_setup, backward_points));
    s.plot = plot_backward(out, "backward", s.title, s.plot_problem);
    s.plot_alt = "peak memory and time against forward iterations, both backward modes";
    add_section(std::move(s));
  }
  for (const std::string& problem : problems) std::cout << "note: " << problem << "\n";

  json rows = json::array();
  for (const RunResult& r : results) rows.push_back(result_json(r));
  json document = {{"command", command},   {"profile", args.profile}, {"machine", machine},
                   {"seconds", elapsed()}, {"notes", problems},       {"results", rows}};
  if (backward) document["backward"] = backward_json(backward_setup, backward_points);
  fpi::io::write_file_atomically((out / "results.json").string(), document.dump(2) + "\n");
  fpi::io::write_file_atomically((out / "tables.md").string(), tables_md);
  fpi::io::write_file_atomically((out / "report.html").string(),
                                 html_report(machine, command, args.profile, sections));
  std::cout << "\n" << results.size() << " runs" << (backward ? " and the backward experiment" : "") << " in "
            << fixed(elapsed(), 0) << " s; " << (out / "report.html").string() << ", results.json and tables.md in "
            << out.string() << "\n";
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* bench = app.add_subcommand("bench", "benchmark suites; 'fpi bench paper' runs the paper's experiments");
  bench->require_subcommand(1);
  CLI::App* paper = bench->add_subcommand(
      "paper", "train the paper's experiments (FPI layers and their feed-forward twins) and write results.json, "
               "tables.md, plots and report.html");
  paper->add_option("--profile", args->profile,
                    "quick (a smoke test, seconds), cpu (under an hour on 2 cores) or gpu (CUDA, the paper's scale)")
      ->check(CLI::IsMember({"quick", "cpu", "gpu"}))
      ->capture_default_str();
  paper->add_option("--only", args->only,
                    "experiments to run, comma-separated (default all); backward measures the implicit and the "
                    "unrolled backward's time and memory instead of training")
      ->delimiter(',')
      ->check(CLI::IsMember({"toy", "bibtex", "denoise", "flow", "backward"}))
      ->type_name("EXPERIMENT");
  paper->add_option("--device", args->device, "cpu, cuda, cuda:N or auto (overrides every config's device)");
  paper->add_option("--out", args->out, "the output folder (default runs/bench-PROFILE)")->type_name("DIR");
  paper->add_option("--models", args->models, "the folder of the model configs")
      ->type_name("DIR")
      ->capture_default_str();
  paper->add_flag("--force", args->force, "replace the results and run directories of an earlier run in DIR");
  return [args] { return run_paper(*args); };
}

}  // namespace fpi_cli
