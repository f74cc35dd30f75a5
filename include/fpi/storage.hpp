// Storage: a device buffer drawn from that device's caching allocator, and the allocator statistics
// that tests and benchmarks read to check memory use ("a training step makes no system allocation").
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "fpi/core.hpp"

namespace fpi {

namespace backend {
struct Block;  // the allocator's record of a live block; opaque here
}

// Every figure in bytes counts whole blocks: requests are rounded up to 512 bytes.
struct AllocatorStats {
  std::size_t bytes_in_use = 0;         // bytes of live blocks
  std::size_t peak_bytes_in_use = 0;    // maximum of bytes_in_use since the last reset_allocator_stats()
  std::size_t bytes_cached = 0;         // free bytes of the segments held, ready for reuse (reserved - in use)
  std::size_t bytes_reserved = 0;       // bytes held from the system (malloc/mmap, cudaMalloc): every segment
  std::size_t peak_bytes_reserved = 0;  // maximum of bytes_reserved since the last reset_allocator_stats()
  // The part of bytes_cached inside segments that still hold a live block: reusable by a request that
  // fits, but it cannot go back to the system. The rest of bytes_cached is whole free segments, which
  // the cache limit bounds.
  std::size_t bytes_fragmented = 0;
  std::size_t largest_free_block = 0;  // a request up to this size is served without the system
  std::size_t segments = 0;            // blocks currently held from the system
  std::size_t cache_limit = 0;         // bound on the bytes of whole free segments kept for reuse
  std::uint64_t requests = 0;          // allocations asked of the allocator
  std::uint64_t system_allocations = 0;  // segments that had to come from the system
  std::uint64_t system_frees = 0;        // segments given back to the system
};

// A cache limit that never releases a free segment (the memory goes back only on empty_cache() or
// when the system refuses an allocation).
inline constexpr std::size_t kUnlimitedCache = std::numeric_limits<std::size_t>::max();

AllocatorStats allocator_stats(Device device = kCPU);
// Sets the peaks to the current figures and zeroes the request/system counters.
void reset_allocator_stats(Device device = kCPU);
// Returns every whole free segment to the system.
void empty_cache(Device device = kCPU);
// Bounds the bytes of whole free segments the device's allocator keeps; beyond it the least recently
// freed segments go back to the system at once. The starting value comes from the environment
// variable FPI_ALLOCATOR_CACHE_LIMIT (bytes, or with a KiB/MiB/GiB suffix, or "unlimited") when set,
// else 1 GiB on the CPU and unlimited on a CUDA device.
void set_allocator_cache_limit(Device device, std::size_t bytes);

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
  backend::Block* block_ = nullptr;
  Device device_;
  std::uint64_t version_ = 0;
};

}  // namespace fpi
