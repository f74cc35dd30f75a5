// JsonObject: the checked, default-filling, key-recording reader of config objects.
#include "fpi/train/json_reader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace fpi::train {
namespace {

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kMaxRendered = 60;

template <class... Parts>
[[noreturn]] void config_fail(const Parts&... parts) {
  throw ConfigError(detail::concat(parts...));
}

bool in_interval(double v, const Interval& in) {
  if (in.min_open ? !(v > in.min) : !(v >= in.min)) return false;
  return in.max_open ? v < in.max : v <= in.max;
}

// The integer in `value`, if it is a JSON integer within [min, max].
std::optional<std::int64_t> as_integer(const nlohmann::json& value, std::int64_t min, std::int64_t max) {
  std::int64_t v = 0;
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(kMaxInt)) return std::nullopt;
    v = static_cast<std::int64_t>(u);
  } else if (value.is_number_integer()) {
    v = value.get<std::int64_t>();
  } else {
    return std::nullopt;
  }
  if (v < min || v > max) return std::nullopt;
  return v;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : "\"") + names[i] + "\"";
  return out;
}

}  // namespace

std::string describe_integer(std::int64_t min, std::int64_t max) {
  if (max == kMaxInt) {
    if (min == std::numeric_limits<std::int64_t>::min()) return "an integer";
    if (min == 1) return "a positive integer";
    if (min == 0) return "a non-negative integer";
    return "an integer >= " + std::to_string(min);
  }
  return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

std::string describe_interval(const Interval& in) {
  const bool low = std::isfinite(in.min), high = std::isfinite(in.max);
  if (low && high) {
    if (!in.min_open && !in.max_open) return "a number from " + format_number(in.min) + " to " + format_number(in.max);
    return std::string("a number in ") + (in.min_open ? "(" : "[") + format_number(in.min) + ", " +
           format_number(in.max) + (in.max_open ? ")" : "]");
  }
  if (low) {
    if (in.min == 0 && in.min_open) return "a positive number";
    return std::string("a number ") + (in.min_open ? "> " : ">= ") + format_number(in.min);
  }
  if (high) return std::string("a number ") + (in.max_open ? "< " : "<= ") + format_number(in.max);
  return "a finite number";
}

std::string integer_hint(const nlohmann::json& value) {
  return value.is_number_float() ? " (integers are written without a decimal point or exponent)" : "";
}

std::string format_number(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string escape_control_characters(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      out += c;
      continue;
    }
    char escaped[5];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
    out += escaped;
  }
  return out;
}

ConfigError::ConfigError(const std::string& message) : Error(escape_control_characters(message)) {}

ConfigError::ConfigError(const std::vector<std::string>& problems) : Error([&] {
  std::string lines;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) lines += '\n';
    lines += escape_control_characters(problems[i]);
  }
  return lines;
}()) {}

std::string render_json(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxRendered) text = text.substr(0, kMaxRendered - 3) + "...";
  return text;
}

JsonObject::JsonObject(const nlohmann::json& value, std::string path) : value_(value), path_(std::move(path)) {
  if (!value_.is_object()) config_fail(label(), ": expected an object, got ", render_json(value_));
}

std::string JsonObject::key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

bool JsonObject::has(const std::string& key) const { return value_.contains(key); }

std::string JsonObject::label() const { return path_.empty() ? "config" : path_; }

void JsonObject::refuse(const std::string& key, const std::string& expected, const nlohmann::json& got) const {
  config_fail(key_path(key), ": expected ", expected, ", got ", render_json(got));
}

const nlohmann::json* JsonObject::find(const std::string& key) {
  known_.insert(key);
  const auto it = value_.find(key);
  return it == value_.end() ? nullptr : &*it;
}

const nlohmann::json& JsonObject::require(const std::string& key) {
  const nlohmann::json* value = find(key);
  if (value == nullptr) config_fail(label(), ": missing required key '", key, "'");
  return *value;
}

std::int64_t JsonObject::integer(const std::string& key, std::int64_t min, std::int64_t max) {
  const nlohmann::json& value = require(key);
  const auto v = as_integer(value, min, max);
  if (!v) config_fail(key_path(key), ": expected ", describe_integer(min, max), ", got ", render_json(value),
                      integer_hint(value));
  resolved_[key] = *v;
  return *v;
}

std::int64_t JsonObject::integer(const std::string& key, std::int64_t min, std::int64_t max,
                                 std::int64_t fallback) {
  if (!has(key)) {
    known_.insert(key);
    resolved_[key] = fallback;
    return fallback;
  }
  return integer(key, min, max);
}

double JsonObject::number_in(const std::string& key, const Interval& interval, std::optional<double> fallback) {
  if (fallback && !has(key)) {
    known_.insert(key);
    resolved_[key] = *fallback;
    return *fallback;
  }
  const nlohmann::json& value = require(key);
  if (!value.is_number() || !std::isfinite(value.get<double>()) || !in_interval(value.get<double>(), interval))
    refuse(key, describe_interval(interval), value);
  resolved_[key] = value;
  return value.get<double>();
}

double JsonObject::number(const std::string& key, double min, double max) {
  return number_in(key, Interval{min, max});
}

double JsonObject::number(const std::string& key, double min, double max, double fallback) {
  return number_in(key, Interval{min, max}, fallback);
}

double JsonObject::positive_number(const std::string& key) { return number_in(key, Interval{0, INFINITY, true}); }

double JsonObject::positive_number(const std::string& key, double fallback) {
  return number_in(key, Interval{0, INFINITY, true}, fallback);
}

bool JsonObject::boolean(const std::string& key) {
  const nlohmann::json& value = require(key);
  if (!value.is_boolean()) refuse(key, "true or false", value);
  resolved_[key] = value;
  return value.get<bool>();
}

bool JsonObject::boolean(const std::string& key, bool fallback) {
  if (!has(key)) {
    known_.insert(key);
    resolved_[key] = fallback;
    return fallback;
  }
  return boolean(key);
}

std::string JsonObject::string(const std::string& key) {
  const nlohmann::json& value = require(key);
  if (!value.is_string()) refuse(key, "a string", value);
  resolved_[key] = value;
  return value.get<std::string>();
}

std::string JsonObject::string(const std::string& key, const std::string& fallback) {
  if (!has(key)) {
    known_.insert(key);
    resolved_[key] = fallback;
    return fallback;
  }
  return string(key);
}

std::string JsonObject::choice(const std::string& key, const std::vector<std::string>& allowed) {
  const nlohmann::json& value = require(key);
  const auto matches = [&](const std::string& name) { return value.is_string() && value.get<std::string>() == name; };
  if (std::none_of(allowed.begin(), allowed.end(), matches)) refuse(key, "one of " + quoted_list(allowed), value);
  resolved_[key] = value;
  return value.get<std::string>();
}

std::string JsonObject::choice(const std::string& key, const std::vector<std::string>& allowed,
                               const std::string& fallback) {
  if (!has(key)) {
    known_.insert(key);
    resolved_[key] = fallback;
    return fallback;
  }
  return choice(key, allowed);
}

std::vector<std::int64_t> JsonObject::integers(const std::string& key, std::int64_t min, std::int64_t max) {
  const nlohmann::json& value = require(key);
  if (!value.is_array()) {
    // "a positive integer" -> "positive integers", "an integer from 1 to 5" -> "integers from 1 to 5".
    std::string each = describe_integer(min, max);
    each = each.substr(each.find(' ') + 1);
    each.insert(each.find("integer") + 7, 1, 's');
    refuse(key, "an array of " + each, value);
  }
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto v = as_integer(value[i], min, max);
    if (!v) config_fail(key_path(key), "[", i, "]: expected ", describe_integer(min, max), ", got ",
                        render_json(value[i]), integer_hint(value[i]));
    out.push_back(*v);
  }
  resolved_[key] = value;
  return out;
}

std::array<std::int64_t, 2> JsonObject::pair(const std::string& key, std::int64_t min, std::int64_t max,
                                             std::optional<std::array<std::int64_t, 2>> fallback) {
  if (fallback && !has(key)) {
    known_.insert(key);
    const auto [h, w] = *fallback;
    resolved_[key] = h == w ? nlohmann::json(h) : nlohmann::json::array({h, w});
    return *fallback;
  }
  const nlohmann::json& value = require(key);
  const std::string expected = describe_integer(min, max) + " or a pair [h, w] of them";
  if (value.is_array()) {
    if (value.size() != 2) refuse(key, expected, value);
    const auto h = as_integer(value[0], min, max), w = as_integer(value[1], min, max);
    if (!h || !w) refuse(key, expected, value);
    resolved_[key] = value;
    return {*h, *w};
  }
  const auto v = as_integer(value, min, max);
  if (!v) config_fail(key_path(key), ": expected ", expected, ", got ", render_json(value), integer_hint(value));
  resolved_[key] = value;
  return {*v, *v};
}

JsonObject JsonObject::object(const std::string& key) {
  const nlohmann::json& value = require(key);
  if (!value.is_object()) refuse(key, "an object", value);
  resolved_[key] = value;
  return JsonObject(value, key_path(key));
}

JsonObject JsonObject::object(const std::string& key, const nlohmann::json& fallback) {
  if (!has(key)) {
    known_.insert(key);
    resolved_[key] = fallback;
    return JsonObject(fallback, key_path(key));
  }
  return object(key);
}

const nlohmann::json& JsonObject::raw(const std::string& key) {
  const nlohmann::json& value = require(key);
  resolved_[key] = value;
  return value;
}

const nlohmann::json* JsonObject::raw_optional(const std::string& key) {
  const nlohmann::json* value = find(key);
  if (value) resolved_[key] = *value;
  return value;
}

void JsonObject::resolve(const std::string& key, nlohmann::json value) {
  known_.insert(key);
  resolved_[key] = std::move(value);
}

void JsonObject::ignore(const std::string& key) { known_.insert(key); }

nlohmann::json JsonObject::finish() {
  for (const auto& [key, value] : value_.items()) {
    if (known_.count(key)) continue;
    std::string expected;
    for (const std::string& name : known_) expected += (expected.empty() ? "" : ", ") + name;
    if (expected.empty()) config_fail(label(), ": unknown key '", key, "'; this object takes no keys");
    config_fail(label(), ": unknown key '", key, "'; expected one of: ", expected);
  }
  return resolved_;
}

}  // namespace fpi::train
