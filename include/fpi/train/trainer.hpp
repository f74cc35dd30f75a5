// The trainer behind `fpi train` and `fpi eval`: a RunConfig made concrete (data, model, optimizer,
// schedule on one device), trained epoch by epoch into a run directory:
//
//   RUN/config.json        the resolved config (every default filled in): alone, it reproduces the run
//   RUN/metrics.jsonl      one JSON object per epoch: losses, metrics, time, FPI iteration statistics
//   RUN/log.txt            what the console showed, one plain line per event
//   RUN/checkpoints/epoch-0003/{model,training}.safetensors, and the links last and best to such folders
//
// model.safetensors holds the module's state dict under PyTorch's names (a PyTorch user loads it with
// safetensors.torch.load_file); training.safetensors holds what a resumed run needs besides (optimizer,
// schedule, the global generator, epoch, batch, best metric). A checkpoint is a folder written in full
// under a temporary name, synced and renamed, and `last` is switched by an atomic rename of a link, so a
// crash at any moment leaves the previous checkpoint whole.
//
// A resumed run continues bit for bit: batches are pure functions of (epoch, index) (fpi/data/
// dataset.hpp), and everything stateful is in the checkpoint. On the CPU with the same thread count the
// resumed run's weights and metrics equal an uninterrupted run's.
//
// Data-parallel (TrainOptions::communicator with several ranks, `mpirun -np N fpi train`): each rank
// takes a disjoint block of every global batch (fpi/dist/sampler.hpp), gradients become the global
// batch's before clipping and the optimizer step, the FPI statistics and losses are summed over ranks,
// evaluation is split among the ranks, and only rank 0 writes the run directory or prints. A checkpoint
// does not depend on how many ranks wrote it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fpi/data/dataset.hpp"
#include "fpi/dist/communicator.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/optim.hpp"
#include "fpi/train/config.hpp"
#include "fpi/train/graph.hpp"

namespace fpi::train {

// A fixed-point layer's solves over an epoch or an evaluation, all samples together.
struct SolveSummary {
  std::int64_t samples = 0;
  double mean_iterations = 0.0;
  int max_iterations = 0;
  double converged_fraction = 0.0;
  std::int64_t fell_back = 0;     // samples that stalled and left the configured solver (stall_window)
  std::int64_t best_iterate = 0;  // of those, the samples that reached the chain's end unconverged
};

// A fixed-point layer's gradient self-checks over an epoch (fpi::FixedPointOptions::gradient_check_every).
struct GradientCheckSummary {
  std::int64_t checks = 0;     // backward passes checked
  std::int64_t unsettled = 0;  // of them, those whose unrolled reference had not converged: no verdict
  std::int64_t flagged = 0;    // settled checks above the layer's gradient_check_max_degrees
  double max_angle_degrees = 0.0;   // over the settled checks
  double mean_angle_degrees = 0.0;  // over the settled checks
};

struct FixedPointSummary {
  std::string layer;  // the dotted module name ("fpi")
  SolveSummary forward, backward;
  GradientCheckSummary gradient_check;
};

struct EvalResult {
  std::string split;
  std::vector<std::pair<std::string, double>> metrics;  // "loss" first, then the configured ones
  std::vector<FixedPointSummary> fixed_point;
  double seconds = 0.0;

  // The metric called `name`; throws when it was not computed.
  double metric(const std::string& name) const;
};

// A config made concrete on its device: what `fpi train`, `fpi eval` and a C++ program share.
class Experiment {
 public:
  // Loads the data, builds the model on the CPU from config.seed and moves it to the device. `device`
  // overrides config.device when not empty. The resolved model section goes into config().resolved.
  explicit Experiment(RunConfig config);

  const RunConfig& config() const { return config_; }
  Device device() const { return device_; }
  GraphModule& model() { return *model_; }
  std::shared_ptr<GraphModule> model_ptr() const { return model_; }
  const data::Splits& splits() const { return splits_; }
  // The split called "train", "validation" or "test".
  const data::Dataset& split(const std::string& name) const;

  // The model's output and the loss for one batch (moved to the device); records on the tape when grad
  // mode is on.
  std::pair<Tensor, Tensor> forward(const data::Batch& batch);
  // Loss, the configured metrics and the FPI statistics over a whole split, in evaluation mode. With
  // `outputs` set, each batch's model output is handed to it (the CPU tensor) with the batch. With a
  // communicator of several ranks, each rank evaluates every size()-th batch and the sums behind the
  // metrics are added up over the ranks: every rank returns the whole split's result, and `outputs` sees
  // this rank's batches only.
  EvalResult evaluate(const std::string& split, std::int64_t batch_size,
                      const std::function<void(const data::Batch&, const Tensor&)>& outputs = {},
                      dist::Communicator* communicator = nullptr);

  // The threshold the f1 metric uses: eval.threshold, or with eval.threshold "tune" the one the last
  // evaluation of the validation split chose (none before it; evaluating another split is then an error).
  // The choice is reported as the metric "f1_threshold" beside f1.
  std::optional<double> f1_threshold() const { return f1_threshold_; }
  // Sets it (a checkpoint's choice). With `keep`, evaluations of the validation split use it too instead
  // of choosing again, as `fpi eval` does on a checkpoint.
  void set_f1_threshold(double threshold, bool keep);

 private:
  RunConfig config_;
  Device device_;
  data::Splits splits_;
  std::shared_ptr<GraphModule> model_;
  std::optional<double> f1_threshold_;
  bool keep_f1_threshold_ = false;
};

// "cpu", "cuda", "cuda:1" or "auto" (CUDA when a device is usable, else the CPU). A CUDA device that
// cannot be used is an fpi::Error that says why.
Device resolve_device(const std::string& name);

struct TrainOptions {
  std::string run_dir;
  // Replace a run directory that exists (without it, an existing directory is an error).
  bool force = false;
  // Continue the run in run_dir from its `last` checkpoint.
  bool resume = false;
  // Console output: a line per epoch, and with progress_bar a bar redrawn per batch (for a terminal).
  std::ostream* console = nullptr;
  bool progress_bar = false;
  // Polled between steps (a signal handler sets it): the trainer writes a checkpoint and returns.
  const std::atomic<bool>* stop_requested = nullptr;
  // Between backward and the optimizer step, with the gradients in place: where data-parallel training
  // averages them across processes.
  std::function<void(const std::vector<Tensor>& parameters)> after_backward;
  // The processes training this model together (null: this process alone). With several ranks the
  // gradients are already the global batch's when after_backward sees them.
  dist::Communicator* communicator = nullptr;
  // With several ranks, every this many optimizer steps the ranks compare a hash of their parameters and
  // all stop with an error when they differ (0: never). Cheap: one pass over the parameters.
  std::int64_t dist_check_every = 100;
  // With several ranks, the gradients are all-reduced in buckets of about this many bytes (of float64
  // gradient), each started during the backward as soon as its gradients are final, so the
  // communication overlaps the rest of the backward (dist::GradientBuckets). 0: one all-reduce of all
  // gradients after the backward. The results are equal either way.
  std::size_t dist_bucket_bytes = std::size_t{4} << 20;
  // Splits evaluated too at every evaluation, recorded in metrics.jsonl under their names but never
  // used to choose `best` (a benchmark reports the paper's protocol, best test F1 over epochs, beside
  // the clean one this way).
  std::vector<std::string> also_evaluate;
};

struct TrainResult {
  std::int64_t epochs_completed = 0;
  bool interrupted = false;
  std::optional<EvalResult> last_eval;
  std::optional<double> best_metric;
  std::int64_t best_epoch = 0;
};

// Trains `config` into options.run_dir. A NaN or infinite loss stops the run with an fpi::Error naming
// the epoch and step, after the last good checkpoint was kept.
TrainResult train(const RunConfig& config, const TrainOptions& options);

// The run directory's resolved config, for --resume and `fpi eval` on a run.
RunConfig load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides = {});

// Loads the weights of a checkpoint (a checkpoint folder, or its model.safetensors) into `model`,
// checking every name and shape against the model ("fpi.map.net.fc1.weight: shape (600, 1995) in the
// checkpoint, (600, 1996) in the model").
void load_weights(nn::Module& model, const std::string& checkpoint);

// The f1 threshold a checkpoint's run chose on the validation split (eval.threshold "tune"); empty for a
// checkpoint of a run that did not tune it.
std::optional<double> checkpoint_f1_threshold(const std::string& checkpoint);

}  // namespace fpi::train
