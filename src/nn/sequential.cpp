// Sequential: children named by their index, applied in order.
#include "fpi/nn/sequential.hpp"

#include <string>

namespace fpi::nn {

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(ModulePtr module) {
  FPI_CHECK(module != nullptr, "Sequential::push_back: the module is null");
  register_module(std::to_string(size()), std::move(module));
}

ModulePtr Sequential::operator[](std::size_t index) const {
  FPI_CHECK(index < size(), "Sequential[", index, "]: index out of range for a Sequential of ", size(), " modules");
  return named_children()[index].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, module] : named_children()) y = module->forward(y);
  return y;
}

}  // namespace fpi::nn
