// Bucketed gradient averaging (dist::GradientBuckets) and the drift check, on an in-process stand-in for
// a second rank: buckets start during the backward, in order, and give exactly what one all-reduce after
// the backward gives; a rank whose parameters differ from rank 0's makes the check fail loudly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fpi/autograd.hpp"
#include "fpi/dist/data_parallel.hpp"
#include "fpi/generator.hpp"
#include "fpi/ops.hpp"

namespace {

using fpi::Tensor;
using fpi::dist::ReduceOp;

// Rank 1 of two, the other rank simulated in this process: a sum adds `peer` times this rank's values
// (1: rank 0 holds the same values, 0: zeros), a broadcast delivers `root_bytes` (rank 0's), and a
// started all-reduce takes effect only when tested or waited on, as a real one would.
class SimulatedPair final : public fpi::dist::Communicator {
 public:
  double peer = 1.0;
  std::vector<std::byte> root_bytes;
  std::vector<std::size_t> started_sizes;  // of every start_all_reduce, in order
  std::function<void()> on_start;

  int rank() const override { return 1; }
  int size() const override { return 2; }
  std::string describe() const override { return "simulated rank 1 of 2"; }
  void all_reduce(std::span<float> values, ReduceOp op) override {
    for (float& v : values) v = op == ReduceOp::Sum ? v + static_cast<float>(peer) * v : v;
  }
  void all_reduce(std::span<double> values, ReduceOp op) override {
    for (double& v : values) v = op == ReduceOp::Sum ? v + peer * v : v;
  }
  std::unique_ptr<fpi::dist::PendingReduce> start_all_reduce(std::span<double> values, ReduceOp op) override {
    started_sizes.push_back(values.size());
    if (on_start) on_start();
    return std::make_unique<Pending>(*this, values, op);
  }
  void broadcast(std::span<std::byte> bytes) override {
    ASSERT_EQ(bytes.size(), root_bytes.size());
    std::memcpy(bytes.data(), root_bytes.data(), bytes.size());
  }
  void barrier() override {}

 protected:
  void abort_processes(int) override {}

 private:
  class Pending final : public fpi::dist::PendingReduce {
   public:
    Pending(SimulatedPair& pair, std::span<double> values, ReduceOp op) : pair_(pair), values_(values), op_(op) {}
    bool test() override {
      wait();
      return true;
    }
    void wait() override {
      if (!done_) pair_.all_reduce(values_, op_);
      done_ = true;
    }

   private:
    SimulatedPair& pair_;
    std::span<double> values_;
    ReduceOp op_;
    bool done_ = false;
  };
};

// A three-layer float32 MLP's parameters and a loss over a batch of 6.
struct Mlp {
  std::vector<Tensor> parameters;
  explicit Mlp(std::uint64_t seed) {
    fpi::Generator generator(seed);
    for (const auto& shape : std::vector<fpi::Shape>{{8, 5}, {8}, {8, 8}, {8}, {3, 8}, {3}})
      parameters.push_back(fpi::randn(shape, {.requires_grad = true}, &generator));
  }
  Tensor loss(std::uint64_t seed) const {
    fpi::Generator generator(seed);
    Tensor h = fpi::randn({6, 5}, {}, &generator);
    for (std::size_t layer = 0; layer < 3; ++layer) {
      h = fpi::linear(h, parameters[2 * layer], parameters[2 * layer + 1]);
      if (layer < 2) h = fpi::tanh(h);
    }
    return fpi::mean(h * h);
  }
  std::vector<std::vector<double>> grads() const {
    std::vector<std::vector<double>> out;
    for (const Tensor& p : parameters) out.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<double>{});
    return out;
  }
};

TEST(DistBuckets, TinyBucketsStartDuringTheBackwardAndEqualOneAllReduce) {
  SimulatedPair one_buffer, bucketed;
  Mlp reference(3), model(3);
  reference.loss(11).backward();
  std::vector<double> reference_extras = {0.5, 2.0};
  fpi::dist::all_reduce_gradients(one_buffer, reference.parameters, 2, 6, reference_extras);

  // Buckets of 32 values over the gradients laid end to end, last parameter first: 3 + 24 + 8 + 64 + 8 +
  // 40 = 147 values make 5 buckets; the first layer's weight (the last 40) spans the last two.
  fpi::dist::GradientBuckets buckets(bucketed, model.parameters, 32 * sizeof(double));
  EXPECT_EQ(buckets.bucket_count(), 5u);
  std::vector<bool> first_layer_done;  // at each start: had the backward reached the first layer's weight?
  bucketed.on_start = [&] { first_layer_done.push_back(model.parameters[0].grad().defined()); };
  buckets.begin_step(2, 6);
  fpi::autograd::backward({model.loss(11)}, {}, std::nullopt, false,
                          [&](const Tensor& leaf) { buckets.gradient_ready(leaf); });
  // Every bucket was started by the hook, the first three while the backward had the first layer to do.
  EXPECT_EQ(first_layer_done, (std::vector<bool>{false, false, false, true, true}));
  std::vector<double> extras = {0.5, 2.0};
  buckets.finish(extras);
  // Then the six "has a gradient" flags and the two extras in one more all-reduce.
  EXPECT_EQ(bucketed.started_sizes, (std::vector<std::size_t>{32, 32, 32, 32, 19, 6 + 2}));
  EXPECT_EQ(extras, reference_extras);
  EXPECT_EQ(model.grads(), reference.grads());
}

TEST(DistBuckets, AParameterWithoutAGradientOnThisRankTakesThePeersAndStepsRepeat) {
  SimulatedPair pair;
  Mlp model(5);
  fpi::dist::GradientBuckets buckets(pair, model.parameters, 1 << 20);
  EXPECT_EQ(buckets.bucket_count(), 1u);
  for (int step = 0; step < 2; ++step) {
    for (const Tensor& p : model.parameters) p.zero_grad();
    buckets.begin_step(3, 6);
    // This rank's batch was empty: no backward, no gradients; the simulated peer has zeros too.
    std::vector<double> extras = {1.0};
    buckets.finish(extras);
    EXPECT_EQ(extras, (std::vector<double>{2.0}));
    for (const Tensor& p : model.parameters) EXPECT_FALSE(p.grad().defined());
  }
  buckets.begin_step(3, 6);
  fpi::autograd::backward({model.loss(2)}, {}, std::nullopt, false,
                          [&](const Tensor& leaf) { buckets.gradient_ready(leaf); });
  const std::vector<std::vector<double>> own = model.grads();
  std::vector<double> extras;
  buckets.finish(extras);
  // 3 of 6 samples here and the same on the peer: the sum of the two halves is this rank's gradient.
  EXPECT_EQ(model.grads(), own);
  EXPECT_THROW(buckets.begin_step(7, 6), fpi::Error);
}

TEST(DistDriftCheck, FiresOnARankWhoseParametersDifferFromRankZeros) {
  const Tensor a = fpi::tensor({1.0, 2.0, 3.0});
  const Tensor drifted = fpi::tensor({1.0, 2.0, std::nextafter(3.0f, 4.0f)});
  const std::uint64_t root_hash = fpi::dist::parameter_hash({a});
  SimulatedPair pair;
  pair.peer = 0.0;  // rank 0 agrees with itself: its "differs" flag is 0
  pair.root_bytes.resize(sizeof root_hash);
  std::memcpy(pair.root_bytes.data(), &root_hash, sizeof root_hash);
  EXPECT_NO_THROW(fpi::dist::check_parameters_agree(pair, {a.clone()}, "after step 3"));
  try {
    fpi::dist::check_parameters_agree(pair, {drifted}, "after step 3");
    ADD_FAILURE() << "the drift check did not fire";
  } catch (const fpi::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("after step 3: the parameters of rank(s) 1 differ from rank 0's"), std::string::npos)
        << message;
  }
}

}  // namespace
