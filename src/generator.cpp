// xoshiro256** seeded by SplitMix64 (Blackman & Vigna), Box–Muller for normals, and the generator's
// state dict.
#include "fpi/generator.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

namespace fpi {

void Generator::manual_seed(std::uint64_t seed) {
  for (auto& word : state_) {
    seed += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    word = z ^ (z >> 31);
  }
  has_spare_normal_ = false;
}

std::uint64_t Generator::next_u64() {
  auto& s = state_;
  const std::uint64_t result = std::rotl(s[1] * 5, 7) * 9;
  const std::uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = std::rotl(s[3], 45);
  return result;
}

double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  // 1 - uniform() lies in (0, 1], so the logarithm is finite.
  const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));
  const double angle = 2.0 * std::numbers::pi * uniform();
  spare_normal_ = radius * std::sin(angle);
  has_spare_normal_ = true;
  return radius * std::cos(angle);
}

State Generator::state_dict() const {
  std::vector<std::int64_t> words;
  for (const std::uint64_t word : state_) words.push_back(std::bit_cast<std::int64_t>(word));
  State out;
  out.set("state", std::move(words));
  out.set("has_spare_normal", std::int64_t{has_spare_normal_});
  out.set("spare_normal", spare_normal_);
  return out;
}

void Generator::load_state_dict(const State& state) {
  StateReader in(state, "Generator.load_state_dict");
  const std::vector<std::int64_t>& words = in.get_int64_list("state");
  const std::int64_t has_spare = in.get_int64("has_spare_normal");
  const double spare = in.get_double("spare_normal");
  in.check_all_read();
  FPI_CHECK(words.size() == state_.size(), in.where(), ": key 'state' has ", words.size(), " words, expected ",
            state_.size());
  FPI_CHECK(std::any_of(words.begin(), words.end(), [](std::int64_t w) { return w != 0; }), in.where(),
            ": key 'state' is all zeros, which xoshiro256** never reaches (it would draw only zeros)");
  FPI_CHECK(has_spare == 0 || has_spare == 1, in.where(), ": key 'has_spare_normal' is ", has_spare,
            ", expected 0 or 1");
  for (std::size_t i = 0; i < state_.size(); ++i) state_[i] = std::bit_cast<std::uint64_t>(words[i]);
  has_spare_normal_ = has_spare == 1;
  spare_normal_ = spare;
}

Generator& default_generator() {
  static Generator generator;
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace fpi
