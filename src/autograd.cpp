// The tape: node bookkeeping, saved tensors, leaf accumulation and the backward engine.
#include "fpi/autograd.hpp"

#include <algorithm>
#include <atomic>
#include <unordered_map>

#include "backend/backend.hpp"
#include "fpi/ops.hpp"

namespace fpi::autograd {
namespace {

std::atomic<std::uint64_t> g_next_sequence_nr{0};

// A gradient buffer nobody else can see (no other handle, no other view of its storage) and that is no
// broadcast view: adding into it in place changes nothing the caller or the graph holds.
bool private_buffer(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1 && t.is_contiguous();
}

// Accumulates into a leaf's .grad. It holds the leaf; the leaf only holds it weakly.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad", {}), leaf_(std::move(leaf)) {}

  Tensors apply(const Tensor& incoming, const std::vector<bool>&) override {
    TensorImpl& leaf = *leaf_;
    FPI_CHECK(incoming.shape() == leaf.shape, "backward: gradient of shape ", shape_str(incoming.shape()),
              " does not match its leaf of shape ", shape_str(leaf.shape));
    Tensor current = leaf.grad ? Tensor(leaf.grad) : Tensor();
    if (grad_enabled()) {
      // create_graph: keep the gradient differentiable.
      leaf.grad = (current.defined() ? current + incoming : incoming).impl_ptr();
    } else if (!current.defined()) {
      // Steal the buffer when nobody else can see it; otherwise copy, because a later in-place
      // accumulation must not write into a tensor the caller holds.
      leaf.grad = (private_buffer(incoming) ? incoming.detach() : incoming.detach().clone()).impl_ptr();
    } else if (current.requires_grad()) {
      leaf.grad = (current.detach() + incoming).impl_ptr();
    } else {
      backend::backend_of(current).binary(backend::BinaryOp::Add, current, current, incoming);
      current.impl()->storage->bump_version();
    }
    return {};
  }
  void release() override {}
  bool is_accumulator() const override { return true; }
  Tensor leaf() const { return Tensor(leaf_); }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// A node whose backward rule is a BackwardFn over saved tensors.
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, std::vector<std::shared_ptr<Node>> next, BackwardFn fn, std::vector<Shape> input_shapes)
      : Node(name, std::move(next)), fn_(std::move(fn)), input_shapes_(std::move(input_shapes)) {}

  void save(const Tensor& t) { saved_.emplace_back(t, false); }
  void save_output(const Tensor& t) { output_ = SavedTensor(t, true); }

  Tensors apply(const Tensor& grad_output, const std::vector<bool>& wanted) override {
    check_not_released();
    std::vector<Tensor> saved;
    saved.reserve(saved_.size());
    const auto self = shared_from_this();
    for (const auto& s : saved_) saved.push_back(s.unpack(self, name().c_str()));
    const Tensor output = output_.defined() ? output_.unpack(self, name().c_str()) : Tensor();
    Tensors grads = fn_(grad_output, BackwardContext(saved, output, wanted));
    FPI_CHECK(grads.size() == input_shapes_.size(), "backward of '", name(), "' returned ", grads.size(),
              " gradients for ", input_shapes_.size(), " inputs");
    for (std::size_t i = 0; i < grads.size(); ++i) {
      FPI_CHECK(!grads[i].defined() || grads[i].shape() == input_shapes_[i], "backward of '", name(),
                "' returned a gradient of shape ", shape_str(grads[i].defined() ? grads[i].shape() : Shape{}),
                " for input ", i, " of shape ", shape_str(input_shapes_[i]));
    }
    return grads;
  }

  void release() override {
    Node::release();
    output_.reset();
    fn_ = nullptr;
  }

  void set_part(InputPart part) { part_ = std::move(part); }
  bool is_part_view() const override { return static_cast<bool>(part_); }
  void add_part_into(Tensor& input_grad, const Tensor& grad_output) override {
    check_not_released();
    if (!input_grad.defined()) input_grad = zeros(input_shapes_[0], grad_output.options());
    const Tensor part = part_(input_grad);
    FPI_CHECK(part.shape() == grad_output.shape(), "backward of '", name(), "': a gradient of shape ",
              shape_str(grad_output.shape()), " for a part of shape ", shape_str(part.shape()));
    backend::backend_of(part).binary(backend::BinaryOp::Add, part, part, grad_output);
  }

 private:
  void check_not_released() const {
    FPI_CHECK(fn_, "backward: trying to backward through '", name(),
              "' a second time, but its saved tensors were already freed. Pass retain_graph=true to the "
              "first backward()/grad() call if you need to backward through the graph twice.");
  }

  BackwardFn fn_;
  InputPart part_;
  SavedTensor output_;
  std::vector<Shape> input_shapes_;
};

}  // namespace

SavedTensor::SavedTensor(const Tensor& t, bool is_output) : is_output_(is_output) {
  if (!t.defined()) return;
  if (is_output) {
    data_ = std::make_shared<TensorImpl>();
    data_->storage = t.impl()->storage;
    data_->shape = t.shape();
    data_->strides = t.strides();
    data_->offset = t.offset();
    data_->dtype = t.dtype();
  } else {
    data_ = t.impl_ptr();
  }
  version_ = data_->storage->version();
}

Tensor SavedTensor::unpack(const std::shared_ptr<Node>& owner, const char* op_name) const {
  if (!data_) return Tensor();
  FPI_CHECK(data_->storage->version() == version_, "backward of '", op_name,
            "': a tensor it saved was modified in place afterwards (storage version ", version_, " -> ",
            data_->storage->version(), "). Clone the tensor before writing to it in place.");
  if (!is_output_) return Tensor(data_);
  auto impl = std::make_shared<TensorImpl>(*data_);
  impl->requires_grad = true;
  impl->grad_fn = owner;
  return Tensor(std::move(impl));
}

Node::Node(std::string name, std::vector<std::shared_ptr<Node>> next)
    : name_(std::move(name)), sequence_nr_(g_next_sequence_nr.fetch_add(1)), next_(std::move(next)) {}

void Node::add_part_into(Tensor&, const Tensor&) {
  FPI_CHECK(false, "backward: '", name_, "' is not a view of part of its input");
}

// Destroying a long chain of nodes recursively (an unrolled loop of thousands of iterations) would
// overflow the stack, so nodes whose last owner is this one are moved to a list and destroyed in a loop.
Node::~Node() {
  thread_local std::vector<std::shared_ptr<Node>> graveyard;
  thread_local bool draining = false;
  const auto bury = [](std::shared_ptr<Node>& n) {
    if (n && n.use_count() == 1) graveyard.push_back(std::move(n));
  };
  for (auto& n : next_) bury(n);
  for (auto& s : saved_)
    if (s.data_ && s.data_.use_count() == 1) bury(s.data_->grad_fn);
  if (draining) return;
  draining = true;
  while (!graveyard.empty()) {
    auto doomed = std::move(graveyard.back());
    graveyard.pop_back();
  }
  draining = false;
}

bool any_requires_grad(std::span<const Tensor> inputs) {
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = *t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  auto accumulator = impl.grad_accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl.grad_accumulator = accumulator;
  }
  return accumulator;
}

void detail::record(const char* name, std::span<const Tensor> inputs, Tensor& output, std::span<const Tensor> saved,
                    BackwardFn fn, SaveOutput save_output, InputPart part) {
  std::vector<std::shared_ptr<Node>> next;
  std::vector<Shape> shapes;
  next.reserve(inputs.size());
  shapes.reserve(inputs.size());
  for (const auto& t : inputs) {
    next.push_back(gradient_edge(t));
    shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  auto node = std::make_shared<FunctionNode>(name, std::move(next), std::move(fn), std::move(shapes));
  for (const auto& t : saved) node->save(t);
  if (save_output == SaveOutput::Yes) node->save_output(output);
  if (part) node->set_part(std::move(part));
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
}

void attach(Tensor& output, std::shared_ptr<Node> node) {
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
}

namespace {

// Runs the backward pass from `outputs`. In accumulate mode (backward()) every leaf reached gets its
// .grad; otherwise (grad()) the gradients arriving at `inputs` are captured and returned.
Tensors run_engine(const Tensors& outputs, const Tensors& grad_outputs, const Tensors& inputs, bool accumulate,
                   bool create_graph, bool retain_graph, bool allow_unused,
                   const LeafGradientReady& on_leaf_ready = {}) {
  const char* who = accumulate ? "backward" : "grad";
  FPI_CHECK(!outputs.empty(), who, ": no outputs given");
  FPI_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(), who, ": got ", grad_outputs.size(),
            " grad_outputs for ", outputs.size(), " outputs");

  std::vector<std::pair<std::shared_ptr<Node>, Tensor>> roots;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    FPI_CHECK(out.defined(), who, ": output ", i, " is an undefined tensor");
    auto node = gradient_edge(out);
    FPI_CHECK(node, who, ": output ", i, " (shape ", shape_str(out.shape()),
              ") does not require grad and has no grad_fn; nothing it depends on requires grad");
    Tensor seed = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!seed.defined()) {
      FPI_CHECK(out.numel() == 1, who, ": a gradient can be created implicitly only for a scalar output, but output ",
                i, " has shape ", shape_str(out.shape()),
                "; pass grad_outputs (or call backward(gradient)) with a tensor of that shape");
      seed = ones_like(out);
    }
    FPI_CHECK(seed.shape() == out.shape() && seed.dtype() == out.dtype() && seed.device() == out.device(), who,
              ": grad_outputs[", i, "] has shape ", shape_str(seed.shape()), ", ", dtype_name(seed.dtype()), " on ",
              seed.device().str(), " but output ", i, " has shape ", shape_str(out.shape()), ", ",
              dtype_name(out.dtype()), " on ", out.device().str());
    roots.emplace_back(std::move(node), std::move(seed));
  }

  std::vector<std::shared_ptr<Node>> targets(inputs.size());
  for (std::size_t j = 0; j < inputs.size(); ++j) {
    FPI_CHECK(inputs[j].defined() && inputs[j].requires_grad(), who, ": inputs[", j,
              "] does not require grad, so no gradient can be computed for it");
    targets[j] = gradient_edge(inputs[j]);
  }
  // A node older than every target cannot lead to one, so grad() need not look past it: ∇ₓE inside
  // a loop would otherwise walk the loop's whole history on every call.
  std::uint64_t oldest_target = 0;
  if (!accumulate) {
    oldest_target = UINT64_MAX;
    for (const auto& t : targets) oldest_target = std::min(oldest_target, t->sequence_nr());
  }

  // Every node reachable from the roots (and young enough to matter), each once.
  std::vector<Node*> nodes;
  std::unordered_map<Node*, std::size_t> index;
  std::vector<Node*> stack;
  for (auto& [node, seed] : roots) {
    if (index.emplace(node.get(), nodes.size()).second) {
      nodes.push_back(node.get());
      stack.push_back(node.get());
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& child : n->next()) {
      if (child && child->sequence_nr() >= oldest_target && index.emplace(child.get(), nodes.size()).second) {
        nodes.push_back(child.get());
        stack.push_back(child.get());
      }
    }
  }

  std::vector<char> is_target(nodes.size(), 0);
  for (const auto& t : targets) {
    auto it = index.find(t.get());
    if (it != index.end()) is_target[it->second] = 1;
  }

  // Children always have smaller sequence numbers than their consumers.
  std::vector<std::size_t> order(nodes.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return nodes[a]->sequence_nr() > nodes[b]->sequence_nr(); });

  // A node is needed if it leads to a target (grad) or to any leaf (backward). Children pruned from
  // the walk above are never needed.
  std::vector<char> needed(nodes.size(), accumulate ? 1 : 0);
  const auto needed_child = [&](const std::shared_ptr<Node>& child) {
    if (!child) return false;
    const auto it = index.find(child.get());
    return it != index.end() && needed[it->second] != 0;
  };
  if (!accumulate) {
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      bool need = is_target[*it];
      for (const auto& child : nodes[*it]->next()) need = need || needed_child(child);
      needed[*it] = need;
    }
  }

  std::vector<Tensor> buffers(nodes.size());
  std::vector<Tensor> captured(nodes.size());
  const auto add_into = [](Tensor& buffer, const Tensor& g) { buffer = buffer.defined() ? buffer + g : g; };
  {
    // Backward rules are recorded only when a differentiable gradient was asked for.
    struct ModeGuard {
      bool previous = grad_enabled();
      ~ModeGuard() { set_grad_enabled(previous); }
    } guard;
    set_grad_enabled(create_graph);
    for (auto& [node, seed] : roots) add_into(buffers[index[node.get()]], seed);
    for (std::size_t i : order) {
      Node* n = nodes[i];
      if (!needed[i] || !buffers[i].defined()) continue;
      if (is_target[i]) captured[i] = buffers[i];
      if (n->is_accumulator()) {
        if (accumulate) n->apply(buffers[i], {});
        buffers[i] = Tensor();
        // AccumulateGrad is the only accumulator.
        if (accumulate && on_leaf_ready) on_leaf_ready(static_cast<AccumulateGrad*>(n)->leaf());
        continue;
      }
      std::vector<bool> wanted(n->next().size());
      bool feeds_needed = false;
      for (std::size_t k = 0; k < wanted.size(); ++k) {
        wanted[k] = needed_child(n->next()[k]);
        feeds_needed = feeds_needed || wanted[k];
      }
      if (!feeds_needed) continue;
      if (!create_graph && n->is_part_view()) {
        Tensor& input_grad = buffers[index[n->next()[0].get()]];
        if (input_grad.defined() && !private_buffer(input_grad)) input_grad = input_grad.clone();
        n->add_part_into(input_grad, buffers[i]);
        buffers[i] = Tensor();
        if (!retain_graph) n->release();
        continue;
      }
      Tensors grads = n->apply(buffers[i], wanted);
      buffers[i] = Tensor();
      const auto& next = n->next();
      for (std::size_t k = 0; k < next.size(); ++k)
        if (wanted[k] && grads[k].defined()) add_into(buffers[index[next[k].get()]], grads[k]);
      if (!retain_graph) n->release();
    }
  }

  Tensors result(inputs.size());
  for (std::size_t j = 0; j < inputs.size(); ++j) {
    auto it = index.find(targets[j].get());
    if (it != index.end()) result[j] = captured[it->second];
    FPI_CHECK(result[j].defined() || allow_unused, who, ": inputs[", j,
              "] was not used to compute the outputs (or no gradient reaches it); pass allow_unused=true to "
              "get an undefined tensor for it instead");
  }
  return result;
}

}  // namespace

Tensors grad(const Tensors& outputs, const Tensors& inputs, const Tensors& grad_outputs, GradOptions options) {
  FPI_CHECK(!inputs.empty(), "grad: no inputs given");
  return run_engine(outputs, grad_outputs, inputs, false, options.create_graph,
                    options.retain_graph.value_or(options.create_graph), options.allow_unused);
}

void backward(const Tensors& outputs, const Tensors& grad_outputs, std::optional<bool> retain_graph,
              bool create_graph, const LeafGradientReady& on_leaf_ready) {
  run_engine(outputs, grad_outputs, {}, true, create_graph, retain_graph.value_or(create_graph), true, on_leaf_ready);
}

}  // namespace fpi::autograd
