// libFuzzer target for the command line: the input is an argv, its arguments separated by NUL bytes
// (the one byte a real argument cannot hold), parsed and validated by the `fpi` program's own CLI11 app
// (tools/fpi/main.cpp) without running a command, so nothing trains and no file is written. Every outcome
// of parsing is a correct one when it is a command to run (exactly one of fpi's commands was given) or
// an exit status of 0 (--help, --version) or 2 (a usage error, with a message of one line and no control
// character); a finding is anything else: an exception that escapes, a sanitizer report, a hang. Run it
// with tools/fuzz.sh cli SECONDS.
//
// Building the app (six subcommands, their options and validators) costs several times more than parsing
// with it, so one app parses every input, cleared first as CLI11's own reparse does. That is sound because
// nothing that runs while parsing reads the variables options are bound to (those keep the last input's
// values; only the commands read them, and no command runs here), so an outcome depends on the input alone
// and a finding replays from its one file. The claim is checked as the fuzzer runs: one input in 8 (by
// its hash, so a replay checks the same ones) is parsed by a fresh app too, and the outcomes must agree.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_cli: %s\n", what);
  std::abort();
}

struct Outcome {
  std::optional<int> status;  // nullopt: `command` is to run
  std::string command, out, err;
  bool operator==(const Outcome&) const = default;
};

Outcome parse(fpi_cli::CommandLine& line, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  // parse() clears only after a parse that got far enough to count; an error thrown earlier would leave
  // the last input's results behind.
  line.app.clear();
  std::ostringstream out, err;
  Outcome outcome;
  outcome.status = fpi_cli::parse_command_line(line, static_cast<int>(args.size()), argv.data(), out, err);
  outcome.out = out.str();
  outcome.err = err.str();
  if (!outcome.status) {
    int commands = 0;
    for (const auto& [name, command] : line.commands) {
      if (!line.app.got_subcommand(name)) continue;
      ++commands;
      outcome.command = name;
    }
    require(commands == 1, "parsing accepted a command line without exactly one command");
  }
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  std::vector<std::string> args = {"fpi"};
  for (std::size_t at = 0; at <= text.size();) {
    const std::size_t end = std::min(text.find('\0', at), text.size());
    if (end == text.size() && at == end) break;
    args.emplace_back(text.substr(at, end - at));
    at = end + 1;
  }

  static fpi_cli::CommandLine reused;
  const Outcome outcome = parse(reused, args);
  if (outcome.status) {
    require(*outcome.status == 0 || *outcome.status == fpi_cli::kUsageError,
            "parsing ended with a status other than 0 or 2");
    if (*outcome.status != 0) {
      const std::string& message = outcome.err;
      require(!message.empty(), "a usage error printed no message");
      require(message.find('\n') == message.size() - 1, "a usage error's message is not one line");
      for (const char c : message.substr(0, message.size() - 1))
        require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "a usage error's message has a control character");
    }
  }
  if (std::hash<std::string_view>{}(text) % 8 == 0) {
    fpi_cli::CommandLine fresh;
    require(parse(fresh, args) == outcome, "the reused app and a fresh one parsed this input differently");
  }
  return 0;
}
