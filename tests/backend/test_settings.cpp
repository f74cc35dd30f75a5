// The FPI_* environment settings' parsers (src/backend/settings.hpp): what FPI_NUM_THREADS accepts and
// how a bad value is reported. FPI_ALLOCATOR_CACHE_LIMIT's parser is tested with the allocator.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "backend/settings.hpp"
#include "fpi/core.hpp"

namespace fpi {
namespace {

std::string error_of(std::string_view text) {
  try {
    backend::parse_num_threads(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(NumThreadsSetting, AcceptsWholeNumbersFromOneToTheLimit) {
  EXPECT_EQ(backend::parse_num_threads("1"), 1);
  EXPECT_EQ(backend::parse_num_threads("4"), 4);
  EXPECT_EQ(backend::parse_num_threads("0008"), 8);
  EXPECT_EQ(backend::parse_num_threads("1024"), backend::kMaxThreads);
}

TEST(NumThreadsSetting, RefusesEverythingElseNamingTheVariable) {
  for (const char* text : {"", "0", "-3", "+4", " 4", "4 ", "4x", "abc", "1025", "99999999999999999999", "2.0"}) {
    EXPECT_EQ(error_of(text), std::string("FPI_NUM_THREADS='") + text +
                                  "' is not a whole number from 1 to 1024; unset it to use every core");
  }
}

TEST(NumThreadsSetting, ControlCharactersInTheValueAreEscaped) {
  EXPECT_EQ(error_of(std::string_view("4\n\x1b[2J\0", 7)),
            "FPI_NUM_THREADS='4\\x0a\\x1b[2J\\x00' is not a whole number from 1 to 1024; unset it to use every core");
}

}  // namespace
}  // namespace fpi
