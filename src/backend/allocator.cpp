// Caching allocator: best-fit over free blocks, splitting and merging within segments, whole free
// segments kept up to the cache limit, statistics, and the FPI_ALLOCATOR_CACHE_LIMIT setting.
#include "backend/allocator.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <string>

#include "backend/backend.hpp"
#include "backend/settings.hpp"

namespace fpi::backend {
namespace {

constexpr const char* kLimitVariable = "FPI_ALLOCATOR_CACHE_LIMIT";

// Read once per process: the limit is a property of the run, not something to change under a live cache.
std::optional<std::size_t> limit_from_environment() {
  static const std::optional<std::size_t> limit = []() -> std::optional<std::size_t> {
    const char* text = std::getenv(kLimitVariable);
    if (!text) return std::nullopt;
    // The first tensor of a program reads it, wherever that is, so the message says what the name is.
    return parse_cache_limit(text, std::string("environment variable ") + kLimitVariable);
  }();
  return limit;
}

// The CPU cache holds resident memory nothing else on the machine can use, so it is bounded. 1 GiB is
// several times the working set of the paper's experiments (an FPI_NN Bibtex run, data included, peaks
// near 100 MiB in use), so a training loop's steady state stays cached and makes no system call; a
// limit below a loop's working set would map and unmap it every step. A GPU's memory belongs to the
// process anyway and giving it back (cudaFree) synchronises the device, so the cache is unbounded
// there: it empties when cudaMalloc fails or on empty_cache().
std::size_t default_cache_limit(Device device) {
  if (const auto limit = limit_from_environment()) return *limit;
  return device.is_cpu() ? kDefaultCpuCacheLimit : kUnlimitedCache;
}

// Small requests share 2 MiB segments; a large one gets a segment of its own, rounded to 2 MiB (the
// huge-page size on the CPU, the granularity cudaMalloc works in), whose rest serves later requests.
std::size_t segment_size(std::size_t request, bool small) {
  if (small) return kSegmentAlign;
  return (request + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign;
}

// A split leaves a free rest only when the rest can serve a request of its pool: any small one, or a
// large one (a large block of 1 MiB or less would serve no request of the large pool).
bool worth_splitting(std::size_t rest, bool small) { return small ? rest >= kBlockAlign : rest > kSmallRequest; }

}  // namespace

std::size_t parse_cache_limit(std::string_view text, std::string_view source) {
  if (text == "unlimited") return kUnlimitedCache;
  const auto bad = [&] {
    fail(source, ": expected a byte count such as 536870912, 512MiB or 2GiB, or 'unlimited'; got '",
         printable(text), "'");
  };
  std::size_t value = 0;
  const char* const end = text.data() + text.size();
  const auto [rest, error] = std::from_chars(text.data(), end, value);
  const auto too_large = [&] { fail(source, ": '", printable(text), "' is more bytes than fit in 64 bits"); };
  if (error == std::errc::result_out_of_range) too_large();
  if (error != std::errc()) bad();
  const std::string_view unit(rest, static_cast<std::size_t>(end - rest));
  int shift = 0;
  if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  } else if (!unit.empty()) {
    bad();
  }
  if (value > (kUnlimitedCache >> shift)) too_large();
  return value << shift;
}

CachingAllocator::CachingAllocator(RawAllocator raw, Device device)
    : CachingAllocator(raw, device, default_cache_limit(device)) {}

CachingAllocator::CachingAllocator(RawAllocator raw, Device device, std::size_t cache_limit)
    : raw_(raw), device_(device), cache_limit_(cache_limit) {}

// Live blocks at exit (tensors in static objects) keep their segments: only free ones are given back.
CachingAllocator::~CachingAllocator() { trim_to(0); }

std::size_t CachingAllocator::round_request(std::size_t bytes) {
  return (std::max<std::size_t>(bytes, 1) + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
}

void* CachingAllocator::allocate(std::size_t bytes, Block*& out) {
  FPI_CHECK(bytes <= kUnlimitedCache - kSegmentAlign, "out of memory on ", device_.str(), ": ", bytes,
            " bytes requested");
  const std::size_t size = round_request(bytes);
  const bool small = size <= kSmallRequest;
  std::lock_guard lock(mutex_);
  ++requests_;
  std::set<Block*, BySize>& pool = small ? small_free_ : large_free_;
  Block key;
  key.size = size;
  Block* block = nullptr;
  if (const auto it = pool.lower_bound(&key); it != pool.end()) {
    block = *it;
    pool.erase(it);
    if (block->whole_segment()) {
      free_segments_.erase(block);
      bytes_free_segments_ -= block->size;
    }
  } else {
    block = new_segment(segment_size(size, small), small);
  }
  if (worth_splitting(block->size - size, small)) {
    auto* rest = new Block{block->ptr + size, block->size - size, block, block->next, false, small, 0};
    if (block->next) block->next->prev = rest;
    block->next = rest;
    block->size = size;
    pool.insert(rest);
  }
  block->allocated = true;
  bytes_in_use_ += block->size;
  peak_in_use_ = std::max(peak_in_use_, bytes_in_use_);
  out = block;
  return block->ptr;
}

Block* CachingAllocator::new_segment(std::size_t size, bool small) {
  void* ptr = raw_.allocate(size);
  if (!ptr) {
    trim_to(0);  // free segments of other sizes may be what stands in the way
    ptr = raw_.allocate(size);
  }
  FPI_CHECK(ptr, "out of memory on ", device_.str(), ": could not allocate a segment of ", size, " bytes (",
            bytes_in_use_, " bytes in use, ", bytes_reserved_, " reserved)");
  auto* segment = new Block{static_cast<char*>(ptr), size, nullptr, nullptr, false, small, 0};
  segment_heads_.insert(segment);
  bytes_reserved_ += size;
  peak_reserved_ = std::max(peak_reserved_, bytes_reserved_);
  ++system_allocations_;
  return segment;
}

void CachingAllocator::release(Block* block) {
  std::lock_guard lock(mutex_);
  bytes_in_use_ -= block->size;
  block->allocated = false;
  mark_free(block);
  trim_to(cache_limit_);
}

// Merges the block with its free neighbours and files the result under its pool (and, when it is a
// whole segment, under the segments the cache limit may release).
void CachingAllocator::mark_free(Block* block) {
  std::set<Block*, BySize>& pool = pool_of(block);
  if (Block* prev = block->prev; prev && !prev->allocated) {
    pool.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next) block->next->prev = prev;
    delete block;
    block = prev;
  }
  if (Block* next = block->next; next && !next->allocated) {
    pool.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next) next->next->prev = block;
    delete next;
  }
  block->freed_at = ++release_count_;
  pool.insert(block);
  if (block->whole_segment()) {
    free_segments_.insert(block);
    bytes_free_segments_ += block->size;
  }
}

void CachingAllocator::trim_to(std::size_t limit) {
  while (bytes_free_segments_ > limit) release_segment(*free_segments_.begin());
}

void CachingAllocator::release_segment(Block* segment) {
  free_segments_.erase(segment);
  pool_of(segment).erase(segment);
  segment_heads_.erase(segment);
  bytes_free_segments_ -= segment->size;
  bytes_reserved_ -= segment->size;
  raw_.release(segment->ptr, segment->size);
  ++system_frees_;
  delete segment;
}

AllocatorStats CachingAllocator::stats() {
  std::lock_guard lock(mutex_);
  AllocatorStats s;
  s.bytes_in_use = bytes_in_use_;
  s.peak_bytes_in_use = peak_in_use_;
  s.bytes_reserved = bytes_reserved_;
  s.peak_bytes_reserved = peak_reserved_;
  s.bytes_cached = bytes_reserved_ - bytes_in_use_;
  s.bytes_fragmented = s.bytes_cached - bytes_free_segments_;
  for (const auto* pool : {&small_free_, &large_free_})
    if (!pool->empty()) s.largest_free_block = std::max(s.largest_free_block, (*pool->rbegin())->size);
  s.segments = segment_heads_.size();
  s.cache_limit = cache_limit_;
  s.requests = requests_;
  s.system_allocations = system_allocations_;
  s.system_frees = system_frees_;
  return s;
}

void CachingAllocator::reset_stats() {
  std::lock_guard lock(mutex_);
  peak_in_use_ = bytes_in_use_;
  peak_reserved_ = bytes_reserved_;
  requests_ = 0;
  system_allocations_ = 0;
  system_frees_ = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  trim_to(0);
}

void CachingAllocator::set_cache_limit(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  cache_limit_ = bytes;
  trim_to(cache_limit_);
}

void CachingAllocator::check_invariants() {
  std::lock_guard lock(mutex_);
  const std::string where = "allocator of " + device_.str() + ": ";
  std::size_t reserved = 0, in_use = 0, free_blocks = 0, whole_free = 0, whole_free_bytes = 0;
  for (const Block* head : segment_heads_) {
    FPI_CHECK(!head->prev, where, "a segment's first block has a predecessor");
    for (const Block* b = head; b; b = b->next) {
      FPI_CHECK(b->size > 0 && b->size % kBlockAlign == 0, where, "a block of ", b->size, " bytes");
      if (b->next) {
        FPI_CHECK(b->ptr + b->size == b->next->ptr && b->next->prev == b, where, "blocks of a segment not contiguous");
        FPI_CHECK(b->small == b->next->small, where, "one segment's blocks in two pools");
      }
      reserved += b->size;
      if (b->allocated) {
        in_use += b->size;
        continue;
      }
      FPI_CHECK(!b->next || b->next->allocated, where, "two free neighbours left unmerged");
      const auto& pool = b->small ? small_free_ : large_free_;
      const auto found = pool.find(const_cast<Block*>(b));
      FPI_CHECK(found != pool.end() && *found == b, where, "a free block missing from its pool");
      FPI_CHECK(b->small || b->size > kSmallRequest, where, "a large-pool free block of ", b->size, " bytes");
      ++free_blocks;
      if (b->whole_segment()) {
        FPI_CHECK(free_segments_.count(const_cast<Block*>(b)) == 1, where, "a free segment not listed as such");
        ++whole_free;
        whole_free_bytes += b->size;
      }
    }
  }
  FPI_CHECK(small_free_.size() + large_free_.size() == free_blocks, where, "the pools hold blocks that are not free");
  FPI_CHECK(free_segments_.size() == whole_free, where, "the free-segment list holds segments that are not free");
  FPI_CHECK(reserved == bytes_reserved_, where, "reserved bytes counted ", bytes_reserved_, ", held ", reserved);
  FPI_CHECK(in_use == bytes_in_use_, where, "bytes in use counted ", bytes_in_use_, ", held ", in_use);
  FPI_CHECK(whole_free_bytes == bytes_free_segments_, where, "free-segment bytes counted ", bytes_free_segments_,
            ", held ", whole_free_bytes);
  FPI_CHECK(bytes_free_segments_ <= cache_limit_, where, bytes_free_segments_, " bytes of free segments kept over the ",
            cache_limit_, "-byte limit");
}

}  // namespace fpi::backend

namespace fpi {

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes > 0) data_ = backend::allocator_for(device).allocate(bytes, block_);
}

Storage::~Storage() {
  if (data_) backend::allocator_for(device_).release(block_);
}

AllocatorStats allocator_stats(Device device) { return backend::allocator_for(device).stats(); }
void reset_allocator_stats(Device device) { backend::allocator_for(device).reset_stats(); }
void empty_cache(Device device) { backend::allocator_for(device).empty_cache(); }
void set_allocator_cache_limit(Device device, std::size_t bytes) {
  backend::allocator_for(device).set_cache_limit(bytes);
}

}  // namespace fpi
