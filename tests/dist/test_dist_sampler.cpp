// fpi::dist without MPI: the shards of the distributed sampler, the single-process communicator, the
// gradient averaging's scaling, the parameter hash and the launcher detection behind the refusal of a
// build without MPI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "fpi/dist/communicator.hpp"
#include "fpi/dist/data_parallel.hpp"
#include "fpi/dist/sampler.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::dist::Shard;

TEST(DistSampler, ShardsAreDisjointCoverTheBatchAndDifferByAtMostOne) {
  for (int ranks = 1; ranks <= 4; ++ranks)
    for (std::int64_t count : {0, 1, 2, 3, 5, 7, 50, 203}) {
      std::vector<int> owner(static_cast<std::size_t>(count), -1);
      std::int64_t smallest = count, largest = 0, next = 0;
      for (int rank = 0; rank < ranks; ++rank) {
        const Shard shard = fpi::dist::shard_of(count, rank, ranks);
        EXPECT_EQ(shard.begin, next) << count << " rows, rank " << rank << " of " << ranks;
        next = shard.end;
        smallest = std::min(smallest, shard.size());
        largest = std::max(largest, shard.size());
        for (std::int64_t row = shard.begin; row < shard.end; ++row) {
          EXPECT_EQ(owner[static_cast<std::size_t>(row)], -1) << "row " << row << " taken twice";
          owner[static_cast<std::size_t>(row)] = rank;
        }
      }
      EXPECT_EQ(next, count);
      for (std::size_t row = 0; row < owner.size(); ++row) EXPECT_GE(owner[row], 0) << "row " << row << " untaken";
      EXPECT_LE(largest - smallest, 1) << count << " rows on " << ranks << " ranks";
    }
}

TEST(DistSampler, ShardsOfABatchJoinBackIntoTheBatch) {
  // 7 rows: divisible by none of 2, 3 and 4.
  const fpi::Tensor features = fpi::arange(0.0, 21.0).reshape({7, 3});
  const fpi::Tensor labels = fpi::arange(100.0, 107.0);
  const fpi::data::Batch batch{{{"features", features}, {"labels", labels}}};
  for (int ranks = 1; ranks <= 4; ++ranks) {
    std::vector<double> joined_features, joined_labels;
    for (int rank = 0; rank < ranks; ++rank) {
      const fpi::data::Batch shard = fpi::dist::shard_batch(batch, rank, ranks);
      ASSERT_EQ(shard.fields.size(), 2u);
      EXPECT_EQ(shard.size(), fpi::dist::shard_of(7, rank, ranks).size());
      for (double v : shard.at("features").to_vector()) joined_features.push_back(v);
      for (double v : shard.at("labels").to_vector()) joined_labels.push_back(v);
    }
    EXPECT_EQ(joined_features, features.to_vector()) << ranks << " ranks";
    EXPECT_EQ(joined_labels, labels.to_vector()) << ranks << " ranks";
  }
}

TEST(DistSampler, RejectsABadRank) {
  EXPECT_THROW(fpi::dist::shard_of(10, 2, 2), fpi::Error);
  EXPECT_THROW(fpi::dist::shard_of(10, 0, 0), fpi::Error);
}

TEST(DistCommunicator, SingleProcessCollectivesAreTheIdentity) {
  const auto communicator = fpi::dist::single_process();
  EXPECT_EQ(communicator->rank(), 0);
  EXPECT_EQ(communicator->size(), 1);
  const fpi::Tensor t = fpi::tensor({1.0, -2.5, 3.0});
  communicator->all_reduce(t);
  communicator->all_reduce(t, fpi::dist::ReduceOp::Max);
  communicator->broadcast(t);
  communicator->barrier();
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1.0, -2.5, 3.0}));
  EXPECT_THROW(communicator->all_reduce(t.slice(0, 0, 3, 2)), fpi::Error);  // not contiguous
}

// A rank that holds 3 of a global batch of 7 contributes 3/7 of its shard's mean gradient; alone, that is
// the whole reduced gradient. A parameter without a gradient keeps none; the extras pass through.
TEST(DistDataParallel, GradientsAreScaledByTheShardsShareOfTheGlobalBatch) {
  const auto communicator = fpi::dist::single_process();
  const fpi::Tensor a = fpi::tensor({1.0, 2.0}, {.requires_grad = true});
  const fpi::Tensor b = fpi::tensor({5.0}, {.requires_grad = true});
  a.set_grad(fpi::tensor({7.0, -14.0}));
  std::vector<double> extras = {0.25, 3.0};
  fpi::dist::all_reduce_gradients(*communicator, {a, b}, 3, 7, extras);
  ASSERT_TRUE(a.grad().defined());
  const std::vector<double> grad = a.grad().to_vector();
  EXPECT_FLOAT_EQ(static_cast<float>(grad[0]), 3.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(grad[1]), -6.0f);
  EXPECT_EQ(a.grad().dtype(), a.dtype());
  EXPECT_FALSE(b.grad().defined());
  EXPECT_EQ(extras, (std::vector<double>{0.25, 3.0}));
  EXPECT_THROW(fpi::dist::all_reduce_gradients(*communicator, {a}, 8, 7, extras), fpi::Error);
}

TEST(DistDataParallel, ParameterHashSeesEveryBitAndSingleProcessAgrees) {
  const fpi::Tensor a = fpi::tensor({1.0, 2.0, 3.0});
  const fpi::Tensor b = fpi::tensor({4.0});
  const std::uint64_t hash = fpi::dist::parameter_hash({a, b});
  EXPECT_EQ(hash, fpi::dist::parameter_hash({a.clone(), b.clone()}));
  EXPECT_NE(hash, fpi::dist::parameter_hash({b, a}));
  const fpi::Tensor nudged = fpi::tensor({1.0, 2.0, std::nextafter(3.0f, 4.0f)});
  EXPECT_NE(hash, fpi::dist::parameter_hash({nudged, b}));
  const auto communicator = fpi::dist::single_process();
  EXPECT_NO_THROW(fpi::dist::check_parameters_agree(*communicator, {a, b}, "test"));
}

// Sets an environment variable for one scope and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_.c_str(), old_->c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

TEST(DistLauncher, ReadsTheLaunchersWorldSize) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK"))
    GTEST_SKIP() << "the tests themselves run under an MPI launcher";
  EXPECT_EQ(fpi::dist::launcher_world_size(), 1);
  {
    const ScopedEnv size("OMPI_COMM_WORLD_SIZE", "3");
    EXPECT_EQ(fpi::dist::launcher_world_size(), 3);
  }
  {
    const ScopedEnv size("PMI_SIZE", "4");
    EXPECT_EQ(fpi::dist::launcher_world_size(), 4);
  }
  {
    const ScopedEnv rank("PMIX_RANK", "2");
    EXPECT_EQ(fpi::dist::launcher_world_size(), 3);
  }
  {
    const ScopedEnv size("OMPI_COMM_WORLD_SIZE", "lots");
    EXPECT_EQ(fpi::dist::launcher_world_size(), 1);
  }
}

}  // namespace
