// The caching allocator behind Storage. One instance per device; blocks are kept in free lists keyed
// by size class, so a training loop whose tensor sizes repeat stops calling the system after warm-up.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "fpi/storage.hpp"

namespace fpi::backend {

// What the allocator needs from a device: raw allocation that returns nullptr on failure.
struct RawAllocator {
  void* (*allocate)(std::size_t bytes);
  void (*release)(void* ptr);
};

class CachingAllocator {
 public:
  explicit CachingAllocator(RawAllocator raw, Device device) : raw_(raw), device_(device) {}
  ~CachingAllocator();

  // Returns a block of at least `bytes`; `block_bytes` receives the size class actually reserved.
  void* allocate(std::size_t bytes, std::size_t& block_bytes);
  void release(void* ptr, std::size_t block_bytes);
  AllocatorStats stats();
  void reset_stats();
  void empty_cache();

  static std::size_t size_class(std::size_t bytes);

 private:
  void empty_cache_locked();

  RawAllocator raw_;
  Device device_;
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks_;
  AllocatorStats stats_;
};

CachingAllocator& allocator_for(Device device);

}  // namespace fpi::backend
