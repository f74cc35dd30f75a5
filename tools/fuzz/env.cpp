// libFuzzer target for the FPI_* environment settings: the input is a value, given to the parser of each
// variable (FPI_NUM_THREADS: parse_num_threads; FPI_ALLOCATOR_CACHE_LIMIT: parse_cache_limit), and every
// outcome is compared with a plain reference reading of the documented format. A finding is a parser that
// accepts what the format refuses or the other way round, a value other than the one written, an error
// that is not an fpi::Error naming the variable in one line of printable text, or a sanitizer report.
// Run it with tools/fuzz.sh env SECONDS.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "backend/allocator.hpp"
#include "backend/settings.hpp"
#include "fpi/core.hpp"

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_env: %s\n", what);
  std::abort();
}

void check_message(const fpi::Error& e, std::string_view variable) {
  const std::string_view message = e.what();
  require(message.find(variable) != std::string_view::npos, "an error message does not name the variable");
  for (const char c : message)
    require(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "an error message holds a control character");
}

// The value of a whole decimal number of digits only, or nullopt when `text` is not one or exceeds `limit`.
std::optional<unsigned __int128> digits_value(std::string_view text, unsigned __int128 limit) {
  if (text.empty()) return std::nullopt;
  unsigned __int128 value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > limit) return std::nullopt;
  }
  return value;
}

void check_num_threads(std::string_view text) {
  const auto expected = digits_value(text, fpi::backend::kMaxThreads);
  const bool valid = expected && *expected >= 1;
  try {
    const int n = fpi::backend::parse_num_threads(text);
    require(valid, "FPI_NUM_THREADS: accepted a value the format refuses");
    require(static_cast<unsigned __int128>(n) == *expected, "FPI_NUM_THREADS: read another number than written");
  } catch (const fpi::Error& e) {
    require(!valid, "FPI_NUM_THREADS: refused a whole number from 1 to the limit");
    check_message(e, "FPI_NUM_THREADS");
  }
}

void check_cache_limit(std::string_view text) {
  std::optional<unsigned __int128> expected;
  if (text == "unlimited") {
    expected = fpi::kUnlimitedCache;
  } else {
    const std::size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
    const std::string_view unit = text.substr(digits);
    const int shift = unit.empty() ? 0 : unit == "KiB" ? 10 : unit == "MiB" ? 20 : unit == "GiB" ? 30 : -1;
    // Any number of leading zeros is still the same number, so the digits are read without a length cap.
    const auto value = shift < 0 ? std::nullopt : digits_value(text.substr(0, digits), ~std::uint64_t{0});
    if (value && (*value << shift) <= ~std::uint64_t{0}) expected = *value << shift;
  }
  try {
    const std::size_t limit = fpi::backend::parse_cache_limit(text, "FPI_ALLOCATOR_CACHE_LIMIT");
    require(expected.has_value(), "FPI_ALLOCATOR_CACHE_LIMIT: accepted a value the format refuses");
    require(limit == *expected, "FPI_ALLOCATOR_CACHE_LIMIT: read another byte count than written");
  } catch (const fpi::Error& e) {
    require(!expected, "FPI_ALLOCATOR_CACHE_LIMIT: refused a byte count that fits 64 bits");
    check_message(e, "FPI_ALLOCATOR_CACHE_LIMIT");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  check_num_threads(text);
  check_cache_limit(text);
  return 0;
}
