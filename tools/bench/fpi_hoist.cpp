// What hoisting a map's z part saves (the map key "hoist"): the same FPI layer built from a config
// with and without it, on the Bibtex FPI_NN shape (z 1836, state 159, hidden 600, batch 40), the optical-
// flow map of models/flow_fpi.json (z 18 channels, state 2, 64×64, batch 8) and the Bibtex FPI_GD energy
// map of models/bibtex_fpi_gd.json (z 1836, state 159, 512 relu units on [z, sigmoid(x)], batch 80). Per
// shape: one iteration of g (no tape; for FPI_GD that includes ∇ₓE), and a training step (forward +
// backward of the layer alone) with exactly `--iterations` forward and backward iterations, so both
// variants do the same number of steps. The two variants run interleaved in one process, so the ratio
// holds on a loaded machine. Last, the FPI_GD forward solve with the authors' solver (plain gradient
// descent with step 1, one test for the whole batch) run for exactly `--solve-iterations` iterations,
// about what one of their batches takes (README, Bibtex): once per variant.
//
//   bench_fpi_hoist [--quick] [--iterations N] [--repeat N] [--solve-iterations N] [--threads N] [--json FILE]
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "fpi/nn.hpp"
#include "fpi/ops.hpp"
#include "fpi/train/graph.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;

struct Case {
  std::string name;
  std::string map_keys;    // the map's keys before "hoist" and "layers"
  std::string map_layers;  // the map's "layers" array
  fpi::Shape z_sample, state;
  std::int64_t batch;
};

std::shared_ptr<train::GraphModule> build(const Case& s, bool hoist, int iterations, bool authors = false) {
  std::string state = "[";
  for (std::size_t i = 0; i < s.state.size(); ++i) state += (i ? ", " : "") + std::to_string(s.state[i]);
  state += "]";
  const std::string authors_keys = authors ? R"(, "damp_cycles": false, "stall_window": 0)" : "";
  const std::string solver = R"({"solver": "picard", "tolerance": 1e-30, "max_iterations": )" +
                             std::to_string(iterations) + authors_keys + "}";
  const auto model = nlohmann::json::parse(R"({"layers": [{"name": "fpi", "type": "fixed_point", "input": "z",
      "state_shape": )" + state + R"(, "per_sample": false, "forward": )" + solver +
                                           R"(, "backward": )" + solver + R"(,
      "map": {)" + s.map_keys + R"(, "hoist": )" + (hoist ? "true" : "false") +
                                           R"(, "layers": )" + s.map_layers + "}}]}");
  Generator generator(3);
  return train::build_model(model, {{"z", s.z_sample}}, {}, generator).module;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 10, repeat = 5, solve_iterations = 10000;
  bench::Harness harness("bench_fpi_hoist", "A net map's z part computed once per solve against every iteration.");
  harness.add_count("--iterations", iterations, {10, 3}, "forward and backward iterations of a training step");
  harness.add_count("--repeat", repeat, {5, 1}, "timed samples per measurement (the median is shown)");
  harness.add_count("--solve-iterations", solve_iterations, {10000, 3},
                    "iterations of the FPI_GD forward solve with the authors' solver");
  harness.parse(argc, argv);
  const std::vector<Case> shapes{
      {"bibtex FPI_NN", R"("type": "net")", R"([{"name": "join", "type": "concat", "inputs": ["z", "x"]},
        {"name": "fc1", "type": "dense", "units": 600}, {"name": "act1", "type": "relu"},
        {"name": "fc2", "type": "dense", "units": 159}, {"name": "out", "type": "sigmoid"}])",
       {1836}, {159}, 40},
      {"flow", R"("type": "net")", R"([{"name": "join", "type": "concat", "inputs": ["z", "x"]},
        {"name": "conv", "type": "conv2d", "channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"name": "act", "type": "relu"},
        {"name": "deconv", "type": "conv_transpose2d", "channels": 2, "kernel_size": 4, "stride": 2, "padding": 1},
        {"name": "bound", "type": "tanh"}])",
       {18, 64, 64}, {2, 64, 64}, 8},
      {"bibtex FPI_GD", R"("type": "energy", "step_size": 1)", R"([
        {"name": "probs", "type": "sigmoid", "input": "x"},
        {"name": "join", "type": "concat", "inputs": ["z", "probs"]},
        {"name": "fc", "type": "dense", "units": 512}, {"name": "act", "type": "relu"}])",
       {1836}, {159}, 80},
  };
  std::printf("FPI map hoisting, %s; training step = %d forward + %d backward iterations\n",
              harness.threads_description().c_str(), iterations, iterations);
  using bench::number_cell;
  bench::Table& table = harness.table("hoist", {{"shape", 14, bench::Align::Left},
                                                {"iter ms plain", 13},
                                                {"iter ms hoisted", 15},
                                                {"iter ratio", 10},
                                                {"step ms plain", 13},
                                                {"step ms hoisted", 15},
                                                {"step ratio", 10}});
  for (const Case& s : shapes) {
    auto plain = build(s, false, iterations), hoisted = build(s, true, iterations);
    auto plain_layer = plain->fixed_point_layers().at(0).second;
    auto hoisted_layer = hoisted->fixed_point_layers().at(0).second;
    Generator gen(4);
    fpi::Shape z_shape{s.batch}, x_shape{s.batch};
    z_shape.insert(z_shape.end(), s.z_sample.begin(), s.z_sample.end());
    x_shape.insert(x_shape.end(), s.state.begin(), s.state.end());
    const Tensor z = randn(z_shape, {}, &gen), x = rand(x_shape, {}, &gen), w = randn(x_shape, {}, &gen);
    Tensor u;
    {
      NoGrad no_grad;
      u = hoisted_layer->map->prepare(z);
    }
    const auto plain_iteration = [&] {
      NoGrad no_grad;
      plain_layer->map->step(x, z);
    };
    const auto hoisted_iteration = [&] {
      NoGrad no_grad;
      hoisted_layer->map->step_prepared(x, u);
    };
    const auto step = [&](train::GraphModule& graph) {
      return [&] {
        graph.zero_grad();
        sum(graph.forward({{"z", z}}) * w).backward();
      };
    };
    // Alternating samples of the two, so a burst of load from elsewhere falls on both.
    std::vector<double> ip, ih, sp, sh;
    for (int r = 0; r < repeat; ++r) {
      const int warmup = r == 0 ? 1 : 0;
      ip.push_back(bench::time_calls(plain_iteration, {.warmup = warmup, .repeat = 1, .sample_seconds = 0.2}).median);
      ih.push_back(bench::time_calls(hoisted_iteration, {.warmup = warmup, .repeat = 1, .sample_seconds = 0.2}).median);
      sp.push_back(bench::time_calls(step(*plain), {.warmup = warmup, .repeat = 1}).median);
      sh.push_back(bench::time_calls(step(*hoisted), {.warmup = warmup, .repeat = 1}).median);
    }
    const double a = bench::median(ip), b = bench::median(ih), c = bench::median(sp), d = bench::median(sh);
    table.add({bench::text_cell(s.name), number_cell(a * 1e3, "%.3f"), number_cell(b * 1e3, "%.3f"),
               number_cell(a / b, "%.2f"), number_cell(c * 1e3, "%.2f"), number_cell(d * 1e3, "%.2f"),
               number_cell(c / d, "%.2f")});
  }

  const Case& gd = shapes.back();
  bench::Table& solve = harness.table("authors_forward", {{"shape", 14, bench::Align::Left},
                                                          {"iterations", 10},
                                                          {"solve s plain", 13},
                                                          {"solve s hoisted", 15},
                                                          {"ratio", 6}});
  auto plain = build(gd, false, solve_iterations, true), hoisted = build(gd, true, solve_iterations, true);
  Generator gen(5);
  const Tensor z = randn({gd.batch, gd.z_sample[0]}, {}, &gen);
  const auto forward = [&](train::GraphModule& graph) {
    return [&] {
      NoGrad no_grad;
      graph.forward({{"z", z}});
    };
  };
  const double p = bench::time_calls(forward(*plain), {.warmup = 0, .repeat = 1}).median;
  const double h = bench::time_calls(forward(*hoisted), {.warmup = 0, .repeat = 1}).median;
  solve.add({bench::text_cell(gd.name), number_cell(solve_iterations, "%.0f"), number_cell(p, "%.3f"),
             number_cell(h, "%.3f"), number_cell(p / h, "%.2f")});
  return harness.finish(0);
}
