// TensorDataset and DataLoader: batches are gathered row by row with memcpy from contiguous CPU
// tensors; shuffling is a Fisher–Yates pass driven by fpi::Generator, so an order depends on the seed
// only, not on the platform's standard library. Iterators record the position a state dict saves.
#include "fpi/data/loader.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include "data/sampling.hpp"

namespace fpi::data {

TensorDataset::TensorDataset(std::vector<Tensor> tensors) {
  FPI_CHECK(!tensors.empty(), "TensorDataset: needs at least one tensor");
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    FPI_CHECK(t.defined(), "TensorDataset: tensor ", i, " is undefined");
    FPI_CHECK(t.dim() >= 1, "TensorDataset: tensor ", i, " is a scalar; every tensor needs a row dimension (0)");
    FPI_CHECK(t.device().is_cpu(), "TensorDataset: tensor ", i, " is on ", t.device().str(),
              "; keep the dataset on the CPU and move each batch with .to(device)");
    FPI_CHECK(t.size(0) == tensors[0].size(0), "TensorDataset: tensor ", i, " has ", t.size(0),
              " rows but tensor 0 has ", tensors[0].size(0), "; every tensor needs the same size along dimension 0");
    tensors_.push_back(t.detach().contiguous());
  }
  rows_ = tensors_[0].size(0);
}

std::vector<Tensor> TensorDataset::gather(std::span<const std::int64_t> indices) const {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors_) {
    Shape shape = t.shape();
    shape[0] = static_cast<std::int64_t>(indices.size());
    Tensor batch = empty(shape, t.options());
    const std::size_t row_bytes = static_cast<std::size_t>(t.numel() / std::max<std::int64_t>(rows_, 1)) * dtype_size(t.dtype());
    const auto* src = static_cast<const char*>(t.raw_data());
    auto* dst = static_cast<char*>(batch.raw_data());
    for (std::size_t i = 0; i < indices.size(); ++i) {
      FPI_CHECK(indices[i] >= 0 && indices[i] < rows_, "TensorDataset::gather: row ", indices[i],
                " is out of range for a dataset of ", rows_, " rows");
      std::memcpy(dst + i * row_bytes, src + indices[i] * row_bytes, row_bytes);
    }
    out.push_back(std::move(batch));
  }
  return out;
}

DataLoader::DataLoader(TensorDataset dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options), generator_(options.seed), order_(dataset_.size()) {
  FPI_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be at least 1, got ", options_.batch_size);
  std::iota(order_.begin(), order_.end(), std::int64_t{0});
}

std::int64_t DataLoader::num_batches() const {
  const std::int64_t n = dataset_.size();
  const std::int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : detail::ceil_div(n, b);
}

void DataLoader::start_epoch() {
  ++epoch_;
  next_batch_ = 0;
  if (!options_.shuffle) return;
  std::iota(order_.begin(), order_.end(), std::int64_t{0});
  // Fisher–Yates; the modulo bias of a 64-bit draw is about size / 2^64, negligible at any dataset size.
  for (std::size_t i = order_.size(); i-- > 1;) {
    std::swap(order_[i], order_[generator_.next_u64() % (i + 1)]);
  }
}

DataLoader::Batch DataLoader::batch(std::int64_t index) const {
  FPI_CHECK(index >= 0 && index < num_batches(), "DataLoader::batch: index ", index, " is out of range (",
            num_batches(), " batches)");
  // index < num_batches() makes begin < size(), so neither the product nor size() - begin can overflow,
  // whatever batch_size a caller asked for.
  const std::int64_t begin = index * options_.batch_size;
  const std::int64_t count = std::min(options_.batch_size, dataset_.size() - begin);
  return dataset_.gather(std::span<const std::int64_t>(order_).subspan(begin, count));
}

DataLoader::Iterator::Iterator(DataLoader* loader, std::int64_t index) : loader_(loader), index_(index) { load(); }

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  ++index_;
  load();
  return *this;
}

void DataLoader::Iterator::load() {
  if (index_ >= loader_->num_batches()) return;
  current_ = loader_->batch(index_);
  loader_->next_batch_ = index_ + 1;
}

DataLoader::Iterator DataLoader::begin() {
  start_epoch();
  return Iterator(this, 0);
}

DataLoader::Iterator DataLoader::Remaining::begin() const {
  return Iterator(loader, loader->epoch_ == 0 ? loader->num_batches() : loader->next_batch_);
}

State DataLoader::state_dict() const {
  State out;
  out.set("epoch", epoch_);
  out.set("next_batch", next_batch_);
  out.set("order", order_);
  out.merge("generator.", generator_.state_dict());
  out.set("batch_size", options_.batch_size);
  out.set("shuffle", std::int64_t{options_.shuffle});
  out.set("drop_last", std::int64_t{options_.drop_last});
  return out;
}

void DataLoader::load_state_dict(const State& state) {
  StateReader in(state, "DataLoader.load_state_dict");
  in.require("batch_size", options_.batch_size);
  in.require("shuffle", std::int64_t{options_.shuffle});
  in.require("drop_last", std::int64_t{options_.drop_last});
  const std::int64_t epoch = in.get_int64("epoch");
  const std::int64_t next_batch = in.get_int64("next_batch");
  const std::vector<std::int64_t>& order = in.get_int64_list("order");
  const State generator_state = in.get_under("generator.");
  in.check_all_read();

  FPI_CHECK(epoch >= 0, in.where(), ": key 'epoch' is ", epoch, ", expected a count of epochs (0 or more)");
  FPI_CHECK(next_batch >= 0 && next_batch <= num_batches(), in.where(), ": key 'next_batch' is ", next_batch,
            ", but the loader has ", num_batches(), " batches");
  FPI_CHECK(static_cast<std::int64_t>(order.size()) == dataset_.size(), in.where(), ": key 'order' has ",
            order.size(), " rows but this loader's dataset has ", dataset_.size());
  std::vector<bool> seen(order.size(), false);
  for (const std::int64_t row : order) {
    FPI_CHECK(row >= 0 && row < dataset_.size() && !seen[row], in.where(),
              ": key 'order' is not a permutation of the dataset's rows (row ", row, ")");
    seen[row] = true;
  }
  Generator generator;
  try {
    generator.load_state_dict(generator_state);
  } catch (const Error& e) {
    fail(in.where(), ", under 'generator.': ", e.what());
  }

  generator_ = generator;
  order_ = order;
  epoch_ = epoch;
  next_batch_ = next_batch;
}

}  // namespace fpi::data
