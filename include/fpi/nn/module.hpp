// nn::Module: the base of every layer. A module owns named parameters (trainable leaves), named
// buffers (state that is saved but not trained) and named child modules, all kept in registration
// order so that dotted names ("layers.0.weight"), state dicts and printing match PyTorch's. Modules are
// shared through std::shared_ptr; the Tensor handles a module hands out stay valid for its lifetime,
// because load_state_dict and to() write into the existing tensors instead of replacing them.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
// Parameters then buffers, module by module, with dotted names; tensors are detached.
using StateDict = NamedTensors;

class Module;
using ModulePtr = std::shared_ptr<Module>;
using NamedModules = std::vector<std::pair<std::string, ModulePtr>>;

class Module : public std::enable_shared_from_this<Module> {
 public:
  // `type_name` is what repr() prints ("Linear"); subclasses pass their own.
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The single-input map. Modules whose map takes other arguments (g(x, z) of a fixed-point layer)
  // expose their own call and keep this default, which throws.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  const std::string& type_name() const { return type_name_; }

  // Registration. Names must be non-empty, free of '.', and unique within this module across
  // parameters, buffers and children. A parameter is made a leaf that requires grad. Each returns the
  // handle it stored, which the subclass keeps as its public member (Linear::weight).
  Tensor register_parameter(const std::string& name, Tensor tensor);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // Traversal, in registration order, depth first; a tensor or module reachable twice is listed once.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  const NamedModules& named_children() const { return children_; }
  // This module first, under the empty name, then every descendant. Needs this module to be owned by
  // a std::shared_ptr (create modules with std::make_shared).
  NamedModules named_modules();

  // Training mode (the default) versus evaluation mode; propagates to every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient.
  void zero_grad();

  StateDict state_dict() const;
  // Copies the dict's values into this module's tensors (converting dtype and device). Every problem
  // is reported at once, naming the keys; nothing is written unless the whole dict is accepted. Without
  // `strict`, missing and unexpected keys are allowed, but shapes must still agree, except for a buffer
  // registered empty and not yet sized by its module, which takes the dict's shape.
  void load_state_dict(const StateDict& state, bool strict = true);

  // Converts every parameter and buffer in place: handles the user already holds see the new dtype or
  // device. Gradients are dropped. Not to be called while a graph that uses the parameters is alive.
  Module& to(DType dtype);
  Module& to(Device device);

  // PyTorch's module text: "Linear(in_features=3, out_features=4, bias=True)", and for a module with
  // children one "(name): child" line each, indented.
  virtual std::string repr() const;
  // The part inside the parentheses for a module's own settings; empty by default.
  virtual std::string extra_repr() const { return {}; }

 private:
  void check_new_name(const std::string& name, const char* what) const;
  void add_child(const std::string& name, ModulePtr module);
  bool reaches(const Module* target) const;
  void save_into(StateDict& out, const std::string& prefix) const;
  template <class Convert>
  void convert_tensors(Convert convert);

  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  NamedModules children_;
};

std::ostream& operator<<(std::ostream& out, const Module& module);

}  // namespace fpi::nn
