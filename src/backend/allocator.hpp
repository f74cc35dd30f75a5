// The caching allocator behind Storage, one instance per device, device-agnostic over a RawAllocator.
// Segments come from the system; blocks are carved out of them best-fit, split when the rest is worth
// keeping, and merged with free neighbours when released, so a request of a size never seen before
// (an FPI solve's active row set shrinks one row at a time) is served from memory already held. Small
// and large requests use separate segments, so small tensors do not pin pieces of big segments. Whole
// free segments beyond the cache limit go back to the system, least recently freed first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_set>

#include "fpi/storage.hpp"

namespace fpi::backend {

// What the allocator needs from a device: raw allocation that returns nullptr on failure, and its
// release, which is told the size that was allocated (munmap needs it).
struct RawAllocator {
  void* (*allocate)(std::size_t bytes);
  void (*release)(void* ptr, std::size_t bytes);
};

// A piece of a segment. Blocks of one segment form a list in address order (prev/next), so a released
// block finds its neighbours at once.
struct Block {
  char* ptr = nullptr;
  std::size_t size = 0;
  Block* prev = nullptr;
  Block* next = nullptr;
  bool allocated = false;
  bool small = false;             // from the small pool's segments
  std::uint64_t freed_at = 0;     // release counter value when the block last became free
  bool whole_segment() const { return !prev && !next; }
};

// Free blocks ordered by size, then address: lower_bound of a request is its best fit.
struct BySize {
  bool operator()(const Block* a, const Block* b) const {
    return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
  }
};
// Whole free segments, least recently freed first: the order in which the cache limit releases them.
struct ByFreedAt {
  bool operator()(const Block* a, const Block* b) const {
    return a->freed_at != b->freed_at ? a->freed_at < b->freed_at : a->ptr < b->ptr;
  }
};

// The sizes the allocator works in; tests use them to build exact scenarios.
inline constexpr std::size_t kBlockAlign = 512;               // every block is a multiple of this
inline constexpr std::size_t kSmallRequest = std::size_t{1} << 20;  // up to this: the small pool
inline constexpr std::size_t kSegmentAlign = std::size_t{2} << 20;  // small segments; large round to it
inline constexpr std::size_t kDefaultCpuCacheLimit = std::size_t{1} << 30;

// The value of FPI_ALLOCATOR_CACHE_LIMIT (or any text naming a cache limit): a whole number of bytes,
// optionally followed by KiB, MiB or GiB, or "unlimited". Anything else is an fpi::Error naming `source`.
std::size_t parse_cache_limit(std::string_view text, std::string_view source);

class CachingAllocator {
 public:
  // The cache limit starts from FPI_ALLOCATOR_CACHE_LIMIT when set, else the device's default.
  CachingAllocator(RawAllocator raw, Device device);
  CachingAllocator(RawAllocator raw, Device device, std::size_t cache_limit);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes`; `block` receives the handle that release() takes.
  void* allocate(std::size_t bytes, Block*& block);
  void release(Block* block);
  AllocatorStats stats();
  void reset_stats();
  void empty_cache();
  void set_cache_limit(std::size_t bytes);

  // Walks every segment and checks the free structure against the counters (contiguous blocks, no two
  // free neighbours, each free block in its pool once, whole free segments within the limit); an
  // fpi::Error says what is broken. For tests: it costs time linear in the blocks held.
  void check_invariants();

  // Requests round up to this.
  static std::size_t round_request(std::size_t bytes);

 private:
  std::set<Block*, BySize>& pool_of(const Block* block) { return block->small ? small_free_ : large_free_; }
  Block* new_segment(std::size_t size, bool small);
  void release_segment(Block* segment);
  void mark_free(Block* block);
  void trim_to(std::size_t limit);

  RawAllocator raw_;
  Device device_;
  std::mutex mutex_;
  std::set<Block*, BySize> small_free_, large_free_;
  std::set<Block*, ByFreedAt> free_segments_;
  std::unordered_set<Block*> segment_heads_;  // every segment's first block, for check_invariants()
  std::uint64_t release_count_ = 0;
  std::size_t cache_limit_;
  std::size_t bytes_in_use_ = 0, peak_in_use_ = 0;
  std::size_t bytes_reserved_ = 0, peak_reserved_ = 0;
  std::size_t bytes_free_segments_ = 0;
  std::uint64_t requests_ = 0, system_allocations_ = 0, system_frees_ = 0;
};

CachingAllocator& allocator_for(Device device);

}  // namespace fpi::backend
