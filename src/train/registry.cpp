// The layer registry: one process-wide table of layer types, created with the built-ins on first use
// (a function-local static, so linking the static library needs no static-initialiser tricks) and
// extended by register_layer. Registration is meant for program start-up, but the table is locked so a
// late registration cannot race a model being built on another thread.
#include "fpi/train/registry.hpp"

#include <map>
#include <mutex>

namespace fpi::train {

// Defined in layers.cpp, next to the factories themselves.
std::vector<std::pair<std::string, LayerType>> builtin_layer_types();

namespace {

void check_layer_type(const std::string& type, const LayerType& layer) {
  FPI_CHECK(!type.empty(), "register_layer: the type name is empty");
  for (char c : type)
    FPI_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_',
              "register_layer: type '", type, "' may only use letters, digits and '_'");
  FPI_CHECK(layer.build, "register_layer: type '", type, "' has no build function");
  FPI_CHECK(layer.min_inputs >= 1, "register_layer: type '", type, "' must take at least 1 input, got min_inputs ",
            layer.min_inputs);
  FPI_CHECK(layer.max_inputs == -1 || layer.max_inputs >= layer.min_inputs, "register_layer: type '", type,
            "' has max_inputs ", layer.max_inputs, " below min_inputs ", layer.min_inputs, " (use -1 for any number)");
}

struct Registry {
  Registry() {
    for (auto& [type, layer] : builtin_layer_types()) {
      check_layer_type(type, layer);
      types.emplace(type, std::move(layer));
    }
  }

  std::mutex mutex;
  std::map<std::string, LayerType> types;  // node-based: the pointers find_layer_type hands out stay valid
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

void register_layer(const std::string& type, LayerType layer) {
  check_layer_type(type, layer);
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  FPI_CHECK(!r.types.contains(type), "register_layer: layer type '", type, "' is already registered");
  r.types.emplace(type, std::move(layer));
}

const LayerType* find_layer_type(const std::string& type) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.types.find(type);
  return it == r.types.end() ? nullptr : &it->second;
}

std::vector<std::string> layer_types() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [type, layer] : r.types) names.push_back(type);
  return names;
}

std::string batch_shape_str(const Shape& per_sample) {
  std::string s = "(N";
  for (std::int64_t d : per_sample) s += d < 0 ? ", ?" : ", " + std::to_string(d);
  return s + ")";
}

}  // namespace fpi::train
