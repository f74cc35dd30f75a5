// The FPI layer's backward pass: one tape node holding x̂ that, given ∇x̂L, finds
//   c = (∂g/∂x)ᵀ c + ∇x̂L   (implicit: backward FPI; exact: dense solve; jacobian_free: c = ∇x̂L)
// or, with backward_regularization λ > 0, c = (∂g/∂x)ᵀ c / (1 + λ) + ∇x̂L,
// from vector-Jacobian products of ONE step of g built at x̂, and returns (∂g/∂z)ᵀ c and (∂g/∂θ)ᵀ c.
//
// With create_graph the gradients must themselves be differentiable. Then c is found by another FPI
// layer (its map is c ↦ (∂g/∂x)ᵀ c + ∇x̂L, so it is differentiated implicitly too), and everything is
// built on stand-in leaves for x̂ and for non-leaf inputs, so that ∂g/∂z is a partial derivative (a
// path through x̂ back into this node would add dx̂/dz and recurse). A small "rebind" node per result
// then routes the results' dependence on the stand-ins to the real tensors.
#include <chrono>
#include <limits>
#include <tuple>
#include <utility>

#include "fixed_point/layer.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "ops/linalg.hpp"

namespace fpi::fixed_point_detail {
namespace {

// One step of g evaluated at (x, inputs) on a private graph, for the samples in `rows`.
struct StepGraph {
  Rows rows;
  Tensor x;  // leaf (rows, width) that requires grad
  Tensors inputs;
  Tensor y;  // g(x, inputs) as (rows, width)
};

// Batched inputs, and unbatched ones with a history of their own (W' = f(W)), become fresh leaves
// (they require grad when their gradient is wanted), so that the gradient w.r.t. them is the partial
// derivative and the engine does not walk their upstream graph: the outer backward continues from
// the real tensor, and walking W' → W here too would count W's gradient twice (when W is an input as
// well) and free a graph the outer backward still needs. Leaf inputs are used as they are.
StepGraph build_step(const Problem& p, const Tensor& x_rows, const Tensors& inputs, const Rows& rows,
                     const std::vector<bool>& wanted) {
  EnableGrad enable;
  StepGraph s;
  s.rows = rows;
  s.x = take_rows(x_rows, rows).detach().requires_grad_();
  s.inputs = inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    const bool batched = i < p.batched;
    if (!batched && inputs[i].is_leaf()) continue;
    Tensor leaf = batched && p.geometry.per_sample ? take_rows(inputs[i].detach(), rows) : inputs[i].detach();
    if (wanted.size() > i && wanted[i]) leaf = leaf.requires_grad_();
    s.inputs[i] = leaf;
  }
  const Tensors all_rows_inputs = s.inputs;
  s.y = p.g(s.x.reshape(p.geometry.shape_for(static_cast<std::int64_t>(rows.size()))), all_rows_inputs)
            .reshape({static_cast<std::int64_t>(rows.size()), p.geometry.width});
  return s;
}

// (∂g/∂x)ᵀ v on the step graph; zero where g does not depend on x.
Tensor vjp_x(const StepGraph& s, const Tensor& v) {
  Tensor r = autograd::grad({s.y}, {s.x}, {v}, {.retain_graph = true, .allow_unused = true})[0];
  return r.defined() ? r : zeros_like(v);
}

Rows positions_within(const Rows& subset, const Rows& of) {
  Rows positions;
  std::size_t j = 0;
  for (auto r : subset) {
    while (of[j] != r) ++j;
    positions.push_back(static_cast<std::int64_t>(j));
  }
  return positions;
}

Rows all_rows(std::int64_t n) {
  Rows rows(n);
  for (std::int64_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

// The backward FPI c ← (∂g/∂x)ᵀ c + ∇x̂L, per sample, starting from each sample's forward damping
// (the damped backward map has the spectrum of the damped forward map's linearisation at x̂, which
// converged). When fewer than half of the samples the step graph covers are still iterating, the graph
// is rebuilt on those alone, so the work per iteration follows the active samples as in the forward.
Tensor implicit_solve(const Problem& p, const StepGraph& full, const Tensor& x_rows, const Tensor& gl_rows,
                      const Tensors& inputs, SolveStats& stats) {
  StepGraph current = full;
  const double shrink = 1.0 / (1.0 + p.options.backward_regularization);
  const auto map = [&](const Tensor& c, const Rows& rows) {
    if (p.geometry.per_sample && 2 * rows.size() <= current.rows.size()) current = build_step(p, x_rows, inputs, rows, {});
    Tensor v;
    if (rows.size() == current.rows.size()) {
      v = vjp_x(current, c);
    } else {
      const Rows at = positions_within(rows, current.rows);
      Tensor padded = zeros({static_cast<std::int64_t>(current.rows.size()), p.geometry.width}, c.options());
      put_rows(padded, at, c);
      v = take_rows(vjp_x(current, padded), at);
    }
    return v * shrink + take_rows(gl_rows, rows);
  };
  std::vector<double> damping = p.forward_damping;
  for (double& d : damping) d = std::min(d, p.options.backward.damping);
  SolveResult solved =
      solve(map, gl_rows, p.options.backward, "fixed_point '" + p.options.name + "' backward", damping);
  stats = solved.stats;
  return solved.x;
}

// The oracle: per sample, the dense Jacobian from one VJP per state coordinate, then
// ((1 + λ) I − Jᵀ) c = (1 + λ) ∇x̂L (λ = backward_regularization), solved in float64 whatever the dtype.
Tensor exact_solve(const Problem& p, const StepGraph& full, const Tensor& gl_rows, SolveStats& stats) {
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t n = p.geometry.width, samples = p.geometry.samples;
  FPI_CHECK(n <= p.options.exact_max_state, "fixed_point '", p.options.name, "': the exact backward needs a ", n,
            " x ", n, " Jacobian per sample, above exact_max_state = ", p.options.exact_max_state,
            "; use the implicit backward for states this large");
  // Row i of every sample's J = ∂g/∂x is the VJP of the i-th unit vector: jacobian[s][i][j] = ∂g_i/∂x_j.
  Tensors rows;
  for (std::int64_t i = 0; i < n; ++i) {
    Tensor unit = zeros({samples, n}, gl_rows.options());
    {
      NoGrad no_grad;
      unit.slice(1, i, i + 1).fill_(1.0);
    }
    rows.push_back(vjp_x(full, unit));
  }
  const Tensor jacobian = stack(rows, 1).to(kFloat64);
  const TensorOptions f64{.dtype = kFloat64, .device = gl_rows.device()};
  const double scale = 1.0 + p.options.backward_regularization;
  const Tensor system = eye(n, f64) * scale - jacobian.transpose(1, 2);
  const ops::SolveReport solved =
      ops::solve_reporting_singular(system, (gl_rows.to(kFloat64) * scale).unsqueeze(2));
  FPI_CHECK(solved.singular.empty(), "fixed_point '", p.options.name, "': exact backward: ",
            scale == 1.0 ? std::string("I") : detail::concat("(1 + ", p.options.backward_regularization, ") I"),
            " - (dg/dx)^T is singular for sample ", solved.singular.front(), "; g is not a contraction there");
  stats = SolveStats{};
  stats.ran = true;
  stats.iterations.assign(samples, static_cast<int>(n));
  stats.residuals.assign(samples, 0.0);
  stats.converged.assign(samples, 1);
  stats.cycled.assign(samples, 0);
  stats.fallback_stage.assign(samples, FallbackStage::None);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return solved.x.squeeze(2).to(gl_rows.dtype());
}

}  // namespace

std::vector<double> estimate_spectral_radius(const Problem& p, const Tensor& x_rows, const Tensors& inputs,
                                             int iterations) {
  const StepGraph step = build_step(p, x_rows, inputs, all_rows(p.geometry.samples), {});
  NoGrad no_grad;
  // Fixed, so that the estimate is the same on every call for the same x̂.
  Generator generator(0x5bec);
  // Each row scaled to norm 1, with the norms; a zero row (g ignores x there) stays zero.
  const auto unit_rows = [](const Tensor& v) {
    constexpr double kTiny = std::numeric_limits<double>::min(), kHuge = std::numeric_limits<double>::infinity();
    const Tensor norms = sqrt(sum(square(v), {1}, true));
    return std::make_pair(v / clamp(norms, kTiny, kHuge), norms);
  };
  Tensor v = unit_rows(randn(x_rows.shape(), x_rows.options(), &generator)).first;
  Tensor norms;
  for (int i = 0; i < iterations; ++i) std::tie(v, norms) = unit_rows(vjp_x(step, v));
  return norms.reshape({p.geometry.samples}).to_vector<double>();
}

namespace {

// Gradients of <c, g(x̂, inputs)> w.r.t. the wanted inputs, through the step graph.
Tensors input_gradients(const StepGraph& step, const Tensor& c, const std::vector<bool>& wanted,
                        bool retain_graph = false) {
  Tensors targets;
  std::vector<std::size_t> slots;
  for (std::size_t i = 0; i < step.inputs.size(); ++i) {
    if (!wanted[i]) continue;
    targets.push_back(step.inputs[i]);
    slots.push_back(i);
  }
  Tensors grads(step.inputs.size());
  if (targets.empty()) return grads;
  const Tensors found = autograd::grad({step.y}, targets, {c}, {.retain_graph = retain_graph, .allow_unused = true});
  for (std::size_t k = 0; k < slots.size(); ++k) grads[slots[k]] = found[k];
  return grads;
}

// See FixedPointOptions::gradient_check_every: the check runs on a step graph of its own rows, so the
// gradients compared are those of the same few samples by both routes.
GradientCheck check_gradient(const Problem& p, const Tensor& x_rows, const Tensor& gl_rows, const Tensor& c,
                             const Tensors& inputs, const std::vector<bool>& wanted, const SolveStats& forward) {
  const Rows rows = gradient_check_rows(forward, p.options.gradient_check_samples);
  if (rows.empty()) return {};
  const StepGraph step = build_step(p, x_rows, inputs, rows, wanted);
  const auto flat_gradients = [&](const Tensor& c_rows) {
    Tensors parts;
    for (const Tensor& g : input_gradients(step, c_rows, wanted, true))
      if (g.defined()) parts.push_back(g.reshape({-1}));
    return parts.empty() ? zeros({0}, c_rows.options()) : concat(parts, 0);
  };
  std::vector<double> damping;
  for (std::int64_t r : rows) damping.push_back(std::min(p.forward_damping[r], p.options.backward.damping));
  const Tensor beta = from_vector(damping, Shape{static_cast<std::int64_t>(rows.size()), 1}, c.options());
  return compare_with_unrolled([&](const Tensor& v) { return vjp_x(step, v); }, flat_gradients, take_rows(c, rows),
                               take_rows(gl_rows, rows), beta, p.options.gradient_check_unroll);
}

// Identity in value; its backward sends the gradient on to `result`'s own graph and, through a VJP
// of that graph w.r.t. each stand-in leaf, to the tensor the stand-in replaced.
class RebindNode final : public autograd::Node {
 public:
  RebindNode(const Tensor& result, Tensors stand_ins, const Tensors& originals)
      : Node("fixed_point_rebind", edges(result, originals)), result_(result), stand_ins_(std::move(stand_ins)) {}

  Tensors apply(const Tensor& g, const std::vector<bool>& wanted) override {
    FPI_CHECK(result_.defined(), "backward: trying to backward through a fixed_point gradient a second time, but "
                                 "its graph was freed; pass retain_graph=true the first time");
    Tensors out{g};
    const Tensors vjps = autograd::grad({result_}, stand_ins_, {g},
                                        {.retain_graph = true, .create_graph = autograd::grad_enabled(),
                                         .allow_unused = true});
    for (std::size_t i = 0; i < stand_ins_.size(); ++i)
      out.push_back(wanted[i + 1] && vjps[i].defined() ? vjps[i] : Tensor());
    return out;
  }
  void release() override {
    result_ = Tensor();
    stand_ins_.clear();
  }

 private:
  static std::vector<std::shared_ptr<Node>> edges(const Tensor& result, const Tensors& originals) {
    std::vector<std::shared_ptr<Node>> next{autograd::gradient_edge(result)};
    for (const auto& t : originals) next.push_back(autograd::gradient_edge(t));
    return next;
  }
  Tensor result_;
  Tensors stand_ins_;
};

Tensor rebind(const Tensor& result, const Tensors& stand_ins, const Tensors& originals) {
  if (!result.defined() || !result.requires_grad()) return result;
  Tensor out = result.detach();
  autograd::attach(out, std::make_shared<RebindNode>(result, stand_ins, originals));
  return out;
}

// The create_graph path; see the file comment.
Tensors differentiable_gradients(const Problem& p, const Tensor& x_hat, const Tensor& gl, const Tensors& inputs,
                                 const std::vector<bool>& wanted, FixedPointStats& stats) {
  FPI_CHECK(p.options.backward_mode == FixedPointBackward::Implicit ||
                p.options.backward_mode == FixedPointBackward::JacobianFree,
            "fixed_point '", p.options.name, "': create_graph needs the implicit or jacobian_free backward");
  Tensors originals{x_hat}, stand_ins{x_hat.detach().requires_grad_()};
  Tensors step_inputs = inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].defined() && inputs[i].requires_grad() && !inputs[i].is_leaf()) {
      step_inputs[i] = inputs[i].detach().requires_grad_();
      originals.push_back(inputs[i]);
      stand_ins.push_back(step_inputs[i]);
    }
  }
  const Tensor& x_var = stand_ins[0];
  Tensor c = gl;
  if (p.options.backward_mode == FixedPointBackward::Implicit) {
    const FixedPointStep& g = p.g;
    const double shrink = 1.0 / (1.0 + p.options.backward_regularization);
    const FixedPointStep adjoint_step = [g, shrink](const Tensor& v, const Tensors& in) {
      const bool differentiable = autograd::grad_enabled();
      Tensor vjp;
      {
        EnableGrad enable;
        const Tensor x = in[1].requires_grad() ? in[1] : in[1].detach().requires_grad_();
        const Tensor y = g(x, Tensors(in.begin() + 2, in.end()));
        vjp = autograd::grad({y}, {x}, {v}, {.create_graph = differentiable, .allow_unused = true})[0];
      }
      return vjp.defined() ? vjp * shrink + in[0] : in[0] + 0.0;
    };
    Tensors adjoint_inputs{gl, x_var};
    adjoint_inputs.insert(adjoint_inputs.end(), step_inputs.begin(), step_inputs.end());
    FixedPointOptions adjoint_options = p.options;
    adjoint_options.name = p.options.name + ".adjoint";
    adjoint_options.forward = p.options.backward;
    auto adjoint_stats = std::make_shared<FixedPointStats>();
    c = fixed_point(adjoint_step, adjoint_inputs, 2 + p.batched, gl.detach(), adjoint_options, adjoint_stats);
    stats.backward = adjoint_stats->forward;
  }
  const Tensor y = p.g(x_var, step_inputs);
  Tensors targets;
  std::vector<std::size_t> slots;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!wanted[i]) continue;
    targets.push_back(step_inputs[i]);
    slots.push_back(i);
  }
  Tensors grads(inputs.size());
  if (targets.empty()) return grads;
  const Tensors found = autograd::grad({y}, targets, {c}, {.create_graph = true, .allow_unused = true});
  for (std::size_t k = 0; k < slots.size(); ++k) grads[slots[k]] = rebind(found[k], stand_ins, originals);
  return grads;
}

class FixedPointNode final : public autograd::Node {
 public:
  FixedPointNode(const Problem& problem, const Tensors& inputs, std::shared_ptr<FixedPointStats> stats)
      : Node("fixed_point", edges(inputs)), problem_(problem), stats_(std::move(stats)) {
    for (const auto& t : inputs) saved_.emplace_back(t, false);
  }

  void save_output(const Tensor& x_hat) { output_ = autograd::SavedTensor(x_hat, true); }

  Tensors apply(const Tensor& gl, const std::vector<bool>& wanted) override {
    FPI_CHECK(output_.defined(), "backward: trying to backward through fixed_point '", problem_.options.name,
              "' a second time, but its saved tensors were already freed. Pass retain_graph=true to the first "
              "backward()/grad() call if you need to backward twice.");
    const auto self = shared_from_this();
    Tensors inputs;
    for (const auto& s : saved_) inputs.push_back(s.unpack(self, "fixed_point"));
    const Tensor x_hat = output_.unpack(self, "fixed_point");
    const std::int64_t pass = stats_->backward_passes++;
    stats_->gradient_check = GradientCheck{};
    // The create_graph path is not checked: its c comes from an FPI layer of its own, whose gradient
    // the check would have to follow through a second level.
    if (autograd::grad_enabled()) {
      Tensors grads = differentiable_gradients(problem_, x_hat, gl, inputs, wanted, *stats_);
      if (stats_->backward.ran) report_nonconvergence(stats_->backward, problem_.options, "backward");
      return grads;
    }

    const Geometry& geo = problem_.geometry;
    const Tensor x_rows = geo.to_rows(x_hat.detach());
    const Tensor gl_rows = geo.to_rows(gl.detach());
    const StepGraph full = build_step(problem_, x_rows, inputs, all_rows(geo.samples), wanted);
    Tensor c;
    switch (problem_.options.backward_mode) {
      case FixedPointBackward::Implicit:
        c = implicit_solve(problem_, full, x_rows, gl_rows, inputs, stats_->backward);
        report_nonconvergence(stats_->backward, problem_.options, "backward");
        break;
      case FixedPointBackward::Exact:
        c = exact_solve(problem_, full, gl_rows, stats_->backward);
        break;
      case FixedPointBackward::JacobianFree:
        c = gl_rows;
        break;
      case FixedPointBackward::Unrolled:
        fail("fixed_point '", problem_.options.name, "': internal error, an unrolled forward recorded an FPI node");
    }
    Tensors grads = input_gradients(full, c, wanted);
    if (problem_.options.gradient_check_every > 0 && pass % problem_.options.gradient_check_every == 0) {
      stats_->gradient_check = check_gradient(problem_, x_rows, gl_rows, c, inputs, wanted, stats_->forward);
      report_gradient_check(stats_->gradient_check, problem_.options);
    }
    return grads;
  }

  void release() override {
    Node::release();
    output_.reset();
  }

 private:
  static std::vector<std::shared_ptr<Node>> edges(const Tensors& inputs) {
    std::vector<std::shared_ptr<Node>> next;
    for (const auto& t : inputs) next.push_back(autograd::gradient_edge(t));
    return next;
  }

  Problem problem_;
  std::shared_ptr<FixedPointStats> stats_;
  autograd::SavedTensor output_;
};

}  // namespace

void attach_fixed_point_node(Tensor& x_hat, const Problem& problem, const Tensors& inputs,
                             std::shared_ptr<FixedPointStats> stats) {
  auto node = std::make_shared<FixedPointNode>(problem, inputs, std::move(stats));
  autograd::attach(x_hat, node);
  node->save_output(x_hat);
}

}  // namespace fpi::fixed_point_detail
