// How fast the optical-flow generator makes training pairs (src/data/flow.cpp): samples per second
// for a batch of 16 pairs at each size, one thread (the trainer prepares the next batch on another
// thread while one trains, so this is the rate the training loop can draw from). Compare it with the
// training rate `fpi train models/flow_*.json` prints to see whether the data can keep up.
//
//   build/bin/bench_flow_data [--quick] [--data DIR] [--repeat N] [--json FILE]
//   (DIR defaults to data/denoising)
#include <cstdint>
#include <string>

#include "fpi/data/flow.hpp"
#include "harness.hpp"

int main(int argc, char** argv) {
  std::string dir = "data/denoising";
  fpi::bench::Sampling sampling{.warmup = 1};
  fpi::bench::Harness harness("bench_flow_data", "Optical-flow pairs generated per second.");
  harness.add_text("--data", dir, "DIR", "the folder of the texture images");
  harness.add_count("--repeat", sampling.repeat, {.full = 10, .quick = 2}, "timed batches per size");
  harness.parse(argc, argv);

  using fpi::bench::Align;
  fpi::bench::Table& table = harness.table(
      "pairs", {{"size", 10, Align::Left}, {"objects", 8}, {"ms per batch of 16", 18}, {"pairs/s", 9}});
  const std::int64_t batch = 16;
  for (const std::int64_t size : {32, 64, 128}) {
    fpi::data::FlowOptions options;
    options.dir = dir;
    options.height = options.width = size;
    options.max_train_images = 20;
    options.train_size = batch * 1000;
    const fpi::data::Splits splits = fpi::data::flow_splits(options);
    std::int64_t index = 0;
    const fpi::bench::Summary s = fpi::bench::time_calls([&] { splits.train->batch(0, index++, batch); }, sampling);
    table.add({fpi::bench::text_cell(std::to_string(size) + "x" + std::to_string(size)),
               fpi::bench::number_cell(static_cast<double>(options.objects), "%.0f"),
               fpi::bench::number_cell(s.median * 1e3, "%.2f"),
               fpi::bench::number_cell(static_cast<double>(batch) / s.median, "%.0f")});
  }
  return harness.finish(0);
}
