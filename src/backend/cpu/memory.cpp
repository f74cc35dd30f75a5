// Host memory for the caching allocator. Large blocks are 2 MiB-aligned and advised to use
// transparent huge pages: touching a fresh 4 KiB page costs ~15 µs on the VMs fpi is developed on, so a
// new 36 MB tensor spent ~150 ms on first touch, against ~5 ms with huge pages.
#include <sys/mman.h>

#include <cstdlib>

#include "backend/cpu/cpu_backend.hpp"

namespace fpi::backend::cpu {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

void* allocate(std::size_t bytes) {
  if (bytes < 2 * kHugePage) {
    // 64-byte alignment keeps AVX-512 loads aligned; block sizes are multiples of 512.
    return std::aligned_alloc(64, bytes);
  }
  const std::size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: a kernel without THP ignores it
  return p;
}

}  // namespace

RawAllocator cpu_raw_allocator() { return RawAllocator{&allocate, &std::free}; }

}  // namespace fpi::backend::cpu
