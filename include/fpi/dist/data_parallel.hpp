// What a data-parallel step does with the communicator: parameters made identical on every rank,
// gradients averaged as the single-process batch mean would have them, and a cheap check that the
// ranks' parameters have not drifted apart.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fpi/dist/communicator.hpp"

namespace fpi::dist {

// Rank 0's parameter values copied into every rank's parameters (any device; in place).
void broadcast_parameters(Communicator& communicator, const std::vector<Tensor>& parameters);

// Turns each rank's gradient of its shard's mean loss into the gradient of the global batch's mean loss:
// each rank's gradient is scaled by local_count / global_count and the ranks' gradients are summed, so
// uneven shards and a short last batch weigh each sample once. A parameter without a gradient on a rank
// counts as zero there; it gets a gradient when any rank has one. `extras` (loss sums, counters) are
// summed in the same all-reduce, so a step needs one collective. The buffer is float64: the sum of N
// scaled float32 gradients is then rounded once, to the parameter's dtype.
void all_reduce_gradients(Communicator& communicator, const std::vector<Tensor>& parameters,
                          std::int64_t local_count, std::int64_t global_count, std::span<double> extras);

// FNV-1a over the bytes of every parameter, in order: equal on ranks whose parameters are bit-equal.
std::uint64_t parameter_hash(const std::vector<Tensor>& parameters);

// Compares parameter_hash over the ranks; throws on every rank, naming `where` and the ranks that differ
// from rank 0, when they are not all equal.
void check_parameters_agree(Communicator& communicator, const std::vector<Tensor>& parameters,
                            const std::string& where);

}  // namespace fpi::dist
