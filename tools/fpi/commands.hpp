// The subcommands of the `fpi` command line. Each add_* function declares its subcommand's options on
// the CLI11 app (main.cpp) and returns the function that runs it once parsing succeeded. A command
// returns the exit status: 0 on success, 1 when the work failed, kUsageError (2) for arguments or a
// config it cannot accept; main.cpp maps exceptions onto the same codes.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace fpi_cli {

constexpr int kUsageError = 2;

using Command = std::function<int()>;

Command add_info(CLI::App& app);
Command add_demo(CLI::App& app);
Command add_train(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_validate(CLI::App& app);
Command add_bench(CLI::App& app);

// Validators that accept the whole text or nothing ("12x" is an error, not 12), with the message
// "needs a whole number from MIN to MAX, got '0'".
CLI::Validator whole_number(long long min, long long max);
CLI::Validator positive_number();

}  // namespace fpi_cli
