// Example-based F1 on the host: both tensors are copied to float64 CPU vectors once, then each
// threshold is one pass over (examples x labels) counting |P∩T|, |P| and |T| per example. MSE and PSNR
// also copy to float64 on the host, so a float32 image's error is summed without float32 rounding.
#include "fpi/data/metrics.hpp"

#include <cmath>
#include <limits>

namespace fpi::data {
namespace {

struct Table {
  std::vector<double> scores;
  std::vector<double> targets;
  std::int64_t examples = 0;
  std::int64_t labels = 0;
};

Table host_table(const Tensor& scores, const Tensor& targets, const char* op) {
  FPI_CHECK(scores.defined() && targets.defined(), op, ": scores and targets must be defined tensors");
  FPI_CHECK(scores.dim() == 2 && scores.shape() == targets.shape(), op, ": scores ", shape_str(scores.shape()),
            " and targets ", shape_str(targets.shape()), " must both be (examples, labels)");
  FPI_CHECK(scores.size(0) > 0, op, ": needs at least one example");
  Table t{scores.to_vector<double>(), targets.to_vector<double>(), scores.size(0), scores.size(1)};
  for (std::size_t i = 0; i < t.scores.size(); ++i) {
    FPI_CHECK(!std::isnan(t.scores[i]), op, ": score (", i / t.labels, ", ", i % t.labels, ") is NaN");
    FPI_CHECK(t.targets[i] == 0.0 || t.targets[i] == 1.0, op, ": target (", i / t.labels, ", ", i % t.labels,
              ") is ", t.targets[i], "; targets must be 0 or 1");
  }
  return t;
}

double mean_f1(const Table& t, double threshold) {
  double total = 0.0;
  for (std::int64_t e = 0; e < t.examples; ++e) {
    const double* s = t.scores.data() + e * t.labels;
    const double* y = t.targets.data() + e * t.labels;
    std::int64_t both = 0, predicted = 0, truth = 0;
    for (std::int64_t l = 0; l < t.labels; ++l) {
      const bool p = s[l] >= threshold;
      const bool g = y[l] == 1.0;
      both += p && g;
      predicted += p;
      truth += g;
    }
    total += predicted + truth == 0 ? 1.0 : 2.0 * static_cast<double>(both) / static_cast<double>(predicted + truth);
  }
  return total / static_cast<double>(t.examples);
}

}  // namespace

double example_f1(const Tensor& scores, const Tensor& targets, double threshold) {
  return mean_f1(host_table(scores, targets, "example_f1"), threshold);
}

std::vector<double> example_f1_grid(const Tensor& scores, const Tensor& targets, std::span<const double> grid) {
  const Table table = host_table(scores, targets, "example_f1_grid");
  std::vector<double> f1;
  f1.reserve(grid.size());
  for (double threshold : grid) f1.push_back(mean_f1(table, threshold));
  return f1;
}

ThresholdChoice best_threshold(std::span<const double> grid, std::span<const double> f1) {
  FPI_CHECK(!grid.empty(), "best_threshold: the threshold grid is empty");
  FPI_CHECK(grid.size() == f1.size(), "best_threshold: ", grid.size(), " thresholds but ", f1.size(), " F1 values");
  ThresholdChoice best{grid[0], f1[0]};
  for (std::size_t i = 1; i < grid.size(); ++i)
    if (f1[i] > best.f1) best = {grid[i], f1[i]};
  return best;
}

ThresholdChoice best_threshold(const Tensor& scores, const Tensor& targets, std::span<const double> grid) {
  FPI_CHECK(!grid.empty(), "best_threshold: the threshold grid is empty");
  const std::vector<double> f1 = example_f1_grid(scores, targets, grid);
  return best_threshold(grid, f1);
}

std::vector<double> spen_threshold_grid() {
  std::vector<double> grid;
  for (int percent = 0; percent <= 75; percent += percent < 5 ? 1 : 5) grid.push_back(percent / 100.0);
  return grid;
}

namespace {

// Sums of squared differences of each of `groups` equal slices of the two tensors.
std::vector<double> squared_error_sums(const Tensor& prediction, const Tensor& target, std::int64_t groups,
                                       const char* op) {
  FPI_CHECK(prediction.defined() && target.defined(), op, ": prediction and target must be defined tensors");
  FPI_CHECK(prediction.shape() == target.shape(), op, ": prediction ", shape_str(prediction.shape()), " and target ",
            shape_str(target.shape()), " must have the same shape");
  FPI_CHECK(prediction.numel() > 0, op, ": the tensors are empty");
  const std::vector<double> p = prediction.detach().to_vector<double>();
  const std::vector<double> t = target.detach().to_vector<double>();
  const std::size_t per_group = p.size() / static_cast<std::size_t>(groups);
  std::vector<double> sums(static_cast<std::size_t>(groups), 0.0);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double d = p[i] - t[i];
    sums[i / per_group] += d * d;
  }
  return sums;
}

double psnr_of(double mse_value, double peak) {
  return mse_value == 0.0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(peak * peak / mse_value);
}

void check_peak(double peak, const char* op) {
  FPI_CHECK(std::isfinite(peak) && peak > 0.0, op, ": peak must be positive and finite, got ", peak);
}

}  // namespace

double mse(const Tensor& prediction, const Tensor& target) {
  return squared_error_sums(prediction, target, 1, "mse")[0] / static_cast<double>(prediction.numel());
}

double psnr(const Tensor& prediction, const Tensor& target, double peak) {
  check_peak(peak, "psnr");
  return psnr_of(squared_error_sums(prediction, target, 1, "psnr")[0] / static_cast<double>(prediction.numel()), peak);
}

std::vector<double> psnr_per_sample(const Tensor& predictions, const Tensor& targets, double peak) {
  check_peak(peak, "psnr_per_sample");
  FPI_CHECK(predictions.defined() && predictions.dim() >= 1, "psnr_per_sample: needs (N, ...) tensors");
  const std::int64_t n = predictions.size(0);
  std::vector<double> out = squared_error_sums(predictions, targets, n, "psnr_per_sample");
  const auto per_sample = static_cast<double>(predictions.numel() / n);
  for (double& value : out) value = psnr_of(value / per_sample, peak);
  return out;
}

double mean_psnr(const Tensor& predictions, const Tensor& targets, double peak) {
  const std::vector<double> values = psnr_per_sample(predictions, targets, peak);
  double total = 0.0;
  for (const double value : values) total += value;
  return total / static_cast<double>(values.size());
}

}  // namespace fpi::data
