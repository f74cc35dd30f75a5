// The `fpi` executable's entry point, alone in its file so that the fuzz target tools/fuzz/cli.cpp can
// link every command's declarations (main.cpp and the command files) and bring libFuzzer's main instead.
#include "commands.hpp"

int main(int argc, char** argv) { return fpi_cli::run_program(argc, argv); }
