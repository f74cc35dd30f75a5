// Mini-batches for training loops and benchmarks: a TensorDataset holds N rows of several tensors (row =
// index along dimension 0) and a DataLoader walks it in batches, in order or shuffled by a seeded
// fpi::Generator. Batches are new CPU tensors made by copying rows, so changing one never touches the
// dataset; move a batch to a device with .to(device).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/tensor.hpp"

namespace fpi::data {

class TensorDataset {
 public:
  // Every tensor needs at least one dimension, the same size along dimension 0, and must live on the
  // CPU. The dataset keeps detached contiguous handles (no copy when they are contiguous already).
  explicit TensorDataset(std::vector<Tensor> tensors);

  std::int64_t size() const { return rows_; }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  // The rows `indices` (in that order) of every tensor, copied into new tensors.
  std::vector<Tensor> gather(std::span<const std::int64_t> indices) const;

 private:
  std::vector<Tensor> tensors_;
  std::int64_t rows_ = 0;
};

struct DataLoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;  // drop the last batch when it is smaller than batch_size
  std::uint64_t seed = 0;  // seeds the generator that draws each epoch's order when shuffling
};

class DataLoader {
 public:
  using Batch = std::vector<Tensor>;  // one tensor per dataset tensor, batch rows first

  DataLoader(TensorDataset dataset, DataLoaderOptions options);

  const TensorDataset& dataset() const { return dataset_; }
  std::int64_t num_batches() const;
  // Starts an epoch: when shuffling, draws the next permutation from the loader's generator, so the
  // epochs of a loader differ from each other but repeat exactly for the same seed.
  void start_epoch();
  // Batch `index` of the current epoch.
  Batch batch(std::int64_t index) const;

  class Iterator {
   public:
    Iterator(const DataLoader* loader, std::int64_t index);
    const Batch& operator*() const { return current_; }
    Iterator& operator++();
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    const DataLoader* loader_;
    std::int64_t index_;
    Batch current_;
  };
  // A range-for over the loader is one epoch: begin() calls start_epoch().
  Iterator begin();
  Iterator end() const { return Iterator(this, num_batches()); }

 private:
  TensorDataset dataset_;
  DataLoaderOptions options_;
  Generator generator_;
  std::vector<std::int64_t> order_;
};

}  // namespace fpi::data
