// The CUDA backend's primitives against the CPU backend: host<->device transfers, element-wise maps on
// strided, broadcast and transposed views, reductions over every set of dimensions, matrix products,
// sizes that need many blocks, and the device's caching allocator. Each test skips with the reason
// where no GPU can be used; the errors that a machine without one must give are tested everywhere.
#include <gtest/gtest.h>

#include <limits>
#include <sstream>

#include "backend/backend.hpp"
#include "cuda_testing.hpp"
#include "fpi/generator.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using backend::BinaryOp;
using backend::ReduceOp;
using backend::UnaryOp;
using testing::CudaTest;
using testing::kGpu;
using testing::matches_cpu;

using testing::error_of;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs on every machine: the answer there is either a usable device or an error that says why not.
TEST(CudaDevice, UnusableDeviceGivesAClearError) {
  EXPECT_EQ(cuda_available(), cuda_device_count() > 0);
  const int count = cuda_device_count();
  const std::string message = error_of([&] { zeros({2}, {.device = cuda(count)}); });
  if (count == 0) {
    EXPECT_TRUE(contains(message, "no CUDA device is available: ") || contains(message, "has no CUDA backend"))
        << message;
  } else {
    const std::string expected = "cuda:" + std::to_string(count) + " requested but only " + std::to_string(count) +
                                 " device(s)";
    EXPECT_TRUE(contains(message, expected)) << message;
  }
  EXPECT_NE(error_of([] { empty({3}, {.device = cuda(-1)}); }), "no error");
  EXPECT_NO_THROW(synchronize(kCPU));
}

// The host never waits on a CPU tensor, whatever the build.
TEST(CudaDevice, HostSyncCountsIgnoreTheCpu) {
  const HostSyncCounts before = host_sync_counts();
  const Tensor x = ones({4, 3});
  (void)sum(x).item();
  (void)x.to_vector<float>();
  synchronize(kCPU);
  EXPECT_EQ(host_sync_counts().total(), before.total());
  if (!cuda_available()) {
    EXPECT_EQ(before.total(), 0);
  }
}

class Cuda : public CudaTest {};

TEST_F(Cuda, DeviceQueriesAndMisuseErrors) {
  EXPECT_TRUE(cuda_available());
  EXPECT_GE(cuda_device_count(), 1);
  const Tensor g = ones({2, 3}, {.device = kGpu});
  EXPECT_EQ(g.device(), kGpu);
  EXPECT_TRUE(contains(error_of([&] { g.data<float>(); }), "copy it with .to(fpi::kCPU)"));
  EXPECT_TRUE(contains(error_of([&] { g + ones({2, 3}); }), "device mismatch"));
  EXPECT_NO_THROW(synchronize(kGpu));
  std::ostringstream printed;
  printed << g;
  EXPECT_TRUE(contains(printed.str(), "device='cuda:0'")) << printed.str();
}

TEST_F(Cuda, HostSyncCountsCountEveryWait) {
  const Tensor host = ones({5, 3});
  const HostSyncCounts start = host_sync_counts();
  const Tensor g = host.to(kGpu);
  const Tensor doubled = g * 2.0 + g;  // kernels alone: no wait
  const HostSyncCounts queued = host_sync_counts();
  EXPECT_EQ(queued.uploads - start.uploads, 1);
  EXPECT_EQ(queued.downloads, start.downloads);
  EXPECT_EQ(queued.synchronizations, start.synchronizations);
  EXPECT_EQ(sum(doubled).item(), 45.0);
  synchronize(kGpu);
  const HostSyncCounts end = host_sync_counts();
  EXPECT_EQ(end.downloads - queued.downloads, 1);
  EXPECT_EQ(end.synchronizations - queued.synchronizations, 1);
  EXPECT_EQ(end.total() - start.total(), 3);
}

TEST_F(Cuda, RoundTripsAreExact) {
  Generator gen(1);
  for (const Shape& shape : {Shape{}, Shape{0}, Shape{7}, Shape{3, 0, 2}, Shape{33, 65, 3}, Shape{1 << 21}}) {
    for (DType dtype : {kFloat32, kFloat64}) {
      const Tensor x = randn(shape, {.dtype = dtype}, &gen);
      const Tensor back = x.to(kGpu).to(kCPU);
      EXPECT_EQ(back.device(), kCPU);
      EXPECT_EQ(back.to_vector<double>(), x.to_vector<double>()) << shape_str(shape);
      // Converting on the device, while uploading and while downloading gives the CPU's conversion.
      const DType other = dtype == kFloat32 ? kFloat64 : kFloat32;
      const std::vector<double> converted = x.to(other).to_vector<double>();
      EXPECT_EQ(x.to(kGpu).to(other).to(kCPU).to_vector<double>(), converted);
      Tensor uploaded = empty(shape, {.dtype = other, .device = kGpu});
      uploaded.copy_(x);
      EXPECT_EQ(uploaded.to_vector<double>(), converted);
      Tensor downloaded = empty(shape, {.dtype = other});
      downloaded.copy_(x.to(kGpu));
      EXPECT_EQ(downloaded.to_vector<double>(), converted);
    }
  }
}

TEST_F(Cuda, StridedAndConvertingCopiesAcrossDevices) {
  Generator gen(2);
  const Tensor x = randn({6, 5, 4}, {.dtype = kFloat64}, &gen);
  const Tensor view = x.permute({2, 0, 1}).slice(1, 1, 6, 2);  // strided, offset, not contiguous
  EXPECT_EQ(view.to(kGpu).to(kCPU).to_vector<double>(), view.to_vector<double>());
  const Tensor on_gpu = x.to(kGpu);
  const Tensor gpu_view = on_gpu.permute({2, 0, 1}).slice(1, 1, 6, 2);
  EXPECT_EQ(gpu_view.to(kCPU).to_vector<double>(), view.to_vector<double>());
  EXPECT_EQ(gpu_view.contiguous().to(kCPU).to_vector<double>(), view.to_vector<double>());

  // copy_ into strided views, with a dtype conversion and a broadcast source, both directions.
  Tensor gpu_dst = zeros({4, 6}, {.device = kGpu});
  const Tensor row = tensor({1, 2, 3}, {.dtype = kFloat64});
  gpu_dst.slice(1, 0, 6, 2).copy_(row);
  EXPECT_EQ(gpu_dst.to_vector<double>(), (std::vector<double>{1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 3, 0,
                                                              1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 3, 0}));
  Tensor cpu_dst = zeros({6, 4}, {.dtype = kFloat64});
  cpu_dst.t().copy_(gpu_dst);
  EXPECT_EQ(cpu_dst.t().to_vector<double>(), gpu_dst.to_vector<double>());
  Tensor gpu_from_gpu = zeros({3, 4}, {.dtype = kFloat64, .device = kGpu});
  gpu_from_gpu.copy_(gpu_dst.t().slice(0, 0, 6, 2));
  EXPECT_EQ(gpu_from_gpu.to_vector<double>(), gpu_dst.t().slice(0, 0, 6, 2).to_vector<double>());
}

// Inputs with the values where implementations tend to differ: zeros, infinities and NaN.
Tensor awkward_values(const Shape& shape, DType dtype, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v = (randn(shape, {.dtype = kFloat64}, &gen) * 3.0).to_vector<double>();
  const double specials[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(), 1.0};
  for (std::size_t i = 0; i < v.size(); i += 11) v[i] = specials[(i / 11) % 6];
  return from_vector(v, shape, {.dtype = dtype});
}

TEST_F(Cuda, UnaryMapsOnStridedViewsMatchCpu) {
  const UnaryOp ops[] = {UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Abs, UnaryOp::Sign,
                         UnaryOp::Relu, UnaryOp::Step, UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Softplus,
                         UnaryOp::Square, UnaryOp::Reciprocal, UnaryOp::PowScalar, UnaryOp::AddScalar,
                         UnaryOp::MulScalar, UnaryOp::Clamp, UnaryOp::InRange, UnaryOp::NonFinite};
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor x = awkward_values({5, 6, 7}, dtype, 3);
    const Tensor gx = x.to(kGpu);
    for (UnaryOp op : ops) {
      for (double a : {2.0, 1.7}) {
        const double b = op == UnaryOp::Clamp || op == UnaryOp::InRange ? a + 1.0 : 0.0;
        const double lo = op == UnaryOp::Clamp || op == UnaryOp::InRange ? -a : a;
        // Source permuted, destination a transposed view of a fresh tensor.
        Tensor out = empty({7, 6, 5}, {.dtype = dtype}), gout = empty({7, 6, 5}, {.dtype = dtype, .device = kGpu});
        backend::backend_for(kCPU).unary(op, out.permute({2, 1, 0}), x, lo, b);
        backend::backend_for(kGpu).unary(op, gout.permute({2, 1, 0}), gx, lo, b);
        EXPECT_TRUE(matches_cpu(gout, out)) << "op " << static_cast<int>(op) << " a=" << lo << " " << dtype;
        // Dense, and in place.
        Tensor dense = x.clone(), gdense = gx.clone();
        backend::backend_for(kCPU).unary(op, dense, dense, lo, b);
        backend::backend_for(kGpu).unary(op, gdense, gdense, lo, b);
        EXPECT_TRUE(matches_cpu(gdense, dense)) << "op " << static_cast<int>(op) << " in place " << dtype;
      }
    }
  }
}

TEST_F(Cuda, BinaryMapsOnBroadcastAndTransposedViewsMatchCpu) {
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Minimum,
                          BinaryOp::Maximum, BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Eq};
  for (DType dtype : {kFloat32, kFloat64}) {
    const Tensor lhs = awkward_values({5, 1, 7}, dtype, 4);
    const Tensor rhs = awkward_values({6, 5}, dtype, 5).t();  // (5, 6), transposed
    const Shape shape{5, 6, 7};
    const auto views = [&](const Tensor& l, const Tensor& r) {
      return std::pair{l.expand(shape), r.unsqueeze(2).expand(shape)};
    };
    const auto [l, r] = views(lhs, rhs);
    const auto [gl, gr] = views(lhs.to(kGpu), rhs.to(kGpu));
    for (BinaryOp op : ops) {
      Tensor out = empty(shape, {.dtype = dtype}), gout = empty(shape, {.dtype = dtype, .device = kGpu});
      backend::backend_for(kCPU).binary(op, out, l, r);
      backend::backend_for(kGpu).binary(op, gout, gl, gr);
      EXPECT_TRUE(matches_cpu(gout, out)) << "op " << static_cast<int>(op) << " " << dtype;
    }
  }
}

TEST_F(Cuda, LargeTensorsUseEveryBlock) {
  Generator gen(6);
  const std::int64_t n = 2049 * 2047;  // four times what one grid-stride pass covers
  const Tensor x = randn({n}, {}, &gen), y = randn({n}, {}, &gen);
  const Tensor gx = x.to(kGpu), gy = y.to(kGpu);
  EXPECT_TRUE(matches_cpu(sigmoid(gx) * gy + 1.5, sigmoid(x) * y + 1.5));
  const Tensor m = x.reshape({2049, -1}).slice(0, 1, 2049), gm = gx.reshape({2049, -1}).slice(0, 1, 2049);
  EXPECT_TRUE(matches_cpu(gm.t() - gm.select(1, 3), m.t() - m.select(1, 3)));
  EXPECT_TRUE(matches_cpu(sum(gx), sum(x)));
  EXPECT_TRUE(matches_cpu(max(gx), max(x)));
  EXPECT_TRUE(matches_cpu(zeros({n}, {.device = kGpu}) + 2.0, full({n}, 2.0)));
}

TEST_F(Cuda, ReductionsOverEverySetOfDimsMatchCpu) {
  const std::vector<std::vector<std::int64_t>> dim_sets{{}, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (DType dtype : {kFloat32, kFloat64}) {
    Generator gen(7);
    const Tensor x = randn({37, 129, 65}, {.dtype = dtype}, &gen);
    const Tensor gx = x.to(kGpu);
    for (const auto& dims : dim_sets) {
      for (bool permuted : {false, true}) {
        const Tensor a = permuted ? x.permute({2, 0, 1}) : x, ga = permuted ? gx.permute({2, 0, 1}) : gx;
        EXPECT_TRUE(matches_cpu(sum(ga, dims), sum(a, dims))) << dims.size() << " dims, permuted " << permuted;
        EXPECT_TRUE(matches_cpu(mean(ga, dims, true), mean(a, dims, true)));
        for (ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
          Shape kept = a.shape();
          for (auto d : dims) kept[d] = 1;
          if (dims.empty()) kept = Shape(3, 1);
          Tensor out = empty(kept, {.dtype = dtype}), gout = empty(kept, {.dtype = dtype, .device = kGpu});
          backend::backend_for(kCPU).reduce(op, out, a);
          backend::backend_for(kGpu).reduce(op, gout, ga);
          EXPECT_EQ(gout.to_vector<double>(), out.to_vector<double>()) << "max/min are exact";
        }
      }
    }
  }
}

TEST_F(Cuda, ReductionShapesThatNeedSplitting) {
  Generator gen(8);
  // Few outputs over long folds, strided and contiguous; many outputs over short folds.
  for (const auto& [shape, dim] : std::vector<std::pair<Shape, std::int64_t>>{
           {{200003, 3}, 0}, {{3, 200003}, 1}, {{2048, 2048}, 0}, {{2048, 2048}, 1}, {{100000, 5}, 1}}) {
    const Tensor x = randn(shape, {}, &gen);
    EXPECT_TRUE(matches_cpu(sum(x.to(kGpu), {dim}), sum(x, {dim}))) << shape_str(shape) << " over " << dim;
    EXPECT_TRUE(matches_cpu(max(x.to(kGpu), dim), max(x, dim)));
    EXPECT_TRUE(matches_cpu(logsumexp(x.to(kGpu), dim), logsumexp(x, dim)));
  }
  // Reducing an empty dimension gives the identity; NaN wins in max and min as on the CPU.
  EXPECT_EQ(sum(zeros({0, 5}, {.device = kGpu}), {0}).to_vector<double>(), std::vector<double>(5, 0.0));
  const Tensor with_nan = awkward_values({40, 30}, kFloat32, 9);
  EXPECT_TRUE(matches_cpu(max(with_nan.to(kGpu), 1), max(with_nan, 1)));
  EXPECT_TRUE(matches_cpu(min(with_nan.to(kGpu), 0), min(with_nan, 0)));
  EXPECT_FALSE(all_finite(with_nan.to(kGpu)));
  EXPECT_TRUE(all_finite(ones({5}, {.device = kGpu})));
}

TEST_F(Cuda, MatrixProductsMatchCpu) {
  Generator gen(10);
  for (DType dtype : {kFloat32, kFloat64}) {
    const TensorOptions o{.dtype = dtype};
    const auto check = [&](const Tensor& a, const Tensor& b, const char* what) {
      EXPECT_TRUE(matches_cpu(matmul(a.to(kGpu), b.to(kGpu)), matmul(a, b))) << what << " " << dtype;
    };
    check(randn({257, 129}, o, &gen), randn({129, 65}, o, &gen), "plain");
    check(randn({129, 257}, o, &gen).t(), randn({65, 129}, o, &gen).t(), "both transposed");
    check(randn({1, 5}, o, &gen), randn({5, 1}, o, &gen), "row times column");
    check(randn({5, 1}, o, &gen), randn({1, 5}, o, &gen), "outer product");
    check(randn({7, 33, 17}, o, &gen), randn({7, 17, 9}, o, &gen), "batched");
    check(randn({7, 17, 33}, o, &gen).transpose(1, 2), randn({17, 9}, o, &gen), "batched, shared right");
    check(randn({2, 1, 6, 5}, o, &gen), randn({3, 5, 4}, o, &gen), "broadcast batch");
    const Tensor x = randn({40, 300}, o, &gen), w = randn({60, 300}, o, &gen), b = randn({60}, o, &gen);
    EXPECT_TRUE(matches_cpu(linear(x.to(kGpu), w.to(kGpu), b.to(kGpu)), linear(x, w, b)));
  }
}

TEST_F(Cuda, CachingAllocatorReusesDeviceBlocks) {
  const auto step = [] {
    const Tensor t = full({1 << 18}, 1.0, {.device = kGpu});
    const Tensor u = t * 2.0;
    return u.sum().item();
  };
  EXPECT_EQ(step(), 2.0 * (1 << 18));  // warm-up: the blocks of one step come from cudaMalloc once
  const AllocatorStats before = allocator_stats(kGpu);
  reset_allocator_stats(kGpu);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(step(), 2.0 * (1 << 18));
  const AllocatorStats after = allocator_stats(kGpu);
  EXPECT_EQ(after.system_allocations, 0u);
  EXPECT_GE(after.requests, 60u);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  empty_cache(kGpu);
  EXPECT_EQ(allocator_stats(kGpu).bytes_cached, 0u);
  EXPECT_GT(allocator_stats(kGpu).system_frees, 0u);
}

}  // namespace
}  // namespace fpi
