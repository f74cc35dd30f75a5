// The progress bar `fpi train` draws on a terminal: what it prints when the numbers are extreme.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <sstream>
#include <thread>

#include "train/progress.hpp"

namespace fpi::train {
namespace {

// An epoch of 2^63 batches at a few a second has an ETA of ~10^18 s; converting that to int is undefined,
// so the bar shows its cap instead (the sanitizer build catches the conversion if the cap goes).
TEST(ProgressBar, AnEtaBeyondAnIntIsCapped) {
  std::ostringstream out;
  ProgressBar bar(&out, 1, 1, std::numeric_limits<std::int64_t>::max());
  // The bar redraws at most every 100 ms.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  bar.update(1, 0.5, -1.0);
  EXPECT_NE(out.str().find("1/9223372036854775807 loss 0.5"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("ETA 9999999:59"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace fpi::train
