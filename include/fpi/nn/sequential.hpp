// Sequential: a chain of single-input modules, registered as children "0", "1", ... so parameter names
// read "2.weight" as in PyTorch.
#pragma once

#include <initializer_list>
#include <memory>

#include "fpi/nn/module.hpp"

namespace fpi::nn {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);

  // Appends a module under the next index.
  void push_back(ModulePtr module);
  std::size_t size() const { return named_children().size(); }
  ModulePtr operator[](std::size_t index) const;
  // The module at `index` as its concrete type; throws if it is of another type.
  template <class M>
  std::shared_ptr<M> at(std::size_t index) const {
    auto typed = std::dynamic_pointer_cast<M>((*this)[index]);
    FPI_CHECK(typed, "Sequential::at(", index, "): the module there is a ", (*this)[index]->type_name(),
              ", not the type asked for");
    return typed;
  }

  // Applies the modules in order; an empty Sequential returns its input.
  Tensor forward(const Tensor& x) override;
};

}  // namespace fpi::nn
