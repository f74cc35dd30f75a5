// Example-based F1 for multi-label prediction, the number SPEN, ICNN, DVN and the FPI paper report on
// Bibtex, and the threshold search those papers run on held-out predictions before reporting it; MSE and
// PSNR for image denoising.
#pragma once

#include <span>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::data {

// scores and targets are (examples, labels); targets hold 0 or 1. A label is predicted when its score is
// >= threshold (SPEN's rule). Each example scores F1 = 2|P∩T| / (|P| + |T|) for its predicted set P and
// true set T, and the result is the mean over examples.
// An example with no true and no predicted label scores 1: SPEN's evaluation (MultiLabelEvaluation.lua)
// adds 1e-7 to every count, which makes its precision and recall 1 there. Code built on sklearn's
// f1_score (ICNN, DVN) scores it 0 instead. Every Bibtex example has at least one label, so the choice
// does not change Bibtex numbers.
double example_f1(const Tensor& scores, const Tensor& targets, double threshold = 0.5);

struct ThresholdChoice {
  double threshold = 0.0;
  double f1 = 0.0;
};

// example_f1 at every threshold of `grid`, in grid order, from one copy of the tensors to the host: what
// a threshold search sums batch by batch (each value times the batch's examples) before choosing.
std::vector<double> example_f1_grid(const Tensor& scores, const Tensor& targets, std::span<const double> grid);

// The threshold of `grid` with the highest example_f1 (the first such one on ties).
ThresholdChoice best_threshold(const Tensor& scores, const Tensor& targets, std::span<const double> grid);
// The same choice from F1 values already computed, f1[i] belonging to grid[i].
ThresholdChoice best_threshold(std::span<const double> grid, std::span<const double> f1);

// The grid SPEN's evaluation searches: 0, 0.01, ..., 0.05, then 0.10, 0.15, ..., 0.75.
std::vector<double> spen_threshold_grid();

// The mean of (prediction - target)^2 over all elements, in float64 whatever the tensors' dtype; the
// shapes must be equal (no broadcasting, so a transposed or unsqueezed target is an error, not a number).
double mse(const Tensor& prediction, const Tensor& target);

// 10 log10(peak^2 / mse) over the whole tensor, in dB; +infinity when the two are identical. Values are
// taken as they are: clamp a network's output to [0, peak] first when the images are stored that way.
double psnr(const Tensor& prediction, const Tensor& target, double peak = 1.0);

// The PSNR of each sample (index along dimension 0) of (N, ...) tensors. The denoising literature (DnCNN,
// the FPI paper) reports the mean of these per-image values over a test set, not the PSNR of the pooled
// MSE: mean_psnr is that mean (+infinity if any image is reproduced exactly).
std::vector<double> psnr_per_sample(const Tensor& predictions, const Tensor& targets, double peak = 1.0);
double mean_psnr(const Tensor& predictions, const Tensor& targets, double peak = 1.0);

}  // namespace fpi::data
