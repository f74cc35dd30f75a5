// nn::Module and the layers: dotted parameter names, train/eval, state dicts and their errors, in-place
// dtype conversion, Sequential, PyTorch-style printing, Dropout.
#include <gtest/gtest.h>

#include <functional>
#include <sstream>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi::nn {
namespace {

constexpr TensorOptions kF64{.dtype = kFloat64};

// A module with a child and a buffer, so names have three levels and the state dict has a buffer.
class Block : public Module {
 public:
  Block() : Module("Block") {
    fc = register_module("fc", std::make_shared<Linear>(2, 3));
    running = register_buffer("running", zeros({3}));
  }
  Tensor forward(const Tensor& x) override { return relu(fc->forward(x)) + running; }

  std::shared_ptr<Linear> fc;
  Tensor running;
};

class Net : public Module {
 public:
  Net() : Module("Net") {
    layers = register_module("layers", std::make_shared<Sequential>(std::initializer_list<ModulePtr>{
                                           std::make_shared<Block>(), std::make_shared<Tanh>(),
                                           std::make_shared<Linear>(3, 1)}));
  }
  Tensor forward(const Tensor& x) override { return layers->forward(x); }

  std::shared_ptr<Sequential> layers;
};

std::vector<std::string> names_of(const NamedTensors& list) {
  std::vector<std::string> out;
  for (const auto& [name, t] : list) out.push_back(name);
  return out;
}

using testing::error_of;

TEST(Module, NestedParametersHaveDottedNames) {
  auto net = std::make_shared<Net>();
  EXPECT_EQ(names_of(net->named_parameters()),
            (std::vector<std::string>{"layers.0.fc.weight", "layers.0.fc.bias", "layers.2.weight", "layers.2.bias"}));
  EXPECT_TRUE(net->named_parameters(false).empty());
  EXPECT_EQ(names_of(net->named_buffers()), (std::vector<std::string>{"layers.0.running"}));
  std::vector<std::string> modules;
  for (const auto& [name, m] : net->named_modules()) modules.push_back(name + ":" + m->type_name());
  EXPECT_EQ(modules, (std::vector<std::string>{":Net", "layers:Sequential", "layers.0:Block", "layers.0.fc:Linear",
                                               "layers.1:Tanh", "layers.2:Linear"}));
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_FALSE(net->named_buffers()[0].second.requires_grad());
}

TEST(Module, SharedModuleIsListedOnce) {
  auto shared = std::make_shared<Linear>(2, 2);
  Sequential seq{shared, std::make_shared<ReLU>(), shared};
  EXPECT_EQ(names_of(seq.named_parameters()), (std::vector<std::string>{"0.weight", "0.bias"}));
  // As in PyTorch, the state dict lists a shared tensor under every name it has.
  EXPECT_EQ(names_of(seq.state_dict()), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  seq.load_state_dict(seq.state_dict());
}

TEST(Module, RegistrationRejectsBadNames) {
  Module m;
  m.register_parameter("w", zeros({2}));
  EXPECT_NE(error_of([&] { m.register_parameter("w", zeros({2})); }).find("'w' is already a parameter"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m.register_buffer("w", zeros({2})); }).find("already"), std::string::npos);
  EXPECT_NE(error_of([&] { m.register_module("w", std::make_shared<ReLU>()); }).find("already"), std::string::npos);
  EXPECT_NE(error_of([&] { m.register_buffer("", zeros({2})); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { m.register_parameter("a.b", zeros({2})); }).find("contains '.'"), std::string::npos);
  EXPECT_THROW(m.register_parameter("u", Tensor()), Error);
  auto outer = std::make_shared<Sequential>();
  auto inner = std::make_shared<Sequential>();
  outer->push_back(inner);
  EXPECT_NE(error_of([&] { inner->push_back(outer); }).find("cycle"), std::string::npos);
}

TEST(Module, DefaultForwardSaysTheModuleTakesNoSingleInput) {
  Module m("PairMap");
  const std::string message = error_of([&] { m(zeros({1})); });
  EXPECT_NE(message.find("PairMap"), std::string::npos) << message;
  EXPECT_NE(message.find("does not take a single input"), std::string::npos) << message;
}

TEST(Module, TrainAndEvalPropagate) {
  auto net = std::make_shared<Net>();
  net->eval();
  for (const auto& [name, m] : net->named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net->train();
  for (const auto& [name, m] : net->named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(Module, ZeroGradDropsGradients) {
  Linear fc(3, 2);
  sum(fc(ones({4, 3}))).backward();
  ASSERT_TRUE(fc.weight.grad().defined());
  fc.zero_grad();
  EXPECT_FALSE(fc.weight.grad().defined());
  EXPECT_FALSE(fc.bias.grad().defined());
}

TEST(StateDict, RoundTripKeepsHeldHandles) {
  manual_seed(1);
  auto source = std::make_shared<Net>();
  manual_seed(2);
  auto target = std::make_shared<Net>();
  source->layers->at<Block>(0)->running.fill_(0.5);
  const StateDict state = source->state_dict();
  // PyTorch's order: a module's own parameters and buffers come before its children's.
  EXPECT_EQ(names_of(state), (std::vector<std::string>{"layers.0.running", "layers.0.fc.weight", "layers.0.fc.bias",
                                                       "layers.2.weight", "layers.2.bias"}));
  for (const auto& [name, t] : state) EXPECT_FALSE(t.requires_grad()) << name;

  const Tensor held = target->layers->at<Linear>(2)->weight;
  target->load_state_dict(state);
  EXPECT_TRUE(allclose(held, source->layers->at<Linear>(2)->weight, 0, 0));
  EXPECT_TRUE(held.requires_grad());
  const Tensor x = from_vector<double>({0.3, -0.7, 1.1, 0.2}, {2, 2}, {});
  EXPECT_TRUE(allclose(target->forward(x), source->forward(x), 0, 0));
}

TEST(StateDict, ErrorsNameTheKeysAndLoadNothing) {
  auto net = std::make_shared<Net>();
  const Tensor weight = net->layers->at<Linear>(2)->weight;
  const std::vector<double> before = weight.to_vector<double>();

  StateDict missing = net->state_dict();
  missing.erase(missing.begin() + 2);
  std::string message = error_of([&] { net->load_state_dict(missing); });
  EXPECT_NE(message.find("missing keys: \"layers.0.fc.bias\""), std::string::npos) << message;
  net->load_state_dict(missing, false);

  StateDict unexpected = net->state_dict();
  unexpected.emplace_back("layers.3.weight", zeros({1}));
  message = error_of([&] { net->load_state_dict(unexpected); });
  EXPECT_NE(message.find("unexpected keys: \"layers.3.weight\""), std::string::npos) << message;
  net->load_state_dict(unexpected, false);

  StateDict wrong_shape = net->state_dict();
  wrong_shape[3].second = zeros({4, 3});
  wrong_shape[2].second = zeros({3});
  for (const bool strict : {true, false}) {
    message = error_of([&] { net->load_state_dict(wrong_shape, strict); });
    EXPECT_NE(message.find("layers.2.weight: checkpoint has shape [4, 3] but the module has [1, 3]"),
              std::string::npos)
        << message;
  }
  // The valid entries of a rejected dict were not written either.
  EXPECT_EQ(weight.to_vector<double>(), before);
  EXPECT_NE(net->layers->at<Block>(0)->fc->bias.to_vector<double>(), std::vector<double>(3, 0.0));
}

TEST(StateDict, ConvertsDtype) {
  Linear f32(2, 2);
  Linear f64(2, 2, true, kF64);
  f32.load_state_dict(f64.state_dict());
  EXPECT_EQ(f32.weight.dtype(), kFloat32);
  EXPECT_TRUE(allclose(f32.weight.to(kFloat64), f64.weight, 1e-6, 1e-7));
}

TEST(ModuleTo, ConvertsInPlaceSoHeldHandlesFollow) {
  auto net = std::make_shared<Net>();
  const Tensor w = net->layers->at<Linear>(2)->weight;
  const Tensor running = net->layers->at<Block>(0)->running;
  const std::vector<double> values = w.to_vector<double>();
  sum(net->forward(ones({1, 2}))).backward();
  ASSERT_TRUE(w.grad().defined());

  net->to(kFloat64);
  EXPECT_EQ(w.dtype(), kFloat64);
  EXPECT_EQ(running.dtype(), kFloat64);
  EXPECT_EQ(w.to_vector<double>(), values);
  EXPECT_TRUE(w.requires_grad());
  EXPECT_FALSE(w.grad().defined());
  for (const auto& p : net->parameters()) EXPECT_EQ(p.dtype(), kFloat64);

  sum(net->forward(ones({1, 2}, kF64))).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().dtype(), kFloat64);
  net->to(kCPU);
  EXPECT_TRUE(w.grad().defined()) << "a conversion to the current device changes nothing";
}

TEST(ModuleTo, SetDataGuardsItsUse) {
  const Tensor leaf = zeros({2}, {.requires_grad = true});
  EXPECT_THROW(leaf.set_data(ones({3}, kF64)), Error) << "grad mode is on";
  {
    NoGrad no_grad;
    leaf.set_data(ones({3}, kF64));
  }
  EXPECT_EQ(leaf.shape(), (Shape{3}));
  EXPECT_EQ(leaf.dtype(), kFloat64);
  EXPECT_TRUE(leaf.requires_grad());
  const Tensor derived = leaf * 2.0;
  NoGrad no_grad;
  EXPECT_THROW(derived.set_data(ones({3}, kF64)), Error) << "not a leaf";
}

TEST(Sequential, ComposesInOrder) {
  auto first = std::make_shared<Linear>(3, 4, true, kF64);
  auto last = std::make_shared<Linear>(4, 2, true, kF64);
  Sequential seq{first, std::make_shared<ReLU>(), last};
  seq.push_back(std::make_shared<Identity>());
  ASSERT_EQ(seq.size(), 4u);
  EXPECT_EQ(seq[1]->type_name(), "ReLU");
  EXPECT_EQ(seq.at<Linear>(2), last);
  EXPECT_THROW(seq[4], Error);
  EXPECT_THROW(seq.at<Conv2d>(0), Error);

  const Tensor x = from_vector<double>({0.1, -0.2, 0.3, 1.0, 2.0, -3.0}, {2, 3}, kF64);
  const Tensor expected = linear(relu(linear(x, first->weight, first->bias)), last->weight, last->bias);
  EXPECT_TRUE(allclose(seq(x), expected, 0, 0));
  EXPECT_TRUE(allclose(Sequential()(x), x, 0, 0));
}

TEST(Layers, ConvolutionShapes) {
  Conv2d conv(2, 4, 3, 1, 1);
  EXPECT_EQ(conv.weight.shape(), (Shape{4, 2, 3, 3}));
  EXPECT_EQ(conv(zeros({1, 2, 5, 5})).shape(), (Shape{1, 4, 5, 5}));
  Conv2d rect(Conv2dConfig{.in_channels = 2, .out_channels = 3, .kernel_size = {3, 1},
                           .geometry = {.stride = {2, 1}, .padding = {1, 0}}, .bias = false});
  EXPECT_EQ(rect.weight.shape(), (Shape{3, 2, 3, 1}));
  EXPECT_FALSE(rect.bias.defined());
  EXPECT_EQ(rect.parameters().size(), 1u);
  EXPECT_EQ(rect(zeros({1, 2, 6, 5})).shape(), (Shape{1, 3, 3, 5}));

  ConvTranspose2d up(4, 2, 3, 2, 1, 1);
  EXPECT_EQ(up.weight.shape(), (Shape{4, 2, 3, 3}));
  EXPECT_EQ(up(zeros({1, 4, 5, 5})).shape(), (Shape{1, 2, 10, 10}));
  EXPECT_THROW(ConvTranspose2d(4, 2, 3, 2, 1, 2), Error);
  EXPECT_THROW(Conv2d(0, 2, 3), Error);
  EXPECT_THROW(Linear(-1, 2), Error);
}

TEST(Layers, ActivationsApplyTheirOps) {
  const Tensor x = from_vector<double>({-2.0, -0.5, 0.0, 0.7, 3.0}, kF64);
  EXPECT_TRUE(allclose(ReLU()(x), relu(x), 0, 0));
  EXPECT_TRUE(allclose(Sigmoid()(x), sigmoid(x), 0, 0));
  EXPECT_TRUE(allclose(Tanh()(x), tanh(x), 0, 0));
  EXPECT_TRUE(allclose(Softplus()(x), softplus(x), 0, 0));
  EXPECT_EQ(Flatten()(zeros({2, 3, 4, 5})).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(0, 1)(zeros({2, 3, 4})).shape(), (Shape{6, 4}));
}

TEST(Printing, MatchesPyTorch) {
  // The expected text is print(model) of the same model in PyTorch 1.13, except Softplus, which has
  // no beta/threshold settings in fpi.
  class Inner : public Module {
   public:
    Inner() : Module("Block") {
      register_module("conv", std::make_shared<Conv2d>(2, 4, 3, 1, 1));
      register_module("act", std::make_shared<Softplus>());
    }
  };
  Sequential net{std::make_shared<Conv2d>(1, 8, 3, 1, 1),
                 std::make_shared<ReLU>(),
                 std::make_shared<Inner>(),
                 std::make_shared<ConvTranspose2d>(4, 2, 4, 2, 1, 1, 1, false),
                 std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 2, .out_channels = 3, .kernel_size = {3, 1},
                                                       .geometry = {.stride = {2, 1}, .dilation = {1, 2}}}),
                 std::make_shared<Flatten>(),
                 std::make_shared<Dropout>(0.25),
                 std::make_shared<Linear>(3, 4),
                 std::make_shared<Tanh>(),
                 std::make_shared<Sigmoid>(),
                 std::make_shared<Identity>(),
                 std::make_shared<Linear>(4, 1, false),
                 std::make_shared<Dropout>(0.0)};
  std::ostringstream out;
  out << net;
  EXPECT_EQ(out.str(),
            "Sequential(\n"
            "  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
            "  (1): ReLU()\n"
            "  (2): Block(\n"
            "    (conv): Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
            "    (act): Softplus()\n"
            "  )\n"
            "  (3): ConvTranspose2d(4, 2, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), output_padding=(1, 1), "
            "bias=False)\n"
            "  (4): Conv2d(2, 3, kernel_size=(3, 1), stride=(2, 1), dilation=(1, 2))\n"
            "  (5): Flatten(start_dim=1, end_dim=-1)\n"
            "  (6): Dropout(p=0.25, inplace=False)\n"
            "  (7): Linear(in_features=3, out_features=4, bias=True)\n"
            "  (8): Tanh()\n"
            "  (9): Sigmoid()\n"
            "  (10): Identity()\n"
            "  (11): Linear(in_features=4, out_features=1, bias=False)\n"
            "  (12): Dropout(p=0.0, inplace=False)\n"
            ")");
  EXPECT_EQ(Sequential().repr(), "Sequential()");
  EXPECT_EQ(Linear(3, 4).repr(), "Linear(in_features=3, out_features=4, bias=True)");
}

TEST(Dropout, ZeroesAndRescalesInTrainingOnly) {
  manual_seed(3);
  Dropout drop(0.3);
  const Tensor x = ones({10000}, {.dtype = kFloat64, .requires_grad = true});
  const Tensor y = drop(x);
  std::int64_t zeros_seen = 0;
  for (double v : y.to_vector<double>()) {
    if (v == 0.0) {
      ++zeros_seen;
    } else {
      EXPECT_NEAR(v, 1.0 / 0.7, 1e-15);
    }
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 10000.0, 0.3, 0.02);
  sum(y).backward();
  EXPECT_TRUE(allclose(x.grad(), y.detach(), 0, 0)) << "the gradient is the same mask, scaled";

  drop.eval();
  EXPECT_TRUE(drop(x).is_same(x));
  drop.train();
  EXPECT_TRUE(allclose(Dropout(1.0)(x), zeros_like(x), 0, 0));
  EXPECT_THROW(Dropout(1.5), Error);
}

}  // namespace
}  // namespace fpi::nn
