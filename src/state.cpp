// State and StateReader, and the exact text form of scalar values that flatten() puts in a file's
// metadata: shortest round-trip decimals (std::to_chars) for doubles, so nothing is lost or rounded.
#include "fpi/state.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>
#include <type_traits>

namespace fpi {

namespace {

constexpr const char* kTensorTag = "tensor";

std::string format_double(double value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

template <class T>
bool parse_whole(std::string_view text, T& value) {
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  return result.ec == std::errc() && result.ptr == text.data() + text.size();
}

std::string describe(double d) { return format_double(d); }
std::string describe(std::int64_t i) { return std::to_string(i); }
std::string describe(const std::vector<std::int64_t>& list) { return shape_str(list); }
std::string describe(const std::string& text) { return "'" + text + "'"; }

std::string encode(const State::Value& value) {
  if (const auto* d = std::get_if<double>(&value)) return std::string("f64:").append(format_double(*d));
  if (const auto* i = std::get_if<std::int64_t>(&value)) return std::string("i64:").append(std::to_string(*i));
  if (const auto* list = std::get_if<std::vector<std::int64_t>>(&value)) {
    std::string out = "i64s:";
    for (std::size_t k = 0; k < list->size(); ++k) {
      if (k > 0) out += ',';
      out += std::to_string((*list)[k]);
    }
    return out;
  }
  return std::string("str:").append(std::get<std::string>(value));
}

State::Value decode(const std::string& key, const std::string& text) {
  const auto fail_here = [&]() -> State::Value {
    fail("unflatten: metadata '", key, "' holds '", text,
         "', which is not a value flatten writes (f64:, i64:, i64s: or str: and its text)");
  };
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) return fail_here();
  const std::string_view tag = std::string_view(text).substr(0, colon);
  const std::string_view body = std::string_view(text).substr(colon + 1);
  if (tag == "str") return std::string(body);
  if (tag == "f64") {
    double d = 0.0;
    return parse_whole(body, d) ? State::Value(d) : fail_here();
  }
  if (tag == "i64") {
    std::int64_t i = 0;
    return parse_whole(body, i) ? State::Value(i) : fail_here();
  }
  if (tag == "i64s") {
    std::vector<std::int64_t> list;
    for (std::size_t start = 0; start < body.size();) {
      const std::size_t comma = std::min(body.find(',', start), body.size());
      std::int64_t i = 0;
      if (!parse_whole(body.substr(start, comma - start), i)) return fail_here();
      list.push_back(i);
      start = comma + 1;
      if (comma + 1 == body.size()) return fail_here();  // a trailing comma
    }
    return list;
  }
  return fail_here();
}

}  // namespace

State::State(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  for (const auto& [key, tensor] : tensors) set(key, tensor);
}

void State::set(std::string key, Value value) {
  FPI_CHECK(!key.empty(), "State::set: the key is empty");
  FPI_CHECK(!contains(key), "State::set: key '", key, "' is already set");
  if (const auto* t = std::get_if<Tensor>(&value))
    FPI_CHECK(t->defined(), "State::set: key '", key, "' is an undefined tensor; leave state that does not exist out");
  index_.emplace(key, entries_.size());
  entries_.emplace_back(std::move(key), std::move(value));
}

const State::Value* State::find(const std::string& key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void State::merge(const std::string& prefix, const State& inner) {
  for (const auto& [key, value] : inner.entries_) set(prefix + key, value);
}

State State::under(const std::string& prefix) const {
  State out;
  for (const auto& [key, value] : entries_)
    if (key.size() > prefix.size() && key.compare(0, prefix.size(), prefix) == 0)
      out.set(key.substr(prefix.size()), value);
  return out;
}

std::vector<std::pair<std::string, Tensor>> State::tensors(const std::string& where) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [key, value] : entries_) {
    const auto* t = std::get_if<Tensor>(&value);
    FPI_CHECK(t, where, ": key '", key, "' has kind ", value_kind(value), ", expected ", kTensorTag);
    out.emplace_back(key, *t);
  }
  return out;
}

State State::clone() const {
  State out;
  for (const auto& [key, value] : entries_) {
    if (const auto* t = std::get_if<Tensor>(&value)) {
      Tensor copy = fpi::empty(t->shape(), t->options());
      copy.copy_(*t);
      out.set(key, copy);
    } else {
      out.set(key, value);
    }
  }
  return out;
}

const char* value_kind(const State::Value& value) {
  static constexpr const char* kKinds[] = {kTensorTag, "double", "int64", "int64 list", "string"};
  return kKinds[value.index()];
}

StateReader::StateReader(const State& state, std::string where) : state_(state), where_(std::move(where)) {}

template <class T>
const T& StateReader::get(const std::string& key, const char* kind) {
  const State::Value* value = state_.find(key);
  FPI_CHECK(value, where_, ": key '", key, "' is missing");
  const T* typed = std::get_if<T>(value);
  FPI_CHECK(typed, where_, ": key '", key, "' has kind ", value_kind(*value), ", expected ", kind);
  read_.insert(key);
  return *typed;
}

const Tensor& StateReader::get_tensor(const std::string& key) { return get<Tensor>(key, kTensorTag); }
double StateReader::get_double(const std::string& key) { return get<double>(key, "double"); }
std::int64_t StateReader::get_int64(const std::string& key) { return get<std::int64_t>(key, "int64"); }
const std::vector<std::int64_t>& StateReader::get_int64_list(const std::string& key) {
  return get<std::vector<std::int64_t>>(key, "int64 list");
}
const std::string& StateReader::get_string(const std::string& key) { return get<std::string>(key, "string"); }

State StateReader::get_under(const std::string& prefix) {
  State out = state_.under(prefix);
  for (const auto& [key, value] : out.entries()) read_.insert(prefix + key);
  return out;
}

void StateReader::require(const std::string& key, const State::Value& expected) {
  std::visit(
      [&](const auto& own) {
        using T = std::decay_t<decltype(own)>;
        FPI_CHECK((!std::is_same_v<T, Tensor>), where_, ": require('", key, "') compares settings, not tensors");
        const T& saved = get<T>(key, value_kind(expected));
        if constexpr (!std::is_same_v<T, Tensor>) {
          FPI_CHECK(saved == own, where_, ": key '", key, "' is ", describe(saved), " in the state but ", describe(own),
                    " here; the state was saved by another kind of object or with other settings");
        }
      },
      expected);
}

void StateReader::check_all_read() const {
  constexpr std::size_t kListed = 8;
  std::string unknown;
  std::size_t count = 0;
  for (const auto& [key, value] : state_.entries()) {
    if (read_.count(key)) continue;
    if (count++ < kListed) unknown += (unknown.empty() ? "'" : ", '") + key + "'";
  }
  if (count > kListed) unknown += detail::concat(" and ", count - kListed, " more");
  FPI_CHECK(count == 0, where_, ": unknown key", count == 1 ? " " : "s ", unknown,
            "; the state was saved by another kind of object or with other settings");
}

FlatState flatten(const State& state) {
  FlatState flat;
  for (const auto& [key, value] : state.entries()) {
    if (const auto* t = std::get_if<Tensor>(&value)) {
      flat.tensors.emplace_back(key, *t);
    } else {
      flat.metadata.emplace_back(key, encode(value));
    }
  }
  return flat;
}

State unflatten(const FlatState& flat) {
  State state;
  for (const auto& [key, tensor] : flat.tensors) state.set(key, tensor);
  for (const auto& [key, text] : flat.metadata) state.set(key, decode(key, text));
  return state;
}

}  // namespace fpi
