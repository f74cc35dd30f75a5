// Splitting a global batch among the ranks of a data-parallel run (fpi/dist/sampler.hpp).
#include "fpi/dist/sampler.hpp"

#include <algorithm>

namespace fpi::dist {

Shard shard_of(std::int64_t count, int rank, int ranks) {
  FPI_CHECK(ranks >= 1 && rank >= 0 && rank < ranks, "dist::shard_of: rank ", rank, " of ", ranks);
  FPI_CHECK(count >= 0, "dist::shard_of: a batch of ", count, " rows");
  const std::int64_t base = count / ranks, extra = count % ranks;
  const std::int64_t begin = rank * base + std::min<std::int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

data::Batch shard_batch(const data::Batch& batch, int rank, int ranks) {
  const Shard shard = shard_of(batch.size(), rank, ranks);
  data::Batch out;
  for (const auto& [name, tensor] : batch.fields)
    out.fields.emplace_back(name, tensor.narrow(0, shard.begin, shard.size()));
  return out;
}

}  // namespace fpi::dist
