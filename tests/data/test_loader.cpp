// TensorDataset and DataLoader: batch sizes and contents in order, drop_last, shuffling that is a
// permutation per epoch and repeats for a seed, rows kept aligned across tensors, copies not views,
// resuming from a state dict mid-epoch, and the errors a user can cause.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "fpi/data/loader.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

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

// A batch size beyond the dataset, up to the largest int64, is one batch of every row (or none when
// dropping the short batch), not an overflow in the batch count or the batch's end.
TEST(DataLoader, AnyBatchSizeBeyondTheDatasetIsOneBatchOfEveryRow) {
  for (const std::int64_t batch_size : {std::int64_t{5}, std::numeric_limits<std::int64_t>::max()}) {
    DataLoader loader(make_dataset(4), {.batch_size = batch_size});
    ASSERT_EQ(loader.num_batches(), 1) << batch_size;
    EXPECT_EQ(rows_of(loader.batch(0)), (std::vector<std::int64_t>{0, 1, 2, 3})) << batch_size;
    EXPECT_EQ(DataLoader(make_dataset(4), {.batch_size = batch_size, .drop_last = true}).num_batches(), 0);
  }
}

// The batches a loop sees from here on: the rest of the current epoch, then `epochs` whole ones.
std::vector<std::vector<std::int64_t>> batches_from_here(DataLoader& loader, int epochs) {
  std::vector<std::vector<std::int64_t>> out;
  for (const auto& batch : loader.rest_of_epoch()) out.push_back(rows_of(batch));
  for (int e = 0; e < epochs; ++e)
    for (const auto& batch : loader) out.push_back(rows_of(batch));
  return out;
}

TEST(DataLoaderState, ResumesMidEpochWithTheSameBatches) {
  for (const bool shuffle : {true, false}) {
    const DataLoaderOptions options{.batch_size = 3, .shuffle = shuffle, .drop_last = true, .seed = 5};
    DataLoader original(make_dataset(11), options);
    epoch(original);
    std::int64_t taken = 0;
    for (const auto& batch : original) {
      rows_of(batch);
      if (++taken == 2) break;  // a checkpoint after the second batch of the second epoch
    }
    EXPECT_EQ(original.epoch(), 2);
    EXPECT_EQ(original.next_batch(), 2);
    const State saved = original.state_dict().clone();
    const auto expected = batches_from_here(original, 2);
    ASSERT_EQ(expected.size(), 1u + 2u * 3u) << "one batch left in the epoch, then two epochs of three";

    DataLoader resumed(make_dataset(11), {.batch_size = 3, .shuffle = shuffle, .drop_last = true, .seed = 77});
    resumed.load_state_dict(saved);
    EXPECT_EQ(resumed.epoch(), 2);
    EXPECT_EQ(resumed.next_batch(), 2);
    EXPECT_EQ(batches_from_here(resumed, 2), expected) << "shuffle " << shuffle;
  }
}

TEST(DataLoaderState, RestOfEpochIsEmptyAtAnEpochBoundaryAndBeforeTheFirst) {
  DataLoader loader(make_dataset(6), {.batch_size = 4, .shuffle = true, .seed = 3});
  EXPECT_TRUE(batches_from_here(loader, 0).empty()) << "no epoch has started";
  epoch(loader);
  EXPECT_EQ(loader.next_batch(), loader.num_batches());
  DataLoader resumed(make_dataset(6), {.batch_size = 4, .shuffle = true, .seed = 4});
  resumed.load_state_dict(loader.state_dict());
  EXPECT_TRUE(batches_from_here(resumed, 0).empty());
  EXPECT_EQ(epoch(resumed), epoch(loader));
}

TEST(DataLoaderState, RefusesAStateThatDoesNotFit) {
  using testing::error_of;
  DataLoader loader(make_dataset(6), {.batch_size = 2, .shuffle = true});
  epoch(loader);
  const State good = loader.state_dict();
  const auto replaced = [&](const std::string& key, State::Value value) {
    State s;
    for (const auto& [k, v] : good.entries()) s.set(k, k == key ? value : v);
    return s;
  };
  const std::string hint = "; the state was saved by another kind of object or with other settings";
  DataLoader other_batch(make_dataset(6), {.batch_size = 3, .shuffle = true});
  EXPECT_EQ(error_of([&] { other_batch.load_state_dict(good); }),
            "DataLoader.load_state_dict: key 'batch_size' is 2 in the state but 3 here" + hint);
  DataLoader in_order(make_dataset(6), {.batch_size = 2});
  EXPECT_EQ(error_of([&] { in_order.load_state_dict(good); }),
            "DataLoader.load_state_dict: key 'shuffle' is 1 in the state but 0 here" + hint);
  DataLoader bigger(make_dataset(7), {.batch_size = 2, .shuffle = true});
  EXPECT_EQ(error_of([&] { bigger.load_state_dict(good); }),
            "DataLoader.load_state_dict: key 'order' has 6 rows but this loader's dataset has 7");
  EXPECT_EQ(error_of([&] { loader.load_state_dict(replaced("order", std::vector<std::int64_t>{0, 1, 2})); }),
            "DataLoader.load_state_dict: key 'order' has 3 rows but this loader's dataset has 6");
  EXPECT_EQ(error_of([&] { loader.load_state_dict(replaced("order", std::vector<std::int64_t>{0, 1, 2, 3, 4, 4})); }),
            "DataLoader.load_state_dict: key 'order' is not a permutation of the dataset's rows (row 4)");
  EXPECT_EQ(error_of([&] { loader.load_state_dict(replaced("next_batch", 4)); }),
            "DataLoader.load_state_dict: key 'next_batch' is 4, but the loader has 3 batches");
  EXPECT_EQ(error_of([&] { loader.load_state_dict(replaced("generator.state", std::vector<std::int64_t>{1, 2, 3})); }),
            "DataLoader.load_state_dict, under 'generator.': Generator.load_state_dict: key 'state' has 3 words, "
            "expected 4");
  State extra = good;
  extra.set("sampler", "random");
  EXPECT_EQ(error_of([&] { loader.load_state_dict(extra); }),
            "DataLoader.load_state_dict: unknown key 'sampler'" + hint);
}

}  // namespace
}  // namespace fpi::data
