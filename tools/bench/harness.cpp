// The benchmarks' shared harness: command-line parsing, summaries of timing samples, tables and the
// --json file (see harness.hpp).
#include "harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "fpi/tensor.hpp"

namespace fpi::bench {

namespace {

constexpr long long kMostCount = 1000000;

std::string count_error(const std::string& flag, std::string_view text, long long least, long long most) {
  return format("%s needs a whole number from %lld to %lld, got '%.*s'", flag.c_str(), least, most,
                static_cast<int>(text.size()), text.data());
}

// The value of `text` when it is a whole number in [least, most].
std::optional<long long> parse_count(std::string_view text, long long least, long long most) {
  const std::string copy(text);
  char* end = nullptr;
  const long long value = std::strtoll(copy.c_str(), &end, 10);
  if (copy.empty() || *end != '\0' || value < least || value > most) return std::nullopt;
  return value;
}

// JSON literals, written by hand: the file is flat enough not to need a JSON library.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += format("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double value) { return std::isfinite(value) ? format("%.12g", value) : "null"; }

// {"key": literal, ...} on one line, or across lines at `indent` when `multiline`.
std::string json_object(const std::vector<std::pair<std::string, std::string>>& fields, bool multiline,
                        int indent) {
  if (fields.empty()) return "{}";
  const std::string inner(static_cast<std::size_t>(indent + 2), ' ');
  std::string out = "{";
  for (std::size_t i = 0; i < fields.size(); ++i) {
    out += i == 0 ? "" : ",";
    out += multiline ? "\n" + inner : i == 0 ? "" : " ";
    out += json_string(fields[i].first) + ": " + fields[i].second;
  }
  return out + (multiline ? "\n" + std::string(static_cast<std::size_t>(indent), ' ') + "}" : "}");
}

}  // namespace

int calls_per_sample(double one_call_seconds, double sample_seconds) {
  return std::max(1, static_cast<int>(sample_seconds / std::max(one_call_seconds, 1e-9)));
}

double median(std::vector<double> values) {
  FPI_CHECK(!values.empty(), "bench::median: no samples");
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

Summary summarize(const std::vector<double>& samples) {
  return {median(samples), *std::min_element(samples.begin(), samples.end())};
}

std::string cuda_unavailable_reason() {
  try {
    zeros({1}, {.device = cuda(0)});
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string format(const char* pattern, ...) {
  std::va_list args;
  va_start(args, pattern);
  std::va_list measure;
  va_copy(measure, args);
  const int size = std::vsnprintf(nullptr, 0, pattern, measure);
  va_end(measure);
  std::string text(static_cast<std::size_t>(std::max(size, 0)), '\0');
  std::vsnprintf(text.data(), text.size() + 1, pattern, args);
  va_end(args);
  return text;
}

Cell text_cell(std::string text) { return {std::move(text), std::nullopt}; }

Cell number_cell(double value, const char* pattern) { return {format(pattern, value), value}; }

Table::Table(std::string name, std::vector<Column> columns, int indent)
    : name_(std::move(name)), columns_(std::move(columns)), indent_(indent) {
  for (Column& c : columns_) c.width = std::max(c.width, static_cast<int>(c.name.size()));
  std::vector<std::string> header;
  for (const Column& c : columns_) header.push_back(c.name);
  print(header);
}

void Table::add(const std::vector<Cell>& row) {
  FPI_CHECK(row.size() == columns_.size(), "bench::Table ", name_, ": a row of ", row.size(), " cells for ",
            columns_.size(), " columns");
  std::vector<std::string> texts;
  for (const Cell& cell : row) texts.push_back(cell.text);
  print(texts);
  rows_.push_back(row);
}

void Table::print(const std::vector<std::string>& texts) const {
  std::string line(static_cast<std::size_t>(indent_), ' ');
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const Column& c = columns_[i];
    const std::string pad(static_cast<std::size_t>(std::max(0, c.width - static_cast<int>(texts[i].size()))), ' ');
    if (i > 0) line += ' ';
    line += c.align == Align::Left ? texts[i] + pad : pad + texts[i];
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

Harness::Harness(std::string program, std::string description)
    : program_(std::move(program)), description_(std::move(description)) {}

void Harness::add_count_option(std::string flag, std::function<void(long long)> set, CountDefaults defaults,
                               std::string help, long long least) {
  help += defaults.full == defaults.quick ? format(" (default %lld", defaults.full)
                                          : format(" (default %lld, --quick %lld", defaults.full, defaults.quick);
  help += least > 1 ? format("; at least %lld)", least) : std::string(")");
  auto value = std::make_shared<long long>(defaults.full);
  options_.push_back({flag, "N", std::move(help),
                      [=](std::string_view text) {
                        const auto parsed = parse_count(text, least, kMostCount);
                        if (!parsed) return count_error(flag, text, least, kMostCount);
                        set(*value = *parsed);
                        return std::string();
                      },
                      [=](bool quick) { set(*value = quick ? defaults.quick : defaults.full); },
                      [=] { return std::to_string(*value); }});
}

void Harness::add_count(std::string flag, std::optional<int>& target, std::string help, long long least) {
  add_optional_count(std::move(flag), target, std::move(help), least, kMostCount);
}

void Harness::add_optional_count(std::string flag, std::optional<int>& target, std::string help, long long least,
                                 long long most) {
  options_.push_back({flag, "N", std::move(help),
                      [=, &target](std::string_view text) {
                        const auto parsed = parse_count(text, least, most);
                        if (!parsed) return count_error(flag, text, least, most);
                        target = static_cast<int>(*parsed);
                        return std::string();
                      },
                      [](bool) {}, [&target] { return target ? std::to_string(*target) : std::string("null"); }});
}

void Harness::add_flag(std::string flag, bool& target, std::string help) {
  options_.push_back({std::move(flag), "", std::move(help),
                      [&target](std::string_view) {
                        target = true;
                        return std::string();
                      },
                      [](bool) {}, [&target] { return std::string(target ? "true" : "false"); }});
}

void Harness::add_text(std::string flag, std::string& target, std::string placeholder, std::string help) {
  if (!target.empty()) help += " (default " + target + ")";
  options_.push_back({std::move(flag), std::move(placeholder), std::move(help),
                      [&target](std::string_view text) {
                        target = text;
                        return std::string();
                      },
                      [](bool) {}, [&target] { return json_string(target); }});
}

void Harness::add_choice(std::string flag, std::string& target, std::vector<std::string> choices, std::string help) {
  std::string listed;
  for (const auto& c : choices) {
    if (!listed.empty()) listed += ", ";
    listed += c;
  }
  help += " (" + listed + "; default " + target + ")";
  options_.push_back({flag, "WHICH", std::move(help),
                      [=, &target](std::string_view text) {
                        if (std::find(choices.begin(), choices.end(), text) == choices.end())
                          return format("%s needs one of %s, got '%.*s'", flag.c_str(), listed.c_str(),
                                        static_cast<int>(text.size()), text.data());
                        target = text;
                        return std::string();
                      },
                      [](bool) {}, [&target] { return json_string(target); }});
}

void Harness::usage(std::FILE* out) const {
  std::fprintf(out, "usage: %s [options]\n%s\n\noptions:\n", program_.c_str(), description_.c_str());
  const auto line = [out](const std::string& left, const std::string& help) {
    std::fprintf(out, "  %-16s %s\n", left.c_str(), help.c_str());
  };
  line("--quick", "the smoke profile: the --quick defaults");
  for (const Option& o : options_) line(o.placeholder.empty() ? o.flag : o.flag + " " + o.placeholder, o.help);
  line("--help", "this text");
}

void Harness::reject(const std::string& why) const {
  std::fprintf(stderr, "%s: %s\n", program_.c_str(), why.c_str());
  usage(stderr);
  std::exit(2);
}

void Harness::parse(int argc, char** argv) {
  // The shared options are added here so that --help lists them after the benchmark's own.
  add_optional_count("--threads", threads_, "threads of fpi's CPU pool (default FPI_NUM_THREADS, else every core)", 1,
                     1024);
  add_text("--json", json_path_, "FILE", "also write the settings and results to FILE as JSON");
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    arguments_.push_back(arg);
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (arg == "--quick") {
      quick_ = true;
      continue;
    }
    const auto option = std::find_if(options_.begin(), options_.end(), [&](const Option& o) { return o.flag == arg; });
    if (option == options_.end()) reject("unknown option '" + arg + "'");
    std::string value;
    if (!option->placeholder.empty()) {
      if (i + 1 >= argc) reject(arg + " needs a value");
      value = argv[++i];
      arguments_.push_back(value);
    }
    const std::string wrong = option->set(value);
    if (!wrong.empty()) reject(wrong);
    option->given = true;
  }
  for (Option& o : options_)
    if (!o.given) o.set_default(quick_);
  if (threads_) set_num_threads(*threads_);
}

std::string Harness::threads_description() const {
  const char* fpi_env = std::getenv("FPI_NUM_THREADS");
  const std::string source = threads_ ? std::string("--threads")
                             : fpi_env ? std::string("FPI_NUM_THREADS=") + fpi_env
                                       : std::string("FPI_NUM_THREADS unset: every core");
  return format("fpi %d (%s), OpenBLAS single-threaded within them", num_threads(), source.c_str());
}

Table& Harness::table(std::string name, std::vector<Column> columns, int indent) {
  return tables_.emplace_back(std::move(name), std::move(columns), indent);
}

void Harness::value(std::string name, double value) { values_.emplace_back(std::move(name), value); }

int Harness::finish(int status) const {
  if (json_path_.empty()) return status;
  std::vector<std::pair<std::string, std::string>> options{{"--quick", quick_ ? "true" : "false"}};
  for (const Option& o : options_) options.emplace_back(o.flag, o.json());
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& [name, v] : values_) values.emplace_back(name, json_number(v));
  std::vector<std::pair<std::string, std::string>> tables;
  for (const Table& t : tables_) {
    std::string rows = "[";
    for (std::size_t r = 0; r < t.rows().size(); ++r) {
      std::vector<std::pair<std::string, std::string>> fields;
      for (std::size_t i = 0; i < t.columns().size(); ++i) {
        const Cell& cell = t.rows()[r][i];
        fields.emplace_back(t.columns()[i].name, cell.number ? json_number(*cell.number)
                                                 : cell.text == "-" ? "null"
                                                                    : json_string(cell.text));
      }
      rows += (r == 0 ? "\n      " : ",\n      ") + json_object(fields, false, 0);
    }
    tables.emplace_back(t.name(), rows + (t.rows().empty() ? "]" : "\n    ]"));
  }
  std::string arguments = "[";
  for (std::size_t i = 0; i < arguments_.size(); ++i) {
    if (i > 0) arguments += ", ";
    arguments += json_string(arguments_[i]);
  }
  const std::string document = json_object({{"program", json_string(program_)},
                                            {"arguments", arguments + "]"},
                                            {"threads", std::to_string(num_threads())},
                                            {"status", std::to_string(status)},
                                            {"options", json_object(options, true, 2)},
                                            {"values", json_object(values, true, 2)},
                                            {"tables", json_object(tables, true, 2)}},
                                           true, 0);
  std::ofstream file(json_path_);
  file << document << "\n";
  if (!file) {
    std::fprintf(stderr, "%s: cannot write the JSON results to %s\n", program_.c_str(), json_path_.c_str());
    return status != 0 ? status : 1;
  }
  return status;
}

}  // namespace fpi::bench
