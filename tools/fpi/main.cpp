// The `fpi` command line. Arguments are parsed by CLI11 (Debian's libcli11-dev): each subcommand
// declares its options in its own file (commands.hpp), and CLI11 gives every one of them --help, the
// usage text and the errors for unknown or malformed options. Exit codes: 0 success, 1 a failure while
// working (a missing file, a diverging loss), 2 a usage or config error, as command-line tools
// conventionally do.
//
// The build facts `info` prints come from CMake (tools/CMakeLists.txt) because the executable is
// always built together with the library it reports on. The process's main() is fpi_main.cpp's, so the
// fuzz target tools/fuzz/cli.cpp can link everything here and parse command lines without running one.
#include <cblas.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "commands.hpp"
#include "fpi/device.hpp"
#include "fpi/dist/communicator.hpp"
#include "fpi/tensor.hpp"
#include "fpi/train/json_reader.hpp"

namespace fpi_cli {

CLI::Validator whole_number(long long min, long long max) {
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long value = std::strtoll(text.c_str(), &end, 10);
        const bool whole = !text.empty() && end != text.c_str() && *end == '\0' && errno != ERANGE;
        if (whole && value >= min && value <= max) return {};
        return "needs a whole number from " + range + ", got '" + text + "'";
      },
      std::to_string(min) + ".." + std::to_string(max));
}

CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (!text.empty() && *end == '\0' && std::isfinite(value) && value > 0.0) return {};
        return "needs a finite number greater than 0, such as 0.01, got '" + text + "'";
      },
      "NUMBER > 0");
}

namespace {

// Whether a CUDA tensor can actually be made: a built backend still needs a driver and a device.
std::string cuda_status() {
  if (!FPI_CUDA_BUILT) return "not built (reconfigure with -DFPI_CUDA=ON on a machine with the CUDA Toolkit)";
  try {
    fpi::zeros({1}, {.device = fpi::cuda(0)});
    return "built, device cuda:0 usable";
  } catch (const std::exception& e) {
    return std::string("built, but no usable device: ") + e.what();
  }
}

}  // namespace

Command add_info(CLI::App& app) {
  app.add_subcommand("info", "version, build configuration, CPU threads, BLAS, CUDA backend and MPI");
  return [] {
    const char* threads_env = std::getenv("FPI_NUM_THREADS");
    std::cout << "fpi " << FPI_VERSION << "\n"
              << "build type    " << FPI_BUILD_TYPE << (FPI_NATIVE_BUILD ? ", -march=native" : "") << "\n"
              << "CPU threads   " << fpi::num_threads()
              << (threads_env ? std::string(" (FPI_NUM_THREADS=") + threads_env + ")"
                              : std::string(" (all cores; set FPI_NUM_THREADS to change)"))
              << "\n"
              << "BLAS          " << openblas_get_config() << ", " << openblas_get_num_threads()
              << " thread per call; fpi's CPU threads share out large matrix products\n"
              << "CUDA backend  " << cuda_status() << "\n"
              << "MPI           "
              << (fpi::dist::mpi_built()
                      ? "built (data-parallel training: mpirun -np N fpi train CONFIG.json)"
                      : "not built (reconfigure with -DFPI_MPI=ON where libopenmpi-dev is installed)")
              << "\n";
    return 0;
  };
}

CommandLine::CommandLine()
    : app("fpi: differentiable fixed-point iteration layers (Jeon, Lee & Choi). Run 'fpi COMMAND --help'.", "fpi") {
  app.set_version_flag("--version", std::string("fpi ") + FPI_VERSION);
  app.require_subcommand(1);
  commands = {
      {"info", add_info(app)},         {"demo", add_demo(app)},
      {"train", add_train(app)},       {"eval", add_eval(app)},
      {"validate", add_validate(app)}, {"bench", add_bench(app)},
  };
}

void print_error(std::ostream& err, std::string_view prefix, std::string_view message) {
  err << prefix << fpi::train::escape_control_characters(message) << "\n";
}

std::optional<int> parse_command_line(CommandLine& line, int argc, const char* const* argv, std::ostream& out,
                                      std::ostream& err) {
  // CLI11 would report an unknown first word as a missing subcommand; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const auto& [name, command] : line.commands) known = known || std::string(argv[1]) == name;
    if (!known) {
      print_error(err, "fpi: ",
                  std::string("unknown command '") + argv[1] +
                      "'; the commands are info, demo, train, eval, validate, bench (run 'fpi --help' for more)");
      return kUsageError;
    }
  }
  try {
    line.app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print through CLI11; its own failure message would echo argv raw (an escape
    // sequence or a newline from an argument reaches the terminal), so errors print through print_error.
    if (e.get_exit_code() != static_cast<int>(CLI::ExitCodes::Success)) {
      print_error(err, "fpi: ", std::string(e.what()) + " (run 'fpi --help' for more)");
      return kUsageError;
    }
    line.app.exit(e, out, err);
    return 0;
  }
  return std::nullopt;
}

}  // namespace fpi_cli

namespace {

using fpi_cli::kUsageError;
using fpi_cli::print_error;

int run(int argc, char** argv) {
  fpi_cli::CommandLine line;
  if (const auto status = fpi_cli::parse_command_line(line, argc, argv, std::cout, std::cerr)) return *status;
  for (const auto& [name, command] : line.commands) {
    if (!line.app.got_subcommand(name)) continue;
    try {
      return command();
    } catch (const fpi::train::ConfigError& e) {
      // Several problems come one to a line, each escaped already: the newlines are the only ones left.
      const std::string_view problems = e.what();
      for (std::size_t at = 0; at <= problems.size();) {
        const std::size_t end = std::min(problems.find('\n', at), problems.size());
        print_error(std::cerr, "fpi " + name + ": ", problems.substr(at, end - at));
        at = end + 1;
      }
      return kUsageError;
    } catch (const fpi::Error& e) {
      print_error(std::cerr, "fpi " + name + ": ", e.what());
      return 1;
    } catch (const std::exception& e) {
      // Not fpi's own error (the standard library's, say): still one line and a failing status, never
      // std::terminate's abort.
      print_error(std::cerr, "fpi " + name + ": unexpected error: ", e.what());
      return 1;
    }
  }
  return kUsageError;
}

// Output is buffered (std::cout and printf share stdout's buffer), so a full disk or a failing device
// often shows only at the final flush; unchecked, `fpi demo > /dev/full` would write nothing and exit 0.
int finish_output(int status) {
  errno = 0;
  std::cout.flush();
  const bool flushed = std::fflush(stdout) == 0;
  const int error = errno;
  if (flushed && !std::ferror(stdout) && std::cout) return status;
  std::cerr << "fpi: error writing standard output" << (error ? std::string(": ") + std::strerror(error) : "")
            << "\n";
  return status == 0 ? 1 : status;
}

}  // namespace

int fpi_cli::run_program(int argc, char** argv) {
  // Building the app or parsing can throw more than CLI::ParseError (std::bad_alloc on a huge argv, say):
  // the program still ends with one line and a failing status, never with std::terminate's abort.
  int status = 1;
  try {
    status = run(argc, argv);
  } catch (const std::exception& e) {
    print_error(std::cerr, "fpi: unexpected error: ", e.what());
  }
  return finish_output(status);
}
