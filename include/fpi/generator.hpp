// Seeded random numbers. The sequence for a seed is fixed by fpi itself (SplitMix64 seeding,
// xoshiro256**, Box–Muller), not by the standard library, so the same seed gives the same tensors on
// every platform and every device.
#pragma once

#include <array>
#include <cstdint>

#include "fpi/state.hpp"

namespace fpi {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0x5eedULL) { manual_seed(seed); }

  void manual_seed(std::uint64_t seed);
  std::uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // standard normal

  // The four xoshiro words ("state", as int64 bit patterns) and the second normal of the last
  // Box–Muller pair ("has_spare_normal", "spare_normal"): a generator that loads them continues the
  // saver's sequence exactly.
  State state_dict() const;
  void load_state_dict(const State& state);

 private:
  std::array<std::uint64_t, 4> state_{};
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace fpi
