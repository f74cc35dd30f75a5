// Builds a model from a JSON config with a layer registered here, trains it one step and reads a
// checkpoint format back: the installed headers, the library and its dependencies (BLAS, nlohmann/json,
// libpng) must all be reachable through find_package(fpi).
#include <cstdio>

#include "fpi/optim.hpp"
#include "fpi/io/safetensors.hpp"
#include "fpi/train/graph.hpp"
#include "fpi/train/registry.hpp"

int main() {
  fpi::train::register_layer(
      "double", {.description = "multiplies by two",
                 .build = [](fpi::train::JsonObject&, const fpi::train::LayerContext& context) {
                   fpi::train::BuiltLayer layer;
                   layer.output_shape = context.input_shapes[0];
                   layer.apply = [](const std::vector<fpi::Tensor>& inputs) { return inputs[0] * 2.0; };
                   return layer;
                 }});
  const auto model_json = nlohmann::json::parse(R"({"layers": [
      {"name": "fc", "type": "dense", "input": "features", "units": 2},
      {"name": "twice", "type": "double"}]})");
  fpi::Generator generator(0);
  const auto built = fpi::train::build_model(model_json, {{"features", {3}}}, {}, generator);
  fpi::optim::Adam optimizer(built.module->parameters(), {.lr = 0.1});
  const fpi::Tensor x = fpi::ones({4, 3});
  const fpi::Tensor loss = fpi::mse_loss(built.module->forward({{"features", x}}), fpi::zeros({4, 2}));
  loss.backward();
  optimizer.step();
  const std::string bytes = fpi::io::serialize_safetensors(built.module->state_dict());
  const fpi::io::Safetensors back = fpi::io::parse_safetensors(bytes, "memory");
  std::printf("consumer: loss %.4f, %zu tensors round-tripped\n", loss.item(), back.tensors.size());
  return back.tensors.size() == 2 ? 0 : 1;
}
