// State: the checkpoint form of every stateful object that is not a module (optimizers, LR schedules,
// generators, data loaders), so that training resumes exactly where it stopped. A State is an ordered
// list of key → value, a value being a tensor or one of the few scalar kinds such state needs. Objects
// write theirs with state_dict() and read it back with load_state_dict(), which reads through a
// StateReader: a missing key, a value of the wrong kind or a key nobody reads fails with an fpi::Error
// naming the object and the key, before anything is changed.
//
// Keys are dotted paths ("state.3.exp_avg"). A trainer gathers every object's state into one State
// under a prefix each (merge("optimizer.", ...)), takes each back out with under("optimizer."), and
// writes the tensors to a file's tensor section and the rest to its string metadata (flatten below).
// A module's state dict fits too: State(module.state_dict()) and state.tensors(...) convert.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi {

class State {
 public:
  // A flag is an int64 0 or 1; a 64-bit unsigned word (a generator's) is an int64 of the same bits
  // (std::bit_cast). Doubles are kept as doubles, so they come back exactly.
  using Value = std::variant<Tensor, double, std::int64_t, std::vector<std::int64_t>, std::string>;
  using Entry = std::pair<std::string, Value>;

  State() = default;
  // A module's state dict, in its order.
  explicit State(const std::vector<std::pair<std::string, Tensor>>& tensors);

  // Appends an entry. A key appears once, and a tensor must be defined: state that does not exist yet
  // (an optimizer's buffers before the first step) is left out, not stored empty.
  void set(std::string key, Value value);
  bool contains(const std::string& key) const { return index_.count(key) > 0; }
  // The value under `key`, or null.
  const Value* find(const std::string& key) const;
  const std::vector<Entry>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

  // Appends every entry of `inner` with its key prefixed by `prefix` ("optimizer." + "lr").
  void merge(const std::string& prefix, const State& inner);
  // The entries whose key starts with `prefix`, with the prefix removed, in order.
  State under(const std::string& prefix) const;
  // Every entry as a module's state dict; `where` names the caller in the error for a value that is
  // not a tensor.
  std::vector<std::pair<std::string, Tensor>> tensors(const std::string& where) const;
  // The same entries with every tensor copied, so a snapshot kept in memory does not follow the
  // in-place updates of later steps (state_dict() tensors share the objects' storage, as a module's do).
  State clone() const;

 private:
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
};

// The kind of a value as errors name it: "tensor", "double", "int64", "int64 list" or "string".
const char* value_kind(const State::Value& value);

// Reads a State for a load_state_dict. `where` starts every error ("Adam.load_state_dict"); the getters
// throw when the key is missing or holds another kind ("... key 'lr' has kind int64, expected
// double"), and check_all_read() refuses the keys no getter asked for, which is how a state from
// another kind of object, or a misspelt key, is caught.
class StateReader {
 public:
  StateReader(const State& state, std::string where);
  StateReader(const StateReader&) = delete;
  StateReader& operator=(const StateReader&) = delete;

  const std::string& where() const { return where_; }
  bool contains(const std::string& key) const { return state_.contains(key); }
  const Tensor& get_tensor(const std::string& key);
  double get_double(const std::string& key);
  std::int64_t get_int64(const std::string& key);
  const std::vector<std::int64_t>& get_int64_list(const std::string& key);
  const std::string& get_string(const std::string& key);
  // State::under(prefix), whose keys count as read: the nested object's own reader checks them.
  State get_under(const std::string& prefix);
  // Reads `key` and requires it to equal `expected` (not a tensor): how an object checks that a state
  // was saved by its own kind and with its own settings ("... key 'beta1' is 0.95 in the state but 0.9
  // here; ...").
  void require(const std::string& key, const State::Value& expected);
  void check_all_read() const;

 private:
  template <class T>
  const T& get(const std::string& key, const char* kind);

  const State& state_;
  std::string where_;
  std::set<std::string> read_;
};

// A State laid out for a file that has a tensor section and string → string metadata (safetensors):
// tensors keep their keys, every other value becomes one metadata string tagged with its kind, exact
// for doubles ("f64:0.1" is the shortest text that reads back as the same double, "i64:-3",
// "i64s:1,2,3", "str:Adam").
struct FlatState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
};
FlatState flatten(const State& state);
// The inverse of flatten: tensors first, then the metadata, each in its given order. Every metadata
// string must be one that flatten writes.
State unflatten(const FlatState& flat);

}  // namespace fpi
