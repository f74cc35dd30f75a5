// Device registry: maps a Device to its backend and allocator.
#include "backend/backend.hpp"

#include <cstdlib>

#include "backend/cpu/cpu_backend.hpp"
#ifdef FPI_WITH_CUDA
#include "backend/cuda/cuda_backend.hpp"
#endif

namespace fpi::backend {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return cpu::cpu_backend();
#ifdef FPI_WITH_CUDA
  return cuda::cuda_backend(device.index);
#else
  fail("device ", device.str(), " was requested, but this build of fpi has no CUDA backend (configure with ",
       "-DFPI_CUDA=ON on a machine with the CUDA Toolkit)");
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
  fail("device ", device.str(), " was requested, but this build of fpi has no CUDA backend (configure with ",
       "-DFPI_CUDA=ON on a machine with the CUDA Toolkit)");
#endif
}

}  // namespace fpi::backend
