// CUDA convolution through cuDNN's convolution API. Each distinct geometry (dtype, shapes, stride,
// padding, dilation) gets a plan, made once and cached per device: its descriptors and, per direction
// (forward, backward-data, backward-filter), the algorithms cuDNN's heuristics rank first
// (cudnnGet*_v7, which runs nothing, so a new batch size costs microseconds, not a benchmark). The
// first of them that runs is kept; workspaces come from fpi's caching allocator. FP32 convolutions use
// FMA math only: cuDNN would otherwise round operands to TF32 on Ampere and later GPUs and drift from
// the CPU backend by ~1e-3 (PyTorch's default does that; fpi keeps float32 exact).
#include <cudnn.h>

#include <array>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"

#define FPI_CUDNN_CHECK(call)                                                                                \
  do {                                                                                                       \
    const cudnnStatus_t fpi_status = (call);                                                                 \
    if (fpi_status != CUDNN_STATUS_SUCCESS)                                                                  \
      ::fpi::backend::cuda::throw_library_error("cuDNN", cudnnGetErrorString(fpi_status), #call, __FILE__, \
                                                __LINE__);                                                   \
  } while (0)

namespace fpi::backend::cuda {
namespace {

// A cuDNN descriptor owned by exactly one object.
template <class Handle, cudnnStatus_t (*Create)(Handle*), cudnnStatus_t (*Destroy)(Handle)>
class Descriptor {
 public:
  Descriptor() { FPI_CUDNN_CHECK(Create(&handle_)); }
  ~Descriptor() { Destroy(handle_); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  Handle get() const { return handle_; }

 private:
  Handle handle_ = nullptr;
};

using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

struct Algorithm {
  int algo;
  std::size_t workspace;
  cudnnMathType_t math;
};

// Workspaces above this are not worth it: an algorithm that needs more is skipped for the next one.
constexpr std::size_t kMaxWorkspace = std::size_t(1) << 30;

struct ConvPlan {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvDescriptor conv;
  bool fp32 = true;
  // Ranked candidates per direction, found on the direction's first use; the front one runs.
  std::vector<Algorithm> forward, backward_data, backward_filter;
};

using PlanKey = std::array<std::int64_t, 16>;

struct DnnState {
  explicit DnnState(int) { FPI_CUDNN_CHECK(cudnnCreate(&handle)); }
  DnnState(const DnnState&) = delete;
  DnnState& operator=(const DnnState&) = delete;
  cudnnHandle_t handle = nullptr;
  std::mutex mutex;  // the handle and the plans serve one call at a time
  std::map<PlanKey, std::unique_ptr<ConvPlan>> plans;
};

int as_int(std::int64_t v) {
  FPI_CHECK(v >= 0 && v <= INT_MAX, "cuda conv2d: size ", v, " exceeds cuDNN's 32-bit limit");
  return static_cast<int>(v);
}

std::unique_ptr<ConvPlan> make_plan(const Conv2dDesc& d, DType dtype) {
  auto p = std::make_unique<ConvPlan>();
  p->fp32 = dtype == DType::Float32;
  const cudnnDataType_t type = p->fp32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
  FPI_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x.get(), CUDNN_TENSOR_NCHW, type, as_int(d.batch),
                                             as_int(d.in_channels), as_int(d.in_h), as_int(d.in_w)));
  FPI_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y.get(), CUDNN_TENSOR_NCHW, type, as_int(d.batch),
                                             as_int(d.out_channels), as_int(d.out_h), as_int(d.out_w)));
  FPI_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w.get(), type, CUDNN_TENSOR_NCHW, as_int(d.out_channels),
                                             as_int(d.in_channels), as_int(d.kernel_h), as_int(d.kernel_w)));
  FPI_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv.get(), as_int(d.pad_h), as_int(d.pad_w), as_int(d.stride_h),
                                                  as_int(d.stride_w), as_int(d.dilation_h), as_int(d.dilation_w),
                                                  CUDNN_CROSS_CORRELATION, type));
  FPI_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv.get(), p->fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  int n = 0, c = 0, h = 0, w = 0;
  FPI_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv.get(), p->x.get(), p->w.get(), &n, &c, &h, &w));
  FPI_CHECK(h == d.out_h && w == d.out_w, "cuda conv2d: cuDNN computes a ", h, "x", w, " output where fpi expects ",
            d.out_h, "x", d.out_w);
  return p;
}

ConvPlan& plan_for(DnnState& state, const Conv2dDesc& d, DType dtype) {
  const PlanKey key{static_cast<std::int64_t>(dtype), d.batch, d.in_channels, d.in_h, d.in_w, d.out_channels,
                    d.out_h, d.out_w, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.pad_h, d.pad_w,
                    d.dilation_h, d.dilation_w};
  auto& slot = state.plans[key];
  if (!slot) slot = make_plan(d, dtype);
  return *slot;
}

// FP32 algorithms run with FMA math whatever the heuristics list (CUDNN_DEFAULT_MATH would permit
// TF32 on Ampere and later); one that cannot is reported "not supported" at run time and skipped.
template <class Perf>
std::vector<Algorithm> usable(const std::vector<Perf>& perf, int count, bool fp32) {
  std::vector<Algorithm> out;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    const bool tensor_op = p.mathType == CUDNN_TENSOR_OP_MATH || p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    if (p.status != CUDNN_STATUS_SUCCESS || (fp32 && tensor_op) || p.memory > kMaxWorkspace) continue;
    out.push_back({static_cast<int>(p.algo), p.memory, fp32 ? CUDNN_FMA_MATH : p.mathType});
  }
  return out;
}

std::vector<Algorithm> rank_forward(cudnnHandle_t h, const ConvPlan& p) {
  int count = 0;
  FPI_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(count);
  FPI_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), count,
                                                         &count, perf.data()));
  return usable(perf, count, p.fp32);
}

std::vector<Algorithm> rank_backward_data(cudnnHandle_t h, const ConvPlan& p) {
  int count = 0;
  FPI_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count));
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(count);
  FPI_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), count,
                                                              &count, perf.data()));
  return usable(perf, count, p.fp32);
}

std::vector<Algorithm> rank_backward_filter(cudnnHandle_t h, const ConvPlan& p) {
  int count = 0;
  FPI_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count));
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(count);
  FPI_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                                count, &count, perf.data()));
  return usable(perf, count, p.fp32);
}

// Runs the front candidate. cuDNN's heuristics may rank an algorithm that then reports "not
// supported" for this geometry or dtype; it is dropped and the next one tried, so the plan settles on
// the first that works.
template <class Rank, class Execute>
void run(DnnState& state, ConvPlan& plan, std::vector<Algorithm>& candidates, Device device, const char* what,
         Rank rank, Execute execute) {
  if (candidates.empty()) candidates = rank(state.handle, plan);
  while (!candidates.empty()) {
    const Algorithm& a = candidates.front();
    FPI_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv.get(), a.math));
    Storage workspace(a.workspace, device);
    const cudnnStatus_t status = execute(a.algo, workspace.data(), a.workspace);
    if (status == CUDNN_STATUS_SUCCESS) return;
    if (CUDNN_STATUS_CATEGORY(status) != CUDNN_STATUS_NOT_SUPPORTED)
      throw_library_error("cuDNN", cudnnGetErrorString(status), what, __FILE__, __LINE__);
    candidates.erase(candidates.begin());
  }
  fail("cuda ", what, ": cuDNN has no algorithm that runs this convolution (", plan.fp32 ? "float32" : "float64",
       ") within a ", kMaxWorkspace >> 20, " MiB workspace");
}

// cuDNN's scaling factors are float for float data and double for double data.
struct Scale {
  float f32[2] = {1.0f, 0.0f};
  double f64[2] = {1.0, 0.0};
  const void* one(bool fp32) const { return fp32 ? static_cast<const void*>(&f32[0]) : &f64[0]; }
  const void* zero(bool fp32) const { return fp32 ? static_cast<const void*>(&f32[1]) : &f64[1]; }
};

}  // namespace

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  DeviceGuard guard(index_);
  DnnState& state = per_device<DnnState>(index_);
  std::lock_guard lock(state.mutex);
  ConvPlan& plan = plan_for(state, d, x.dtype());
  const Scale s;
  run(state, plan, plan.forward, device(), "cudnnConvolutionForward", rank_forward,
      [&](int algo, void* ws, std::size_t bytes) {
        return cudnnConvolutionForward(state.handle, s.one(plan.fp32), plan.x.get(), x.raw_data(), plan.w.get(),
                                       w.raw_data(), plan.conv.get(), static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws,
                                       bytes, s.zero(plan.fp32), plan.y.get(), y.raw_data());
      });
}

void CudaBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dDesc& d) {
  if (d.batch == 0) return;
  DeviceGuard guard(index_);
  DnnState& state = per_device<DnnState>(index_);
  std::lock_guard lock(state.mutex);
  ConvPlan& plan = plan_for(state, d, gy.dtype());
  const Scale s;
  run(state, plan, plan.backward_data, device(), "cudnnConvolutionBackwardData", rank_backward_data,
      [&](int algo, void* ws, std::size_t bytes) {
        return cudnnConvolutionBackwardData(state.handle, s.one(plan.fp32), plan.w.get(), w.raw_data(), plan.y.get(),
                                            gy.raw_data(), plan.conv.get(),
                                            static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, bytes,
                                            s.zero(plan.fp32), plan.x.get(), gx.raw_data());
      });
}

void CudaBackend::conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const Conv2dDesc& d) {
  if (d.batch == 0) {
    fill(gw, 0.0);
    return;
  }
  DeviceGuard guard(index_);
  DnnState& state = per_device<DnnState>(index_);
  std::lock_guard lock(state.mutex);
  ConvPlan& plan = plan_for(state, d, x.dtype());
  const Scale s;
  run(state, plan, plan.backward_filter, device(), "cudnnConvolutionBackwardFilter", rank_backward_filter,
      [&](int algo, void* ws, std::size_t bytes) {
        return cudnnConvolutionBackwardFilter(state.handle, s.one(plan.fp32), plan.x.get(), x.raw_data(), plan.y.get(),
                                              gy.raw_data(), plan.conv.get(),
                                              static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, bytes,
                                              s.zero(plan.fp32), plan.w.get(), gw.raw_data());
      });
}

}  // namespace fpi::backend::cuda
