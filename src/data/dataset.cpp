// The non-virtual parts of the Dataset interface (include/fpi/data/dataset.hpp).
#include "fpi/data/dataset.hpp"

#include <algorithm>

#include "data/sampling.hpp"

namespace fpi::data {

const Tensor& Batch::at(const std::string& name) const {
  for (const auto& [field, tensor] : fields)
    if (field == name) return tensor;
  std::string known;
  for (const auto& field : fields) known += (known.empty() ? "" : ", ") + field.first;
  fail("Batch::at: no field '", name, "'; the batch has ", known.empty() ? "no fields" : known);
}

std::int64_t Dataset::num_batches(std::int64_t batch_size) const {
  FPI_CHECK(batch_size >= 1, "Dataset::num_batches: batch_size must be at least 1, got ", batch_size);
  const std::int64_t n = size();
  if (n == 0) return 0;
  const std::int64_t b = std::min(batch_size, std::max<std::int64_t>(max_batch_size(), 1));
  return detail::ceil_div(n, b);
}

}  // namespace fpi::data
