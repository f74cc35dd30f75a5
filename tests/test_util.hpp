// Small helpers shared by the test files.
#pragma once

#include <string>

#include "fpi/core.hpp"

namespace fpi::testing {

// The message of the fpi::Error that f throws, or "(no error)" when it throws none, so that a test can
// check what the message names.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace fpi::testing
