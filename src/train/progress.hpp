// The per-epoch progress bar of `fpi train` on a terminal: batches, running loss, it/s, ETA and the
// mean forward FPI iterations, redrawn in place at most ten times a second. Without a stream it does
// nothing (output that is not a terminal gets the trainer's one line per epoch instead).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>

namespace fpi::train {

class ProgressBar {
 public:
  ProgressBar(std::ostream* out, std::int64_t epoch, std::int64_t epochs, std::int64_t batches)
      : out_(out), epoch_(epoch), epochs_(epochs), batches_(batches), start_(Clock::now()), last_draw_(start_) {}

  // `fixed_point_iterations` < 0: the model has no FPI layer.
  void update(std::int64_t done, double loss, double fixed_point_iterations) {
    if (!out_) return;
    const auto now = Clock::now();
    if (done < batches_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done - first_done(done)) / elapsed : 0.0;
    // Capped below INT_MAX seconds before the conversion to int (undefined beyond it): a billion batches at
    // a batch a second is 31 years, shown as 9999999:59.
    const double eta = rate > 0 ? std::min(static_cast<double>(batches_ - done) / rate, 599999999.0) : 0.0;
    constexpr int kWidth = 24;
    const int filled = batches_ > 0 ? static_cast<int>(kWidth * done / batches_) : kWidth;
    char text[256];
    std::snprintf(text, sizeof text, "\repoch %lld/%lld [%s%s] %lld/%lld loss %.5g %.1f it/s ETA %d:%02d",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_), std::string(filled, '=').c_str(),
                  std::string(kWidth - filled, ' ').c_str(), static_cast<long long>(done),
                  static_cast<long long>(batches_), loss, rate, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    *out_ << text;
    if (fixed_point_iterations >= 0) {
      std::snprintf(text, sizeof text, " fpi %.1f it", fixed_point_iterations);
      *out_ << text;
    }
    *out_ << "\x1b[K" << std::flush;  // clear what a longer previous line left
    drawn_ = true;
  }

  // Erases the bar so the epoch's summary line takes its place.
  void finish() {
    if (out_ && drawn_) *out_ << "\r\x1b[K" << std::flush;
    drawn_ = false;
  }

 private:
  using Clock = std::chrono::steady_clock;

  // A resumed epoch starts part-way; the rate counts only the batches run since.
  std::int64_t first_done(std::int64_t done) {
    if (first_ < 0) first_ = done - 1;
    return first_;
  }

  std::ostream* out_;
  std::int64_t epoch_, epochs_, batches_;
  Clock::time_point start_, last_draw_;
  std::int64_t first_ = -1;
  bool drawn_ = false;
};

}  // namespace fpi::train
