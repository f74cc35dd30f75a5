// The datasets the trainer reads: one split each, handing out batches of named fields ("features",
// "labels"; "noisy", "clean"). A batch is a pure function of (epoch, index, batch size): shuffling,
// random crops, flips and noise all come from generators seeded by those numbers. That is what lets the
// trainer prepare the next batch on another thread while one trains, and what makes a resumed run
// exact with nothing saved but the epoch and the batch index.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::data {

// The largest batch a config may ask for (train.batch_size, eval.batch_size; the command line's
// --batch-size too): a batch is one tensor per field, and a larger one is a typo, not a memory size.
inline constexpr std::int64_t kMaxBatchSize = 1000000;
// The most samples an epoch or a generated split may have (data.patches_per_epoch, flow's train_size,
// validation_size and test_size): drawn one by one, 10^9 patches or frame pairs take days even at the
// ~10^4 a second a CPU draws small patches, so a larger count is a typo, refused before training starts.
inline constexpr std::int64_t kMaxEpochSamples = 1000000000;

// One field of every sample: its name and its shape without the batch dimension. A size of -1 varies
// from batch to batch (the height and width of whole test images).
struct FieldSpec {
  std::string name;
  Shape shape;
};

struct Batch {
  std::vector<std::pair<std::string, Tensor>> fields;  // CPU tensors, batch dimension first

  // The field called `name`; throws naming the fields there are when it is missing.
  const Tensor& at(const std::string& name) const;
  std::int64_t size() const { return fields.empty() ? 0 : fields.front().second.size(0); }
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual std::vector<FieldSpec> fields() const = 0;
  // Samples per epoch.
  virtual std::int64_t size() const = 0;
  // The largest batch the split can form: 1 when samples differ in shape (whole images), else size().
  virtual std::int64_t max_batch_size() const { return size(); }
  // ceil(size / batch_size), with batch_size capped by max_batch_size().
  std::int64_t num_batches(std::int64_t batch_size) const;
  // Batch `index` of epoch `epoch` (both from 0), the same for the same arguments whatever was asked
  // before; safe to call from several threads at once. The last batch of an epoch may be smaller.
  virtual Batch batch(std::int64_t epoch, std::int64_t index, std::int64_t batch_size) const = 0;
  // One line for logs: what the split holds ("Bibtex train: 4392 of 4880 rows").
  virtual std::string describe() const = 0;
};

using DatasetPtr = std::shared_ptr<const Dataset>;

// The three splits of an experiment. Model selection reads validation; test is read for reporting.
struct Splits {
  DatasetPtr train, validation, test;
};

}  // namespace fpi::data
