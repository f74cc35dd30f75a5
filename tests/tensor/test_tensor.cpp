// Tensor basics: factories, views sharing storage, broadcasting rules, printing, the allocator, and
// errors for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "fpi/generator.hpp"
#include "fpi/ops.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

using testing::error_of;

TEST(Tensor, FactoriesFillAndConvert) {
  EXPECT_EQ(values(zeros({2, 2})), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(values(ones({3})), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(values(full({2}, 2.5, {.dtype = kFloat64})), (std::vector<double>{2.5, 2.5}));
  EXPECT_EQ(values(arange(0, 1, 0.25)), (std::vector<double>{0, 0.25, 0.5, 0.75}));
  EXPECT_EQ(arange(5).numel(), 5);
  const Tensor t = tensor({1.5, -2.0}, {.dtype = kFloat64});
  EXPECT_EQ(t.dtype(), kFloat64);
  EXPECT_EQ(t.to(kFloat32).dtype(), kFloat32);
  EXPECT_EQ(values(t.to(kFloat32)), (std::vector<double>{1.5, -2.0}));
  EXPECT_DOUBLE_EQ(scalar_tensor(4.0).item(), 4.0);
  EXPECT_EQ(scalar_tensor(4.0).dim(), 0);
}

TEST(Tensor, SameSeedSameNumbers) {
  Generator a(42), b(42), c(43);
  EXPECT_EQ(values(randn({100}, {}, &a)), values(randn({100}, {}, &b)));
  EXPECT_NE(values(rand({100}, {}, &a)), values(rand({100}, {}, &c)));
  manual_seed(5);
  const auto first = values(rand({10}));
  manual_seed(5);
  EXPECT_EQ(first, values(rand({10})));
}

TEST(Tensor, RandomDistributionsHaveTheRightMoments) {
  Generator gen(3);
  const Tensor n = randn({200000}, {.dtype = kFloat64}, &gen);
  EXPECT_NEAR(mean(n).item(), 0.0, 0.01);
  EXPECT_NEAR(mean(square(n)).item(), 1.0, 0.01);
  const Tensor u = rand({200000}, {.dtype = kFloat64}, &gen);
  EXPECT_NEAR(mean(u).item(), 0.5, 0.01);
  EXPECT_GE(min(u).item(), 0.0);
  EXPECT_LT(max(u).item(), 1.0);
}

TEST(Tensor, EmptyTensorsAreContiguousWhateverTheirStrides) {
  EXPECT_TRUE(empty({0, 0}).is_contiguous());
  EXPECT_TRUE(empty({2, 0}).is_contiguous());
  EXPECT_TRUE(arange(12).reshape({3, 4}).t().slice(0, 1, 1).is_contiguous());
}

TEST(Tensor, ViewsShareStorage) {
  Tensor base = arange(12, {.dtype = kFloat64}).reshape({3, 4});
  Tensor row = base.select(0, 1);
  Tensor column = base.slice(1, 2, 3);
  Tensor transposed = base.t();
  Tensor flat = base.reshape({12});
  EXPECT_FALSE(transposed.is_contiguous());
  EXPECT_EQ(transposed.shape(), (Shape{4, 3}));
  EXPECT_DOUBLE_EQ(transposed.select(0, 2).select(0, 1).item(), 6.0);
  row.fill_(-1.0);
  EXPECT_EQ(values(base.select(0, 1)), (std::vector<double>{-1, -1, -1, -1}));
  EXPECT_DOUBLE_EQ(flat.select(0, 5).item(), -1.0);
  column.fill_(7.0);
  EXPECT_EQ(values(base.select(1, 2)), (std::vector<double>{7, 7, 7}));
  EXPECT_DOUBLE_EQ(transposed.select(0, 2).select(0, 0).item(), 7.0);
  Tensor expanded = tensor({1, 2}).unsqueeze(1).expand({2, 3});
  EXPECT_EQ(expanded.strides(), (Shape{1, 0}));
  EXPECT_EQ(values(expanded), (std::vector<double>{1, 1, 1, 2, 2, 2}));
  // A reshape of non-contiguous data must copy, and the copy must not alias.
  Tensor copied = transposed.reshape({12});
  EXPECT_DOUBLE_EQ(copied.select(0, 1).item(), -1.0);
  copied.fill_(0.0);
  EXPECT_DOUBLE_EQ(base.select(0, 1).select(0, 0).item(), -1.0);
}

TEST(Tensor, SliceFollowsPythonRules) {
  const Tensor t = arange(10);
  EXPECT_EQ(values(t.slice(0, 2, 8, 3)), (std::vector<double>{2, 5}));
  EXPECT_EQ(values(t.slice(0, -3, 100)), (std::vector<double>{7, 8, 9}));
  EXPECT_EQ(t.slice(0, 5, 2).numel(), 0);
  EXPECT_EQ(values(t.narrow(0, 1, 2)), (std::vector<double>{1, 2}));
}

TEST(Tensor, BroadcastingShapeRules) {
  EXPECT_EQ(broadcast_shapes({3, 1, 5}, {4, 1}, "t"), (Shape{3, 4, 5}));
  EXPECT_EQ(broadcast_shapes({}, {2, 3}, "t"), (Shape{2, 3}));
  EXPECT_EQ(broadcast_shapes({0, 1}, {1, 4}, "t"), (Shape{0, 4}));
  EXPECT_EQ((ones({2, 1, 3}) + ones({4, 1})).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(values(tensor({1, 2}).unsqueeze(1) * tensor({10, 20, 30})),
            (std::vector<double>{10, 20, 30, 20, 40, 60}));
  const std::string message = error_of([] { (void)(ones({2, 3}) + ones({4})); });
  EXPECT_NE(message.find("add"), std::string::npos) << message;
  EXPECT_NE(message.find("[2, 3]"), std::string::npos) << message;
  EXPECT_NE(message.find("[4]"), std::string::npos) << message;
}

TEST(Tensor, ReductionsOverDims) {
  const Tensor t = arange(24, {.dtype = kFloat64}).reshape({2, 3, 4});
  EXPECT_DOUBLE_EQ(sum(t).item(), 276.0);
  EXPECT_EQ(sum(t, {0, 2}).shape(), (Shape{3}));
  EXPECT_EQ(values(sum(t, {0, 2})), (std::vector<double>{60, 92, 124}));
  EXPECT_EQ(sum(t, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(values(max(t, 1)), (std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(values(min(t.transpose(0, 1), 0)), (std::vector<double>{0, 1, 2, 3, 12, 13, 14, 15}));
  EXPECT_DOUBLE_EQ(mean(t.transpose(0, 2)).item(), 11.5);
  EXPECT_NEAR(values(softmax(t, 2))[3] + values(softmax(t, 2))[2] + values(softmax(t, 2))[1] +
                  values(softmax(t, 2))[0],
              1.0, 1e-12);
  EXPECT_NEAR(logsumexp(tensor({1000.0, 1000.0}, {.dtype = kFloat64}), 0).item(), 1000.0 + std::log(2.0), 1e-9);
}

TEST(Tensor, MatmulShapes) {
  const Tensor a = ones({2, 3, 4}), b = ones({4, 5}), c = ones({2, 4, 5});
  EXPECT_EQ(matmul(a, b).shape(), (Shape{2, 3, 5}));
  EXPECT_EQ(matmul(a, c).shape(), (Shape{2, 3, 5}));
  EXPECT_EQ(matmul(ones({7, 1, 3, 4}), ones({2, 4, 6})).shape(), (Shape{7, 2, 3, 6}));
  EXPECT_EQ(values(matmul(tensor({1, 2, 3, 4}).reshape({2, 2}), tensor({1, 0, 0, 1}).reshape({2, 2}).t())),
            (std::vector<double>{1, 2, 3, 4}));
  EXPECT_DOUBLE_EQ(matmul(ones({3, 0}), ones({0, 2})).sum().item(), 0.0);
}

TEST(Tensor, PrintsLikePyTorch) {
  std::ostringstream out;
  out << tensor({1, 2, 3});
  EXPECT_EQ(out.str(), "tensor([1., 2., 3.])");
  out.str("");
  out << tensor({1.5, -2.25}, {.dtype = kFloat64, .requires_grad = true});
  EXPECT_EQ(out.str(), "tensor([ 1.5000, -2.2500], dtype=float64, requires_grad=True)");
  out.str("");
  out << arange(6).reshape({2, 3});
  EXPECT_EQ(out.str(), "tensor([[0., 1., 2.],\n        [3., 4., 5.]])");
  out.str("");
  out << sum(tensor({1.0}, {.requires_grad = true}) * 2.0);
  EXPECT_EQ(out.str(), "tensor(2., grad_fn=<SumBackward>)");
  out.str("");
  out << arange(2000);
  EXPECT_NE(out.str().find("..."), std::string::npos);
}

TEST(Tensor, AllocatorReusesBlocks) {
  { Tensor warm = empty({1000, 1000}); }
  reset_allocator_stats();
  for (int i = 0; i < 10; ++i) {
    Tensor t = empty({1000, 1000});
    t.fill_(1.0);
  }
  const AllocatorStats stats = allocator_stats();
  EXPECT_EQ(stats.system_allocations, 0u);
  EXPECT_EQ(stats.requests, 10u);
  EXPECT_GE(stats.peak_bytes_in_use, 4000000u);
  empty_cache();
  EXPECT_EQ(allocator_stats().bytes_cached, 0u);
}

TEST(Tensor, BadInputNamesTheProblem) {
  const std::string dtype = error_of([] { (void)(ones({2}) * ones({2}, {.dtype = kFloat64})); });
  EXPECT_NE(dtype.find("mul"), std::string::npos) << dtype;
  EXPECT_NE(dtype.find("float64"), std::string::npos) << dtype;
  const std::string mm = error_of([] { (void)matmul(ones({2, 3}), ones({4, 5})); });
  EXPECT_NE(mm.find("matmul"), std::string::npos) << mm;
  EXPECT_NE(mm.find("[2, 3]"), std::string::npos) << mm;
  // No machine has a 100th GPU; whether CUDA is built or a device present, the error names the device.
  const std::string device = error_of([] { (void)ones({2}, {.device = cuda(99)}); });
  EXPECT_NE(device.find("cuda:99"), std::string::npos) << device;
  EXPECT_NE(error_of([] { (void)ones({6}).reshape({4, -1}); }).find("reshape"), std::string::npos);
  EXPECT_NE(error_of([] { (void)ones({2, 3}).t().view({6}); }).find("reshape()"), std::string::npos);
  EXPECT_NE(error_of([] { (void)ones({2}).item(); }).find("item"), std::string::npos);
  EXPECT_NE(error_of([] { (void)sum(ones({2, 3}), {2}); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { (void)conv2d(ones({1, 2, 5, 5}), ones({3, 4, 3, 3})); }).find("channels"),
            std::string::npos);
  EXPECT_NE(error_of([] { (void)cross_entropy_loss(ones({2, 3}), tensor({0, 3})); }).find("target[1]"),
            std::string::npos);
  EXPECT_NE(error_of([] { (void)Tensor().shape(); }).find("undefined"), std::string::npos);
}

}  // namespace
}  // namespace fpi
