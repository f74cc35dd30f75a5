// Running the real `fpi` binary from a test: a shell command in a folder, its exit status and its
// output (stdout and stderr together). FPI_CLI_PATH comes from tests/CMakeLists.txt; it is empty when
// the tools are not built, and the tests then skip.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#ifndef FPI_CLI_PATH
#define FPI_CLI_PATH ""
#endif

namespace fpi::testing {

struct Outcome {
  int status = -1;
  std::string output;
};

inline bool cli_built() { return !std::string(FPI_CLI_PATH).empty(); }

// Runs a shell script in `directory`, with $FPI naming the binary.
inline Outcome run_shell(const std::filesystem::path& directory, const std::string& script) {
  const std::string command =
      "cd '" + directory.string() + "' && FPI='" + FPI_CLI_PATH + "' && export FPI && (" + script + ") 2>&1";
  Outcome outcome;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return outcome;
  char buffer[4096];
  std::size_t read = 0;
  while ((read = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) outcome.output.append(buffer, read);
  const int status = pclose(pipe);
  outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return outcome;
}

// Runs `fpi ARGS` in `directory`.
inline Outcome run_fpi(const std::filesystem::path& directory, const std::string& args) {
  return run_shell(directory, "\"$FPI\" " + args);
}

inline std::string source_path(const std::string& relative) { return std::string(FPI_SOURCE_DIR) + "/" + relative; }

}  // namespace fpi::testing
