// The distributed sampler of data-parallel training. Every rank asks the dataset for the same global
// batch (a batch is a pure function of epoch, index and batch size, so all ranks see the same seeded
// shuffle) and keeps a disjoint contiguous block of its rows. The blocks of all ranks are exactly the
// single-process batch, so the config's batch_size stays the global batch size whatever N is.
#pragma once

#include <cstdint>

#include "fpi/data/dataset.hpp"

namespace fpi::dist {

// Rows [begin, end) of a batch.
struct Shard {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};

// Rank `rank` of `ranks` takes a block of a batch of `count` rows; the first count % ranks ranks take one
// row more, so block sizes differ by at most one. A rank gets no rows when count < ranks.
Shard shard_of(std::int64_t count, int rank, int ranks);

// Rank `rank`'s rows of every field of `batch` (views of its tensors; no copy).
data::Batch shard_batch(const data::Batch& batch, int rank, int ranks);

}  // namespace fpi::dist
