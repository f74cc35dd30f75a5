// The `fpi` command line. Each subcommand is one row of kCommands, so adding one (train, eval) means
// writing its function (declared in commands.hpp, defined in a file of its own) and adding its row;
// usage is generated from the same table. Unknown subcommands and flags print usage to stderr and exit
// 2, as command-line tools conventionally do.
//
// The build facts `info` prints come from CMake (tools/CMakeLists.txt) because the executable is
// always built together with the library it reports on.
#include <cblas.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <span>
#include <string_view>

#include "commands.hpp"
#include "fpi/device.hpp"
#include "fpi/tensor.hpp"

namespace {

using fpi_cli::kUsageError;

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(std::span<char*> args);
};

int run_info(std::span<char*> args);

constexpr Command kCommands[] = {
    {"info", "version, build configuration, CPU threads, BLAS and CUDA backend", run_info},
    {"demo", "train a small MLP on a built-in curve and watch the loss fall (demo --help)", fpi_cli::run_demo},
};

void print_usage(std::ostream& out) {
  out << "usage: fpi <command> [options]\n"
         "       fpi --help | --version\n\ncommands:\n";
  for (const Command& c : kCommands)
    out << "  " << c.name << std::string(10 - c.name.size(), ' ') << c.summary << "\n";
}

int usage_error(std::string_view problem) {
  std::cerr << "fpi: " << problem << "\n\n";
  print_usage(std::cerr);
  return kUsageError;
}

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

int run_info(std::span<char*> args) {
  if (!args.empty()) return usage_error(std::string("info takes no arguments, got '") + args[0] + "'");
  const char* threads_env = std::getenv("FPI_NUM_THREADS");
  std::cout << "fpi " << FPI_VERSION << "\n"
            << "build type    " << FPI_BUILD_TYPE << (FPI_NATIVE_BUILD ? ", -march=native" : "") << "\n"
            << "CPU threads   " << fpi::num_threads()
            << (threads_env ? std::string(" (FPI_NUM_THREADS=") + threads_env + ")"
                            : std::string(" (all cores; set FPI_NUM_THREADS to change)"))
            << "\n"
            << "BLAS          " << openblas_get_config() << ", " << openblas_get_num_threads() << " threads\n"
            << "CUDA backend  " << cuda_status() << "\n";
  return 0;
}

int run(std::span<char*> args) {
  if (args.empty()) return usage_error("no command given");
  const std::string_view first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    print_usage(std::cout);
    return 0;
  }
  if (first == "--version") {
    std::cout << "fpi " << FPI_VERSION << "\n";
    return 0;
  }
  for (const Command& c : kCommands) {
    if (c.name != first) continue;
    try {
      return c.run(args.subspan(1));
    } catch (const fpi::Error& e) {
      std::cerr << "fpi " << c.name << ": " << e.what() << "\n";
      return 1;
    } catch (const std::exception& e) {
      // Not fpi's own error (the standard library's, say): still one line and a failing status, never
      // std::terminate's abort.
      std::cerr << "fpi " << c.name << ": unexpected error: " << e.what() << "\n";
      return 1;
    }
  }
  return usage_error(first.starts_with("-") ? "unknown option '" + std::string(first) + "'"
                                            : "unknown command '" + std::string(first) + "'");
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

int main(int argc, char** argv) { return finish_output(run(std::span<char*>(argv + 1, argc - 1))); }
