// Reading a JSON config object by object. A JsonObject wraps one object with its dotted path
// ("model.layers[2]"); every getter checks the value's type and range, fills in the default when the key
// is absent and records the value it used, so finish() can both refuse the keys nobody asked for and hand
// back the resolved object: every key the reader knows, defaults included, which alone reproduces a run.
//
// Resolved objects are plain nlohmann::json, whose objects keep their keys sorted: the order is stable
// (the same config always resolves to the same text) without tracking the order of the calls.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fpi/core.hpp"

namespace fpi::train {

// Problems in a config or on the command line: the CLI exits 2 for these (1 for runtime failures).
// Keys, values and overrides a user wrote end up in the message, so its control characters are escaped
// (\x1b): a message cannot drive a terminal, and one problem is one line.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message);
  // Several problems, one per line.
  explicit ConfigError(const std::vector<std::string>& problems);
};

// `text` with every control character (newlines too) written as \xNN.
std::string escape_control_characters(std::string_view text);

// An interval of numbers whose ends may each be open: {0, 1, false, true} is [0, 1).
struct Interval {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false;
  bool max_open = false;
};

// Every error is a ConfigError "<path>.<key>: expected ..., got <the JSON value>"; errors about the
// object itself name its path, or "config" for the top level.
class JsonObject {
 public:
  JsonObject(const nlohmann::json& value, std::string path);

  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const;  // "model.layers[2].units"
  bool has(const std::string& key) const;

  // JSON integers only: 1.5 and 1e3 are refused with a message that says why.
  std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max);
  std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max, std::int64_t fallback);
  // Finite numbers with min <= v <= max; JSON integers are accepted.
  double number(const std::string& key, double min, double max);
  double number(const std::string& key, double min, double max, double fallback);
  // A finite number in `interval`, for ranges with an open end.
  double number_in(const std::string& key, const Interval& interval, std::optional<double> fallback = std::nullopt);
  double positive_number(const std::string& key);
  double positive_number(const std::string& key, double fallback);
  bool boolean(const std::string& key);
  bool boolean(const std::string& key, bool fallback);
  std::string string(const std::string& key);
  std::string string(const std::string& key, const std::string& fallback);
  std::string choice(const std::string& key, const std::vector<std::string>& allowed);
  std::string choice(const std::string& key, const std::vector<std::string>& allowed, const std::string& fallback);
  // A JSON array (possibly empty) of integers, each in [min, max].
  std::vector<std::int64_t> integers(const std::string& key, std::int64_t min, std::int64_t max);
  // An int or a [h, w] pair, each in [min, max]; `fallback` used when absent. A present value resolves as
  // written; the fallback resolves as one int when its two values agree (the format's defaults are
  // ints), else as a pair.
  std::array<std::int64_t, 2> pair(const std::string& key, std::int64_t min, std::int64_t max,
                                   std::optional<std::array<std::int64_t, 2>> fallback = std::nullopt);
  // A sub-object. Its resolved form is what the caller passes to resolve() (typically the sub-object's
  // finish()); until then the key resolves to the object as given.
  JsonObject object(const std::string& key);
  // The same, reading `fallback` (e.g. an empty object) when the key is absent.
  JsonObject object(const std::string& key, const nlohmann::json& fallback);
  // Any JSON value, marked read. It resolves as given unless resolve() replaces it.
  const nlohmann::json& raw(const std::string& key);           // required
  const nlohmann::json* raw_optional(const std::string& key);  // null when absent
  // The resolved value of a key (read raw or as an object).
  void resolve(const std::string& key, nlohmann::json value);
  // Accepts the key and leaves it out of the resolved object ("$schema").
  void ignore(const std::string& key);

  // Refuses the keys no getter asked for ("model.layers[2]: unknown key 'unitz'; expected one of: bias,
  // units") and returns the resolved object.
  nlohmann::json finish();

 private:
  const nlohmann::json* find(const std::string& key);  // marks the key known; null when absent
  const nlohmann::json& require(const std::string& key);
  std::string label() const;
  [[noreturn]] void refuse(const std::string& key, const std::string& expected, const nlohmann::json& got) const;

  nlohmann::json value_;
  std::string path_;
  std::set<std::string> known_;  // every key a getter asked for, present or not
  nlohmann::json resolved_ = nlohmann::json::object();
};

// The phrases of "expected ..." messages, shared with the schema's errors so both read alike: "a positive
// integer", "an integer from 0 to 10"; "a positive number", "a number in [0, 1)".
std::string describe_integer(std::int64_t min, std::int64_t max);
std::string describe_interval(const Interval& interval);
// " (integers are written without a decimal point or exponent)" for a JSON float, else "": JSON reads 1e3
// as the float 1000.0, which looks like a whole number, so the message says what is wrong with it.
std::string integer_hint(const nlohmann::json& value);
// The value as messages quote it: compact JSON, cut to about 60 characters.
std::string render_json(const nlohmann::json& value);
// A double written the shortest way that reads back exactly ("0.001", "1e-08").
std::string format_number(double value);

}  // namespace fpi::train
