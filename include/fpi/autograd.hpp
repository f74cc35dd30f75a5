// The tape. Every differentiable op that sees an input requiring grad records one Node: its inputs'
// nodes (the edges), the tensors its backward rule will read, and the rule itself. A node's sequence
// number is its position in creation order, so walking nodes from the highest number down visits a
// node only after everything that consumed its output: that is the whole scheduling algorithm.
//
// Backward rules are written with differentiable ops. With create_graph the rules themselves are
// recorded, so grad of grad works for every op whose rule is twice differentiable.
//
// Nodes are owned by the tensors that need them (a tensor owns its grad_fn, a node owns its inputs'
// nodes), so a step's graph is freed when the last tensor of that step dies.
//
// The tape and the ops (fpi/ops.hpp) are one layer and include each other: ops record nodes, and
// nodes run ops. The grad-mode switch sits below both, in fpi/grad_mode.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fpi/grad_mode.hpp"
#include "fpi/tensor.hpp"

namespace fpi {

using Tensors = std::vector<Tensor>;

namespace autograd {

// A tensor kept for the backward pass, with the storage version it had when saved.
class SavedTensor {
 public:
  SavedTensor() = default;
  // An op's own output is saved without its grad_fn (which would be a cycle: node -> output -> node);
  // unpack() re-attaches it to the node.
  SavedTensor(const Tensor& t, bool is_output);
  Tensor unpack(const std::shared_ptr<Node>& owner, const char* op_name) const;
  bool defined() const { return data_ != nullptr; }
  void reset() { data_.reset(); }

 private:
  std::shared_ptr<TensorImpl> data_;
  std::uint64_t version_ = 0;
  bool is_output_ = false;
  friend class Node;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node(std::string name, std::vector<std::shared_ptr<Node>> next);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  std::uint64_t sequence_nr() const { return sequence_nr_; }
  // One entry per input; null where that input needs no gradient.
  const std::vector<std::shared_ptr<Node>>& next() const { return next_; }

  // Given the gradient of the loss w.r.t. this node's output, returns one gradient per input.
  // `wanted[i]` says whether this pass needs input i's gradient (grad() w.r.t. x alone does not want
  // the weights'); unwanted entries may be left undefined.
  virtual Tensors apply(const Tensor& grad_output, const std::vector<bool>& wanted) = 0;
  // Frees what apply() reads; a later apply() must then throw.
  virtual void release() { saved_.clear(); }
  virtual bool is_accumulator() const { return false; }
  // A view that selects part of its one input (slice). When a pass records no graph, the engine calls
  // add_part_into instead of apply: it adds grad_output into that part of `input_grad` (a gradient of the
  // input's shape, created as zeros when undefined, and private to the engine), so that the slices of one
  // tensor fill one buffer in place instead of each building a zero-filled whole that is then summed.
  virtual bool is_part_view() const { return false; }
  virtual void add_part_into(Tensor& input_grad, const Tensor& grad_output);

 protected:
  std::vector<SavedTensor> saved_;

 private:
  std::string name_;
  std::uint64_t sequence_nr_;
  std::vector<std::shared_ptr<Node>> next_;
};

// What a backward rule sees: saved tensors (unpacked, version-checked), the op's output when it was
// saved, and which inputs need a gradient in this pass.
class BackwardContext {
 public:
  BackwardContext(const std::vector<Tensor>& saved, const Tensor& output, const std::vector<bool>& needs)
      : saved_(saved), output_(output), needs_(needs) {}
  const Tensor& saved(std::size_t i) const { return saved_[i]; }
  const Tensor& output() const { return output_; }
  bool needs_grad(std::size_t input) const { return needs_[input]; }

 private:
  const std::vector<Tensor>& saved_;
  const Tensor& output_;
  const std::vector<bool>& needs_;
};

using BackwardFn = std::function<Tensors(const Tensor& grad_output, const BackwardContext& ctx)>;

enum class SaveOutput { No, Yes };

bool any_requires_grad(std::span<const Tensor> inputs);
inline bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  return any_requires_grad(std::span<const Tensor>(inputs.begin(), inputs.size()));
}

// For a part view: the part of a tensor of the input's shape that the view selects, as a view of it.
using InputPart = std::function<Tensor(const Tensor& whole)>;

namespace detail {
void record(const char* name, std::span<const Tensor> inputs, Tensor& output, std::span<const Tensor> saved,
            BackwardFn fn, SaveOutput save_output, InputPart part = {});
}

// Records `output = name(inputs)` with its backward rule when grad mode is on and any input
// requires grad; otherwise does nothing (and builds no std::function). `saved` lists the tensors the
// rule reads through ctx.saved(i); the rule must not capture tensors itself, so that releasing the
// graph frees them and in-place changes to them are detected.
template <class Fn>
void record(const char* name, std::span<const Tensor> inputs, Tensor& output, std::span<const Tensor> saved,
            Fn&& fn, SaveOutput save_output = SaveOutput::No) {
  if (!grad_enabled() || !any_requires_grad(inputs)) return;
  detail::record(name, inputs, output, saved, BackwardFn(std::forward<Fn>(fn)), save_output);
}
template <class Fn>
void record(const char* name, std::initializer_list<Tensor> inputs, Tensor& output,
            std::initializer_list<Tensor> saved, Fn&& fn, SaveOutput save_output = SaveOutput::No) {
  record(name, std::span<const Tensor>(inputs.begin(), inputs.size()), output,
         std::span<const Tensor>(saved.begin(), saved.size()), std::forward<Fn>(fn), save_output);
}

// Records `output`, a view selecting part of `input` (see Node::is_part_view): `fn` is its backward rule
// for passes that record a graph, `part` picks the same part out of a tensor of the input's shape.
template <class Fn>
void record_part_view(const char* name, const Tensor& input, Tensor& output, Fn&& fn, InputPart part) {
  if (!grad_enabled() || !input.requires_grad()) return;
  const Tensor inputs[] = {input};
  detail::record(name, inputs, output, {}, BackwardFn(std::forward<Fn>(fn)), SaveOutput::No, std::move(part));
}

// Attaches a custom node (such as the FPI layer's) as `output`'s grad_fn.
void attach(Tensor& output, std::shared_ptr<Node> node);
// The node a gradient for `t` flows into: its grad_fn, or the leaf's accumulator (created on
// demand). Null when `t` does not require grad.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

struct GradOptions {
  std::optional<bool> retain_graph = std::nullopt;  // defaults to create_graph
  bool create_graph = false;
  bool allow_unused = false;
};

// d(sum of outputs[i] * grad_outputs[i]) / d(inputs[j]), without touching any .grad.
Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& grad_outputs = {},
             GradOptions options = {});
// Called by backward() once per leaf, right after the leaf's .grad took its last contribution of that
// pass: a leaf's accumulator is older than every node that consumes the leaf, so when the walk reaches
// it nothing can add to it any more. Data-parallel training starts reducing a gradient there, while the
// rest of the backward still runs. Leaves that no gradient reached are not reported.
using LeafGradientReady = std::function<void(const Tensor& leaf)>;

// Accumulates into the .grad of every leaf that requires grad.
void backward(const Tensors& outputs, const Tensors& grad_outputs = {}, std::optional<bool> retain_graph = {},
              bool create_graph = false, const LeafGradientReady& on_leaf_ready = {});

}  // namespace autograd

}  // namespace fpi
