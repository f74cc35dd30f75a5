// TensorDataset and DataLoader: batch sizes and contents in order, drop_last, shuffling that is a
// permutation per epoch and repeats for a seed, rows kept aligned across tensors, copies not views,
// and the errors a user can cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "fpi/data/loader.hpp"
#include "fpi/ops.hpp"

namespace fpi::data {
namespace {

// x row i is (3i, 3i+1, 3i+2) in float32; y row i is i in float64, so a batch shows which rows it holds.
TensorDataset make_dataset(std::int64_t rows) {
  return TensorDataset({arange(0, 3.0 * rows).reshape({rows, 3}), arange(0, rows, 1, {.dtype = kFloat64})});
}

std::vector<std::int64_t> rows_of(const DataLoader::Batch& batch) {
  const auto y = batch[1].to_vector<double>();
  const auto x = batch[0].to_vector<double>();
  std::vector<std::int64_t> rows;
  for (std::size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(x[3 * i], 3 * y[i]) << "x and y rows are out of step";
    EXPECT_EQ(x[3 * i + 2], 3 * y[i] + 2);
    rows.push_back(static_cast<std::int64_t>(y[i]));
  }
  return rows;
}

std::vector<std::int64_t> epoch(DataLoader& loader) {
  std::vector<std::int64_t> order;
  for (const auto& batch : loader) {
    const auto rows = rows_of(batch);
    order.insert(order.end(), rows.begin(), rows.end());
  }
  return order;
}

TEST(DataLoader, BatchesInOrder) {
  DataLoader loader(make_dataset(10), {.batch_size = 4});
  EXPECT_EQ(loader.num_batches(), 3);
  std::vector<std::vector<std::int64_t>> batches;
  for (const auto& batch : loader) {
    EXPECT_EQ(batch[0].shape(), (Shape{static_cast<std::int64_t>(batch[1].size(0)), 3}));
    EXPECT_EQ(batch[0].dtype(), kFloat32);
    EXPECT_EQ(batch[1].dtype(), kFloat64);
    batches.push_back(rows_of(batch));
  }
  EXPECT_EQ(batches, (std::vector<std::vector<std::int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  EXPECT_EQ(rows_of(loader.batch(1)), (std::vector<std::int64_t>{4, 5, 6, 7}));
}

TEST(DataLoader, DropLastDropsTheShortBatch) {
  DataLoader loader(make_dataset(10), {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(loader.num_batches(), 2);
  EXPECT_EQ(epoch(loader), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  DataLoader exact(make_dataset(8), {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(exact.num_batches(), 2);
  DataLoader empty_set(make_dataset(0), {.batch_size = 4});
  EXPECT_EQ(empty_set.num_batches(), 0);
  EXPECT_TRUE(epoch(empty_set).empty());
}

TEST(DataLoader, ShuffleIsAPermutationPerEpochAndRepeatsForASeed) {
  DataLoader a(make_dataset(50), {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader b(make_dataset(50), {.batch_size = 8, .shuffle = true, .seed = 7});
  DataLoader c(make_dataset(50), {.batch_size = 8, .shuffle = true, .seed = 8});
  const auto a1 = epoch(a), a2 = epoch(a);
  std::vector<std::int64_t> sorted = a1, identity(50);
  std::sort(sorted.begin(), sorted.end());
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity) << "an epoch visits every row once";
  EXPECT_NE(a1, identity);
  EXPECT_NE(a1, a2) << "each epoch draws a new order";
  EXPECT_EQ(epoch(b), a1);
  EXPECT_EQ(epoch(b), a2);
  EXPECT_NE(epoch(c), a1);
}

TEST(DataLoader, BatchesAreCopies) {
  const Tensor x = zeros({4, 2});
  DataLoader loader(TensorDataset({x}), {.batch_size = 2});
  DataLoader::Batch batch = loader.batch(0);
  batch[0].fill_(5.0);
  EXPECT_EQ(x.sum().item(), 0.0);
  EXPECT_EQ(loader.batch(0)[0].sum().item(), 0.0);
}

TEST(DataLoader, ReadsNonContiguousTensorsByRow) {
  const Tensor xt = arange(0, 6).reshape({3, 2}).t();  // rows (0, 2, 4) and (1, 3, 5)
  DataLoader loader(TensorDataset({xt}), {.batch_size = 1});
  EXPECT_EQ(loader.batch(1)[0].to_vector<double>(), (std::vector<double>{1, 3, 5}));
  EXPECT_EQ(loader.batch(1)[0].shape(), (Shape{1, 3}));
}

TEST(DataLoader, RejectsWhatCannotWork) {
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { DataLoader(make_dataset(4), {.batch_size = 0}); }),
            "DataLoader: batch_size must be at least 1, got 0");
  EXPECT_EQ(message([] { TensorDataset({zeros({4, 2}), zeros({5})}); }),
            "TensorDataset: tensor 1 has 5 rows but tensor 0 has 4; every tensor needs the same size along dimension 0");
  EXPECT_EQ(message([] { TensorDataset({}); }), "TensorDataset: needs at least one tensor");
  EXPECT_EQ(message([] { TensorDataset({scalar_tensor(1.0)}); }),
            "TensorDataset: tensor 0 is a scalar; every tensor needs a row dimension (0)");
  DataLoader loader(make_dataset(4), {.batch_size = 2});
  EXPECT_EQ(message([&] { loader.batch(2); }), "DataLoader::batch: index 2 is out of range (2 batches)");
}

}  // namespace
}  // namespace fpi::data
