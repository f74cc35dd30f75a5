// Caching allocator: size classes, free lists, statistics.
#include "backend/allocator.hpp"

#include <algorithm>
#include <bit>

#include "backend/backend.hpp"

namespace fpi::backend {

CachingAllocator::~CachingAllocator() { empty_cache_locked(); }

// Small blocks round up to 512 bytes; larger ones to one of 8 steps per power of two, so a cached
// block is at most 12.5 % larger than the request and similar sizes share a free list.
std::size_t CachingAllocator::size_class(std::size_t bytes) {
  constexpr std::size_t kSmall = 1 << 20;
  if (bytes <= kSmall) return (bytes + 511) / 512 * 512;
  const std::size_t top = std::bit_floor(bytes);
  const std::size_t step = top / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes, std::size_t& block_bytes) {
  block_bytes = size_class(std::max<std::size_t>(bytes, 1));
  std::lock_guard lock(mutex_);
  ++stats_.requests;
  void* ptr = nullptr;
  auto it = free_blocks_.find(block_bytes);
  if (it != free_blocks_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= block_bytes;
  } else {
    ptr = raw_.allocate(block_bytes);
    if (!ptr) {
      empty_cache_locked();
      ptr = raw_.allocate(block_bytes);
    }
    FPI_CHECK(ptr, "out of memory on ", device_.str(), ": could not allocate ", block_bytes, " bytes (",
              stats_.bytes_in_use, " bytes in use)");
    ++stats_.system_allocations;
  }
  stats_.bytes_in_use += block_bytes;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return ptr;
}

void CachingAllocator::release(void* ptr, std::size_t block_bytes) {
  std::lock_guard lock(mutex_);
  free_blocks_[block_bytes].push_back(ptr);
  stats_.bytes_in_use -= block_bytes;
  stats_.bytes_cached += block_bytes;
}

AllocatorStats CachingAllocator::stats() {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_stats() {
  std::lock_guard lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
  stats_.requests = 0;
  stats_.system_allocations = 0;
  stats_.system_frees = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  empty_cache_locked();
}

void CachingAllocator::empty_cache_locked() {
  for (auto& [size, blocks] : free_blocks_) {
    for (void* p : blocks) {
      raw_.release(p);
      ++stats_.system_frees;
    }
    stats_.bytes_cached -= size * blocks.size();
  }
  free_blocks_.clear();
}

}  // namespace fpi::backend

namespace fpi {

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes > 0) data_ = backend::allocator_for(device).allocate(bytes, block_bytes_);
}

Storage::~Storage() {
  if (data_) backend::allocator_for(device_).release(data_, block_bytes_);
}

AllocatorStats allocator_stats(Device device) { return backend::allocator_for(device).stats(); }
void reset_allocator_stats(Device device) { backend::allocator_for(device).reset_stats(); }
void empty_cache(Device device) { backend::allocator_for(device).empty_cache(); }

}  // namespace fpi
