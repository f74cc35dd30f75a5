// Mini-batches for training loops and benchmarks: a TensorDataset holds N rows of several tensors (row =
// index along dimension 0) and a DataLoader walks it in batches, in order or shuffled by a seeded
// fpi::Generator. Batches are new CPU tensors made by copying rows, so changing one never touches the
// dataset; move a batch to a device with .to(device). The loader's state dict (epoch, position, order,
// generator) lets a training loop stop anywhere in an epoch and resume with the same batches.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "fpi/generator.hpp"
#include "fpi/state.hpp"
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
  // Batch `index` of the current epoch (random access; it does not move the position below).
  Batch batch(std::int64_t index) const;

  // The epochs started so far, and the index of the batch after the one an iteration handed out last
  // (num_batches() once an epoch has been walked to its end).
  std::int64_t epoch() const { return epoch_; }
  std::int64_t next_batch() const { return next_batch_; }

  class Iterator {
   public:
    // Hands out batch `index`, which moves the loader's position past it (none at num_batches()).
    Iterator(DataLoader* loader, std::int64_t index);
    const Batch& operator*() const { return current_; }
    Iterator& operator++();
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    void load();

    DataLoader* loader_;
    std::int64_t index_;
    Batch current_;
  };
  // A range-for over the loader is one epoch: begin() calls start_epoch().
  Iterator begin();
  Iterator end() { return Iterator(this, num_batches()); }

  // The batches from next_batch() to the end of the current epoch, without starting a new one: how a
  // loader restored from a state saved mid-epoch finishes that epoch. Empty before the first epoch and
  // after an epoch's last batch, so a resumed loop reads
  //   for (const auto& batch : loader.rest_of_epoch()) train(batch);
  //   while (loader.epoch() < epochs) for (const auto& batch : loader) train(batch);
  struct Remaining {
    DataLoader* loader;
    Iterator begin() const;
    Iterator end() const { return loader->end(); }
  };
  Remaining rest_of_epoch() { return Remaining{this}; }

  // "epoch", "next_batch", "order" (this epoch's row order), the generator under "generator.", and the
  // options that give those meaning ("batch_size", "shuffle", "drop_last"), which a loader only loads
  // when its own are the same, for a dataset of the same size.
  State state_dict() const;
  void load_state_dict(const State& state);

 private:
  TensorDataset dataset_;
  DataLoaderOptions options_;
  Generator generator_;
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  std::int64_t next_batch_ = 0;
};

}  // namespace fpi::data
