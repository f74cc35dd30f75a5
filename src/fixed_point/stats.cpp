// SolveStats: the summaries of one solve (mean and max iterations, converged fraction, cycles, fallbacks,
// largest residual) and its one-line printing. The non-convergence warning is the layer's (forward.cpp).
#include <algorithm>
#include <iomanip>
#include <numeric>
#include <ostream>

#include "fpi/fixed_point.hpp"

namespace fpi {

int SolveStats::max_iterations() const {
  return iterations.empty() ? 0 : *std::max_element(iterations.begin(), iterations.end());
}

double SolveStats::mean_iterations() const {
  if (iterations.empty()) return 0.0;
  return std::accumulate(iterations.begin(), iterations.end(), 0.0) / static_cast<double>(iterations.size());
}

double SolveStats::converged_fraction() const {
  if (converged.empty()) return 0.0;
  return static_cast<double>(std::count(converged.begin(), converged.end(), 1)) / static_cast<double>(converged.size());
}

int SolveStats::cycle_count() const { return static_cast<int>(std::count(cycled.begin(), cycled.end(), 1)); }

int SolveStats::fallback_count(FallbackStage stage) const {
  return static_cast<int>(std::count(fallback_stage.begin(), fallback_stage.end(), stage));
}

int SolveStats::fallback_count() const {
  return static_cast<int>(fallback_stage.size()) - fallback_count(FallbackStage::None);
}

double SolveStats::max_residual() const {
  return residuals.empty() ? 0.0 : *std::max_element(residuals.begin(), residuals.end());
}

std::ostream& operator<<(std::ostream& out, const SolveStats& s) {
  if (!s.ran) return out << "(not run)";
  const auto flags = out.flags();
  out << "iterations mean " << std::fixed << std::setprecision(1) << s.mean_iterations() << " max "
      << s.max_iterations() << ", converged " << std::setprecision(1) << 100.0 * s.converged_fraction() << "%, "
      << std::scientific << std::setprecision(2) << "max residual " << s.max_residual() << ", cycles "
      << s.cycle_count();
  // Only a solve in which samples stalled mentions the chain, so healthy solves print as they did.
  if (s.fallback_count() > 0)
    out << ", fell back " << s.fallback_count() << " (ended in regularised Anderson "
        << s.fallback_count(FallbackStage::RegularisedAnderson) << ", damped Picard "
        << s.fallback_count(FallbackStage::DampedPicard) << ", best iterate "
        << s.fallback_count(FallbackStage::BestIterate) << ")";
  out << ", " << std::fixed << std::setprecision(2) << 1e3 * s.seconds << " ms";
  out.flags(flags);
  return out;
}

}  // namespace fpi
