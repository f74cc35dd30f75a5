// libFuzzer target for the command line: the input is an argv, its arguments separated by NUL bytes
// (the one byte a real argument cannot hold), parsed and validated by the `fpi` program's own CLI11 app
// (tools/fpi/main.cpp) without running a command, so nothing trains and no file is written. Every outcome
// of parsing is a correct one when it is a command to run (exactly one of fpi's commands was given) or
// an exit status of 0 (--help, --version) or 2 (a usage error, with a message); a finding is anything
// else: an exception that escapes, a sanitizer report, a hang. Run it with tools/fuzz.sh cli SECONDS.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);

  fpi_cli::CommandLine line;
  std::ostringstream out, err;
  const auto status =
      fpi_cli::parse_command_line(line, static_cast<int>(args.size()), argv.data(), out, err);
  if (status) {
    require(*status == 0 || *status == fpi_cli::kUsageError, "parsing ended with a status other than 0 or 2");
    require(*status == 0 || !err.str().empty(), "a usage error printed no message");
    return 0;
  }
  int commands = 0;
  for (const auto& [name, command] : line.commands) commands += line.app.got_subcommand(name) ? 1 : 0;
  require(commands == 1, "parsing accepted a command line without exactly one command");
  return 0;
}
