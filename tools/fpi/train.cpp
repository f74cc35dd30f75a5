// `fpi train`, `fpi eval` and `fpi validate`: the command-line face of fpi::train (fpi/train/trainer.hpp).
// The options that change a config (--epochs, --seed, --device) become --set overrides, so the resolved
// config in the run directory records them like any other key. Under `mpirun -np N` (a build with MPI)
// `fpi train` trains data-parallel on the N processes; rank 0 alone prints and writes.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "fpi/data/image.hpp"
#include "fpi/dist/communicator.hpp"
#include "fpi/io/file.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/json_reader.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi_cli {
namespace {

namespace fs = std::filesystem;
using fpi::train::ConfigError;

std::atomic<bool> g_stop_requested{false};

// The first Ctrl-C asks the trainer to checkpoint and stop after the current step; the handler then
// steps aside, so a second Ctrl-C ends the process at once.
void on_interrupt(int) {
  g_stop_requested.store(true);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

std::string format_number(double value, int precision = 5) {
  std::ostringstream out;
  out << std::setprecision(precision) << value;
  return out.str();
}

void print_eval(std::ostream& out, const fpi::train::EvalResult& eval) {
  out << eval.split;
  for (const auto& [name, value] : eval.metrics) out << "  " << name << " " << format_number(value);
  out << "  (" << std::fixed << std::setprecision(1) << eval.seconds << " s)\n" << std::defaultfloat;
  for (const fpi::train::FixedPointSummary& layer : eval.fixed_point) {
    out << "  fixed point '" << layer.layer << "': " << format_number(layer.forward.mean_iterations, 3)
        << " iterations on average, at most " << layer.forward.max_iterations << ", "
        << format_number(100.0 * layer.forward.converged_fraction, 4) << "% of " << layer.forward.samples
        << " samples converged";
    if (layer.forward.fell_back > 0)
      out << "; " << layer.forward.fell_back << " stalled and fell back, " << layer.forward.best_iterate
          << " of them to their best iterate";
    out << "\n";
  }
}

// A config's fully resolved form needs its model built (the layers' defaults); no data is read.
nlohmann::json fully_resolved(fpi::train::RunConfig config) {
  fpi::Generator generator(config.seed);
  const fpi::train::BuiltModel built = fpi::train::build_model(
      config.model, fpi::train::data_fields(config), fpi::TensorOptions{.dtype = config.dtype}, generator);
  config.set_resolved_model(built.resolved);
  return config.resolved;
}

// With --resume and a config file, the file must describe the run being resumed: only the keys a resume
// may change (the epochs to reach and the device) may differ.
void check_same_run(const fpi::train::RunConfig& given, const fpi::train::RunConfig& run, const std::string& path) {
  nlohmann::json a = fully_resolved(given), b = fully_resolved(run);
  for (nlohmann::json* config : {&a, &b}) {
    (*config)["train"].erase("epochs");
    config->erase("device");
  }
  const nlohmann::json patch = nlohmann::json::diff(b, a);
  if (patch.empty()) return;
  const std::string key = patch[0]["path"].get<std::string>();
  throw ConfigError(path + ": differs from the run being resumed at '" + key +
                    "'; resume with the run's own config (leave CONFIG out) or train a new run");
}

struct TrainArgs {
  std::string config;
  std::string device;
  std::optional<long long> epochs;
  std::optional<long long> seed;
  std::string out;
  std::string resume;
  std::vector<std::string> overrides;
  std::vector<std::string> also_evaluate;
  long long dist_check_every = 100;
  double dist_bucket_mb = 4.0;
  bool force = false;
  bool quiet = false;
};

std::vector<std::string> all_overrides(const TrainArgs& args) {
  std::vector<std::string> overrides = args.overrides;
  if (args.epochs) overrides.push_back("train.epochs=" + std::to_string(*args.epochs));
  if (args.seed) overrides.push_back("seed=" + std::to_string(*args.seed));
  if (!args.device.empty()) overrides.push_back("device=\"" + args.device + "\"");
  return overrides;
}

int train_on(const TrainArgs& args, fpi::dist::Communicator& communicator) {
  if (args.config.empty() && args.resume.empty())
    throw ConfigError("train: give a CONFIG file, or --resume RUN_DIR to continue a run");
  const std::vector<std::string> overrides = all_overrides(args);
  fpi::train::RunConfig config;
  fpi::train::TrainOptions options;
  if (!args.resume.empty()) {
    if (!args.out.empty() || args.force) throw ConfigError("train: --resume continues in its own run directory; "
                                                           "--out and --force do not apply");
    config = fpi::train::load_run_config(args.resume, overrides);
    if (!args.config.empty()) check_same_run(fpi::train::load_config(args.config, overrides), config, args.config);
    options.run_dir = args.resume;
    options.resume = true;
  } else {
    config = fpi::train::load_config(args.config, overrides);
    options.run_dir = args.out.empty() ? (fs::path("runs") / config.name).string() : args.out;
    options.force = args.force;
  }
  const bool root = communicator.rank() == 0;
  options.console = args.quiet || !root ? nullptr : &std::cout;
  options.progress_bar = !args.quiet && root && isatty(STDOUT_FILENO);
  options.stop_requested = &g_stop_requested;
  options.communicator = &communicator;
  options.dist_check_every = args.dist_check_every;
  options.also_evaluate = args.also_evaluate;
  options.dist_bucket_bytes = static_cast<std::size_t>(args.dist_bucket_mb * 1024.0 * 1024.0);
  install_interrupt_handler();

  const fpi::train::TrainResult result = fpi::train::train(config, options);
  if (result.interrupted) return 130;  // the shell's status for a process stopped by SIGINT
  if (!root) return 0;
  std::cout << config.name << ": " << result.epochs_completed << " epochs";
  if (result.best_metric)
    std::cout << "; best " << config.eval.split << " " << config.eval.metric << " "
              << format_number(*result.best_metric) << " at epoch " << result.best_epoch;
  std::cout << "\ncheckpoints: " << (fs::path(options.run_dir) / "checkpoints").string() << "/{last,best}\n";
  return 0;
}

// `command` on the processes it was launched with. world() refuses a build without MPI started as one
// of several processes before anything else runs. With several ranks an error on one of them ends them
// all (the others would wait in their next collective forever), with the status main() would have given.
template <class Args>
int on_world(const char* name, const Args& args, int (*command)(const Args&, fpi::dist::Communicator&)) {
  fpi::dist::Communicator& communicator = fpi::dist::world();
  if (communicator.size() == 1) return command(args, communicator);
  try {
    return command(args, communicator);
  } catch (const std::exception& e) {
    print_error(std::cerr,
                "fpi " + std::string(name) + " (rank " + std::to_string(communicator.rank()) + " of " +
                    std::to_string(communicator.size()) + "): ",
                e.what());
    communicator.abort(dynamic_cast<const ConfigError*>(&e) ? kUsageError : 1);
  }
}

int run_train(const TrainArgs& args) { return on_world("train", args, train_on); }

struct EvalArgs {
  std::string config;
  std::string checkpoint;
  std::string split = "test";
  std::optional<long long> batch_size;
  std::string save_outputs;
  std::string json;
  std::string device;
  std::vector<std::string> overrides;
};

// Noisy, model output and clean image side by side, one PNG per test image.
void save_image_outputs(const std::string& folder, const std::string& split, const fpi::data::Batch& batch,
                        const fpi::Tensor& output, std::int64_t& counter) {
  const fpi::Tensor panel = fpi::concat({batch.at("noisy"), fpi::clamp(output, 0.0, 1.0), batch.at("clean")}, 3);
  for (std::int64_t i = 0; i < panel.size(0); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "%s-%03lld.png", split.c_str(), static_cast<long long>(counter++));
    fpi::data::write_png((fs::path(folder) / name).string(), panel.select(0, i));
  }
}

// Under mpirun with N > 1 each rank evaluates every N-th batch and the metrics are reduced over the
// ranks (Experiment::evaluate); rank 0 alone prints and writes --json.
int eval_on(const EvalArgs& args, fpi::dist::Communicator& communicator) {
  if (!args.save_outputs.empty() && communicator.size() > 1)
    throw ConfigError("eval: --save-outputs runs as one process only (under mpirun it runs on " +
                      std::to_string(communicator.size()) + "); start it without mpirun or with -np 1");
  std::vector<std::string> overrides = args.overrides;
  if (!args.device.empty()) overrides.push_back("device=\"" + args.device + "\"");
  std::error_code error;
  const bool run_dir = fs::is_directory(args.config, error);
  fpi::train::RunConfig config =
      run_dir ? fpi::train::load_run_config(args.config, overrides) : fpi::train::load_config(args.config, overrides);
  std::string checkpoint = args.checkpoint;
  if (checkpoint.empty()) {
    if (!run_dir) throw ConfigError("eval: --checkpoint is required unless CONFIG is a run directory");
    checkpoint = (fs::path(args.config) / "checkpoints" / "best").string();
  }
  if (!args.save_outputs.empty() && config.data_type != "denoising")
    throw ConfigError("eval: --save-outputs writes images and needs image data; this config's data is '" +
                      config.data_type + "'");

  fpi::train::Experiment experiment(config);
  fpi::train::load_weights(experiment.model(), checkpoint);
  std::function<void(const fpi::data::Batch&, const fpi::Tensor&)> outputs;
  std::int64_t counter = 0;
  if (!args.save_outputs.empty()) {
    fs::create_directories(args.save_outputs, error);
    if (error) throw fpi::Error("cannot create '" + args.save_outputs + "': " + error.message());
    outputs = [&](const fpi::data::Batch& batch, const fpi::Tensor& output) {
      save_image_outputs(args.save_outputs, args.split, batch, output, counter);
    };
  }
  const std::int64_t batch_size = args.batch_size ? *args.batch_size : experiment.config().eval.batch_size;
  if (config.eval.tune_threshold) {
    // The run's choice on validation; a checkpoint without one (trained at a fixed threshold) gets it
    // chosen on validation here, never on the split evaluated.
    std::optional<double> threshold = fpi::train::checkpoint_f1_threshold(checkpoint);
    if (!threshold && args.split != "validation") {
      threshold = experiment.evaluate("validation", batch_size, {}, &communicator).metric("f1_threshold");
      if (communicator.rank() == 0)
        std::cout << "f1 threshold " << format_number(*threshold) << " chosen on the validation split\n";
    }
    if (threshold) experiment.set_f1_threshold(*threshold, true);
  }
  const fpi::train::EvalResult eval = experiment.evaluate(args.split, batch_size, outputs, &communicator);
  if (communicator.rank() != 0) return 0;
  std::cout << config.name << " (" << checkpoint << ")\n";
  print_eval(std::cout, eval);
  if (!args.json.empty()) {
    nlohmann::ordered_json record = {{"config", config.name}, {"checkpoint", checkpoint}, {"split", eval.split}};
    for (const auto& [name, value] : eval.metrics) record["metrics"][name] = value;
    // Each fixed-point layer's solves in metrics.jsonl's form: a metric from unconverged solves means little.
    record["fixed_point"] = nlohmann::ordered_json::object();
    for (const fpi::train::FixedPointSummary& layer : eval.fixed_point) {
      const fpi::train::SolveSummary& s = layer.forward;
      record["fixed_point"][layer.layer]["forward"] = {{"samples", s.samples},
                                                       {"mean_iterations", s.mean_iterations},
                                                       {"max_iterations", s.max_iterations},
                                                       {"converged_fraction", s.converged_fraction},
                                                       {"fell_back", s.fell_back},
                                                       {"best_iterate", s.best_iterate}};
    }
    record["seconds"] = eval.seconds;
    fpi::io::write_file_atomically(args.json, record.dump(2) + "\n");
  }
  if (!args.save_outputs.empty())
    std::cout << counter << " images (noisy | output | clean) in " << args.save_outputs << "\n";
  return 0;
}

int run_eval(const EvalArgs& args) { return on_world("eval", args, eval_on); }

struct ValidateArgs {
  std::string config;
  std::vector<std::string> overrides;
};

int run_validate(const ValidateArgs& args) {
  const fpi::train::RunConfig config = fpi::train::load_config(args.config, args.overrides);
  fpi::Generator generator(config.seed);
  const fpi::train::BuiltModel built = fpi::train::build_model(
      config.model, fpi::train::data_fields(config), fpi::TensorOptions{.dtype = config.dtype}, generator);
  std::cout << config.name << ": " << config.data_type << " data, loss " << config.loss.type << " on '"
            << config.loss.target << "', optimizer " << config.optimizer.type << " lr "
            << format_number(config.optimizer.lr) << ", " << config.train.epochs << " epochs of batch "
            << config.train.batch_size << "\n\n";
  built.module->print_summary(std::cout);
  std::cout << "\n" << args.config << ": valid\n";
  return 0;
}

void add_overrides(CLI::App* command, std::vector<std::string>& overrides) {
  command->add_option("--set", overrides,
                      "override a config key, KEY.PATH=VALUE (VALUE is JSON, or a string); repeatable")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
}

}  // namespace

Command add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* command = app.add_subcommand("train", "train a model from a JSON config into a run directory");
  command->add_option("config", args->config, "the model config (see models/README.md)")->type_name("CONFIG.json");
  command->add_option("--device", args->device, "cpu, cuda, cuda:N or auto (overrides the config's device)");
  command->add_option("--epochs", args->epochs, "epochs to train (overrides train.epochs)")
      ->check(whole_number(1, 1000000));
  command->add_option("--seed", args->seed, "seed of the initial weights and dropout (overrides seed)")
      ->check(whole_number(0, std::numeric_limits<long long>::max()));
  command->add_option("--out", args->out, "the run directory (default runs/NAME)")->type_name("DIR");
  command->add_option("--resume", args->resume, "continue the run in DIR from its last checkpoint")
      ->type_name("DIR");
  add_overrides(command, args->overrides);
  command->add_option("--also-evaluate", args->also_evaluate,
                      "evaluate SPLIT too at every evaluation, into metrics.jsonl, never to choose the best "
                      "checkpoint (the paper's protocol: the best test number over epochs); repeatable")
      ->check(CLI::IsMember({"train", "validation", "test"}))
      ->type_name("SPLIT")
      ->allow_extra_args(false);
  command->add_flag("--force", args->force, "replace the run directory if it exists");
  command->add_flag("--quiet", args->quiet, "print only the final summary");
  command->add_option("--dist-check-every", args->dist_check_every,
                      "under mpirun: compare the ranks' parameter hashes every K steps, 0 never")
      ->check(whole_number(0, 1000000000))
      ->capture_default_str()
      ->type_name("K");
  command->add_option("--dist-bucket-mb", args->dist_bucket_mb,
                      "under mpirun: all-reduce the gradients in buckets of about MB megabytes (float64), each "
                      "started during the backward; 0: one all-reduce after the backward")
      ->check(CLI::Range(0.0, 1024.0))
      ->capture_default_str()
      ->type_name("MB");
  return [args] { return run_train(*args); };
}

Command add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* command = app.add_subcommand("eval", "evaluate a checkpoint on a split: loss and the config's metrics");
  command->add_option("config", args->config, "the model config, or a run directory")
      ->required()
      ->type_name("CONFIG.json|RUN_DIR");
  command->add_option("--checkpoint", args->checkpoint,
                      "a checkpoint folder or its model.safetensors (default RUN_DIR/checkpoints/best)")
      ->type_name("PATH");
  command->add_option("--split", args->split, "the split to evaluate")
      ->check(CLI::IsMember({"test", "validation", "train"}))
      ->capture_default_str();
  command->add_option("--batch-size", args->batch_size, "evaluation batch size (default eval.batch_size)")
      ->check(whole_number(1, 1000000));
  command->add_option("--save-outputs", args->save_outputs,
                      "image models: write noisy | output | clean PNGs into DIR")
      ->type_name("DIR");
  command->add_option("--json", args->json, "also write the metrics and the fixed-point layers' solves as JSON to FILE")
      ->type_name("FILE");
  command->add_option("--device", args->device, "cpu, cuda, cuda:N or auto");
  add_overrides(command, args->overrides);
  return [args] { return run_eval(*args); };
}

Command add_validate(CLI::App& app) {
  auto args = std::make_shared<ValidateArgs>();
  CLI::App* command = app.add_subcommand(
      "validate", "check a config and every shape without training, and print the model's summary");
  command->add_option("config", args->config, "the model config")->required()->type_name("CONFIG.json");
  add_overrides(command, args->overrides);
  return [args] { return run_validate(*args); };
}

}  // namespace fpi_cli
