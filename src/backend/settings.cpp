// Parsers of the FPI_* environment variables (settings.hpp).
#include "backend/settings.hpp"

#include <charconv>
#include <cstdio>

#include "fpi/core.hpp"

namespace fpi::backend {

int parse_num_threads(std::string_view text) {
  int n = 0;
  const char* const end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, n);
  // from_chars reads a leading '-', which the range check refuses with the rest.
  FPI_CHECK(!text.empty() && error == std::errc() && stop == end && n >= 1 && n <= kMaxThreads,
            "FPI_NUM_THREADS='", printable(text), "' is not a whole number from 1 to ", kMaxThreads,
            "; unset it to use every core");
  return n;
}

std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

}  // namespace fpi::backend
