// Sums of the FPI layers' per-sample solve statistics over many batches, turned into the per-epoch
// summaries of metrics.jsonl. The sums are integers, so a run resumed mid-epoch from the sums in its
// checkpoint reports exactly what the uninterrupted run reports.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fpi/state.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/trainer.hpp"

namespace fpi::train {

class SolveAccumulators {
 public:
  explicit SolveAccumulators(const GraphModule& model) : layers_(model.fixed_point_layers()) {
    sums_.resize(layers_.size());
  }

  // Adds the forward (or backward) statistics of every FPI layer's last call.
  void add_forward() { add(0); }
  void add_backward() { add(1); }
  bool empty() const { return layers_.empty(); }

  std::vector<FixedPointSummary> summaries() const {
    std::vector<FixedPointSummary> out;
    for (std::size_t i = 0; i < layers_.size(); ++i)
      out.push_back({layers_[i].first, summary(sums_[i][0]), summary(sums_[i][1])});
    return out;
  }

  // For a checkpoint: per layer and direction [samples, iteration sum, max iterations, converged].
  void save(State& out, const std::string& prefix) const {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      for (int direction : {0, 1}) {
        const Sums& s = sums_[i][direction];
        out.set(prefix + layers_[i].first + (direction == 0 ? ".forward" : ".backward"),
                std::vector<std::int64_t>{s.samples, s.iterations, s.max_iterations, s.converged});
      }
  }
  void load(StateReader& in, const std::string& prefix) {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      for (int direction : {0, 1}) {
        const std::string key = prefix + layers_[i].first + (direction == 0 ? ".forward" : ".backward");
        const std::vector<std::int64_t>& v = in.get_int64_list(key);
        FPI_CHECK(v.size() == 4, in.where(), ": key '", key, "' holds ", v.size(), " numbers, expected 4");
        sums_[i][direction] = {v[0], v[1], v[2], v[3]};
      }
  }

 private:
  struct Sums {
    std::int64_t samples = 0, iterations = 0, max_iterations = 0, converged = 0;
  };

  void add(int direction) {
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const FixedPointStats& stats = layers_[i].second->stats();
      const SolveStats& solve = direction == 0 ? stats.forward : stats.backward;
      if (!solve.ran) continue;
      Sums& s = sums_[i][direction];
      for (std::size_t k = 0; k < solve.iterations.size(); ++k) {
        s.samples += 1;
        s.iterations += solve.iterations[k];
        s.max_iterations = std::max<std::int64_t>(s.max_iterations, solve.iterations[k]);
        s.converged += solve.converged[k] ? 1 : 0;
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
    return out;
  }

  std::vector<std::pair<std::string, std::shared_ptr<nn::FixedPointLayer>>> layers_;
  std::vector<std::array<Sums, 2>> sums_;
};

}  // namespace fpi::train
