// Experiment: a config's data, model and device, and the evaluation of a model on a split.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "fpi/data/flow.hpp"
#include "fpi/data/metrics.hpp"
#include "fpi/device.hpp"
#include "fpi/grad_mode.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/trainer.hpp"
#include "train/solve_summary.hpp"

namespace fpi::train {

double EvalResult::metric(const std::string& name) const {
  for (const auto& [key, value] : metrics)
    if (key == name) return value;
  fail("the evaluation on ", split, " did not compute the metric '", name, "'");
}

Device resolve_device(const std::string& name) {
  if (name == "cpu") return kCPU;
  if (name == "auto") return cuda_available() && cuda_device_count() > 0 ? cuda(0) : kCPU;
  int index = 0;
  if (name != "cuda") {
    const bool well_formed = name.starts_with("cuda:") && name.size() > 5 && name.size() < 9 &&
                             name.find_first_not_of("0123456789", 5) == std::string::npos;
    FPI_CHECK(well_formed, "device '", name, "': expected cpu, cuda, cuda:N or auto");
    index = std::stoi(name.substr(5));
  }
  FPI_CHECK(cuda_available(), "device '", name,
            "': no usable GPU (this build has no CUDA backend, or no driver or device was found); "
            "use --device cpu");
  FPI_CHECK(index < cuda_device_count(), "device '", name, "': there are ", cuda_device_count(), " CUDA devices");
  return cuda(index);
}

Experiment::Experiment(RunConfig config) : config_(std::move(config)), device_(resolve_device(config_.device)) {
  // Parameters are drawn on the CPU from the config's seed, so the same config starts from the same
  // weights on every device.
  Generator generator(config_.seed);
  BuiltModel built = build_model(config_.model, data_fields(config_), TensorOptions{.dtype = config_.dtype}, generator);
  config_.set_resolved_model(built.resolved);
  model_ = built.module;
  if (!device_.is_cpu()) model_->to(device_);
  splits_ = make_splits(config_);
  if (!config_.eval.tune_threshold) f1_threshold_ = config_.eval.threshold;
}

void Experiment::set_f1_threshold(double threshold, bool keep) {
  FPI_CHECK(std::isfinite(threshold) && threshold >= 0.0 && threshold <= 1.0,
            "the f1 threshold must be in [0, 1], got ", threshold);
  f1_threshold_ = threshold;
  keep_f1_threshold_ = keep;
}

const data::Dataset& Experiment::split(const std::string& name) const {
  const data::DatasetPtr& dataset = name == "train" ? splits_.train
                                    : name == "validation" ? splits_.validation
                                    : name == "test" ? splits_.test
                                                     : nullptr;
  FPI_CHECK(dataset, "no split called '", name, "' (expected train, validation or test)");
  return *dataset;
}

namespace {

Tensor compute_loss(const LossConfig& loss, const Tensor& output, const Tensor& target) {
  FPI_CHECK(output.shape() == target.shape(), "loss: the model's output has shape ", shape_str(output.shape()),
            " but the target '", loss.target, "' has shape ", shape_str(target.shape()));
  if (loss.type == "bce") return bce_loss(output, target);
  if (loss.type == "bce_with_logits") return bce_with_logits_loss(output, target);
  if (loss.type == "mse") return mse_loss(output, target);
  fail("loss.type: unknown loss '", loss.type, "'");
}

}  // namespace

std::pair<Tensor, Tensor> Experiment::forward(const data::Batch& batch) {
  std::vector<std::pair<std::string, Tensor>> sources;
  sources.reserve(batch.fields.size());
  for (const auto& [name, tensor] : batch.fields) sources.emplace_back(name, tensor.to(device_));
  Tensor output = model_->forward(sources);
  const Tensor target = batch.at(config_.loss.target).to(device_);
  Tensor loss = compute_loss(config_.loss, output, target);
  return {std::move(output), std::move(loss)};
}

EvalResult Experiment::evaluate(const std::string& split_name, std::int64_t batch_size,
                                const std::function<void(const data::Batch&, const Tensor&)>& outputs,
                                dist::Communicator* communicator) {
  const int rank = communicator ? communicator->rank() : 0;
  const int ranks = communicator ? communicator->size() : 1;
  const auto start = std::chrono::steady_clock::now();
  const data::Dataset& dataset = split(split_name);
  const bool was_training = model_->is_training();
  model_->eval();
  NoGrad no_grad;

  const bool has_f1 = std::find(config_.metrics.begin(), config_.metrics.end(), "f1") != config_.metrics.end();
  const bool tune = has_f1 && config_.eval.tune_threshold && !keep_f1_threshold_ && split_name == "validation";
  FPI_CHECK(!has_f1 || tune || f1_threshold_, "evaluation on ", split_name,
            ": eval.threshold is \"tune\" and no threshold has been chosen on the validation split yet");
  const std::vector<double> grid = tune ? data::spen_threshold_grid() : std::vector<double>{};
  // Per threshold of the grid, the sum over samples of their F1: summed like every other metric, so the
  // choice over sharded batches is the choice over the whole split.
  std::vector<double> grid_sums(grid.size(), 0.0);
  // A tuned threshold's F1 is reported beside the F1 at 0.5, the authors' rule (torch.round), so one run
  // gives the paper's protocol and the tuned one.
  const bool report_half = has_f1 && config_.eval.tune_threshold;
  double half_sum = 0.0;
  std::map<std::string, double> sums;
  std::int64_t samples = 0;
  SolveAccumulators fixed_point(*model_);
  const std::int64_t batches = dataset.num_batches(batch_size);
  for (std::int64_t index = rank; index < batches; index += ranks) {
    const data::Batch batch = dataset.batch(0, index, batch_size);
    const auto [output, loss] = forward(batch);
    const double loss_value = loss.item();
    FPI_CHECK(std::isfinite(loss_value), "evaluation on ", split_name, ", batch ", index + 1, " of ", batches,
              ": the loss is ", loss_value);
    fixed_point.add_forward();
    const std::int64_t n = batch.size();
    samples += n;
    sums["loss"] += loss_value * static_cast<double>(n);
    const Tensor prediction = output.to(kCPU);
    const Tensor& target = batch.at(config_.loss.target);
    for (const std::string& metric : config_.metrics) {
      if (metric == "mse") {
        sums["mse"] += data::mse(prediction, target) * static_cast<double>(n);
      } else if (metric == "psnr") {
        // The paper's PSNR: each image's own, averaged over images, on the clamped output.
        for (double value : data::psnr_per_sample(clamp(prediction, 0.0, 1.0), target)) sums["psnr"] += value;
      } else if (metric == "f1" && tune) {
        const std::vector<double> f1 = data::example_f1_grid(prediction, target, grid);
        for (std::size_t i = 0; i < grid.size(); ++i) grid_sums[i] += f1[i] * static_cast<double>(n);
      } else if (metric == "f1") {
        sums["f1"] += data::example_f1(prediction, target, *f1_threshold_) * static_cast<double>(n);
      } else if (metric == "epe") {
        // Every pixel counts, occluded or not, as in FlowNet's aEPE on Flying Chairs.
        sums["epe"] += data::average_epe(prediction, target) * static_cast<double>(n);
      }
    }
    if (report_half) half_sum += data::example_f1(prediction, target, 0.5) * static_cast<double>(n);
    if (outputs) outputs(batch, prediction);
  }
  if (was_training) model_->train();
  // Sums and counts are added up, never averages of averages: F1, PSNR and EPE are per-sample means.
  if (ranks > 1) {
    std::vector<double> totals = {static_cast<double>(samples), sums["loss"], half_sum};
    for (const std::string& metric : config_.metrics) totals.push_back(sums[metric]);
    totals.insert(totals.end(), grid_sums.begin(), grid_sums.end());
    communicator->all_reduce(std::span<double>(totals));
    samples = static_cast<std::int64_t>(totals[0]);
    sums["loss"] = totals[1];
    half_sum = totals[2];
    for (std::size_t i = 0; i < config_.metrics.size(); ++i) sums[config_.metrics[i]] = totals[3 + i];
    std::copy(totals.end() - static_cast<std::ptrdiff_t>(grid_sums.size()), totals.end(), grid_sums.begin());
    reduce_over_ranks(fixed_point, *communicator);
  }

  EvalResult result;
  result.split = split_name;
  FPI_CHECK(samples > 0, "evaluation on ", split_name, ": the split is empty");
  result.metrics.emplace_back("loss", sums["loss"] / static_cast<double>(samples));
  if (tune) {
    std::vector<double> f1(grid_sums.size());
    for (std::size_t i = 0; i < f1.size(); ++i) f1[i] = grid_sums[i] / static_cast<double>(samples);
    const data::ThresholdChoice choice = data::best_threshold(grid, f1);
    f1_threshold_ = choice.threshold;
    sums["f1"] = choice.f1 * static_cast<double>(samples);
  }
  for (const std::string& metric : config_.metrics)
    if (metric != "loss") result.metrics.emplace_back(metric, sums[metric] / static_cast<double>(samples));
  if (report_half) {
    result.metrics.emplace_back("f1_threshold", *f1_threshold_);
    result.metrics.emplace_back("f1_at_0.5", half_sum / static_cast<double>(samples));
  }
  result.fixed_point = fixed_point.summaries();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace fpi::train
