// State (the checkpoint form of non-module state) and the objects of the lower layers that use it: the
// ordered key → value list, its reader's errors, the exact text form for a file's metadata, the
// generator's state dict, LipschitzBound's power-iteration buffers, and one checkpoint that gathers a
// model, an optimizer, a schedule, a loader and the global generator the way a trainer will.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "fpi/data/loader.hpp"
#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "fpi/state.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using testing::error_of;

constexpr TensorOptions kF64{.dtype = kFloat64};

// Bit-for-bit equality of two tensors' values (NaN payloads included), with a readable failure.
void expect_identical(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  const auto a = actual.to_vector<double>(), e = expected.to_vector<double>();
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint64_t>(a[i]), std::bit_cast<std::uint64_t>(e[i])) << what << ", element " << i;
}

// What a checkpoint file would give back: the state through flatten and unflatten, with its tensors
// copied so that the original's later in-place steps cannot reach them.
State through_file(const State& state) {
  const FlatState flat = flatten(state.clone());
  return unflatten(flat);
}

// A scalar value as flatten writes it, which tells doubles apart bit for bit.
std::string exact_text(const State::Value& value) {
  State s;
  s.set("value", value);
  return flatten(s).metadata.at(0).second;
}

TEST(State, KeepsOrderAndRefusesDuplicatesAndUndefinedTensors) {
  State s;
  s.set("kind", "Adam");
  s.set("lr", 0.5);
  s.set("count", 3);
  s.set("shape", std::vector<std::int64_t>{2, 3});
  s.set("w", ones({2}));
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s.entries()[0].first, "kind");
  EXPECT_EQ(s.entries()[4].first, "w");
  EXPECT_EQ(std::get<std::int64_t>(*s.find("count")), 3);
  EXPECT_EQ(s.find("missing"), nullptr);
  EXPECT_EQ(error_of([&] { s.set("lr", 0.1); }), "State::set: key 'lr' is already set");
  EXPECT_EQ(error_of([&] { s.set("t", Tensor()); }),
            "State::set: key 't' is an undefined tensor; leave state that does not exist out");
  EXPECT_EQ(error_of([&] { s.set("", 1.0); }), "State::set: the key is empty");
}

TEST(State, NestsUnderAPrefixAndTakesItBackOut) {
  State inner;
  inner.set("lr", 0.25);
  inner.set("state.0.exp_avg", zeros({2}));
  State outer;
  outer.set("epoch", 4);
  outer.merge("optimizer.", inner);
  EXPECT_TRUE(outer.contains("optimizer.state.0.exp_avg"));
  const State back = outer.under("optimizer.");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back.entries()[0].first, "lr");
  EXPECT_EQ(back.entries()[1].first, "state.0.exp_avg");
  EXPECT_TRUE(outer.under("model.").empty());
}

TEST(State, ConvertsAModuleStateDict) {
  auto fc = std::make_shared<nn::Linear>(3, 2);
  const State state(fc->state_dict());
  ASSERT_EQ(state.size(), 2u);
  auto other = std::make_shared<nn::Linear>(3, 2);
  other->load_state_dict(state.tensors("test"));
  expect_identical(other->weight, fc->weight, "weight");
  State mixed = state;
  mixed.set("lr", 0.1);
  EXPECT_EQ(error_of([&] { mixed.tensors("Trainer.load"); }),
            "Trainer.load: key 'lr' has kind double, expected tensor");
}

TEST(State, CloneIsASnapshot) {
  Tensor t = zeros({3});
  State s;
  s.set("t", t);
  const State snapshot = s.clone();
  t.fill_(2.0);
  EXPECT_EQ(std::get<Tensor>(*s.find("t")).sum().item(), 6.0) << "a state shares its object's storage";
  EXPECT_EQ(std::get<Tensor>(*snapshot.find("t")).sum().item(), 0.0);
}

TEST(StateReader, NamesTheReaderAndTheKeyInEveryError) {
  State s;
  s.set("lr", 0.1);
  s.set("count", 2);
  s.set("kind", "SGD");
  s.set("extra", 1);
  s.set("more", 2);
  StateReader in(s, "Adam.load_state_dict");
  EXPECT_EQ(error_of([&] { in.get_double("beta1"); }), "Adam.load_state_dict: key 'beta1' is missing");
  EXPECT_EQ(error_of([&] { in.get_double("count"); }),
            "Adam.load_state_dict: key 'count' has kind int64, expected double");
  EXPECT_EQ(error_of([&] { in.get_tensor("lr"); }), "Adam.load_state_dict: key 'lr' has kind double, expected tensor");
  EXPECT_EQ(error_of([&] { in.require("kind", "Adam"); }),
            "Adam.load_state_dict: key 'kind' is 'SGD' in the state but 'Adam' here; the state was saved by another "
            "kind of object or with other settings");
  EXPECT_EQ(error_of([&] { in.require("lr", 0.30000000000000004); }),
            "Adam.load_state_dict: key 'lr' is 0.1 in the state but 0.30000000000000004 here; the state was saved by "
            "another kind of object or with other settings");
  EXPECT_EQ(in.get_double("lr"), 0.1);
  EXPECT_EQ(error_of([&] { in.check_all_read(); }),
            "Adam.load_state_dict: unknown keys 'count', 'extra', 'more'; the state was saved by another kind of "
            "object or with other settings");
  in.require("count", 2);
  in.get_under("e");
  EXPECT_EQ(error_of([&] { in.check_all_read(); }),
            "Adam.load_state_dict: unknown key 'more'; the state was saved by another kind of object or with other "
            "settings");
}

TEST(FlatState, ScalarsRoundTripExactlyThroughText) {
  const double doubles[] = {0.1,
                            1.0 / 3.0,
                            -0.0,
                            5e-324,
                            2.2250738585072014e-308,
                            std::numeric_limits<double>::max(),
                            std::numeric_limits<double>::lowest(),
                            std::numeric_limits<double>::infinity(),
                            -std::numeric_limits<double>::infinity(),
                            0.30000000000000004};
  State s;
  for (std::size_t i = 0; i < std::size(doubles); ++i) s.set(detail::concat("d", i), doubles[i]);
  s.set("i.min", std::numeric_limits<std::int64_t>::min());
  s.set("i.max", std::numeric_limits<std::int64_t>::max());
  s.set("list", std::vector<std::int64_t>{-1, 0, std::numeric_limits<std::int64_t>::min()});
  s.set("empty_list", std::vector<std::int64_t>{});
  s.set("text", "a:b,c");
  s.set("empty_text", "");
  s.set("w", tensor({1.5, -2.0}, kF64));

  const FlatState flat = flatten(s);
  ASSERT_EQ(flat.tensors.size(), 1u);
  EXPECT_EQ(flat.metadata[0], (std::pair<std::string, std::string>{"d0", "f64:0.1"}));
  const State back = unflatten(flat);
  for (std::size_t i = 0; i < std::size(doubles); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(std::get<double>(*back.find(detail::concat("d", i)))),
              std::bit_cast<std::uint64_t>(doubles[i]))
        << doubles[i];
  }
  EXPECT_EQ(std::get<std::int64_t>(*back.find("i.min")), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(std::get<std::int64_t>(*back.find("i.max")), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(std::get<std::vector<std::int64_t>>(*back.find("list")),
            (std::vector<std::int64_t>{-1, 0, std::numeric_limits<std::int64_t>::min()}));
  EXPECT_TRUE(std::get<std::vector<std::int64_t>>(*back.find("empty_list")).empty());
  EXPECT_EQ(std::get<std::string>(*back.find("text")), "a:b,c");
  EXPECT_EQ(std::get<std::string>(*back.find("empty_text")), "");
  EXPECT_TRUE(std::get<Tensor>(*back.find("w")).is_same(std::get<Tensor>(*s.find("w"))));
}

TEST(FlatState, RefusesMetadataItDidNotWrite) {
  for (const std::string text : {"0.1", "f64:", "f64:0.1x", "i64:1.5", "i64s:1,,2", "i64s:1,", "bool:1"}) {
    FlatState flat;
    flat.metadata.emplace_back("k", text);
    EXPECT_EQ(error_of([&] { unflatten(flat); }),
              "unflatten: metadata 'k' holds '" + text +
                  "', which is not a value flatten writes (f64:, i64:, i64s: or str: and its text)");
  }
}

// ---- Generator ----------------------------------------------------------------------------------------

std::vector<double> draws(Generator& g, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(i % 3 == 2 ? g.uniform() : g.normal());
  return out;
}

TEST(Generator, ARestoredGeneratorContinuesTheSameSequence) {
  Generator original(42);
  draws(original, 7);  // an odd number of normals: a spare normal is waiting
  const State saved = through_file(original.state_dict());
  const std::vector<double> expected = draws(original, 20);
  Generator restored(1);
  restored.load_state_dict(saved);
  const std::vector<double> actual = draws(restored, 20);
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(std::bit_cast<std::uint64_t>(actual[i]), std::bit_cast<std::uint64_t>(expected[i])) << "draw " << i;
  // Tensors drawn from it too.
  Generator a(5), b(9);
  randn({3}, {}, &a);
  b.load_state_dict(a.state_dict());
  expect_identical(randn({5}, kF64, &b), randn({5}, kF64, &a), "randn");
}

TEST(Generator, RefusesABrokenState) {
  Generator g;
  const State good = g.state_dict();
  const auto with = [&](const std::string& key, State::Value value) {
    State s;
    for (const auto& [k, v] : good.entries()) s.set(k, k == key ? value : v);
    return s;
  };
  EXPECT_EQ(error_of([&] { g.load_state_dict(with("state", std::vector<std::int64_t>{1, 2, 3})); }),
            "Generator.load_state_dict: key 'state' has 3 words, expected 4");
  EXPECT_EQ(error_of([&] { g.load_state_dict(with("state", std::vector<std::int64_t>{0, 0, 0, 0})); }),
            "Generator.load_state_dict: key 'state' is all zeros, which xoshiro256** never reaches (it would draw "
            "only zeros)");
  EXPECT_EQ(error_of([&] { g.load_state_dict(with("spare_normal", 1)); }),
            "Generator.load_state_dict: key 'spare_normal' has kind int64, expected double");
  EXPECT_EQ(error_of([&] { g.load_state_dict(with("has_spare_normal", 2)); }),
            "Generator.load_state_dict: key 'has_spare_normal' is 2, expected 0 or 1");
  EXPECT_EQ(error_of([&] { g.load_state_dict(State()); }), "Generator.load_state_dict: key 'state' is missing");
  State unknown = g.state_dict();
  unknown.set("seed", 3);
  EXPECT_EQ(error_of([&] { g.load_state_dict(unknown); }),
            "Generator.load_state_dict: unknown key 'seed'; the state was saved by another kind of object or with "
            "other settings");
}

// ---- LipschitzBound's buffers --------------------------------------------------------------------------

std::shared_ptr<nn::LipschitzBound> bounded_linear() {
  Generator gen(11);
  auto fc = std::make_shared<nn::Linear>(4, 3, true, kF64, &gen);
  {
    NoGrad no_grad;
    fc->weight.copy_(fc->weight * 4.0);
  }
  return std::make_shared<nn::LipschitzBound>(fc, 0.5);
}

std::shared_ptr<nn::LipschitzBound> bounded_conv() {
  Generator gen(12);
  auto conv = std::make_shared<nn::Conv2d>(2, 3, 3, 2, 1, 1, true, kF64, &gen);
  {
    NoGrad no_grad;
    conv->weight.copy_(conv->weight * 4.0);
  }
  return std::make_shared<nn::LipschitzBound>(conv, 0.5);
}

// Forward `steps` times in training mode (one power-iteration step each) and return the last output.
Tensor run_bound(nn::LipschitzBound& bound, const Tensor& x, int steps) {
  Tensor y;
  for (int i = 0; i < steps; ++i) y = bound.forward(x);
  return y.detach();
}

TEST(LipschitzBound, VectorsAreBuffersSizedOnFirstUse) {
  auto bound = bounded_linear();
  const nn::StateDict before = bound->state_dict();
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[0].first, "u");
  EXPECT_EQ(before[1].first, "v");
  EXPECT_EQ(before[0].second.numel(), 0);
  bound->forward(randn({2, 4}, kF64));
  const nn::NamedTensors buffers = bound->named_buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers[0].second.shape(), (Shape{1, 3}));
  EXPECT_EQ(buffers[1].second.shape(), (Shape{1, 4}));
  bound->to(kFloat32);
  EXPECT_EQ(bound->named_buffers()[0].second.dtype(), kFloat32) << "to() converts the vectors with the weight";
}

void expect_resumes_exactly(const std::function<std::shared_ptr<nn::LipschitzBound>()>& make, const Tensor& x) {
  auto original = make();
  run_bound(*original, x, 3);
  const nn::StateDict saved = through_file(State(original->state_dict())).tensors("test");
  const Tensor expected = run_bound(*original, x, 4);
  auto restored = make();  // never run: its vectors are empty until the state sizes them
  restored->load_state_dict(saved);
  const Tensor actual = run_bound(*restored, x, 4);
  expect_identical(actual, expected, "output after resuming");
  EXPECT_EQ(restored->sigma(), original->sigma());
  // Without the vectors (power iteration started afresh) the output differs: they are state.
  EXPECT_FALSE(allclose(run_bound(*make(), x, 4), expected, 0.0, 0.0));
}

TEST(LipschitzBound, ResumesExactlyFromItsStateDict) {
  Generator gen(13);
  expect_resumes_exactly(bounded_linear, randn({5, 4}, kF64, &gen));
  expect_resumes_exactly(bounded_conv, randn({2, 2, 7, 6}, kF64, &gen));
}

TEST(LipschitzBound, LoadingRefusesVectorsOfAnotherShapeOnceSized) {
  auto bound = bounded_linear();
  bound->forward(randn({2, 4}, kF64));
  nn::StateDict state = bound->state_dict();
  state[0].second = zeros({1, 5}, kF64);
  const std::string message = error_of([&] { bound->load_state_dict(state); });
  EXPECT_NE(message.find("u: checkpoint has shape [1, 5] but the module has [1, 3]"), std::string::npos) << message;
}

// update() gives the vectors new storage, so a graph built before it still differentiates the σ it used.
TEST(LipschitzBound, UpdatesDoNotChangeAGraphBuiltBefore) {
  Generator gen(14);
  const Tensor x = randn({2, 4}, kF64, &gen);
  const Tensor w = randn({2, 3}, kF64, &gen);
  const auto weight_grad = [&](nn::LipschitzBound& bound, const Tensor& loss) {
    return autograd::grad({loss}, {bound.layer->named_parameters()[0].second})[0];
  };
  auto bound = bounded_linear();
  const Tensor loss = sum(bound->forward(x) * w);
  for (int i = 0; i < 3; ++i) bound->update();
  auto twin = bounded_linear();
  expect_identical(weight_grad(*bound, loss), weight_grad(*twin, sum(twin->forward(x) * w)),
                   "gradient through the σ of an earlier step");
}

// ---- one checkpoint for everything -------------------------------------------------------------------

// A small training setup: a model with a LipschitzBound, Adam, a cosine schedule stepped every epoch,
// a shuffling loader, and label noise drawn from the global generator (as dropout would draw).
struct TrainingRun {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> adam;
  std::unique_ptr<optim::CosineAnnealingLR> schedule;
  std::unique_ptr<data::DataLoader> loader;

  explicit TrainingRun(std::uint64_t seed) {
    Generator gen(seed);
    model = std::make_shared<nn::Sequential>(std::initializer_list<nn::ModulePtr>{
        std::make_shared<nn::LipschitzBound>(std::make_shared<nn::Linear>(3, 4, true, kF64, &gen), 0.9),
        std::make_shared<nn::Tanh>(), std::make_shared<nn::Linear>(4, 1, true, kF64, &gen)});
    adam = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions{.lr = 0.05});
    schedule = std::make_unique<optim::CosineAnnealingLR>(*adam, 3, 0.001);
    Generator data_gen(99);
    const Tensor x = randn({10, 3}, kF64, &data_gen);
    const Tensor y = tanh(x.sum({1}, true));
    const data::DataLoaderOptions options{.batch_size = 4, .shuffle = true, .seed = seed};
    loader = std::make_unique<data::DataLoader>(data::TensorDataset({x, y}), options);
  }

  void train_on(const data::DataLoader::Batch& batch) {
    adam->zero_grad();
    const Tensor noise = 0.01 * randn(batch[1].shape(), kF64);
    mse_loss((*model)(batch[0]), batch[1] + noise).backward();
    adam->step();
  }

  State checkpoint() const {
    State s;
    s.merge("model.", State(model->state_dict()));
    s.merge("optimizer.", adam->state_dict());
    s.merge("schedule.", schedule->state_dict());
    s.merge("loader.", loader->state_dict());
    s.merge("rng.", default_generator().state_dict());
    return s;
  }

  void restore(const State& s) {
    model->load_state_dict(s.under("model.").tensors("model"));
    adam->load_state_dict(s.under("optimizer."));
    schedule->load_state_dict(s.under("schedule."));
    loader->load_state_dict(s.under("loader."));
    default_generator().load_state_dict(s.under("rng."));
  }

  // Finishes the current epoch and trains `epochs` more, stepping the schedule after each.
  void continue_for(int epochs) {
    const bool partial = loader->epoch() > 0 && loader->next_batch() < loader->num_batches();
    for (const auto& batch : loader->rest_of_epoch()) train_on(batch);
    if (partial) schedule->step();
    for (int e = 0; e < epochs; ++e) {
      for (const auto& batch : *loader) train_on(batch);
      schedule->step();
    }
  }
};

TEST(Checkpoint, EveryStatefulObjectResumesExactlyFromOneFile) {
  manual_seed(21);
  TrainingRun original(1);
  original.continue_for(1);
  // Stop in the middle of the second epoch.
  int taken = 0;
  for (const auto& batch : *original.loader) {
    original.train_on(batch);
    if (++taken == 2) break;
  }
  const State saved = through_file(original.checkpoint());
  original.continue_for(2);
  const State original_end = original.checkpoint().clone();

  manual_seed(1234);
  TrainingRun resumed(7);  // other weights, another loader seed: everything must come from the checkpoint
  resumed.restore(saved);
  resumed.continue_for(2);
  const State resumed_end = resumed.checkpoint();

  ASSERT_EQ(resumed_end.size(), original_end.size());
  for (std::size_t i = 0; i < original_end.size(); ++i) {
    const auto& [key, expected] = original_end.entries()[i];
    const auto& [resumed_key, actual] = resumed_end.entries()[i];
    ASSERT_EQ(resumed_key, key);
    if (const auto* t = std::get_if<Tensor>(&expected)) {
      expect_identical(std::get<Tensor>(actual), *t, key);
    } else {
      EXPECT_EQ(exact_text(actual), exact_text(expected)) << key;
    }
  }
}

}  // namespace
}  // namespace fpi
