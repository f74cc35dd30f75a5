// Storage: a device buffer drawn from that device's caching allocator, and the allocator statistics
// that tests and benchmarks read to check memory use ("a training step makes no system allocation").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "fpi/core.hpp"

namespace fpi {

struct AllocatorStats {
  std::size_t bytes_in_use = 0;       // bytes of live blocks (rounded to the allocator's size classes)
  std::size_t peak_bytes_in_use = 0;  // maximum of bytes_in_use since the last reset_allocator_stats()
  std::size_t bytes_cached = 0;       // bytes held in free lists, ready for reuse
  std::uint64_t requests = 0;         // allocations asked of the allocator
  std::uint64_t system_allocations = 0;  // allocations that had to go to the system (malloc, cudaMalloc)
  std::uint64_t system_frees = 0;
};

AllocatorStats allocator_stats(Device device = kCPU);
// Sets the peak to the current use and zeroes the request/system counters.
void reset_allocator_stats(Device device = kCPU);
// Returns every cached block to the system.
void empty_cache(Device device = kCPU);

// An owning, untyped buffer. The version counter is bumped by every in-place write so that autograd
// can refuse to use a saved tensor that was modified after it was saved.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t block_bytes_ = 0;
  Device device_;
  std::uint64_t version_ = 0;
};

}  // namespace fpi
