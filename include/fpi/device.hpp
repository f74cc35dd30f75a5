// Device queries and settings: whether CUDA devices can be used here, how many there are, waiting for a
// device's queued work, and the CPU backend's thread count. They never throw, so a program can choose its device before making tensors;
// asking for a CUDA tensor that cannot be made throws an fpi::Error that says why.
#pragma once

#include "fpi/core.hpp"

namespace fpi {

// False in a build without the CUDA backend, and when no driver or no GPU is present.
bool cuda_available();
// 0 in the same situations.
int cuda_device_count();
// Blocks until the work queued on `device` has finished: GPU kernels run asynchronously, so a timing
// must synchronize before it reads the clock. A no-op on the CPU.
void synchronize(Device device);

// How often the host has waited for a GPU since the process started, over all devices: copies to the host
// (every .item(), to_vector and .to(kCPU) of a GPU tensor), blocking copies from pageable host memory (a
// cudaMemcpy from the host first waits for the device's queued work) and explicit synchronizations.
// A loop bound by these waits is bound by launch latency, not by its work, so tests and benchmarks
// count them (take the difference of two readings). All zero in a build without the CUDA backend.
struct HostSyncCounts {
  std::int64_t downloads = 0;
  std::int64_t uploads = 0;
  std::int64_t synchronizations = 0;
  std::int64_t total() const { return downloads + uploads + synchronizations; }
};
HostSyncCounts host_sync_counts();

// Threads of the CPU backend's loops, convolutions and matrix products (the caller's thread included).
// The default is FPI_NUM_THREADS when set (a whole number from 1 to 1024; anything else is an fpi::Error
// at the first parallel loop), else every hardware thread. It is the one setting: OpenBLAS is kept
// single-threaded whatever OPENBLAS_NUM_THREADS says, and fpi's pool shares out each large matrix
// product, so two pools never wait on the same cores. set_num_threads replaces the pool, so call it
// between operations, not while another thread runs fpi ops; it throws outside 1..1024. Where the
// system refuses to start a thread, the pool makes do with fewer (num_threads() says how many).
int num_threads();
void set_num_threads(int threads);

}  // namespace fpi
