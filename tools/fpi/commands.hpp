// The subcommands of the `fpi` command line. Each add_* function declares its subcommand's options on
// the CLI11 app (main.cpp) and returns the function that runs it once parsing succeeded. A command
// returns the exit status: 0 on success, 1 when the work failed, kUsageError (2) for arguments or a
// config it cannot accept; main.cpp maps exceptions onto the same codes.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fpi_cli {

constexpr int kUsageError = 2;

using Command = std::function<int()>;

Command add_info(CLI::App& app);
Command add_demo(CLI::App& app);
Command add_train(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_validate(CLI::App& app);
Command add_bench(CLI::App& app);

// The whole command line: the CLI11 app with every subcommand declared, and the function each one runs.
// CLI::App can be neither copied nor moved, so this is built in place.
struct CommandLine {
  CommandLine();
  CLI::App app;
  std::vector<std::pair<std::string, Command>> commands;
};

// Parses and validates argv (argv[0] is the program) without running anything: nullopt when a command
// is to run (the one line.app got), else the exit status parsing ended with (0 after --help or
// --version, kUsageError for a bad command line), its text written to `out` and `err`.
std::optional<int> parse_command_line(CommandLine& line, int argc, const char* const* argv, std::ostream& out,
                                      std::ostream& err);

// Every error message fpi prints goes through here: one line, `prefix` and `message` with its control
// characters (newlines too) written as \xNN, so bytes from argv, a file or a config can neither drive the
// terminal nor forge a line of output.
void print_error(std::ostream& err, std::string_view prefix, std::string_view message);

// The `fpi` program: parses, runs the command, flushes standard output; returns the exit status.
int run_program(int argc, char** argv);

// Validators that accept the whole text or nothing ("12x" is an error, not 12), with the message
// "needs a whole number from MIN to MAX, got '0'".
CLI::Validator whole_number(long long min, long long max);
CLI::Validator positive_number();

}  // namespace fpi_cli
