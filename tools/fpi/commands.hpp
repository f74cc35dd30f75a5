// The subcommands of the `fpi` command line, one function each, registered in main.cpp's kCommands
// table. Each takes the arguments after its name and returns the process exit status: 0 on success,
// 1 when the work failed, kUsageError (2) for arguments it cannot accept.
#pragma once

#include <span>

namespace fpi_cli {

constexpr int kUsageError = 2;

int run_demo(std::span<char*> args);

}  // namespace fpi_cli
