// Loading a run config: the file, the --set overrides, the JSON Schema (valijson) and then fpi's own
// reader. The schema is the format's reference (editors use it too); its errors are rewritten into
// fpi's form, "<path>: expected <what the schema allows there>, got <value>", by looking the failing
// place up in the schema. The reader then fills in the defaults and checks what a schema cannot say
// (a loss target that is a field of the data, an eval metric that is computed, increasing milestones).
#define VALIJSON_USE_EXCEPTIONS 1

#include "fpi/train/config.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

// GCC 12 reports a -Wrestrict overlap inside valijson's JSON-pointer code that cannot happen (a
// known false positive of std::string::replace once inlined), which would bury real warnings. Clang
// reads GCC's pragmas too but has no -Wrestrict, and would warn about the unknown option.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validator.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "fpi/data/arff.hpp"
#include "fpi/data/flow.hpp"
#include "fpi/data/image.hpp"

namespace fpi::train {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t kMaxSchemaErrors = 10;

template <class... Parts>
[[noreturn]] void config_fail(const Parts&... parts) {
  throw ConfigError(detail::concat(parts...));
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : "\"") + names[i] + "\"";
  return out;
}

// ---- overrides --------------------------------------------------------------------------------------

// One step of a dotted path: a key, or an array index.
struct PathStep {
  std::string key;
  std::optional<std::size_t> index;
};

// path := key ('.' key | '[' digits ']')*, a key being any text without '.', '[' or ']'.
std::vector<PathStep> parse_override_path(const std::string& path, const std::string& where) {
  const auto malformed = [&](const std::string& why) {
    config_fail(where, ": malformed key path '", path, "' (", why, "); expected keys joined by '.' with [N] for an "
                "array element, e.g. model.layers[0].units");
  };
  std::vector<PathStep> steps;
  std::size_t i = 0;
  const auto read_key = [&] {
    const std::size_t end = std::min(path.find_first_of(".[]", i), path.size());
    if (end == i) malformed("empty key");
    steps.push_back({path.substr(i, end - i), std::nullopt});
    i = end;
  };
  read_key();
  while (i < path.size()) {
    if (path[i] == '.') {
      ++i;
      read_key();
    } else if (path[i] == '[') {
      const std::size_t close = path.find(']', i);
      const std::string digits = close == std::string::npos ? "" : path.substr(i + 1, close - i - 1);
      if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
        malformed("bad [index]");
      steps.push_back({"", static_cast<std::size_t>(std::stoul(digits))});
      i = close + 1;
    } else {
      malformed("unmatched ']'");
    }
  }
  return steps;
}

std::string step_text(const std::string& parent, const PathStep& step) {
  if (step.index) return parent + "[" + std::to_string(*step.index) + "]";
  return parent.empty() ? step.key : parent + "." + step.key;
}

void apply_override(json& config, const std::string& assignment) {
  const std::string where = "--set " + assignment;
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos) config_fail(where, ": expected key.path=value");
  const std::vector<PathStep> steps = parse_override_path(assignment.substr(0, equals), where);
  const std::string text = assignment.substr(equals + 1);
  // A value that is not JSON is a string, so "--set data.dir=/tmp/x" needs no quotes.
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;

  json* node = &config;
  std::string at;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    const PathStep& step = steps[s];
    const bool last = s + 1 == steps.size();
    const std::string next = step_text(at, step);
    if (step.index) {
      if (!node->is_array()) config_fail(where, ": '", at, "' is not an array, got ", render_json(*node));
      if (*step.index >= node->size())
        config_fail(where, ": index ", *step.index, " is out of range: '", at, "' has ", node->size(), " elements");
      node = &(*node)[*step.index];
    } else {
      if (!node->is_object())
        config_fail(where, ": '", at.empty() ? "config" : at, "' is not an object, got ", render_json(*node));
      if (!last && !node->contains(step.key)) config_fail(where, ": '", next, "' does not exist in the config");
      node = &(*node)[step.key];
    }
    at = next;
  }
  *node = std::move(value);
}

// ---- the schema -------------------------------------------------------------------------------------

// The schema parsed once: as JSON (to describe what it allows where) and compiled for valijson.
struct Schema {
  Schema() : document(json::parse(config_schema())) {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(document);
    parser.populateSchema(adapter, compiled);
  }
  json document;
  valijson::Schema compiled;
};

const Schema& schema() {
  static const Schema instance;
  return instance;
}

const json& deref(const json& node) {
  const json* current = &node;
  while (current->is_object() && current->contains("$ref")) {
    const std::string ref = (*current)["$ref"].get<std::string>();
    FPI_CHECK(ref.starts_with("#/"), "config schema: unsupported $ref '", ref, "'");
    current = &schema().document.at(json::json_pointer(ref.substr(1)));
  }
  return *current;
}

// Whether an "if" of the schema holds for `instance`. The schema's conditions only test the "type" key
// against a const or an enum (and may require it), so that is all this evaluates.
bool condition_holds(const json& condition, const json& instance) {
  if (!instance.is_object()) return false;
  const auto type = instance.find("type");
  if (condition.contains("required") && type == instance.end()) return false;
  if (type == instance.end()) return true;
  const json& test = condition.at("properties").at("type");
  if (test.contains("const")) return *type == test["const"];
  const json& allowed = test.at("enum");
  return std::find(allowed.begin(), allowed.end(), *type) != allowed.end();
}

// The schema that applies to `instance`: refs followed and, for an object whose schema branches on its
// "type", the branch that type selects (the one listing its keys).
const json& effective(const json& node, const json& instance) {
  const json& s = deref(node);
  if (!s.is_object() || !s.contains("allOf")) return s;
  for (const json& part : s["allOf"]) {
    if (!part.contains("if")) continue;
    if (condition_holds(part["if"], instance)) {
      if (part.contains("then")) return effective(part["then"], instance);
    } else if (part.contains("else")) {
      return effective(part["else"], instance);
    }
  }
  return s;
}

std::string describe_schema(const json& node);

std::string describe_alternatives(const json& s) {
  std::string out;
  for (const json& alternative : s["anyOf"]) {
    json merged = s;
    merged.erase("anyOf");
    merged.erase("default");
    for (const auto& [key, value] : alternative.items()) merged[key] = value;
    out += (out.empty() ? "" : " or ") + describe_schema(merged);
  }
  return out;
}

// "expected ..." for a value schema, in the words of JsonObject's messages.
std::string describe_schema(const json& node) {
  const json& s = deref(node);
  if (s.contains("anyOf")) return describe_alternatives(s);
  if (s.contains("const")) return s["const"].dump();
  if (s.contains("enum")) {
    std::vector<std::string> names;
    for (const json& v : s["enum"]) names.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    return "one of " + quoted_list(names);
  }
  if (s.contains("allOf")) return "an object";
  std::vector<std::string> types;
  if (s.contains("type")) {
    if (s["type"].is_array()) {
      for (const json& t : s["type"]) types.push_back(t.get<std::string>());
    } else {
      types.push_back(s["type"].get<std::string>());
    }
  }
  std::string out;
  for (const std::string& type : types) {
    std::string phrase;
    if (type == "integer") {
      phrase = describe_integer(s.value("minimum", std::numeric_limits<std::int64_t>::min()),
                                s.value("maximum", kMaxInt));
    } else if (type == "number") {
      Interval in;
      if (s.contains("minimum")) in.min = s["minimum"].get<double>();
      if (s.contains("exclusiveMinimum")) in = {s["exclusiveMinimum"].get<double>(), in.max, true, false};
      if (s.contains("maximum")) in.max = s["maximum"].get<double>();
      if (s.contains("exclusiveMaximum")) {
        in.max = s["exclusiveMaximum"].get<double>();
        in.max_open = true;
      }
      phrase = describe_interval(in);
    } else if (type == "string") {
      phrase = s.contains("pattern") ? "a string matching " + s["pattern"].get<std::string>() : "a string";
      if (s.value("minLength", 0) > 0) phrase = "a non-empty string";
    } else if (type == "boolean") {
      phrase = "true or false";
    } else if (type == "null") {
      phrase = "null";
    } else if (type == "object") {
      phrase = "an object";
    } else if (type == "array") {
      const std::int64_t min_items = s.value("minItems", 0), max_items = s.value("maxItems", -1);
      phrase = "an array of ";
      if (min_items == max_items) phrase += std::to_string(min_items) + " ";
      else if (min_items > 0 && max_items > 0)
        phrase += std::to_string(min_items) + " to " + std::to_string(max_items) + " ";
      else if (min_items > 0) phrase += "at least " + std::to_string(min_items) + " ";
      phrase += s.value("uniqueItems", false) ? "distinct " : "";
      phrase += max_items == 1 || (min_items == 1 && max_items != min_items) ? "item" : "items";
      if (s.contains("items")) phrase += ", each " + describe_schema(s["items"]);
    } else {
      phrase = type;
    }
    out += (out.empty() ? "" : " or ") + phrase;
  }
  return out.empty() ? "a valid value" : out;
}

// valijson's context (["<root>", "[model]", "[layers]", "[0]"]) as a dotted path, with the instance
// and the schema found there.
struct Place {
  std::string path;
  const json* instance = nullptr;
  const json* schema = nullptr;  // null where the schema says nothing about the key
};

Place locate(const std::vector<std::string>& context, const json& config) {
  Place place{"", &config, &effective(schema().document, config)};
  for (std::size_t i = 1; i < context.size(); ++i) {
    const std::string step = context[i].size() >= 2 ? context[i].substr(1, context[i].size() - 2) : context[i];
    const json& parent = *place.instance;
    const json* parent_schema = place.schema;
    if (parent.is_array()) {
      const std::size_t index = std::stoul(step);
      place.path += "[" + step + "]";
      place.instance = &parent.at(index);
      place.schema = parent_schema && parent_schema->contains("items") ? &(*parent_schema)["items"] : nullptr;
    } else {
      place.path += place.path.empty() ? step : "." + step;
      place.instance = &parent.at(step);
      const json* properties = parent_schema && parent_schema->contains("properties")
                                   ? &(*parent_schema)["properties"] : nullptr;
      place.schema = properties && properties->contains(step) ? &(*properties)[step] : nullptr;
    }
    if (place.schema) place.schema = &effective(*place.schema, *place.instance);
  }
  return place;
}

std::string object_label(const Place& place) { return place.path.empty() ? "config" : place.path; }

// Messages valijson adds above an error in a child, which only repeat it.
bool is_summary(const std::string& description) {
  for (const char* prefix : {"Failed to validate against schema associated with property name",
                             "Failed to validate item #", "Failed to validate against child schema",
                             "Failed to validate against a conditional schema",
                             "Failed to validate against additional properties schema",
                             "Failed to validate against schema associated with pattern"})
    if (description.starts_with(prefix)) return true;
  return false;
}

std::string translate(const valijson::ValidationResults::Error& error, const json& config) {
  const Place place = locate(error.context, config);
  const std::string& what = error.description;
  const std::string missing = "Missing required property '";
  // valijson's texts end in "'." after the key.
  if (what.starts_with(missing))
    return object_label(place) + ": missing required key '" +
           what.substr(missing.size(), what.size() - missing.size() - 2) + "'";
  const std::string unknown = "or 'additionalProperties' constraints: '";
  const std::size_t at = what.find(unknown);
  if (at != std::string::npos) {
    const std::string key = what.substr(at + unknown.size(), what.size() - at - unknown.size() - 2);
    std::string message = object_label(place) + ": unknown key '" + key + "'";
    if (place.schema && place.schema->contains("properties")) {
      std::string keys;
      for (const auto& [name, value] : (*place.schema)["properties"].items()) keys += (keys.empty() ? "" : ", ") + name;
      message += "; expected one of: " + keys;
    }
    return message;
  }
  // The schema's only "not" keeps a layer from having both input and inputs.
  if (what.starts_with("Target should not validate against schema specified in 'not'"))
    return object_label(place) + ": give 'input' or 'inputs', not both";
  if (place.schema == nullptr) return object_label(place) + ": " + what;
  const bool integer = deref(*place.schema).value("type", json()) == "integer";
  return object_label(place) + ": expected " + describe_schema(*place.schema) + ", got " +
         render_json(*place.instance) + (integer ? integer_hint(*place.instance) : "");
}

bool context_within(const std::vector<std::string>& inner, const std::vector<std::string>& outer) {
  return inner.size() >= outer.size() && std::equal(outer.begin(), outer.end(), inner.begin());
}

// Every schema error as one line "<path>: <what>", in the order valijson finds them, without repeats.
std::vector<std::string> schema_errors(const json& config) {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(config);
  if (validator.validate(schema().compiled, adapter, &results)) return {};
  std::vector<valijson::ValidationResults::Error> kept;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    if (is_summary(error.description)) continue;
    // An anyOf failure comes after its alternatives' errors; "expected A or B" says all of them at once.
    if (error.description.starts_with("Failed to validate against any schemas allowed by anyOf")) {
      std::erase_if(kept, [&](const auto& k) { return context_within(k.context, error.context); });
    }
    kept.push_back(error);
  }
  std::vector<std::string> lines;
  for (const auto& e : kept) {
    std::string line = translate(e, config);
    if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(std::move(line));
  }
  return lines;
}

// ---- reading the sections ---------------------------------------------------------------------------

std::uint64_t seed_value(JsonObject& object, const std::string& key) {
  return static_cast<std::uint64_t>(object.integer(key, 0, kMaxInt, 0));
}

void read_data(JsonObject& root, RunConfig& config, DType dtype) {
  JsonObject data = root.object("data");
  config.data_type = data.choice("type", {"bibtex", "denoising", "flow", "toy"});
  if (config.data_type == "bibtex") {
    data::BibtexOptions o;
    o.dir = data.string("dir", o.dir);
    o.validation_fraction = data.number("validation_fraction", 0, 0.5, o.validation_fraction);
    o.split_seed = seed_value(data, "split_seed");
    o.shuffle_seed = seed_value(data, "shuffle_seed");
    o.dtype = dtype;
    config.data = o;
  } else if (config.data_type == "denoising") {
    data::DenoisingOptions o;
    o.dir = data.string("dir", o.dir);
    o.sigma = data.number_in("sigma", Interval{0, 255, true, false}, o.sigma);
    o.patch_size = data.integer("patch_size", 1, data::kMaxImageSide, o.patch_size);
    o.patches_per_epoch = data.integer("patches_per_epoch", 1, data::kMaxEpochSamples, o.patches_per_epoch);
    o.flips = data.boolean("flips", o.flips);
    o.validation_images = data.integer("validation_images", 0, kMaxInt, o.validation_images);
    o.max_train_images = data.integer("max_train_images", 0, kMaxInt, o.max_train_images);
    o.max_test_images = data.integer("max_test_images", 0, kMaxInt, o.max_test_images);
    o.seed = seed_value(data, "seed");
    o.test_noise_seed = seed_value(data, "test_noise_seed");
    o.verify_checksums = data.boolean("verify_checksums", o.verify_checksums);
    o.dtype = dtype;
    config.data = o;
  } else if (config.data_type == "flow") {
    data::FlowOptions o;
    o.dir = data.string("dir", o.dir);
    o.height = data.integer("height", 8, data::kMaxImageSide, o.height);
    o.width = data.integer("width", 8, data::kMaxImageSide, o.width);
    o.train_size = data.integer("train_size", 1, data::kMaxEpochSamples, o.train_size);
    o.validation_size = data.integer("validation_size", 1, data::kMaxEpochSamples, o.validation_size);
    o.test_size = data.integer("test_size", 1, data::kMaxEpochSamples, o.test_size);
    o.validation_images = data.integer("validation_images", 1, kMaxInt, o.validation_images);
    o.max_train_images = data.integer("max_train_images", 0, kMaxInt, o.max_train_images);
    o.max_test_images = data.integer("max_test_images", 0, kMaxInt, o.max_test_images);
    o.objects = data.integer("objects", 0, 16, o.objects);
    // A shift beyond the largest frame side moves every pixel out of the frame; and the generator's
    // uniform draw in [-t, t] computes 2t, which overflows to inf (then NaN coordinates) near DBL_MAX.
    o.max_translation = data.number("max_translation", 0, data::kMaxImageSide, o.max_translation);
    o.background_translation =
        data.number("background_translation", 0, data::kMaxImageSide, o.background_translation);
    o.max_rotation = data.number("max_rotation", 0, 90, o.max_rotation);
    o.max_scale = data.number_in("max_scale", Interval{0, 0.5, false, true}, o.max_scale);
    o.seed = seed_value(data, "seed");
    o.verify_checksums = data.boolean("verify_checksums", o.verify_checksums);
    o.dtype = dtype;
    config.data = o;
  } else {
    data::ToyOptions o;
    o.dim = data.integer("dim", 1, kMaxInt, o.dim);
    o.train_size = data.integer("train_size", 1, kMaxInt, o.train_size);
    o.validation_size = data.integer("validation_size", 1, kMaxInt, o.validation_size);
    o.test_size = data.integer("test_size", 1, kMaxInt, o.test_size);
    o.input_scale = data.positive_number("input_scale", o.input_scale);
    o.seed = seed_value(data, "seed");
    o.dtype = dtype;
    config.data = o;
  }
  root.resolve("data", data.finish());
}

// The metrics each dataset supports: f1 is multi-label, psnr compares images.
bool metric_fits(const std::string& metric, const std::string& data_type) {
  if (metric == "f1") return data_type == "bibtex";
  if (metric == "psnr") return data_type == "denoising";
  if (metric == "epe") return data_type == "flow";
  return true;
}

void read_metrics(JsonObject& root, RunConfig& config) {
  const json* given = root.raw_optional("metrics");
  config.metrics = {"loss"};
  if (given) {
    const std::vector<std::string> allowed = {"loss", "mse", "psnr", "f1", "epe"};
    if (!given->is_array()) config_fail("metrics: expected an array of distinct items, each one of ",
                                        quoted_list(allowed), ", got ", render_json(*given));
    for (std::size_t i = 0; i < given->size(); ++i) {
      const json& m = (*given)[i];
      const std::string at = "metrics[" + std::to_string(i) + "]";
      if (!m.is_string() || std::find(allowed.begin(), allowed.end(), m.get<std::string>()) == allowed.end())
        config_fail(at, ": expected one of ", quoted_list(allowed), ", got ", render_json(m));
      const std::string name = m.get<std::string>();
      if (!metric_fits(name, config.data_type))
        config_fail(at, ": \"", name, "\" does not apply to data.type \"", config.data_type, "\" (",
                    name == "f1" ? "f1 needs bibtex" : name == "psnr" ? "psnr needs denoising" : "epe needs flow",
                    ")");
      if (name != "loss") {
        if (std::find(config.metrics.begin(), config.metrics.end(), name) != config.metrics.end())
          config_fail(at, ": \"", name, "\" is listed twice");
        config.metrics.push_back(name);
      }
    }
  }
  root.resolve("metrics", config.metrics);
}

void read_loss(JsonObject& root, RunConfig& config) {
  JsonObject loss = root.object("loss");
  config.loss.type = loss.choice("type", {"bce", "bce_with_logits", "mse"});
  config.loss.target = loss.string("target");
  std::vector<std::string> names;
  for (const data::FieldSpec& f : data_fields(config)) names.push_back(f.name);
  if (std::find(names.begin(), names.end(), config.loss.target) == names.end())
    config_fail("loss.target: expected a field of data.type \"", config.data_type, "\" (one of ", quoted_list(names),
                "), got ", render_json(config.loss.target));
  root.resolve("loss", loss.finish());
}

void read_optimizer(JsonObject& root, RunConfig& config) {
  JsonObject in = root.object("optimizer");
  OptimizerConfig& o = config.optimizer;
  o.type = in.choice("type", {"adam", "adamw", "sgd"});
  if (o.type == "sgd") {
    o.lr = in.positive_number("lr", 1e-2);
    o.momentum = in.number("momentum", 0, INFINITY, 0);
    o.dampening = in.number("dampening", 0, INFINITY, 0);
    o.weight_decay = in.number("weight_decay", 0, INFINITY, 0);
    o.nesterov = in.boolean("nesterov", false);
  } else {
    o.lr = in.positive_number("lr", 1e-3);
    const json* betas = in.raw_optional("betas");
    if (betas) {
      const auto beta_ok = [](const json& b) { return b.is_number() && b.get<double>() >= 0 && b.get<double>() < 1; };
      if (!betas->is_array() || betas->size() != 2 || !beta_ok((*betas)[0]) || !beta_ok((*betas)[1]))
        config_fail(in.key_path("betas"), ": expected an array of 2 items, each a number in [0, 1), got ",
                    render_json(*betas));
      o.beta1 = (*betas)[0].get<double>();
      o.beta2 = (*betas)[1].get<double>();
    }
    in.resolve("betas", json::array({o.beta1, o.beta2}));
    o.eps = in.positive_number("eps", 1e-8);
    o.weight_decay = in.number("weight_decay", 0, INFINITY, o.type == "adamw" ? 1e-2 : 0.0);
    o.amsgrad = in.boolean("amsgrad", false);
  }
  root.resolve("optimizer", in.finish());
}

void read_schedule(JsonObject& root, RunConfig& config) {
  JsonObject in = root.object("schedule", json{{"type", "constant"}});
  ScheduleConfig& s = config.schedule;
  s.type = in.choice("type", {"constant", "multistep", "cosine"}, "constant");
  if (s.type == "multistep") {
    s.milestones = in.integers("milestones", 1, kMaxInt);
    if (s.milestones.empty() || !std::is_sorted(s.milestones.begin(), s.milestones.end()) ||
        std::adjacent_find(s.milestones.begin(), s.milestones.end()) != s.milestones.end())
      config_fail(in.key_path("milestones"), ": expected a non-empty array of increasing epochs, got ",
                  render_json(in.raw("milestones")));
    s.gamma = in.positive_number("gamma", 0.1);
  } else if (s.type == "cosine") {
    s.t_max = in.integer("t_max", 1, kMaxInt);
    s.eta_min = in.number("eta_min", 0, INFINITY, 0);
  }
  root.resolve("schedule", in.finish());
}

void read_train(JsonObject& root, RunConfig& config) {
  JsonObject in = root.object("train");
  config.train.epochs = in.integer("epochs", 1, kMaxInt);
  config.train.batch_size = in.integer("batch_size", 1, data::kMaxBatchSize);
  const json* clip = in.raw_optional("clip_grad_norm");
  if (clip && !clip->is_null()) {
    config.train.clip_grad_norm = in.positive_number("clip_grad_norm");
  } else {
    in.resolve("clip_grad_norm", nullptr);
  }
  root.resolve("train", in.finish());
}

void read_eval(JsonObject& root, RunConfig& config) {
  JsonObject in = root.object("eval", json::object());
  EvalConfig& e = config.eval;
  e.split = in.choice("split", {"validation", "test"}, "validation");
  e.every = in.integer("every", 1, kMaxInt, 1);
  e.metric = in.choice("metric", {"loss", "mse", "psnr", "f1", "epe"}, "loss");
  if (std::find(config.metrics.begin(), config.metrics.end(), e.metric) == config.metrics.end())
    config_fail(in.key_path("metric"), ": expected one of the configured metrics (", quoted_list(config.metrics),
                "), got ", render_json(e.metric), "; add it to \"metrics\"");
  e.mode = in.choice("mode", {"min", "max"}, e.metric == "f1" || e.metric == "psnr" ? "max" : "min");
  e.batch_size = in.integer("batch_size", 1, data::kMaxBatchSize, config.train.batch_size);
  const json* threshold = in.raw_optional("threshold");
  if (threshold && threshold->is_string()) {
    if (*threshold != "tune")
      config_fail(in.key_path("threshold"), ": expected a number from 0 to 1 or \"tune\", got ",
                  render_json(*threshold));
    e.tune_threshold = true;
    if (std::find(config.metrics.begin(), config.metrics.end(), "f1") == config.metrics.end())
      config_fail(in.key_path("threshold"),
                  ": \"tune\" chooses the threshold of the f1 metric; add \"f1\" to \"metrics\"");
    if (e.split != "validation")
      config_fail(in.key_path("threshold"),
                  ": \"tune\" chooses the threshold on the validation split, but eval.split is ", render_json(e.split));
  } else {
    e.threshold = in.number("threshold", 0, 1, 0.5);
  }
  root.resolve("eval", in.finish());
}

void check_name(const std::string& name) {
  const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
  if (!ok) config_fail("name: expected a string matching ^[A-Za-z0-9_.-]+$, got ", render_json(name));
}

void check_device(const std::string& device) {
  bool ok = device == "cpu" || device == "cuda" || device == "auto";
  if (device.starts_with("cuda:") && device.size() > 5)
    ok = device.find_first_not_of("0123456789", 5) == std::string::npos;
  if (!ok) config_fail("device: expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\", got ", render_json(device));
}

RunConfig parse_unchecked(const json& config) {
  RunConfig out;
  JsonObject root(config, "");
  root.ignore("$schema");
  out.name = root.string("name");
  check_name(out.name);
  out.description = root.string("description", "");
  out.seed = seed_value(root, "seed");
  out.device = root.string("device", "cpu");
  check_device(out.device);
  out.dtype = root.choice("dtype", {"float32", "float64"}, "float32") == "float64" ? kFloat64 : kFloat32;
  read_data(root, out, out.dtype);
  const json& model = root.raw("model");
  if (!model.is_object()) config_fail("model: expected an object, got ", render_json(model));
  out.model = model;
  read_loss(root, out);
  read_metrics(root, out);
  read_optimizer(root, out);
  read_schedule(root, out);
  read_train(root, out);
  read_eval(root, out);
  JsonObject checkpoint = root.object("checkpoint", json::object());
  out.checkpoint.every = checkpoint.integer("every", 1, kMaxInt, 1);
  root.resolve("checkpoint", checkpoint.finish());
  out.resolved = root.finish();
  return out;
}

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) config_fail(path, ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) config_fail(path, ": cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) config_fail(path, ": cannot read the config file");
  return text.str();
}

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1, column 2: "
// prefix, whose place we write ourselves.
std::string parse_error_text(const json::parse_error& e) {
  const std::string what = e.what();
  const std::size_t column = what.find("column ");
  const std::size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

}  // namespace

void RunConfig::set_resolved_model(json model_resolved) { resolved["model"] = std::move(model_resolved); }

void apply_overrides(json& config, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) apply_override(config, o);
}

RunConfig parse_config(const json& config, const std::string& source) {
  const std::vector<std::string> errors = schema_errors(config);
  if (!errors.empty()) {
    std::vector<std::string> lines;
    for (std::size_t i = 0; i < errors.size() && i < kMaxSchemaErrors; ++i) lines.push_back(source + ": " + errors[i]);
    if (errors.size() > kMaxSchemaErrors)
      lines.push_back(source + ": ... and " + std::to_string(errors.size() - kMaxSchemaErrors) + " more");
    throw ConfigError(lines);
  }
  try {
    return parse_unchecked(config);
  } catch (const ConfigError& e) {
    config_fail(source, ": ", e.what());
  }
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string text = read_text(path);
  json config;
  try {
    config = json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based offset of the character that broke the parse.
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    config_fail(path, ": line ", line, ", column ", column, ": ", parse_error_text(e));
  }
  try {
    apply_overrides(config, overrides);
  } catch (const ConfigError& e) {
    config_fail(path, ": ", e.what());
  }
  return parse_config(config, path);
}

data::Splits make_splits(const RunConfig& config) {
  return std::visit(
      [](const auto& options) -> data::Splits {
        using Options = std::decay_t<decltype(options)>;
        if constexpr (std::is_same_v<Options, data::BibtexOptions>) return data::bibtex_splits(options);
        else if constexpr (std::is_same_v<Options, data::DenoisingOptions>) return data::denoising_splits(options);
        else if constexpr (std::is_same_v<Options, data::FlowOptions>) return data::flow_splits(options);
        else return data::toy_splits(options);
      },
      config.data);
}

std::vector<data::FieldSpec> data_fields(const RunConfig& config) {
  if (config.data_type == "bibtex")
    return {{"features", {data::kBibtexFeatures}}, {"labels", {data::kBibtexLabels}}};
  if (config.data_type == "denoising") return {{"noisy", {1, -1, -1}}, {"clean", {1, -1, -1}}};
  if (config.data_type == "flow") {
    const auto& o = std::get<data::FlowOptions>(config.data);
    return {{"frames", {2, o.height, o.width}}, {"flow", {2, o.height, o.width}}, {"visible", {1, o.height, o.width}}};
  }
  const std::int64_t dim = std::get<data::ToyOptions>(config.data).dim;
  return {{"input", {dim}}, {"target", {dim}}};
}

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimizerConfig& config, std::vector<Tensor> params) {
  if (config.type == "sgd")
    return std::make_unique<optim::SGD>(
        std::move(params), optim::SgdOptions{config.lr, config.momentum, config.dampening, config.weight_decay,
                                             config.nesterov});
  if (config.type == "adamw")
    return std::make_unique<optim::AdamW>(
        std::move(params), optim::AdamWOptions{config.lr, config.beta1, config.beta2, config.eps,
                                               config.weight_decay, config.amsgrad});
  FPI_CHECK(config.type == "adam", "make_optimizer: unknown optimizer type '", config.type, "'");
  return std::make_unique<optim::Adam>(
      std::move(params),
      optim::AdamOptions{config.lr, config.beta1, config.beta2, config.eps, config.weight_decay, config.amsgrad});
}

std::unique_ptr<optim::LRScheduler> make_schedule(const ScheduleConfig& config, optim::Optimizer& optimizer) {
  if (config.type == "multistep")
    return std::make_unique<optim::MultiStepLR>(optimizer, config.milestones, config.gamma);
  if (config.type == "cosine")
    return std::make_unique<optim::CosineAnnealingLR>(optimizer, config.t_max, config.eta_min);
  FPI_CHECK(config.type == "constant", "make_schedule: unknown schedule type '", config.type, "'");
  return nullptr;
}

}  // namespace fpi::train
