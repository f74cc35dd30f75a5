// The fixed-point iteration (FPI) layer of Jeon, Lee & Choi, "Differentiable Fixed-Point Iteration
// Layer": x̂ = g(x̂, z; θ), found by iterating x ← g(x, z; θ) without recording the iterates.
//
// The tape keeps ONE node holding x̂ (plus handles to z and θ). Its backward solves the backward FPI
//   c = (∂g/∂x)ᵀ c + ∇x̂L            (paper eqs. 12–13)
// with vector-Jacobian products of a single step of g built once at x̂, then returns
//   ∇θL = (∂g/∂θ)ᵀ c,  ∇zL = (∂g/∂z)ᵀ c      (eqs. 11, 16)
// so memory does not depend on how many iterations the forward pass took. x0 receives no gradient:
// when g is a contraction its fixed point does not depend on where the iteration starts (eq. 5).
//
// Samples are independent: the first dimension of x (and of z) is the batch, each sample has its own
// residual and stops iterating when it has converged, so one slow or oscillating row cannot hold the
// batch. This assumes g treats samples independently (no batch statistics); set per_sample = false
// to iterate the batch as one vector.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fpi/autograd.hpp"
#include "fpi/tensor.hpp"

namespace fpi {

enum class FixedPointSolver {
  Picard,    // x ← (1 - β) x + β g(x), β = damping
  Anderson,  // Anderson acceleration (type II) with per-sample mixing
};

// Where a sample's solve ended in the fallback chain (SolverOptions::stall_window). A sample that
// stalls moves down the chain one stage at a time; a Picard solve skips RegularisedAnderson.
enum class FallbackStage : char {
  None = 0,                 // the configured solver finished the solve
  RegularisedAnderson = 1,  // Anderson with a ridge of kFallbackRidge (src/backend/solver_rows.hpp)
  DampedPicard = 2,         // x ← x + β (g(x) − x), β half the sample's damping, then adaptive (>= 1/32)
  BestIterate = 3,          // every stage stalled: the sample returns the map value of lowest residual seen
};

struct SolverOptions {
  FixedPointSolver solver = FixedPointSolver::Anderson;
  // Stop a sample when ‖g(x) − x‖ / max(‖x‖, ‖g(x)‖) < tolerance, OR ‖g(x) − x‖ <= absolute_tolerance.
  // Either passing is enough: the relative test asks for ever smaller steps as a fixed point nears 0
  // (where it is meaningless), and an unnormalised ‖Δx‖ is the stopping test of the authors' FPI_GD.
  double tolerance = 1e-4;  // 0 = absolute test only
  double absolute_tolerance = 0.0;  // 0 = relative test only
  int min_iterations = 0;
  int max_iterations = 200;
  // β in (0, 1]: the weight of the new value, for Picard and for Anderson's mixing.
  double damping = 1.0;
  // Picard only: when a sample is caught in a period-2 cycle its damping is halved (down to 1/8),
  // which turns the oscillation of a map whose Jacobian has an eigenvalue near −1 into convergence.
  bool damp_cycles = true;
  int anderson_history = 5;
  // Tikhonov term of Anderson's least-squares problem, relative to the mean diagonal of its Gram matrix.
  double anderson_ridge = 1e-8;
  // The fallback chain, per sample, off at 0. A sample has stalled when its lowest residual has not
  // halved within this many iterations (or, under Anderson, when its small system was singular 3 times
  // in a row). It then moves to the next stage, restarting from its best iterate: Anderson → Anderson
  // with more regularisation → damped Picard → its best iterate, returned as not converged (Picard
  // solves start at damped Picard). Each fallback stage gets at most 2 × stall_window iterations, so a
  // stalled sample costs a bounded number of iterations. The default, 100, is about 15 times what
  // Anderson needs on a healthy sample; Anderson's residual is not monotone, and on the tests' rotating
  // tanh map a window of 50 cut off samples that Anderson (or the chain) would have brought home, where
  // 100 converged 63 of 64 samples against Anderson's 57 alone, with a third of its iterations. The
  // unrolled backward's recorded loop has no chain: it records plain damped iterations.
  int stall_window = 100;
  // How many iterations pass between the host's reads of the solve's per-sample state (one small
  // table), where it drops the samples that finished from the batch; between reads the whole loop is
  // device work and a finished sample is frozen (masked) at its iteration, so iteration counts, outputs
  // and gradients are the same for every value. 0 (the default) is automatic: 1 where the host reads
  // the data for free (the CPU), 8 on a GPU, where each read waits for the device's queue to drain: a
  // solve of I iterations then waits about I/8 + 1 times instead of I times, for at most 7 iterations
  // of masked rows after the last sample has finished. A non-finite map value raises its error (naming
  // its iteration and sample) at the next read, not at once.
  int check_every = 0;
};

enum class FixedPointBackward {
  Implicit,      // the backward FPI above (default)
  Unrolled,      // record every forward iteration on the tape: the memory-hungry baseline
  JacobianFree,  // c = ∇x̂L: ignores (∂g/∂x)ᵀ, cheap and approximate
  Exact,         // dense Jacobian and a direct solve; small states only, a verification oracle
};

enum class NonConvergencePolicy { Warn, Error, Ignore };

struct FixedPointOptions {
  std::string name = "fixed_point";  // names the layer in diagnostics and errors
  SolverOptions forward;
  SolverOptions backward;
  FixedPointBackward backward_mode = FixedPointBackward::Implicit;
  // λ >= 0 of a regularised backward, for the implicit and exact modes: c = (∂g/∂x)ᵀ c / (1 + λ) + ∇x̂L,
  // i.e. ((1 + λ) I − (∂g/∂x)ᵀ) c = (1 + λ) ∇x̂L. Where ∂g/∂x has eigenvalues at 1 (FPI_GD where the
  // energy is flat: ReLU units off, σ saturated) I − ∂g/∂x is singular and the implicit gradient does
  // not exist; any λ > 0 keeps the system solvable and its solution bounded. λ = 0 is the implicit
  // gradient and λ → ∞ the jacobian_free one; the factor (1 + λ) on the right keeps the gradient's
  // scale between the two, so clip_grad_norm and the learning rate mean the same at every λ.
  double backward_regularization = 0.0;
  NonConvergencePolicy on_nonconvergence = NonConvergencePolicy::Warn;
  bool per_sample = true;
  // Exact mode builds a (state size)² Jacobian; above this size it refuses.
  std::int64_t exact_max_state = 4096;
  // A diagnostic, off at 0: after the forward solve, estimate per sample the spectral radius of ∂g/∂x
  // at x̂ by this many power iterations of its vector-Jacobian product. At 1 or above the fixed point is
  // not attracting: Anderson can still find it (x = −1 for g(x) = 2x + 1), but the theory behind the
  // backward FPI assumes a contraction there, so such samples are reported under on_nonconvergence.
  // The estimate is ‖(∂g/∂x)ᵀ v‖ for the last unit iterate v: a lower bound on the norm, and the
  // radius itself when one real eigenvalue dominates.
  int spectral_radius_iterations = 0;
  // A diagnostic, off at 0: on the first backward pass and every this many after it (counted in the
  // stats object, FixedPointStats::backward_passes, which nn::FixedPointLayer carries from one call's
  // stats to the next), the gradient this layer hands on for a few of its samples is compared with
  // the one backpropagating through `gradient_check_unroll` damped steps of g from x̂ gives (summed
  // from vector-Jacobian products, without a tape), a route that shares only g's own derivatives with
  // the backward FPI: no solver, stopping test or backward mode. The angle between them shows when
  // the backward FPI has stopped giving useful gradients: a stalled backward solve, a backward mode
  // that drops (∂g/∂x)ᵀ, or a fixed point the theory does not cover. Above gradient_check_max_degrees
  // it is reported under on_nonconvergence.
  int gradient_check_every = 0;
  int gradient_check_samples = 4;
  int gradient_check_unroll = 200;
  double gradient_check_max_degrees = 5.0;
};

// What one solve did, per sample (one entry when per_sample is false).
struct SolveStats {
  bool ran = false;
  std::vector<int> iterations;
  std::vector<double> residuals;   // final relative residual; after a fallback without convergence, the lowest
  std::vector<char> converged;
  std::vector<char> cycled;        // a period-2 cycle was seen at some point
  std::vector<FallbackStage> fallback_stage;  // where in the fallback chain the sample finished
  double seconds = 0.0;

  int max_iterations() const;
  double mean_iterations() const;
  double converged_fraction() const;
  int cycle_count() const;
  double max_residual() const;
  // Samples that finished in `stage` (None counts the samples that never fell back).
  int fallback_count(FallbackStage stage) const;
  // Samples that finished anywhere past the configured solver.
  int fallback_count() const;
};

// The outcome of one gradient self-check (FixedPointOptions::gradient_check_every).
struct GradientCheck {
  bool ran = false;
  std::int64_t samples = 0;      // how many of the batch's converged samples were checked
  double angle_degrees = 0.0;    // between the layer's gradient and the unrolled reference
  double relative_error = 0.0;   // ‖layer − reference‖ / ‖reference‖
  // The unrolled reference moved by less than 1 % between half and all of its steps. When it did not
  // (∂g/∂x is not a contraction under the damping the forward used), the check says nothing either way
  // and is not reported.
  bool reference_settled = false;
};

struct FixedPointStats {
  std::string layer;
  SolveStats forward;
  SolveStats backward;  // filled when the backward pass runs
  std::vector<double> spectral_radius;  // per sample, when options.spectral_radius_iterations > 0
  GradientCheck gradient_check;         // of the last backward pass; `ran` is false when it was not checked
  std::int64_t backward_passes = 0;     // counts the passes, to space the gradient checks
};

std::ostream& operator<<(std::ostream& out, const SolveStats& s);

// g(x, z): one step of the iteration. θ are whatever parameters g uses; pass them to fixed_point so
// their gradients flow.
using FixedPointFn = std::function<Tensor(const Tensor& x, const Tensor& z)>;

// Finds x̂ = g(x̂, z; θ) starting from x0 (zeros of `x0`'s shape; x0 must be given so the state shape
// is known). Gradients flow to z and to every tensor in `params` that requires grad. `stats`, when
// given, receives the forward diagnostics now and the backward ones when the backward runs.
Tensor fixed_point(const FixedPointFn& g, const Tensor& z, const std::vector<Tensor>& params, const Tensor& x0,
                   const FixedPointOptions& options = {}, std::shared_ptr<FixedPointStats> stats = nullptr);

// The general form used by the layers: g(x, inputs) where the first `batched_inputs` of `inputs`
// share x's batch dimension (and are restricted to the active samples when samples stop early) and
// the rest (θ) are passed whole. g must read batched inputs from its argument; it may use its
// parameters directly as long as they are the same tensors as in `inputs`.
using FixedPointStep = std::function<Tensor(const Tensor& x, const Tensors& inputs)>;
Tensor fixed_point(const FixedPointStep& g, const Tensors& inputs, std::size_t batched_inputs, const Tensor& x0,
                   const FixedPointOptions& options, std::shared_ptr<FixedPointStats> stats = nullptr);

}  // namespace fpi
