// Device registry: maps a Device to its backend and allocator, and answers the public device queries
// and settings (fpi/device.hpp).
#include "backend/backend.hpp"

#include "fpi/device.hpp"

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"
#ifdef FPI_WITH_CUDA
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"
#endif

namespace fpi::backend {

#ifndef FPI_WITH_CUDA
namespace {
[[noreturn]] void no_cuda_backend(Device device) {
  fail("device ", device.str(), " was requested, but this build of fpi has no CUDA backend (configure with ",
       "-DFPI_CUDA=ON on a machine with the CUDA Toolkit)");
}
}  // namespace
#endif

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#ifdef FPI_WITH_CUDA
  return cuda::cuda_backend(device.index);
#else
  no_cuda_backend(device);
#endif
}

CachingAllocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    static CachingAllocator cpu_allocator(cpu::cpu_raw_allocator(), kCPU);
    return cpu_allocator;
  }
#ifdef FPI_WITH_CUDA
  return cuda::cuda_allocator(device.index);
#else
  no_cuda_backend(device);
#endif
}

}  // namespace fpi::backend

namespace fpi {

#ifdef FPI_WITH_CUDA
int cuda_device_count() { return backend::cuda::device_count(); }
#else
int cuda_device_count() { return 0; }
#endif

bool cuda_available() { return cuda_device_count() > 0; }

void synchronize(Device device) { backend::backend_for(device).synchronize(); }

#ifdef FPI_WITH_CUDA
HostSyncCounts host_sync_counts() { return backend::cuda::host_waits(); }
#else
HostSyncCounts host_sync_counts() { return {}; }
#endif

int num_threads() { return backend::cpu::num_threads(); }
void set_num_threads(int threads) { backend::cpu::set_num_threads(threads); }

}  // namespace fpi
