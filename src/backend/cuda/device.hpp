// Device bookkeeping for the CUDA backend: which devices exist (asked once), the guard that makes a
// device current for the duration of a call, and one lazily made object per device (backend,
// allocator, cuBLAS and cuDNN state).
#pragma once

#include <array>
#include <mutex>

#include "backend/cuda/check.hpp"
#include "fpi/device.hpp"

namespace fpi::backend::cuda {

inline constexpr int kMaxDevices = 16;

// Throws fpi::Error saying why `index` cannot be used: no driver or device, or an index out of range.
void check_device(int index);
// Streaming multiprocessors of the device, for sizing grids.
int multiprocessor_count(int index);

// Every place the backend blocks the host on a device counts itself here (fpi::host_sync_counts).
enum class HostWait { Download, Upload, Synchronization };
void count_host_wait(HostWait kind);
HostSyncCounts host_waits();

// Makes `index` the calling thread's current device and restores the previous one on exit, so fpi
// leaves the caller's own CUDA code undisturbed.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) : index_(index) {
    FPI_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index_) FPI_CUDA_CHECK(cudaSetDevice(index_));
  }
  ~DeviceGuard() {
    if (previous_ != index_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int index_;
  int previous_ = 0;
};

// One T per device, made on first use with T(index) while the device is current. They are never
// destroyed: at exit the CUDA runtime may already be unloaded, and releasing cuBLAS/cuDNN handles or
// device memory then fails or crashes (PyTorch leaks its per-device state for the same reason).
template <class T>
T& per_device(int index) {
  static std::array<std::once_flag, kMaxDevices> made;
  static std::array<T*, kMaxDevices> objects{};
  std::call_once(made[index], [index] {
    DeviceGuard guard(index);
    objects[index] = new T(index);
  });
  return *objects[index];
}

}  // namespace fpi::backend::cuda
