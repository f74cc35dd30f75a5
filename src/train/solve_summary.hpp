// Sums of the FPI layers' per-sample solve statistics over many batches, turned into the per-epoch
// summaries of metrics.jsonl. The sums are integers, so a run resumed mid-epoch from the sums in its
// checkpoint reports exactly what the uninterrupted run reports.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fpi/dist/communicator.hpp"
#include "fpi/state.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi::train {

class SolveAccumulators {
 public:
  explicit SolveAccumulators(const GraphModule& model) : layers_(model.fixed_point_layers()) {
    sums_.resize(layers_.size());
    checks_.resize(layers_.size());
  }

  // Adds the forward (or backward) statistics of every FPI layer's last call.
  void add_forward() { add(0); }
  void add_backward() { add(1); }
  bool empty() const { return layers_.empty(); }

  std::vector<FixedPointSummary> summaries() const {
    std::vector<FixedPointSummary> out;
    for (std::size_t i = 0; i < layers_.size(); ++i)
      out.push_back({layers_[i].first, summary(sums_[i][0]), summary(sums_[i][1]), summary(checks_[i])});
    return out;
  }

  // The sums as numbers to add up over the ranks of a data-parallel run: per layer and direction the
  // additive counts (samples, iterations, converged, fell back, best iterate), and apart the maxima, which
  // combine by max. Counts below 2^53 are exact in a double.
  std::vector<double> additive() const {
    std::vector<double> out;
    for (const auto& layer : sums_)
      for (const Sums& s : layer)
        for (std::int64_t value : {s.samples, s.iterations, s.converged, s.fell_back, s.best_iterate})
          out.push_back(static_cast<double>(value));
    return out;
  }
  std::vector<double> maxima() const {
    std::vector<double> out;
    for (const auto& layer : sums_)
      for (const Sums& s : layer) out.push_back(static_cast<double>(s.max_iterations));
    return out;
  }
  void set(const std::vector<double>& additive, const std::vector<double>& maxima) {
    FPI_CHECK(additive.size() == 10 * sums_.size() && maxima.size() == 2 * sums_.size(),
              "SolveAccumulators::set: ", additive.size(), " sums and ", maxima.size(), " maxima for ", sums_.size(),
              " fixed-point layers");
    std::size_t a = 0, m = 0;
    for (auto& layer : sums_)
      for (Sums& s : layer) {
        for (std::int64_t* value : {&s.samples, &s.iterations, &s.converged, &s.fell_back, &s.best_iterate})
          *value = static_cast<std::int64_t>(additive[a++]);
        s.max_iterations = static_cast<std::int64_t>(maxima[m++]);
      }
  }

  // For a checkpoint: per layer and direction [samples, iteration sum, max iterations, converged, fell back,
  // best iterate]. Checkpoints written before the fallback chain hold the first four.
  void save(State& out, const std::string& prefix) const {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      for (int direction : {0, 1}) {
        const Sums& s = sums_[i][direction];
        out.set(prefix + layers_[i].first + (direction == 0 ? ".forward" : ".backward"),
                std::vector<std::int64_t>{s.samples, s.iterations, s.max_iterations, s.converged, s.fell_back,
                                          s.best_iterate});
      }
    // Only layers that check their gradients write these (with the layer's count of backward passes),
    // so checkpoints of runs without the check read as before.
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (!checks_enabled(i)) continue;
      const CheckSums& c = checks_[i];
      const std::string key = prefix + layers_[i].first + ".gradient_check";
      out.set(key, std::vector<std::int64_t>{c.checks, c.unsettled, c.flagged,
                                             layers_[i].second->stats().backward_passes});
      out.set(key + ".max_angle", c.max_angle);
      out.set(key + ".angle_sum", c.angle_sum);
    }
  }
  void load(StateReader& in, const std::string& prefix) {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      for (int direction : {0, 1}) {
        const std::string key = prefix + layers_[i].first + (direction == 0 ? ".forward" : ".backward");
        const std::vector<std::int64_t>& v = in.get_int64_list(key);
        FPI_CHECK(v.size() == 4 || v.size() == 6, in.where(), ": key '", key, "' holds ", v.size(),
                  " numbers, expected 6 (or 4 before the fallback counts)");
        sums_[i][direction] = {v[0], v[1], v[2], v[3], v.size() == 6 ? v[4] : 0, v.size() == 6 ? v[5] : 0};
      }
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (!checks_enabled(i)) continue;
      const std::string key = prefix + layers_[i].first + ".gradient_check";
      const std::vector<std::int64_t>& v = in.get_int64_list(key);
      FPI_CHECK(v.size() == 4, in.where(), ": key '", key, "' holds ", v.size(), " numbers, expected 4");
      checks_[i] = {v[0], v[1], v[2], in.get_double(key + ".max_angle"), in.get_double(key + ".angle_sum")};
      // The checks fall on the same steps as in the run that wrote the checkpoint.
      layers_[i].second->stats().backward_passes = v[3];
    }
  }

 private:
  struct Sums {
    std::int64_t samples = 0, iterations = 0, max_iterations = 0, converged = 0, fell_back = 0, best_iterate = 0;
  };
  struct CheckSums {
    std::int64_t checks = 0, unsettled = 0, flagged = 0;
    double max_angle = 0.0, angle_sum = 0.0;  // over the settled checks
  };

  bool checks_enabled(std::size_t layer) const { return layers_[layer].second->options().gradient_check_every > 0; }

  void add_check(std::size_t layer) {
    const GradientCheck& check = layers_[layer].second->stats().gradient_check;
    if (!check.ran) return;
    CheckSums& c = checks_[layer];
    ++c.checks;
    if (!check.reference_settled) {
      ++c.unsettled;
      return;
    }
    if (check.angle_degrees > layers_[layer].second->options().gradient_check_max_degrees) ++c.flagged;
    c.max_angle = std::max(c.max_angle, check.angle_degrees);
    c.angle_sum += check.angle_degrees;
  }

  static GradientCheckSummary summary(const CheckSums& c) {
    const std::int64_t settled = c.checks - c.unsettled;
    return {c.checks, c.unsettled, c.flagged, c.max_angle,
            settled > 0 ? c.angle_sum / static_cast<double>(settled) : 0.0};
  }

  void add(int direction) {
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const FixedPointStats& stats = layers_[i].second->stats();
      const SolveStats& solve = direction == 0 ? stats.forward : stats.backward;
      if (direction == 1) add_check(i);
      if (!solve.ran) continue;
      Sums& s = sums_[i][direction];
      for (std::size_t k = 0; k < solve.iterations.size(); ++k) {
        s.samples += 1;
        s.iterations += solve.iterations[k];
        s.max_iterations = std::max<std::int64_t>(s.max_iterations, solve.iterations[k]);
        s.converged += solve.converged[k] ? 1 : 0;
        if (k < solve.fallback_stage.size() && solve.fallback_stage[k] != FallbackStage::None) {
          s.fell_back += 1;
          s.best_iterate += solve.fallback_stage[k] == FallbackStage::BestIterate ? 1 : 0;
        }
      }
    }
  }

  static SolveSummary summary(const Sums& s) {
    SolveSummary out;
    out.samples = s.samples;
    if (s.samples == 0) return out;
    out.mean_iterations = static_cast<double>(s.iterations) / static_cast<double>(s.samples);
    out.max_iterations = static_cast<int>(s.max_iterations);
    out.converged_fraction = static_cast<double>(s.converged) / static_cast<double>(s.samples);
    out.fell_back = s.fell_back;
    out.best_iterate = s.best_iterate;
    return out;
  }

  std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>> layers_;
  std::vector<std::array<Sums, 2>> sums_;
  std::vector<CheckSums> checks_;
};

// Every rank's sums added up (the maxima: the largest), on every rank.
inline void reduce_over_ranks(SolveAccumulators& accumulators, dist::Communicator& communicator) {
  if (communicator.size() == 1 || accumulators.empty()) return;
  std::vector<double> additive = accumulators.additive(), maxima = accumulators.maxima();
  communicator.all_reduce(std::span<double>(additive));
  communicator.all_reduce(std::span<double>(maxima), dist::ReduceOp::Max);
  accumulators.set(additive, maxima);
}

}  // namespace fpi::train
