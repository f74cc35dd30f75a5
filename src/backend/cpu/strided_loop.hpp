// Walks N operands that share one shape but have their own strides, as runs along the innermost
// dimension. Dimensions are first coalesced (merged where every operand is contiguous across them),
// so a contiguous tensor of any rank becomes a single run and the body's inner loop vectorises.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "backend/cpu/parallel.hpp"
#include "fpi/core.hpp"

namespace fpi::backend::cpu {

template <std::size_t N>
struct StridedLayout {
  std::vector<std::int64_t> sizes;                       // innermost last; never empty
  std::array<std::vector<std::int64_t>, N> strides;      // per operand, per dimension
  std::int64_t outer_count() const {
    std::int64_t n = 1;
    for (std::size_t d = 0; d + 1 < sizes.size(); ++d) n *= sizes[d];
    return n;
  }
};

template <std::size_t N>
StridedLayout<N> coalesce(const Shape& shape, const std::array<const Shape*, N>& strides) {
  StridedLayout<N> out;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    const bool mergeable = !out.sizes.empty() && [&] {
      for (std::size_t k = 0; k < N; ++k)
        if (out.strides[k].back() != (*strides[k])[d] * shape[d]) return false;
      return true;
    }();
    if (mergeable) {
      out.sizes.back() *= shape[d];
      for (std::size_t k = 0; k < N; ++k) out.strides[k].back() = (*strides[k])[d];
    } else {
      out.sizes.push_back(shape[d]);
      for (std::size_t k = 0; k < N; ++k) out.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (out.sizes.empty()) {
    out.sizes.push_back(1);
    for (auto& s : out.strides) s.push_back(0);
  }
  return out;
}

// Calls body(offsets, run_length, inner_strides) for the runs with outer index in [begin, end).
template <std::size_t N, class Body>
void for_each_run(const StridedLayout<N>& layout, std::int64_t begin, std::int64_t end, Body& body) {
  const std::size_t outer_dims = layout.sizes.size() - 1;
  std::array<std::int64_t, N> inner{};
  for (std::size_t k = 0; k < N; ++k) inner[k] = layout.strides[k].back();
  std::vector<std::int64_t> index(outer_dims, 0);
  std::array<std::int64_t, N> offsets{};
  std::int64_t rest = begin;
  for (std::size_t d = outer_dims; d-- > 0;) {
    index[d] = rest % layout.sizes[d];
    rest /= layout.sizes[d];
    for (std::size_t k = 0; k < N; ++k) offsets[k] += index[d] * layout.strides[k][d];
  }
  for (std::int64_t o = begin; o < end; ++o) {
    body(offsets, layout.sizes.back(), inner);
    for (std::size_t d = outer_dims; d-- > 0;) {
      for (std::size_t k = 0; k < N; ++k) offsets[k] += layout.strides[k][d];
      if (++index[d] < layout.sizes[d]) break;
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= index[d] * layout.strides[k][d];
      index[d] = 0;
    }
  }
}

// Element-wise work is split across threads above this many elements: below it, waking the pool
// costs more than it saves.
inline constexpr std::int64_t kParallelGrain = 1 << 15;

// Runs body over the whole layout, in parallel when large. A single long run is cut into pieces so
// that contiguous tensors parallelise too. The body must treat every element independently.
template <std::size_t N, class Body>
void for_each_run_parallel(const StridedLayout<N>& layout, Body&& body) {
  const std::int64_t run = layout.sizes.back();
  const std::int64_t outer = layout.outer_count();
  // A zero-size operand may have no storage at all, and null plus an offset is undefined.
  if (run == 0 || outer == 0) return;
  if (outer == 1) {
    std::array<std::int64_t, N> inner{};
    for (std::size_t k = 0; k < N; ++k) inner[k] = layout.strides[k].back();
    parallel_for(0, run, kParallelGrain, [&](std::int64_t b, std::int64_t e) {
      std::array<std::int64_t, N> offsets{};
      for (std::size_t k = 0; k < N; ++k) offsets[k] = b * inner[k];
      body(offsets, e - b, inner);
    });
    return;
  }
  const std::int64_t grain = std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(run, 1));
  parallel_for(0, outer, grain, [&](std::int64_t b, std::int64_t e) { for_each_run(layout, b, e, body); });
}

}  // namespace fpi::backend::cpu
