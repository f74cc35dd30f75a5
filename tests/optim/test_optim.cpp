// Optimizers, gradient clipping and LR schedules against PyTorch 1.13. Every expected number below was
// printed by tests/reference/optim_reference.py (run with /usr/bin/python3, float64), which builds the
// same gradients with math.sin as grad_at() does here with std::sin. Then the state dicts: a resumed
// optimizer or schedule continues bit for bit, and a state that does not fit is refused by key.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/optim.hpp"
#include "test_util.hpp"

namespace fpi::optim {
namespace {

constexpr TensorOptions kF64{.dtype = kFloat64};
constexpr int kSteps = 6;

Tensor initial_param(DType dtype = kFloat64) {
  return from_vector<double>({0.5, -1.0, 2.0, 0.25}, {2, 2}, {.dtype = dtype}).requires_grad_();
}

// A large first gradient, then smaller ones, so exp_avg_sq shrinks and amsgrad matters.
Tensor grad_at(int step, DType dtype = kFloat64) {
  std::vector<double> g(4);
  for (int i = 0; i < 4; ++i) g[i] = (step == 0 ? 3.0 : 1.0) * std::sin(1.3 * i + 0.7 * step + 0.2);
  return from_vector(g, {2, 2}, {.dtype = dtype});
}

template <class Opt, class Options>
std::vector<double> run(Options options, DType dtype = kFloat64) {
  Tensor p = initial_param(dtype);
  Opt opt({p}, options);
  for (int step = 0; step < kSteps; ++step) {
    p.set_grad(grad_at(step, dtype));
    opt.step();
  }
  return p.to_vector<double>();
}

void expect_near(const std::vector<double>& actual, const std::vector<double>& expected, double tol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) EXPECT_NEAR(actual[i], expected[i], tol) << "element " << i;
}

TEST(SGD, MatchesPyTorch) {
  expect_near(run<SGD>(SgdOptions{.lr = 0.1}),
              {0.2264102415617734, -1.172262003813829, 2.18142998996478, 0.5193266233997276}, 1e-12);
  expect_near(run<SGD>(SgdOptions{.lr = 0.05, .momentum = 0.9}),
              {-0.05985688684597516, -1.7128169856739308, 2.178501469463004, 1.0583148536521727}, 1e-12);
  expect_near(run<SGD>(SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}),
              {-0.14066607738049103, -1.7276662890134522, 2.251366317499093, 1.1121466799868192}, 1e-12);
  expect_near(run<SGD>(SgdOptions{.lr = 0.1, .momentum = 0.5, .weight_decay = 0.1}),
              {-0.08145221108099768, -1.339505146424652, 2.104745490437849, 0.8224895539219117}, 1e-12);
  expect_near(run<SGD>(SgdOptions{.lr = 0.1, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01}),
              {-0.2226244048297192, -2.068378505118138, 2.115392030814407, 1.4014926116880007}, 1e-12);
}

TEST(Adam, MatchesPyTorch) {
  expect_near(run<Adam>(AdamOptions{.lr = 0.1}),
              {-0.04312364741869461, -1.3311826705386078, 2.02589845330964, 0.6621142142753921}, 1e-12);
  expect_near(run<Adam>(AdamOptions{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1}),
              {-0.030758440908413086, -1.256213382212163, 1.9566702247201897, 0.6093586369826417}, 1e-12);
  expect_near(run<Adam>(AdamOptions{.lr = 0.1, .amsgrad = true}),
              {-0.04312364741869461, -1.3311826705386078, 2.0258770290647283, 0.6621114052222132}, 1e-12);
}

TEST(AdamW, MatchesPyTorch) {
  expect_near(run<AdamW>(AdamWOptions{.lr = 0.1}),
              {-0.04463289689813486, -1.324033155890308, 2.0143844412876564, 0.6593207893432874}, 1e-12);
  expect_near(run<AdamW>(AdamWOptions{.lr = 0.1, .weight_decay = 0.5, .amsgrad = true}),
              {-0.10612380729734003, -1.0121950974680565, 1.51622032593003, 0.5354112434421784}, 1e-12);
}

TEST(Adam, Float32FollowsTheFloat64Reference) {
  expect_near(run<Adam>(AdamOptions{.lr = 0.1}, kFloat32),
              {-0.04312364741869461, -1.3311826705386078, 2.02589845330964, 0.6621142142753921}, 1e-5);
}

// The 4-element runs above only reach the fused kernels' scalar tails. A parameter of 40003 elements
// (more than one thread's share, not a multiple of any vector width) that repeats the same 4 values and
// gradients must end with those 4 results repeated: vector bodies, tails and thread chunks all agree.
template <class Opt, class Options>
void expect_long_parameter_repeats_short_result(Options options, DType dtype) {
  constexpr std::int64_t kLength = 40003;
  const auto tiled = [&](const Tensor& four) {
    const std::vector<double> v = four.to_vector<double>();
    std::vector<double> out(kLength);
    for (std::int64_t i = 0; i < kLength; ++i) out[i] = v[i % 4];
    return from_vector(out, {kLength}, {.dtype = dtype});
  };
  Tensor p = tiled(initial_param()).requires_grad_();
  Opt opt({p}, options);
  for (int step = 0; step < kSteps; ++step) {
    p.set_grad(tiled(grad_at(step)));
    opt.step();
  }
  const std::vector<double> expected = run<Opt>(options, dtype);
  const std::vector<double> actual = p.to_vector<double>();
  for (std::int64_t i = 0; i < kLength; ++i) ASSERT_EQ(actual[i], expected[i % 4]) << "element " << i;
}

TEST(Optimizer, FusedUpdatesTreatEveryElementOfALongParameterAlike) {
  for (DType dtype : {kFloat32, kFloat64}) {
    expect_long_parameter_repeats_short_result<Adam>(AdamOptions{.lr = 0.1, .weight_decay = 0.1}, dtype);
    expect_long_parameter_repeats_short_result<Adam>(AdamOptions{.lr = 0.1, .amsgrad = true}, dtype);
    expect_long_parameter_repeats_short_result<AdamW>(AdamWOptions{.lr = 0.1, .weight_decay = 0.5}, dtype);
    expect_long_parameter_repeats_short_result<SGD>(SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true},
                                                    dtype);
  }
}

TEST(Optimizer, SkipsParametersWithoutGradientAndCountsTheirStepsFromTheirFirst) {
  Tensor a = initial_param(), b = initial_param();
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(grad_at(0));
  opt.step();
  EXPECT_EQ(b.to_vector<double>(), initial_param().to_vector<double>());

  // b's first step is a first Adam step (bias corrections of step 1), whatever a has done.
  b.set_grad(grad_at(0));
  a.zero_grad();
  const std::vector<double> a_before = a.to_vector<double>();
  opt.step();
  EXPECT_EQ(a.to_vector<double>(), a_before);
  Tensor fresh = initial_param();
  Adam reference({fresh}, {.lr = 0.1});
  fresh.set_grad(grad_at(0));
  reference.step();
  EXPECT_EQ(b.to_vector<double>(), fresh.to_vector<double>());
}

TEST(Optimizer, StepInvalidatesGraphsThatSavedTheParameter) {
  Tensor p = initial_param();
  SGD opt({p}, {.lr = 0.1});
  const Tensor loss = sum(p * p);
  p.set_grad(grad_at(0));
  opt.step();
  EXPECT_THROW(loss.backward(), Error);
}

TEST(Optimizer, LearningRateIsSettable) {
  Tensor p = initial_param();
  SGD opt({p}, {.lr = 0.1});
  opt.set_lr(0.2);
  EXPECT_EQ(opt.lr(), 0.2);
  p.set_grad(ones({2, 2}, kF64));
  opt.step();
  EXPECT_NEAR(p.to_vector<double>()[0], 0.3, 1e-15);
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
  EXPECT_THROW(opt.set_lr(-1.0), Error);
}

TEST(Optimizer, RejectsOptionsLikePyTorch) {
  const auto p = [] { return std::vector<Tensor>{initial_param()}; };
  EXPECT_THROW(SGD(p(), {.lr = -0.1}), Error);
  EXPECT_THROW(SGD(p(), {.momentum = -0.5}), Error);
  EXPECT_THROW(SGD(p(), {.weight_decay = -1e-4}), Error);
  EXPECT_THROW(SGD(p(), {.nesterov = true}), Error);
  EXPECT_THROW(SGD(p(), {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error);
  EXPECT_THROW(Adam(p(), {.lr = -1e-3}), Error);
  EXPECT_THROW(Adam(p(), {.beta1 = 1.0}), Error);
  EXPECT_THROW(Adam(p(), {.beta2 = -0.1}), Error);
  EXPECT_THROW(Adam(p(), {.eps = -1e-8}), Error);
  EXPECT_THROW(AdamW(p(), {.weight_decay = -0.01}), Error);
  EXPECT_THROW(Adam(p(), {.lr = std::numeric_limits<double>::quiet_NaN()}), Error);

  EXPECT_THROW(SGD({}, {}), Error);
  const Tensor q = initial_param();
  EXPECT_THROW(SGD({q, q}, {}), Error);
  EXPECT_THROW(SGD({q * 2.0}, {}), Error);
}

TEST(Optimizer, StateMustFollowTheParametersDtype) {
  auto fc = std::make_shared<nn::Linear>(2, 2);
  Adam opt(fc->parameters(), {});
  sum((*fc)(ones({1, 2}))).backward();
  opt.step();
  fc->to(kFloat64);
  sum((*fc)(ones({1, 2}, kF64))).backward();
  try {
    opt.step();
    FAIL() << "stepping with Float32 state for a Float64 parameter must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("create the optimizer after converting"), std::string::npos) << e.what();
  }
}

// The two tensors of the reference script, with their own values as gradients.
struct ClipCase {
  double norm_type, max_norm, total;
  std::vector<double> clipped;
};

TEST(ClipGradNorm, MatchesPyTorch) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<ClipCase> cases = {
      {2.0, 1.0, 3.876854394996026,
       {0.07738230329333898, -0.3095292131733559, 0.6448525274444915, 0.38691151646669486, -0.10317640439111864, 0.0,
        -0.5674702241511526}},
      {1.0, 2.0, 8.1,
       {0.0740740649291278, -0.2962962597165112, 0.6172838744093982, 0.37037032464563896, -0.09876541990550373, 0.0,
        -0.5432098094802705}},
      {3.0, 0.5, 3.1570765570417296,
       {0.04751229492776674, -0.19004917971106697, 0.3959357910647229, 0.2375614746388337, -0.06334972657035566,
        0.0, -0.34842349613695617}},
      {inf, 0.7, 2.5,
       {0.08399996640001343, -0.33599986560005374, 0.6999997200001119, 0.4199998320000672, -0.11199995520001792,
        0.0, -0.6159997536000985}},
      {2.0, 100.0, 3.876854394996026, {0.3, -1.2, 2.5, 1.5, -0.4, 0.0, -2.2}},
  };
  for (const auto& c : cases) {
    const Tensor a = tensor({0.3, -1.2, 2.5}, {.dtype = kFloat64, .requires_grad = true});
    const Tensor b = from_vector<double>({1.5, -0.4, 0.0, -2.2}, {2, 2}, {.dtype = kFloat64, .requires_grad = true});
    const Tensor no_grad = zeros({3}, {.dtype = kFloat64, .requires_grad = true});
    a.set_grad(a.detach().clone());
    b.set_grad(b.detach().clone());
    const double total = clip_grad_norm({a, no_grad, b}, c.max_norm, c.norm_type);
    EXPECT_NEAR(total, c.total, 1e-12) << "norm_type " << c.norm_type;
    std::vector<double> clipped = a.grad().to_vector<double>();
    for (double v : b.grad().to_vector<double>()) clipped.push_back(v);
    expect_near(clipped, c.clipped, 1e-12);
  }
}

TEST(ClipGradNorm, EdgeCases) {
  const Tensor p = zeros({2}, {.dtype = kFloat64, .requires_grad = true});
  EXPECT_EQ(clip_grad_norm({p}, 1.0), 0.0);
  EXPECT_THROW(clip_grad_norm({p}, 1.0, 0.0), Error);
  EXPECT_THROW(clip_grad_norm({p}, -1.0), Error);
}

TEST(Schedules, MultiStepLRMatchesPyTorch) {
  Tensor p = initial_param();
  SGD opt({p}, {.lr = 0.1});
  MultiStepLR schedule(opt, {2, 5, 5, 8}, 0.5);
  const std::vector<double> expected = {0.1,    0.1,    0.05,    0.05,    0.05,   0.0125,
                                        0.0125, 0.0125, 0.00625, 0.00625, 0.00625};
  for (std::size_t epoch = 0; epoch < expected.size(); ++epoch) {
    if (epoch > 0) schedule.step();
    EXPECT_DOUBLE_EQ(schedule.last_lr(), expected[epoch]) << "epoch " << epoch;
    EXPECT_EQ(opt.lr(), schedule.last_lr());
  }
}

TEST(Schedules, CosineAnnealingLRMatchesPyTorch) {
  Tensor p = initial_param();
  Adam opt({p}, {.lr = 0.1});
  CosineAnnealingLR schedule(opt, 4, 0.01);
  const std::vector<double> expected = {
      0.1,  0.08681980515339464, 0.05500000000000001, 0.023180194846605363, 0.01, 0.023180194846605363,
      0.05500000000000002, 0.08681980515339469, 0.10000000000000006, 0.0868198051533947, 0.05500000000000005,
      0.023180194846605412, 0.01, 0.023180194846605363};
  for (std::size_t epoch = 0; epoch < expected.size(); ++epoch) {
    if (epoch > 0) schedule.step();
    EXPECT_DOUBLE_EQ(schedule.last_lr(), expected[epoch]) << "epoch " << epoch;
    EXPECT_EQ(opt.lr(), schedule.last_lr());
  }
  EXPECT_THROW(CosineAnnealingLR(opt, 0), Error);
}

// ---- state dicts ------------------------------------------------------------------------------------

using testing::error_of;

void expect_bitwise_equal(const std::vector<double>& actual, const std::vector<double>& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i)
    EXPECT_EQ(std::bit_cast<std::uint64_t>(actual[i]), std::bit_cast<std::uint64_t>(expected[i]))
        << what << ", element " << i;
}

// Three parameters: `a` is stepped from the start, `b` only after the checkpoint (its state is "not
// yet allocated" when saved), `c` never. Gradients differ per step so every state tensor matters.
struct Params {
  Tensor a = initial_param();
  Tensor b = from_vector<double>({1.0, -0.5, 0.75}, {3}, kF64).requires_grad_();
  Tensor c = from_vector<double>({2.0}, {1}, kF64).requires_grad_();
  std::vector<Tensor> all() const { return {a, b, c}; }
};

void take_step(Optimizer& opt, Params& p, int step) {
  opt.zero_grad();
  p.a.set_grad(grad_at(step));
  if (step >= 3) p.b.set_grad(grad_at(step).reshape({4}).narrow(0, 0, 3).contiguous());
  opt.step();
}

// Steps 3 times, saves, steps 4 more; a fresh optimizer over fresh parameters that loads the saved
// state (and the parameters' values) must end bit for bit where the original did.
template <class Opt, class Options>
void expect_resumes_exactly(Options options, const char* what) {
  Params original;
  Opt opt(original.all(), options);
  for (int step = 0; step < 3; ++step) take_step(opt, original, step);
  opt.set_lr(opt.lr() * 0.5);  // a changed lr is state too
  const State saved = opt.state_dict().clone();
  std::vector<Tensor> saved_params;
  for (const Tensor& t : original.all()) saved_params.push_back(t.detach().clone());
  for (int step = 3; step < 7; ++step) take_step(opt, original, step);

  Params resumed;
  Opt fresh(resumed.all(), options);
  fresh.load_state_dict(saved);
  EXPECT_EQ(fresh.lr(), opt.lr());
  {
    NoGrad no_grad;
    for (std::size_t i = 0; i < saved_params.size(); ++i) resumed.all()[i].copy_(saved_params[i]);
  }
  for (int step = 3; step < 7; ++step) take_step(fresh, resumed, step);
  for (std::size_t i = 0; i < saved_params.size(); ++i)
    expect_bitwise_equal(resumed.all()[i].to_vector<double>(), original.all()[i].to_vector<double>(), what);
}

TEST(OptimizerState, ResumedOptimizersStepExactlyAsTheOriginal) {
  expect_resumes_exactly<SGD>(SgdOptions{.lr = 0.1}, "SGD");
  expect_resumes_exactly<SGD>(SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}, "SGD Nesterov");
  expect_resumes_exactly<SGD>(SgdOptions{.lr = 0.1, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01},
                              "SGD dampening");
  expect_resumes_exactly<Adam>(AdamOptions{.lr = 0.1, .weight_decay = 0.1}, "Adam");
  expect_resumes_exactly<Adam>(AdamOptions{.lr = 0.1, .amsgrad = true}, "Adam amsgrad");
  expect_resumes_exactly<AdamW>(AdamWOptions{.lr = 0.1, .weight_decay = 0.5, .amsgrad = true}, "AdamW");
}

TEST(OptimizerState, SavesOnlyTheStateOfSteppedParameters) {
  Params p;
  Adam adam(p.all(), {.lr = 0.1, .amsgrad = true});
  take_step(adam, p, 0);
  std::vector<std::string> keys;
  const State state = adam.state_dict();
  for (const auto& [key, value] : state.entries()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"kind", "lr", "param_count", "beta1", "beta2", "eps", "weight_decay",
                                            "amsgrad", "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq",
                                            "state.0.max_exp_avg_sq"}));
  SGD sgd(p.all(), {.momentum = 0.9});
  take_step(sgd, p, 0);
  EXPECT_TRUE(sgd.state_dict().contains("state.0.momentum_buffer"));
  EXPECT_FALSE(sgd.state_dict().contains("state.1.momentum_buffer"));
}

TEST(OptimizerState, LoadsAFloat64StateIntoFloat32Parameters) {
  Params p64;
  Adam adam64(p64.all(), {.lr = 0.1});
  take_step(adam64, p64, 0);
  Tensor a32 = initial_param(kFloat32);
  Tensor b32 = zeros({3}, {.requires_grad = true}), c32 = zeros({1}, {.requires_grad = true});
  Adam adam32({a32, b32, c32}, {.lr = 0.1});
  adam32.load_state_dict(adam64.state_dict());
  EXPECT_EQ(std::get<Tensor>(*adam32.state_dict().find("state.0.exp_avg")).dtype(), kFloat32);
  a32.set_grad(grad_at(1, kFloat32));
  adam32.step();  // the loaded state has the parameter's dtype, so the fused update accepts it
}

// Each broken state names its key, and a refused load leaves the optimizer as it was.
TEST(OptimizerState, RefusesAStateThatDoesNotFitAndChangesNothing) {
  Params p;
  Adam adam(p.all(), {.lr = 0.1});
  take_step(adam, p, 0);
  const State good = adam.state_dict().clone();
  const auto edited = [&](const std::string& key, const State::Value* value) {
    State s;
    for (const auto& [k, v] : good.entries())
      if (k != key) s.set(k, v);
    if (value) s.set(key, *value);
    return s;
  };
  const auto replaced = [&](const std::string& key, State::Value value) { return edited(key, &value); };
  const std::string hint = "; the state was saved by another kind of object or with other settings";

  SGD sgd(p.all(), {});
  EXPECT_EQ(error_of([&] { adam.load_state_dict(sgd.state_dict()); }),
            "Adam.load_state_dict: key 'kind' is 'SGD' in the state but 'Adam' here" + hint);
  AdamW adamw(p.all(), {});
  EXPECT_EQ(error_of([&] { adamw.load_state_dict(good); }),
            "AdamW.load_state_dict: key 'kind' is 'Adam' in the state but 'AdamW' here" + hint);
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("param_count", 2)); }),
            "Adam.load_state_dict: key 'param_count' is 2 in the state but 3 here" + hint);
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("beta1", 0.95)); }),
            "Adam.load_state_dict: key 'beta1' is 0.95 in the state but 0.9 here" + hint);
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("state.0.exp_avg", zeros({3}, kF64))); }),
            "Adam.load_state_dict: key 'state.0.exp_avg' has shape [3] but parameter 0 has [2, 2]");
  EXPECT_EQ(error_of([&] { adam.load_state_dict(edited("state.0.exp_avg_sq", nullptr)); }),
            "Adam.load_state_dict: key 'state.0.exp_avg_sq' is missing");
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("state.0.step", 0)); }),
            "Adam.load_state_dict: key 'state.0.step' is 0; a parameter's state is saved once it has taken a step");
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("lr", 1)); }),
            "Adam.load_state_dict: key 'lr' has kind int64, expected double");
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("state.1.exp_avg", zeros({3}, kF64))); }),
            "Adam.load_state_dict: unknown key 'state.1.exp_avg'" + hint);
  EXPECT_EQ(error_of([&] { adam.load_state_dict(replaced("state.0.max_exp_avg_sq", zeros({2, 2}, kF64))); }),
            "Adam.load_state_dict: unknown key 'state.0.max_exp_avg_sq'" + hint);
  EXPECT_EQ(error_of([&] { sgd.load_state_dict(State()); }), "SGD.load_state_dict: key 'kind' is missing");

  // After all those refusals the optimizer still steps as a twin that never saw them.
  Params twin_params;
  Adam twin(twin_params.all(), {.lr = 0.1});
  take_step(twin, twin_params, 0);
  take_step(adam, p, 1);
  take_step(twin, twin_params, 1);
  expect_bitwise_equal(p.a.to_vector<double>(), twin_params.a.to_vector<double>(), "after refused loads");
}

template <class Schedule>
void expect_schedule_resumes_exactly(const std::function<std::unique_ptr<Schedule>(Optimizer&)>& make,
                                     const char* what) {
  Tensor p = initial_param(), q = initial_param();
  SGD opt({p}, {.lr = 0.1});
  auto schedule = make(opt);
  for (int epoch = 0; epoch < 5; ++epoch) schedule->step();
  const State saved = schedule->state_dict();
  std::vector<double> expected;
  for (int epoch = 0; epoch < 9; ++epoch) {
    schedule->step();
    expected.push_back(opt.lr());
  }

  SGD other({q}, {.lr = 0.1});
  auto resumed = make(other);
  other.set_lr(0.7);
  resumed->load_state_dict(saved);
  EXPECT_EQ(other.lr(), std::get<double>(*saved.find("last_lr"))) << what << ": loading puts the lr back";
  std::vector<double> actual;
  for (int epoch = 0; epoch < 9; ++epoch) {
    resumed->step();
    actual.push_back(other.lr());
  }
  expect_bitwise_equal(actual, expected, what);
  EXPECT_EQ(resumed->last_epoch(), schedule->last_epoch());
  EXPECT_EQ(resumed->base_lr(), schedule->base_lr());
}

TEST(ScheduleState, ResumedSchedulesGiveTheSameLearningRates) {
  expect_schedule_resumes_exactly<MultiStepLR>(
      [](Optimizer& o) { return std::make_unique<MultiStepLR>(o, std::vector<std::int64_t>{2, 6, 6, 9}, 0.5); },
      "MultiStepLR");
  expect_schedule_resumes_exactly<CosineAnnealingLR>(
      [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 4, 0.01); }, "CosineAnnealingLR");
}

TEST(ScheduleState, RefusesAnotherScheduleOrOtherSettings) {
  Tensor p = initial_param();
  SGD opt({p}, {.lr = 0.1});
  MultiStepLR multi(opt, {2, 4}, 0.5);
  CosineAnnealingLR cosine(opt, 4);
  const std::string hint = "; the state was saved by another kind of object or with other settings";
  EXPECT_EQ(error_of([&] { cosine.load_state_dict(multi.state_dict()); }),
            "CosineAnnealingLR.load_state_dict: key 'kind' is 'MultiStepLR' in the state but 'CosineAnnealingLR' here" +
                hint);
  MultiStepLR other_milestones(opt, {2, 5}, 0.5);
  EXPECT_EQ(error_of([&] { other_milestones.load_state_dict(multi.state_dict()); }),
            "MultiStepLR.load_state_dict: key 'milestones' is [2, 4] in the state but [2, 5] here" + hint);
  MultiStepLR other_gamma(opt, {2, 4}, 0.25);
  EXPECT_EQ(error_of([&] { other_gamma.load_state_dict(multi.state_dict()); }),
            "MultiStepLR.load_state_dict: key 'gamma' is 0.5 in the state but 0.25 here" + hint);
  State extra = multi.state_dict();
  extra.set("warmup", 3);
  EXPECT_EQ(error_of([&] { multi.load_state_dict(extra); }),
            "MultiStepLR.load_state_dict: unknown key 'warmup'" + hint);
}

}  // namespace
}  // namespace fpi::optim
