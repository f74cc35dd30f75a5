// The training loop of `fpi train`: epochs of steps with the next batch prepared on another thread,
// evaluation, metrics.jsonl, checkpoints, resume and a clean stop.
#include "fpi/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "fpi/autograd.hpp"
#include "fpi/dist/data_parallel.hpp"
#include "fpi/dist/sampler.hpp"
#include "fpi/generator.hpp"
#include "fpi/io/file.hpp"
#include "fpi/optim/clip_grad.hpp"
#include "train/checkpoint.hpp"
#include "train/progress.hpp"
#include "train/solve_summary.hpp"

namespace fpi::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

json summary_json(const SolveSummary& s) {
  return {{"samples", s.samples},
          {"mean_iterations", s.mean_iterations},
          {"max_iterations", s.max_iterations},
          {"converged_fraction", s.converged_fraction},
          {"fell_back", s.fell_back},
          {"best_iterate", s.best_iterate}};
}

// Where everything stateful is while a run trains; the checkpoint's training.safetensors is this.
struct Progress {
  std::int64_t epoch = 0;       // epochs completed
  std::int64_t next_batch = 0;  // in the epoch under way
  std::int64_t step = 0;        // optimizer steps taken
  double loss_sum = 0.0;        // the epoch under way: sum over its samples of the batch loss
  std::int64_t samples = 0;
  double train_seconds = 0.0;
  std::optional<double> best_metric;
  std::int64_t best_epoch = 0;
  std::optional<double> f1_threshold;  // eval.threshold "tune": the last evaluation's choice
};

State training_state(const Progress& p, const optim::Optimizer& optimizer, const optim::LRScheduler* schedule,
                     const SolveAccumulators& solves) {
  State state;
  state.set("trainer.epoch", p.epoch);
  state.set("trainer.next_batch", p.next_batch);
  state.set("trainer.step", p.step);
  state.set("trainer.loss_sum", p.loss_sum);
  state.set("trainer.samples", p.samples);
  state.set("trainer.train_seconds", p.train_seconds);
  if (p.best_metric) state.set("trainer.best_metric", *p.best_metric);
  state.set("trainer.best_epoch", p.best_epoch);
  if (p.f1_threshold) state.set("trainer.f1_threshold", *p.f1_threshold);
  solves.save(state, "trainer.fixed_point.");
  state.merge("optimizer.", optimizer.state_dict());
  if (schedule) state.merge("schedule.", schedule->state_dict());
  state.merge("generator.", default_generator().state_dict());
  return state;
}

// Tensors of a checkpoint live on the CPU; the optimizer's state belongs beside its parameters.
State on_device(const State& state, Device device) {
  State out;
  for (const auto& [key, value] : state.entries()) {
    if (const Tensor* tensor = std::get_if<Tensor>(&value)) out.set(key, tensor->to(device));
    else out.set(key, value);
  }
  return out;
}

void load_training_state(const State& state, const std::string& where, Device device, Progress& p,
                         optim::Optimizer& optimizer, optim::LRScheduler* schedule, SolveAccumulators& solves) {
  StateReader in(state, where);
  Progress loaded;
  loaded.epoch = in.get_int64("trainer.epoch");
  loaded.next_batch = in.get_int64("trainer.next_batch");
  loaded.step = in.get_int64("trainer.step");
  loaded.loss_sum = in.get_double("trainer.loss_sum");
  loaded.samples = in.get_int64("trainer.samples");
  loaded.train_seconds = in.get_double("trainer.train_seconds");
  if (in.contains("trainer.best_metric")) loaded.best_metric = in.get_double("trainer.best_metric");
  loaded.best_epoch = in.get_int64("trainer.best_epoch");
  if (in.contains("trainer.f1_threshold")) loaded.f1_threshold = in.get_double("trainer.f1_threshold");
  solves.load(in, "trainer.fixed_point.");
  const State optimizer_state = on_device(in.get_under("optimizer."), device);
  const State schedule_state = in.get_under("schedule.");
  const State generator_state = in.get_under("generator.");
  in.check_all_read();
  FPI_CHECK(schedule || schedule_state.empty(), where, ": the checkpoint has a schedule but the config has none");
  optimizer.load_state_dict(optimizer_state);
  if (schedule) schedule->load_state_dict(schedule_state);
  default_generator().load_state_dict(generator_state);
  p = loaded;
}

std::string tag_for(std::int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step-%09lld", static_cast<long long>(step));
  return buffer;
}

// metrics.jsonl keeps the epochs the checkpoint being resumed has seen; lines a crashed run wrote after
// it are dropped, so the file reads as one uninterrupted run.
void truncate_metrics(const fs::path& path, std::int64_t epochs) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json record;
    try {
      record = json::parse(line);
    } catch (const json::exception&) {
      break;  // a line cut short by a crash; everything before it is whole
    }
    const bool kept_epoch = record.contains("epoch") && record["epoch"].is_number_integer() &&
                            record["epoch"].get<std::int64_t>() <= epochs;
    if (!kept_epoch) break;
    kept += line + "\n";
  }
  io::write_file_atomically(path.string(), kept);
}

// Only rank 0 of a data-parallel run keeps the log (`keep`); the others write and print nothing.
class RunLog {
 public:
  RunLog(const fs::path& path, std::ostream* console, bool keep) : console_(keep ? console : nullptr) {
    if (!keep) return;
    file_.open(path, std::ios::app);
    FPI_CHECK(file_, "cannot open '", path.string(), "' for writing");
  }
  void line(const std::string& text) {
    if (file_.is_open()) file_ << text << "\n" << std::flush;
    if (console_) *console_ << text << "\n" << std::flush;
  }

 private:
  std::ofstream file_;
  std::ostream* console_;
};

std::string format_eval(const EvalResult& eval) {
  std::ostringstream out;
  out << std::setprecision(5);
  for (const auto& [name, value] : eval.metrics) out << "  " << eval.split << " " << name << " " << value;
  return out.str();
}

std::string format_solves(const std::vector<FixedPointSummary>& layers) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  for (const FixedPointSummary& layer : layers) {
    out << "  " << layer.layer << " fwd " << layer.forward.mean_iterations << "/" << layer.forward.max_iterations;
    if (layer.backward.samples > 0)
      out << " bwd " << layer.backward.mean_iterations << "/" << layer.backward.max_iterations;
    out << " conv " << std::setprecision(0) << 100.0 * layer.forward.converged_fraction << "%" << std::setprecision(1);
    const std::int64_t fell_back = layer.forward.fell_back + layer.backward.fell_back;
    if (fell_back > 0) out << " fell back " << fell_back;
  }
  return out.str();
}

json solves_json(const std::vector<FixedPointSummary>& layers) {
  json out = json::object();
  for (const FixedPointSummary& layer : layers) {
    json entry = {{"forward", summary_json(layer.forward)}};
    if (layer.backward.samples > 0) entry["backward"] = summary_json(layer.backward);
    if (const GradientCheckSummary& check = layer.gradient_check; check.checks > 0)
      entry["gradient_check"] = {{"checks", check.checks},
                                 {"unsettled", check.unsettled},
                                 {"flagged", check.flagged},
                                 {"max_angle_degrees", check.max_angle_degrees},
                                 {"mean_angle_degrees", check.mean_angle_degrees}};
    out[layer.layer] = entry;
  }
  return out;
}

// The forward and backward of one data-parallel step on this rank's block of `global`, then the
// all-reduces that leave every rank with the global batch's mean loss and gradients, the FPI statistics
// of all its samples and whether any rank was asked to stop. With `buckets` the gradients' all-reduces
// start during the backward as their buckets fill; without, one all-reduce follows the backward. A rank
// whose loss is not finite skips its backward; the NaN reaches every rank through the loss sum, so all
// of them stop at the same step.
struct SharedStep {
  double loss = 0.0;
  bool stop = false;
  double reduce_seconds = 0.0;  // in the collectives after the backward, waiting for the slowest rank included
  double overlap_seconds = 0.0;  // in the bucket hook during the backward (packing, starting, progressing)
};

// Dropout draws from the global generator. The ranks share its state, so a rank drawing the masks of
// its own rows from it would repeat another rank's masks on different rows. Within a step each rank
// draws from its own stream, seeded from the shared state and its rank; after the step every rank moves
// the shared generator on by the same one draw, so the ranks keep one state and the checkpoint holds it
// whatever N is. The masks are then independent per rank but not the ones one process would draw (that
// would take skipping the other ranks' rows inside every dropout layer): with dropout, N ranks train
// the same model with a different sample of masks.
class RankRandomStream {
 public:
  explicit RankRandomStream(int rank) : shared_(default_generator()), saved_(shared_) {
    Generator seeds = saved_;
    shared_.manual_seed(seeds.next_u64() + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(rank + 1));
  }
  ~RankRandomStream() {
    shared_ = saved_;
    shared_.next_u64();
  }
  RankRandomStream(const RankRandomStream&) = delete;
  RankRandomStream& operator=(const RankRandomStream&) = delete;

 private:
  Generator& shared_;
  Generator saved_;
};

SharedStep data_parallel_step(Experiment& experiment, dist::Communicator& communicator, const data::Batch& global,
                              const std::vector<Tensor>& parameters, dist::GradientBuckets* buckets,
                              SolveAccumulators& solves, bool stop) {
  const data::Batch batch = dist::shard_batch(global, communicator.rank(), communicator.size());
  const std::vector<double> before = solves.additive();
  if (buckets) buckets->begin_step(batch.size(), global.size());
  double loss = 0.0;
  const RankRandomStream stream(communicator.rank());  // on every rank, with rows or without
  if (batch.size() > 0) {
    const auto [output, local_loss] = experiment.forward(batch);
    solves.add_forward();
    loss = local_loss.item();
    if (std::isfinite(loss)) {
      if (buckets)
        autograd::backward({local_loss}, {}, std::nullopt, false,
                           [buckets](const Tensor& leaf) { buckets->gradient_ready(leaf); });
      else
        local_loss.backward();
      solves.add_backward();
    }
  }
  // [this rank's share of the mean loss, stop, the FPI counts this step added]
  std::vector<double> extras = {loss * static_cast<double>(batch.size()) / static_cast<double>(global.size()),
                                stop ? 1.0 : 0.0};
  const std::vector<double> after = solves.additive();
  for (std::size_t i = 0; i < after.size(); ++i) extras.push_back(after[i] - before[i]);
  const auto start = Clock::now();
  if (buckets) buckets->finish(extras);
  else dist::all_reduce_gradients(communicator, parameters, batch.size(), global.size(), extras);
  if (!solves.empty()) {
    std::vector<double> sums = before, maxima = solves.maxima();
    for (std::size_t i = 0; i < sums.size(); ++i) sums[i] += extras[2 + i];
    communicator.all_reduce(std::span<double>(maxima), dist::ReduceOp::Max);
    solves.set(sums, maxima);
  }
  return {extras[0], extras[1] > 0.0, seconds_since(start), buckets ? buckets->ready_seconds() : 0.0};
}

bool improves(const EvalConfig& eval, double value, const std::optional<double>& best) {
  if (!best) return true;
  return eval.mode == "max" ? value > *best : value < *best;
}

}  // namespace

RunConfig load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  const fs::path path = fs::path(run_dir) / "config.json";
  std::error_code error;
  FPI_CHECK(fs::exists(path, error), "'", run_dir, "' is not a run directory (no config.json)");
  return load_config(path.string(), overrides);
}

TrainResult train(const RunConfig& config, const TrainOptions& options) {
  FPI_CHECK(!options.run_dir.empty(), "train: no run directory given");
  const std::unique_ptr<dist::Communicator> alone = dist::single_process();
  dist::Communicator& communicator = options.communicator ? *options.communicator : *alone;
  const bool root = communicator.rank() == 0;
  const bool parallel = communicator.size() > 1;
  const fs::path run_dir(options.run_dir);
  std::error_code error;
  if (options.resume) {
    FPI_CHECK(fs::exists(run_dir / "checkpoints" / "last", error), "cannot resume '", options.run_dir,
              "': it has no checkpoint (checkpoints/last)");
    if (root) remove_unfinished_checkpoints(options.run_dir);
  } else if (root && fs::exists(run_dir, error)) {
    FPI_CHECK(options.force, "run directory '", options.run_dir,
              "' exists; pass --force to replace it, or --resume to continue the run in it");
    fs::remove_all(run_dir, error);
    FPI_CHECK(!error, "cannot remove '", options.run_dir, "': ", error.message());
  }
  if (root) {
    fs::create_directories(run_dir, error);
    FPI_CHECK(!error, "cannot create the run directory '", options.run_dir, "': ", error.message());
  }
  // The other ranks read the checkpoint being resumed only after rank 0 has tidied the folder.
  communicator.barrier();

  Experiment experiment(config);
  const RunConfig& resolved = experiment.config();
  if (root) io::write_file_atomically((run_dir / "config.json").string(), resolved.resolved.dump(2) + "\n");
  RunLog log(run_dir / "log.txt", options.console, root);
  GraphModule& model = experiment.model();

  const std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(resolved.optimizer, model.parameters());
  const std::unique_ptr<optim::LRScheduler> schedule = make_schedule(resolved.schedule, *optimizer);
  // Dropout draws from the global generator; seeded here and carried in checkpoints.
  manual_seed(resolved.seed);

  Progress progress;
  SolveAccumulators solves(model);
  if (options.resume) {
    const std::string folder = checkpoint_folder((run_dir / "checkpoints" / "last").string());
    load_weights(model, folder);
    load_training_state(read_training_state(folder), folder + "/training.safetensors", experiment.device(), progress,
                        *optimizer, schedule.get(), solves);
    if (root) truncate_metrics(run_dir / "metrics.jsonl", progress.epoch);
    if (progress.f1_threshold) experiment.set_f1_threshold(*progress.f1_threshold, false);
    log.line("resuming " + resolved.name + " at epoch " + std::to_string(progress.epoch + 1) + ", batch " +
             std::to_string(progress.next_batch + 1) + " (step " + std::to_string(progress.step) + ")");
  } else {
    log.line("training " + resolved.name + " on " + experiment.device().str() + " into " + options.run_dir);
  }
  if (parallel) log.line("data-parallel on " + std::to_string(communicator.size()) + " processes (" +
                         communicator.describe() + "); global batch " + std::to_string(resolved.train.batch_size));
  const data::Dataset& train_split = experiment.split("train");
  log.line(train_split.describe() + "; " + experiment.split(resolved.eval.split).describe());

  const std::int64_t epochs = resolved.train.epochs;
  const std::int64_t batch_size = resolved.train.batch_size;
  const std::int64_t batches = train_split.num_batches(batch_size);
  const std::vector<Tensor> parameters = model.parameters();
  std::unique_ptr<dist::GradientBuckets> buckets;
  if (parallel && options.dist_bucket_bytes > 0)
    buckets = std::make_unique<dist::GradientBuckets>(communicator, parameters, options.dist_bucket_bytes);
  // Every rank starts from rank 0's weights, fresh or resumed (the optimizer state comes from the same
  // checkpoint file on every rank).
  dist::broadcast_parameters(communicator, parameters);
  TrainResult result;
  result.best_metric = progress.best_metric;
  result.best_epoch = progress.best_epoch;

  const auto checkpoint = [&](bool best) {
    if (!root) return;
    write_checkpoint(options.run_dir, tag_for(progress.step), model,
                     training_state(progress, *optimizer, schedule.get(), solves), best);
  };

  while (progress.epoch < epochs) {
    const std::int64_t epoch = progress.epoch;
    model.train();
    ProgressBar bar(options.progress_bar && root ? options.console : nullptr, epoch + 1, epochs, batches);
    const auto epoch_start = Clock::now();
    const double seconds_before = progress.train_seconds;
    // This process's part of the epoch, for metrics.jsonl (not checkpointed).
    double reduce_seconds = 0.0, overlap_seconds = 0.0;
    std::future<data::Batch> next;
    const auto prefetch = [&](std::int64_t index) {
      if (index < batches)
        next = std::async(std::launch::async, [&train_split, epoch, index, batch_size] {
          return train_split.batch(epoch, index, batch_size);
        });
    };
    prefetch(progress.next_batch);
    while (progress.next_batch < batches) {
      const std::int64_t index = progress.next_batch;
      const data::Batch batch = next.get();
      prefetch(index + 1);

      const std::string where = "epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(progress.step + 1) +
                                " (batch " + std::to_string(index + 1) + " of " + std::to_string(batches) + ")";
      const std::string stopping = "; stopping. The last good checkpoint is " +
                                   (run_dir / "checkpoints" / "last").string() + " (nothing was written after it)";
      double loss_value = 0.0;
      bool stop = options.stop_requested && options.stop_requested->load();
      try {
        optimizer->zero_grad();
        if (parallel) {
          const SharedStep shared =
              data_parallel_step(experiment, communicator, batch, parameters, buckets.get(), solves, stop);
          loss_value = shared.loss;
          stop = shared.stop;
          reduce_seconds += shared.reduce_seconds;
          overlap_seconds += shared.overlap_seconds;
          FPI_CHECK(std::isfinite(loss_value), "the loss is ", loss_value);
        } else {
          const auto [output, loss] = experiment.forward(batch);
          solves.add_forward();
          loss_value = loss.item();
          FPI_CHECK(std::isfinite(loss_value), "the loss is ", loss_value);
          loss.backward();
          solves.add_backward();
        }
        if (options.after_backward) options.after_backward(parameters);
        // After the all-reduce: the norm clipped is the global batch's gradient's.
        if (resolved.train.clip_grad_norm) optim::clip_grad_norm(parameters, *resolved.train.clip_grad_norm);
        optimizer->step();
        if (parallel && options.dist_check_every > 0 && (progress.step + 1) % options.dist_check_every == 0)
          dist::check_parameters_agree(communicator, parameters, "after the optimizer step");
      } catch (const Error& e) {
        if (next.valid()) next.wait();
        fail(where, ": ", e.what(), stopping);
      }

      progress.step += 1;
      progress.next_batch += 1;
      progress.loss_sum += loss_value * static_cast<double>(batch.size());
      progress.samples += batch.size();
      progress.train_seconds = seconds_before + seconds_since(epoch_start);
      const auto layers = solves.summaries();
      bar.update(index + 1, progress.loss_sum / static_cast<double>(progress.samples),
                 layers.empty() ? -1.0 : layers.front().forward.mean_iterations);

      if (stop) {
        if (next.valid()) next.wait();
        bar.finish();
        checkpoint(false);
        log.line("stopped at epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(index + 1) + " of " +
                 std::to_string(batches) + "; checkpoint written; continue with --resume " + options.run_dir);
        result.interrupted = true;
        result.epochs_completed = progress.epoch;
        return result;
      }
    }
    bar.finish();

    const std::vector<FixedPointSummary> train_solves = solves.summaries();
    const double train_loss = progress.loss_sum / static_cast<double>(std::max<std::int64_t>(progress.samples, 1));
    const double lr = optimizer->lr();
    const double train_seconds = progress.train_seconds;
    if (schedule) schedule->step();
    progress.epoch += 1;
    progress.next_batch = 0;
    progress.loss_sum = 0.0;
    progress.samples = 0;
    progress.train_seconds = 0.0;
    solves = SolveAccumulators(model);

    json record = {{"epoch", progress.epoch}, {"step", progress.step}, {"lr", lr}, {"train", {{"loss", train_loss}}}};
    if (!train_solves.empty()) record["train"]["fixed_point"] = solves_json(train_solves);
    if (parallel)
      record["train"]["dist"] = {{"ranks", communicator.size()},
                                 {"buckets", buckets ? buckets->bucket_count() : 1},
                                 {"reduce_seconds", reduce_seconds},
                                 {"overlap_seconds", overlap_seconds}};
    bool best = false;
    std::string line = "epoch " + std::to_string(progress.epoch) + "/" + std::to_string(epochs);
    {
      std::ostringstream loss_text;
      loss_text << std::setprecision(5) << train_loss;
      line += "  train loss " + loss_text.str();
    }
    const bool last_epoch = progress.epoch == epochs;
    if (progress.epoch % resolved.eval.every == 0 || last_epoch) {
      EvalResult eval = experiment.evaluate(resolved.eval.split, resolved.eval.batch_size, {}, &communicator);
      const double value = eval.metric(resolved.eval.metric);
      FPI_CHECK(std::isfinite(value), "epoch ", progress.epoch, ": ", resolved.eval.split, " ", resolved.eval.metric,
                " is ", value, "; stopping. The last good checkpoint is ",
                (run_dir / "checkpoints" / "last").string());
      if (resolved.eval.tune_threshold) progress.f1_threshold = experiment.f1_threshold();
      best = improves(resolved.eval, value, progress.best_metric);
      if (best) {
        progress.best_metric = value;
        progress.best_epoch = progress.epoch;
      }
      json metrics = json::object();
      for (const auto& [name, metric_value] : eval.metrics) metrics[name] = metric_value;
      if (!eval.fixed_point.empty()) metrics["fixed_point"] = solves_json(eval.fixed_point);
      metrics["seconds"] = eval.seconds;
      record[eval.split] = metrics;
      line += format_eval(eval) + (best ? " (best)" : "");
      result.last_eval = std::move(eval);
      for (const std::string& split : options.also_evaluate) {
        if (split == resolved.eval.split) continue;
        const EvalResult extra = experiment.evaluate(split, resolved.eval.batch_size, {}, &communicator);
        json extra_metrics = json::object();
        for (const auto& [name, metric_value] : extra.metrics) extra_metrics[name] = metric_value;
        if (!extra.fixed_point.empty()) extra_metrics["fixed_point"] = solves_json(extra.fixed_point);
        extra_metrics["seconds"] = extra.seconds;
        record[extra.split] = extra_metrics;
      }
    }
    line += format_solves(train_solves);
    {
      std::ostringstream time_text;
      time_text << std::fixed << std::setprecision(1) << train_seconds;
      line += "  " + time_text.str() + " s";
    }
    record["best"] = best;
    record["seconds"] = train_seconds;
    if (root) {
      std::ofstream metrics_file(run_dir / "metrics.jsonl", std::ios::app);
      metrics_file << record.dump() << "\n";
      metrics_file.flush();
      FPI_CHECK(metrics_file, "cannot write '", (run_dir / "metrics.jsonl").string(), "'");
    }
    log.line(line);
    if (progress.epoch % resolved.checkpoint.every == 0 || last_epoch || best) checkpoint(best);
  }
  result.epochs_completed = progress.epoch;
  result.best_metric = progress.best_metric;
  result.best_epoch = progress.best_epoch;
  return result;
}

}  // namespace fpi::train
