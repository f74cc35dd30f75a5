// The part every benchmark in tools/bench/ shares: the command line (the options all of them take and
// the ones each declares, with one error style), warm-up and timing with device synchronisation, and
// output as aligned tables, which --json FILE also writes, with the settings, for the benchmark runner.
//
// Options every benchmark takes: --quick (the smoke profile ctest runs), --threads N (fpi's CPU pool),
// --json FILE and --help. A declared count has a default for the full run and one for --quick; a value
// given on the command line wins over both, wherever --quick stands.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fpi/device.hpp"

namespace fpi::bench {

// ---- timing ----------------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;

inline double seconds_between(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}
inline double seconds_since(Clock::time_point start) { return seconds_between(start, Clock::now()); }

// Seconds per call over `calls` back-to-back calls. The device is synchronised before the clock starts
// and before it is read, so a GPU's queued work is counted in full and nothing earlier leaks in.
template <class F>
double seconds_per_call(F&& call, int calls, Device device = kCPU) {
  synchronize(device);
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) call();
  synchronize(device);
  return seconds_since(start) / calls;
}

// How many calls make a sample last about `sample_seconds`, judged from one call's time; at least one.
int calls_per_sample(double one_call_seconds, double sample_seconds);

double median(std::vector<double> values);

struct Summary {
  double median = 0.0;
  double min = 0.0;
};
Summary summarize(const std::vector<double>& samples);

struct Sampling {
  int warmup = 1;               // untimed calls first: allocator blocks, BLAS threads, cuDNN algorithms
  int repeat = 5;               // timed samples
  double sample_seconds = 0.0;  // above 0, a sample repeats the call until it lasts about this long
};

// Seconds per call: median and minimum over `repeat` samples. Short calls are batched into samples of
// about `sample_seconds` (the batch size comes from one more timed call), so a GPU's launch latency and
// the clock's resolution do not dominate.
template <class F>
Summary time_calls(F&& call, const Sampling& sampling, Device device = kCPU) {
  for (int i = 0; i < sampling.warmup; ++i) call();
  int calls = 1;
  if (sampling.sample_seconds > 0.0)
    calls = calls_per_sample(seconds_per_call(call, 1, device), sampling.sample_seconds);
  std::vector<double> samples;
  for (int r = 0; r < sampling.repeat; ++r) samples.push_back(seconds_per_call(call, calls, device));
  return summarize(samples);
}

// "" when cuda:0 can hold a tensor, else why not (a CPU-only build, no driver, no GPU): the benchmarks
// that compare devices time the CPU alone then, so they also run where no GPU is.
std::string cuda_unavailable_reason();

// ---- output ----------------------------------------------------------------------------------------

enum class Align { Left, Right };

struct Column {
  std::string name;
  int width = 10;  // at least; a longer name widens the column
  Align align = Align::Right;
};

// One entry of a table: the text printed, and the number --json writes for it (the text may add a unit
// or a second figure). An entry without a number is written as its text, and "-" as null.
struct Cell {
  std::string text;
  std::optional<double> number;
};
Cell text_cell(std::string text);
Cell number_cell(double value, const char* format);
inline Cell missing_cell() { return {"-", std::nullopt}; }

// printf into a std::string.
std::string format(const char* pattern, ...) __attribute__((format(printf, 1, 2)));

// The items of a comma-separated option value ("1,2" for --thread-counts), empty items dropped.
std::vector<std::string> split_list(const std::string& text);

// Rows with the same columns. The header is printed when the table is made and each row as it is
// added (flushed, so long runs show progress); --json gets every row as an object keyed by column.
class Table {
 public:
  Table(std::string name, std::vector<Column> columns, int indent);
  void add(const std::vector<Cell>& row);

  const std::string& name() const { return name_; }
  const std::vector<Column>& columns() const { return columns_; }
  const std::vector<std::vector<Cell>>& rows() const { return rows_; }

 private:
  void print(const std::vector<std::string>& texts) const;

  std::string name_;
  std::vector<Column> columns_;
  int indent_;
  std::vector<std::vector<Cell>> rows_;
};

// ---- the program -----------------------------------------------------------------------------------

struct CountDefaults {
  long long full;
  long long quick;
};

class Harness {
 public:
  Harness(std::string program, std::string description);

  // A whole number from `least` to 1000000.
  template <std::integral T>
  void add_count(std::string flag, T& target, CountDefaults defaults, std::string help, long long least = 1) {
    add_count_option(std::move(flag), [&target](long long v) { target = static_cast<T>(v); }, defaults,
                     std::move(help), least);
  }
  // A whole number that stays unset unless given.
  void add_count(std::string flag, std::optional<int>& target, std::string help, long long least = 1);
  void add_flag(std::string flag, bool& target, std::string help);
  // Text whose default is the target's value before parse().
  void add_text(std::string flag, std::string& target, std::string placeholder, std::string help);
  // One of `choices`; the default is the target's value before parse().
  void add_choice(std::string flag, std::string& target, std::vector<std::string> choices, std::string help);

  // Reads the command line and applies --threads. --help prints the usage and exits 0; a bad command
  // line prints what is wrong and the usage to stderr and exits 2.
  void parse(int argc, char** argv);
  // Ends the run as a bad command line does, for a value the benchmark finds wrong after parse().
  [[noreturn]] void reject(const std::string& why) const;

  bool quick() const { return quick_; }
  // fpi's pool size and where it comes from, with OpenBLAS's setting: for a benchmark's header.
  std::string threads_description() const;

  // A table of this run's results; its header is printed now.
  Table& table(std::string name, std::vector<Column> columns, int indent = 0);
  // A single figure for --json; printing it is left to the benchmark, whose layout scripts may parse.
  void value(std::string name, double value);

  // Writes --json when asked and returns the exit status: `status`, or 1 when the file cannot be written.
  int finish(int status) const;

 private:
  struct Option {
    std::string flag, placeholder, help;
    std::function<std::string(std::string_view)> set;  // returns what is wrong with the value, or ""
    std::function<void(bool quick)> set_default;        // for options not given
    std::function<std::string()> json;                  // the final value as a JSON literal
    bool given = false;
  };
  void add_count_option(std::string flag, std::function<void(long long)> set, CountDefaults defaults,
                        std::string help, long long least);
  void add_optional_count(std::string flag, std::optional<int>& target, std::string help, long long least,
                          long long most);
  void usage(std::FILE* out) const;

  std::string program_, description_;
  std::vector<Option> options_;
  std::vector<std::string> arguments_;
  bool quick_ = false;
  std::optional<int> threads_;
  std::string json_path_;
  std::vector<std::pair<std::string, double>> values_;
  std::deque<Table> tables_;  // a deque: the references table() hands out stay valid
};

}  // namespace fpi::bench
