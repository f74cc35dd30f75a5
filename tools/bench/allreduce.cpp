// The communicator's all-reduce on this machine, for the data-parallel scaling estimate: latency and
// bandwidth of the blocking float64 sum over sizes from one value to a few of Bibtex's gradients, and
// how much of a non-blocking one a computation hides when it calls test() now and then (how the
// gradient buckets overlap the backward) against one that never calls it (Open MPI then moves the
// collective only in the final wait).
//
//   mpirun -np 2 build/bin/bench_allreduce [--quick] [--repeat N] [--json FILE]
// Started without mpirun it measures the single-process communicator (every collective is free).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "fpi/dist/communicator.hpp"
#include "harness.hpp"

namespace {

using namespace fpi;
using bench::Clock;

// Spins for `seconds` (a stand-in for the backward's arithmetic), calling pending->test() every
// `poll_seconds` (a twentieth of the all-reduce) when given one.
void compute_for(double seconds, dist::PendingReduce* pending, double poll_seconds) {
  const auto start = Clock::now();
  auto last_poll = start;
  volatile double sink = 0.0;
  while (bench::seconds_since(start) < seconds) {
    for (int i = 0; i < 200; ++i) sink = sink + std::sqrt(static_cast<double>(i));
    if (pending && bench::seconds_since(last_poll) >= poll_seconds) {
      pending->test();
      last_poll = Clock::now();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Harness harness("bench_allreduce", "all-reduce latency, bandwidth and overlap of the communicator");
  int repeat = 0;
  harness.add_count("--repeat", repeat, {20, 3}, "timed all-reduces per size (median)");
  harness.parse(argc, argv);
  dist::Communicator& world = dist::world();
  const bool root = world.rank() == 0;
  const int ranks = world.size();
  if (root) std::printf("%s\n\n", world.describe().c_str());

  std::vector<std::size_t> sizes = {1, 16, 256, 4096, 65536};
  if (!harness.quick()) sizes.insert(sizes.end(), {262144, 524288, 1048576, 2097152});
  bench::Table* table = nullptr;
  if (root)
    table = &harness.table("allreduce", {{"doubles", 10}, {"bytes", 11}, {"blocking us", 12}, {"algbw GB/s", 11},
                                         {"busbw GB/s", 11}, {"hidden, polled", 15}, {"hidden, no poll", 16}});
  for (const std::size_t n : sizes) {
    std::vector<double> values(n, 1.0);
    std::vector<double> times;
    for (int r = 0; r < repeat + 1; ++r) {
      world.barrier();
      const auto start = Clock::now();
      world.all_reduce(std::span<double>(values));
      if (r > 0) times.push_back(bench::seconds_since(start));  // the first one warms the buffers up
    }
    // Every rank takes the slowest rank's median, so all of them use the same compute time below.
    std::vector<double> blocking = {bench::median(times)};
    world.all_reduce(std::span<double>(blocking), dist::ReduceOp::Max);
    // A computation 1.5x as long as the all-reduce, started with it: the part of the all-reduce still
    // left in the final wait is what the computation did not hide.
    const auto hidden_fraction = [&](bool poll) {
      std::vector<double> left;
      for (int r = 0; r < repeat; ++r) {
        world.barrier();
        const auto pending = world.start_all_reduce(std::span<double>(values));
        compute_for(1.5 * blocking[0], poll ? pending.get() : nullptr, blocking[0] / 20.0);
        const auto start = Clock::now();
        pending->wait();
        left.push_back(bench::seconds_since(start));
      }
      std::vector<double> worst = {bench::median(left)};
      world.all_reduce(std::span<double>(worst), dist::ReduceOp::Max);
      return blocking[0] > 0.0 ? std::clamp(1.0 - worst[0] / blocking[0], 0.0, 1.0) : 1.0;
    };
    const double polled = hidden_fraction(true), unpolled = hidden_fraction(false);
    if (!table) continue;
    const double bytes = static_cast<double>(n * sizeof(double));
    const double seconds = blocking[0];
    const double algbw = seconds > 0.0 ? bytes / seconds / 1e9 : 0.0;
    const double busbw = algbw * 2.0 * (ranks - 1) / ranks;
    table->add({bench::number_cell(static_cast<double>(n), "%.0f"), bench::number_cell(bytes, "%.0f"),
                bench::number_cell(seconds * 1e6, "%.1f"), bench::number_cell(algbw, "%.2f"),
                bench::number_cell(busbw, "%.2f"), bench::number_cell(100.0 * polled, "%.0f%%"),
                bench::number_cell(100.0 * unpolled, "%.0f%%")});
  }
  return root ? harness.finish(0) : 0;
}
