// The FPI_* environment variables the backend reads, parsed strictly: a value that is not exactly what a
// variable accepts is an fpi::Error naming the variable, never a silent default. The parsers take the
// text, not the environment, so the fuzz target tools/fuzz/env.cpp and the tests can call them directly.
// FPI_NUM_THREADS is parsed here; FPI_ALLOCATOR_CACHE_LIMIT by parse_cache_limit (allocator.hpp).
#pragma once

#include <string>
#include <string_view>

namespace fpi::backend {

// More threads than this is a typo, not a machine: each would be started and kept.
inline constexpr int kMaxThreads = 1024;

// The value of FPI_NUM_THREADS: a whole number from 1 to kMaxThreads, digits only ("4x", " 4", "+4"
// and "" are errors).
int parse_num_threads(std::string_view text);

// `text` for an error message: control characters as \xNN, so a value from the environment can neither
// break the message's line nor drive the terminal.
std::string printable(std::string_view text);

}  // namespace fpi::backend
