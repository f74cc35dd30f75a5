// nn::Module: registration, traversal with dotted names, train/eval, state dicts, in-place dtype and
// device conversion, and PyTorch-style printing.
#include "fpi/nn/module.hpp"

#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include "fpi/autograd.hpp"

namespace fpi::nn {

namespace {

// Walks `root` depth first, in registration order, calling visit(prefix, module) once per module.
template <class Visit>
void walk(const Module& root, const std::string& prefix, std::set<const Module*>& seen, bool recurse, Visit visit) {
  if (!seen.insert(&root).second) return;
  visit(prefix, root);
  if (!recurse) return;
  for (const auto& [name, child] : root.named_children()) walk(*child, prefix + name + ".", seen, recurse, visit);
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

// Indents every line but the first by `spaces`, as PyTorch's _addindent does for nested modules.
std::string indent_tail(const std::string& text, int spaces) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') out.append(spaces, ' ');
  }
  return out;
}

}  // namespace

Tensor Module::forward(const Tensor&) {
  fail(type_name_, ".forward(x): this module does not take a single input; call it through the method "
       "its type provides for its inputs (a fixed-point map g(x, z) takes two)");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  FPI_CHECK(!name.empty(), type_name_, ".", what, ": the name is empty");
  FPI_CHECK(name.find('.') == std::string::npos, type_name_, ".", what, ": the name '", name,
            "' contains '.', which separates the levels of dotted names; choose a name without it");
  const auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& entry) { return entry.first == name; });
  };
  FPI_CHECK(!taken(parameters_), type_name_, ".", what, ": '", name, "' is already a parameter of this module");
  FPI_CHECK(!taken(buffers_), type_name_, ".", what, ": '", name, "' is already a buffer of this module");
  FPI_CHECK(!taken(children_), type_name_, ".", what, ": '", name, "' is already a child module of this module");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor) {
  check_new_name(name, "register_parameter");
  FPI_CHECK(tensor.defined(), type_name_, ".register_parameter('", name, "'): the tensor is undefined");
  if (!tensor.is_leaf()) tensor = tensor.detach();
  tensor.requires_grad_(true);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_new_name(name, "register_buffer");
  FPI_CHECK(tensor.defined(), type_name_, ".register_buffer('", name, "'): the tensor is undefined");
  buffers_.emplace_back(name, tensor);
  return tensor;
}

bool Module::reaches(const Module* target) const {
  if (this == target) return true;
  return std::any_of(children_.begin(), children_.end(),
                     [&](const auto& entry) { return entry.second->reaches(target); });
}

void Module::add_child(const std::string& name, ModulePtr module) {
  check_new_name(name, "register_module");
  FPI_CHECK(module != nullptr, type_name_, ".register_module('", name, "'): the module is null");
  FPI_CHECK(!module->reaches(this), type_name_, ".register_module('", name, "'): the ", module->type_name(),
            " contains this module, so registering it would make a cycle");
  children_.emplace_back(name, std::move(module));
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  std::set<const Module*> seen_modules;
  std::set<const TensorImpl*> seen;
  walk(*this, "", seen_modules, recurse, [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.parameters_)
      if (seen.insert(t.impl()).second) out.emplace_back(prefix + name, t);
  });
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  std::set<const Module*> seen_modules;
  std::set<const TensorImpl*> seen;
  walk(*this, "", seen_modules, recurse, [&](const std::string& prefix, const Module& m) {
    for (const auto& [name, t] : m.buffers_)
      if (seen.insert(t.impl()).second) out.emplace_back(prefix + name, t);
  });
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

NamedModules Module::named_modules() {
  ModulePtr self = weak_from_this().lock();
  FPI_CHECK(self, type_name_, ".named_modules(): the module is not owned by a std::shared_ptr; create modules "
            "with std::make_shared");
  NamedModules out;
  std::set<const Module*> seen;
  const auto visit = [&](auto& self_ref, const std::string& name, const ModulePtr& m) -> void {
    if (!seen.insert(m.get()).second) return;
    out.emplace_back(name, m);
    for (const auto& [child_name, child] : m->children_)
      self_ref(self_ref, name.empty() ? child_name : name + "." + child_name, child);
  };
  visit(visit, "", self);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (const auto& p : parameters()) p.zero_grad();
}

void Module::save_into(StateDict& out, const std::string& prefix) const {
  for (const auto& [name, t] : parameters_) out.emplace_back(prefix + name, t.detach());
  for (const auto& [name, t] : buffers_) out.emplace_back(prefix + name, t.detach());
  for (const auto& [name, child] : children_) child->save_into(out, prefix + name + ".");
}

StateDict Module::state_dict() const {
  StateDict out;
  save_into(out, "");
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given.emplace(name, &t);
  // A buffer registered empty is sized later by its module (LipschitzBound's vectors, by the first
  // input); loading gives it the checkpoint's shape.
  std::map<std::string, Tensor> unsized;
  const auto find_unsized = [&](const auto& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& [name, t] : m.buffers_)
      if (t.numel() == 0) unsized.emplace(prefix + name, t);
    for (const auto& [name, child] : m.children_) self(self, *child, prefix + name + ".");
  };
  find_unsized(find_unsized, *this, "");

  std::vector<std::string> missing, unexpected, problems;
  std::vector<std::pair<Tensor, const Tensor*>> copies, sizings;
  std::set<std::string> own_names;
  for (const auto& [name, target] : own) {
    own_names.insert(name);
    const auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& source = *it->second;
    if (!source.defined()) {
      problems.push_back(name + ": the checkpoint's tensor is undefined");
    } else if (source.shape() != target.shape() && unsized.count(name)) {
      sizings.emplace_back(unsized.at(name), &source);
    } else if (source.shape() != target.shape()) {
      problems.push_back(name + ": checkpoint has shape " + shape_str(source.shape()) + " but the module has " +
                         shape_str(target.shape()));
    } else {
      copies.emplace_back(target, &source);
    }
  }
  for (const auto& [name, t] : state)
    if (!own_names.count(name)) unexpected.push_back(name);

  std::ostringstream report;
  if (strict && !missing.empty()) report << "\n  missing keys: " << quoted_list(missing);
  if (strict && !unexpected.empty()) report << "\n  unexpected keys: " << quoted_list(unexpected);
  for (const auto& p : problems) report << "\n  " << p;
  if (!report.str().empty()) {
    fail("load_state_dict into ", type_name_, ": the state dict does not fit this module; nothing was loaded.",
         report.str(),
         strict && (!missing.empty() || !unexpected.empty())
             ? "\n  (pass strict = false to load a dict with missing or unexpected keys)"
             : "");
  }
  NoGrad no_grad;
  for (auto& [target, source] : copies) target.copy_(*source);
  for (auto& [buffer, source] : sizings) {
    Tensor sized = empty(source->shape(), buffer.options());
    sized.copy_(*source);
    buffer.set_data(sized);
  }
}

template <class Convert>
void Module::convert_tensors(Convert convert) {
  NoGrad no_grad;
  for (const auto& t : parameters()) convert(t);
  for (const auto& t : buffers()) convert(t);
}

Module& Module::to(DType dtype) {
  convert_tensors([dtype](const Tensor& t) {
    if (t.dtype() != dtype) t.set_data(t.detach().to(dtype));
  });
  return *this;
}

Module& Module::to(Device device) {
  convert_tensors([device](const Tensor& t) {
    if (t.device() != device) t.set_data(t.detach().to(device));
  });
  return *this;
}

std::string Module::repr() const {
  std::vector<std::string> lines;
  const std::string extra = extra_repr();
  std::istringstream extra_lines(extra);
  for (std::string line; std::getline(extra_lines, line);) lines.push_back(line);
  const std::size_t n_extra = lines.size();
  for (const auto& [name, child] : children_) lines.push_back("(" + name + "): " + indent_tail(child->repr(), 2));

  std::string out = type_name_ + "(";
  if (n_extra == 1 && children_.empty()) {
    out += lines[0];
  } else if (!lines.empty()) {
    for (const auto& line : lines) out += "\n  " + line;
    out += "\n";
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Module& module) { return out << module.repr(); }

}  // namespace fpi::nn
