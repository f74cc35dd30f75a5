// Which CUDA devices exist, the per-device caching allocators over cudaMalloc/cudaFree, the backend
// registry, and the error reporting shared by the CUDA, cuBLAS and cuDNN checks.
#include "backend/cuda/device.hpp"

#include <atomic>
#include <string>
#include <utility>

#include "backend/cuda/cuda_backend.hpp"

namespace fpi::backend::cuda {
namespace {

struct Probe {
  int count = 0;
  std::string reason;  // why count is 0
};

// Asked once: without a driver cudaGetDeviceCount fails cleanly (cudaErrorInsufficientDriver or
// cudaErrorNoDevice), which is what a CPU-only machine reports.
const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    const cudaError_t status = cudaGetDeviceCount(&p.count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      p.count = 0;
      p.reason = std::string(cudaGetErrorString(status)) + " (cudaGetDeviceCount)";
    } else if (p.count == 0) {
      p.reason = "the driver reports no devices";
    }
    return p;
  }();
  return result;
}

// The caching allocator's RawAllocator is a pair of plain function pointers, so each device index
// gets its own instantiation that makes that device current around the call.
template <int Index>
void* device_allocate(std::size_t bytes) {
  DeviceGuard guard(Index);
  void* ptr = nullptr;
  if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
    cudaGetLastError();  // out of memory is reported by the caching allocator, not as a stale error
    return nullptr;
  }
  return ptr;
}

template <int Index>
void device_release(void* ptr, std::size_t) {
  DeviceGuard guard(Index);
  if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();
}

template <std::size_t... I>
constexpr std::array<RawAllocator, sizeof...(I)> raw_allocators(std::index_sequence<I...>) {
  return {RawAllocator{&device_allocate<static_cast<int>(I)>, &device_release<static_cast<int>(I)>}...};
}

constexpr auto kRawAllocators = raw_allocators(std::make_index_sequence<kMaxDevices>());

struct DeviceAllocator {
  explicit DeviceAllocator(int index) : caching(kRawAllocators[index], fpi::cuda(index)) {}
  CachingAllocator caching;
};

struct DeviceProperties {
  explicit DeviceProperties(int index) {
    FPI_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, index));
  }
  int multiprocessors = 0;
};

}  // namespace

void throw_library_error(const char* library, const char* description, const char* call, const char* file,
                         int line) {
  fail(library, " error: ", description, "\n  in ", call, "\n  at ", file, ":", line);
}

int device_count() { return probe().count; }

void check_device(int index) {
  const Probe& p = probe();
  FPI_CHECK(index >= 0, "cuda:", index, " is not a valid device index (indices start at 0)");
  FPI_CHECK(p.count > 0, "cuda:", index, " requested, but no CUDA device is available: ", p.reason);
  FPI_CHECK(index < p.count, "cuda:", index, " requested but only ", p.count,
            " device(s) are visible (CUDA_VISIBLE_DEVICES selects which)");
  FPI_CHECK(index < kMaxDevices, "cuda:", index, " requested, but fpi supports at most ", kMaxDevices, " devices");
}

int multiprocessor_count(int index) { return per_device<DeviceProperties>(index).multiprocessors; }

CachingAllocator& cuda_allocator(int index) {
  check_device(index);
  return per_device<DeviceAllocator>(index).caching;
}

CudaBackend& cuda_backend(int index) {
  check_device(index);
  return per_device<CudaBackend>(index);
}

namespace {
std::atomic<std::int64_t> downloads{0}, uploads{0}, synchronizations{0};
}  // namespace

void count_host_wait(HostWait kind) {
  switch (kind) {
    case HostWait::Download: downloads.fetch_add(1, std::memory_order_relaxed); break;
    case HostWait::Upload: uploads.fetch_add(1, std::memory_order_relaxed); break;
    case HostWait::Synchronization: synchronizations.fetch_add(1, std::memory_order_relaxed); break;
  }
}

HostSyncCounts host_waits() {
  return {downloads.load(std::memory_order_relaxed), uploads.load(std::memory_order_relaxed),
          synchronizations.load(std::memory_order_relaxed)};
}

void CudaBackend::synchronize() {
  DeviceGuard guard(index_);
  count_host_wait(HostWait::Synchronization);
  FPI_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace fpi::backend::cuda
