// The iteration engine shared by the forward FPI and the backward FPI: per-sample stopping,
// Picard (damped) and Anderson steps, cycle detection. It works on a state of shape (S, n), one row
// per sample, on the data's device: every iteration is device work alone, and the host reads one small
// table of per-sample state every SolverOptions::check_every iterations, when it drops the samples that
// finished from the batch. Between checks a finished sample is frozen (masked), not removed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fpi/fixed_point.hpp"

namespace fpi::fixed_point_detail {

using Rows = std::vector<std::int64_t>;

// Rows of `t` along dimension 0, in the given (increasing) order.
Tensor take_rows(const Tensor& t, const Rows& rows);
// dst[rows[i]] = src[i] along dimension 0.
void put_rows(const Tensor& dst, const Rows& rows, const Tensor& src);

// The map on the active samples: x is (k, n) and rows[i] is the sample that x[i] belongs to.
using ActiveMap = std::function<Tensor(const Tensor& x, const Rows& rows)>;

struct SolveResult {
  // (S, n): each sample's last map value g(x), the best estimate of its fixed point; a sample that fell
  // back and did not converge gets the map value of lowest residual it saw instead.
  Tensor x;
  SolveStats stats;
  std::vector<double> damping;  // each sample's Picard damping at the end (the safeguards may lower it)
};

// The stopping test of every FPI loop (the solver's, and the recorded loop of the unrolled backward),
// for one sample with ‖g(x) − x‖ = f_norm, ‖x‖ = x_norm and ‖g(x)‖ = gx_norm at `iteration`: throws
// when a norm is not finite (naming `what`, the iteration and the sample), and returns the relative
// residual ‖g(x) − x‖ / max(‖x‖, ‖g(x)‖) with whether it meets the tolerance (or ‖g(x) − x‖ meets
// absolute_tolerance).
struct ResidualTest {
  double residual;
  bool converged;
};
// Throws the error of a map value that is not finite at `iteration` in `sample`.
[[noreturn]] void raise_nonfinite(int iteration, std::int64_t sample, const std::string& what);

// SolverOptions::check_every's automatic value (0) where host reads wait on the device.
inline constexpr int kDeviceCheckEvery = 8;
// The iterations between the host's checks of a solve on `device`: options.check_every, or where it
// is 0, 1 where the backend reads its data for free (the CPU) and kDeviceCheckEvery elsewhere.
int check_interval(const SolverOptions& options, Device device);

ResidualTest test_residual(double f_norm, double x_norm, double gx_norm, int iteration, std::int64_t sample,
                           const SolverOptions& options, const std::string& what);

// Iterates from x0 (S, n) under NoGrad, moving samples that stall down the fallback chain. `what`
// names the solve in errors ("layer 'f' forward"). `initial_damping` (one per sample) replaces
// options.damping: the backward FPI starts from the damping under which the forward converged, since
// the damped linearised map is then a contraction (a forward sample that converged in the damped
// Picard stage hands on that stage's damping).
SolveResult solve(const ActiveMap& map, const Tensor& x0, const SolverOptions& options, const std::string& what,
                  const std::vector<double>& initial_damping = {});

// Throws when options are out of range, naming `where` ("fixed_point 'f': forward").
void validate(const SolverOptions& options, const std::string& where);

}  // namespace fpi::fixed_point_detail
