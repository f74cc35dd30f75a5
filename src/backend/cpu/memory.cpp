// Host memory for the caching allocator: segments are mapped with mmap and given back with munmap.
// glibc's malloc would keep freed memory: its mmap threshold rises to the size of each mmapped block
// freed (up to 32 MiB), after which such blocks come from the heap, and freed heap memory stays resident
// while anything above it lives. Measured here: 40 blocks of 4-27 MiB from aligned_alloc, touched, and
// all but the last freed left 580 of 607 MiB resident from the second round on (munmap: 19 MiB), so a
// cache limit would bound the cache but not the process; malloc_trim would help only where called.
// Segments are 2 MiB-aligned and advised to use transparent huge pages: touching a fresh 4 KiB page
// costs ~15 µs on the VMs fpi is developed on, so a new 36 MB tensor spent ~150 ms on first touch,
// against ~5 ms with huge pages.
#include <sys/mman.h>

#include <cstdint>

#include "backend/cpu/cpu_backend.hpp"

namespace fpi::backend::cpu {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_to_pages(std::size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

// Maps one huge page more than needed and unmaps the ends, so the segment starts on a 2 MiB boundary.
void* allocate(std::size_t bytes) {
  const std::size_t size = round_to_pages(bytes);
  const std::size_t mapped = size + kHugePage;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  const std::size_t head = aligned - start, tail = mapped - head - size;
  if (head > 0) munmap(p, head);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
  void* segment = reinterpret_cast<void*>(aligned);
  madvise(segment, size, MADV_HUGEPAGE);  // advice only: a kernel without THP ignores it
  return segment;
}

void release(void* ptr, std::size_t bytes) { munmap(ptr, round_to_pages(bytes)); }

}  // namespace

RawAllocator cpu_raw_allocator() { return RawAllocator{&allocate, &release}; }

}  // namespace fpi::backend::cpu
