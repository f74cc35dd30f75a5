// The solver's loop on a GPU: a forward solve waits on the host at most once per check
// (SolverOptions::check_every) plus once, counted with fpi::host_sync_counts; and the FPI layer's
// outputs, per-sample iterations and gradients on the GPU equal the CPU's for Picard and Anderson,
// FPI_NN and FPI_GD, float32 and float64. Skipped, with the reason, where no GPU can be used.
#include <gtest/gtest.h>

#include <string>

#include "cuda_testing.hpp"
#include "fixed_point_fixtures.hpp"
#include "fpi/nn.hpp"

namespace fpi {
namespace {

using testing::kGpu;
using testing::matches_cpu;

using testing::kF64;

class CudaFixedPointLoop : public testing::CudaTest {};

TEST_F(CudaFixedPointLoop, HostSyncsPerForwardSolveAreBoundedByTheChecks) {
  constexpr std::int64_t batch = 64, d = 32;
  Generator gen(2);
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor w = (randn({d, d}, kF64, &gen) * (0.5 / std::sqrt(static_cast<double>(d)))).to(dtype).to(kGpu);
    const Tensor z = (randn({batch, d}, kF64, &gen) * 2.0).to(dtype).to(kGpu);
    const FixedPointFn g = [&](const Tensor& x, const Tensor& zz) { return tanh(linear(x, w) + zz); };
    for (auto solver : {FixedPointSolver::Picard, FixedPointSolver::Anderson}) {
      for (int check_every : {1, 4, 8, 0}) {
        FixedPointOptions o;
        o.forward.solver = solver;
        o.forward.check_every = check_every;
        o.forward.tolerance = dtype == kFloat64 ? 1e-10 : 1e-5;
        const auto stats = std::make_shared<FixedPointStats>();
        const Tensor x0 = zeros({batch, d}, {.dtype = dtype, .device = kGpu});
        synchronize(kGpu);
        const HostSyncCounts before = host_sync_counts();
        fixed_point(g, z, {}, x0, o, stats);
        const std::int64_t waits = host_sync_counts().total() - before.total();
        const int every = check_every == 0 ? 8 : check_every;
        const int iterations = stats->forward.max_iterations();
        EXPECT_GT(iterations, 4);
        EXPECT_LE(waits, iterations / every + 1)
            << dtype << (solver == FixedPointSolver::Picard ? " picard" : " anderson") << " check_every "
            << check_every << ": " << iterations << " iterations";
      }
    }
  }
}

using testing::SmallMap;

class CudaFixedPointLoopParity
    : public testing::CudaParamTest<std::tuple<SmallMap, FixedPointSolver, DType>> {};

TEST_P(CudaFixedPointLoopParity, OutputsIterationsAndGradientsMatchTheCpu) {
  const auto [kind, solver, dtype] = GetParam();
  Generator gen(5);
  const Tensor z = randn({12, 6}, kF64, &gen).to(dtype);
  const Tensor w = randn({12, 5}, kF64, &gen).to(dtype);
  const auto run = [&](Device device, FixedPointStats& stats) {
    const auto layer = testing::small_fpi_layer(kind, solver, dtype);
    layer->to(device);
    const Tensors out = testing::output_and_gradients(*layer, z.to(device), w.to(device));
    stats = layer->stats();
    return out;
  };
  FixedPointStats cpu_stats, gpu_stats;
  const Tensors cpu = run(kCPU, cpu_stats), gpu = run(kGpu, gpu_stats);
  ASSERT_EQ(cpu.size(), gpu.size());
  const double rtol = dtype == kFloat64 ? 1e-8 : 1e-3;
  for (std::size_t i = 0; i < cpu.size(); ++i) EXPECT_TRUE(matches_cpu(gpu[i], cpu[i], rtol)) << "result " << i;
  EXPECT_EQ(gpu_stats.forward.iterations, cpu_stats.forward.iterations);
  EXPECT_EQ(gpu_stats.forward.converged, cpu_stats.forward.converged);
  EXPECT_EQ(gpu_stats.backward.iterations, cpu_stats.backward.iterations);
  EXPECT_EQ(gpu_stats.backward.converged, cpu_stats.backward.converged);
}

INSTANTIATE_TEST_SUITE_P(Maps, CudaFixedPointLoopParity,
                         ::testing::Combine(::testing::Values(SmallMap::Net, SmallMap::Energy),
                                            ::testing::Values(FixedPointSolver::Picard, FixedPointSolver::Anderson),
                                            ::testing::Values(kFloat32, kFloat64)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == SmallMap::Net ? "FpiNn" : "FpiGd") +
                                  (std::get<1>(info.param) == FixedPointSolver::Picard ? "Picard" : "Anderson") +
                                  (std::get<2>(info.param) == kFloat32 ? "F32" : "F64");
                         });

}  // namespace
}  // namespace fpi
