// The caching allocator: blocks of other sizes reused (the shrinking active set of an FPI solve),
// splitting and merging within segments, the cache limit, empty_cache, statistics, the limit's parsing,
// and a random stress run checked against the allocator's own structural check. Most tests drive an
// allocator of their own over a counting fake of the system allocator, so they see every system call.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "backend/allocator.hpp"
#include "fpi/tensor.hpp"
#include "test_util.hpp"

namespace fpi {
namespace {

using backend::Block;
using backend::CachingAllocator;
using testing::error_of;

constexpr std::size_t kKiB = 1024, kMiB = 1024 * 1024;

// The fake system: malloc/free with counters, and a cap on live bytes to play out an out-of-memory.
struct FakeSystem {
  std::size_t live = 0, cap = SIZE_MAX;
  std::uint64_t allocations = 0, frees = 0;
};
FakeSystem fake;

void* fake_allocate(std::size_t bytes) {
  if (bytes > fake.cap - fake.live) return nullptr;
  ++fake.allocations;
  fake.live += bytes;
  return std::malloc(bytes);
}

void fake_release(void* ptr, std::size_t bytes) {
  ++fake.frees;
  fake.live -= bytes;
  std::free(ptr);
}

class Allocator : public ::testing::Test {
 protected:
  void SetUp() override { fake = FakeSystem{}; }
  void TearDown() override { EXPECT_EQ(fake.live, 0u) << "the test left memory with the fake system"; }

  struct Live {
    void* ptr;
    Block* block;
    std::size_t bytes;
  };
  static Live take(CachingAllocator& a, std::size_t bytes) {
    Live l{nullptr, nullptr, bytes};
    l.ptr = a.allocate(bytes, l.block);
    return l;
  }
};

CachingAllocator make_allocator(std::size_t limit) {
  return CachingAllocator(backend::RawAllocator{&fake_allocate, &fake_release}, kCPU, limit);
}

// An FPI solve over a batch whose active rows drop one at a time: each iteration makes tensors of the
// current row count while the last few iterates (Anderson's history) are still alive. With one free
// list per size class, most row counts made a system allocation; here a few segments serve it all.
TEST_F(Allocator, ShrinkingRowsReuseAFewSegments) {
  CachingAllocator a = make_allocator(kUnlimitedCache);
  for (const std::int64_t width : {159, 600, 1995}) {
    std::vector<Live> history;
    for (std::int64_t rows = 2515; rows >= 1; rows -= (rows > 100 ? 7 : 1)) {
      history.push_back(take(a, static_cast<std::size_t>(rows * width) * 4));
      if (history.size() > 5) {
        a.release(history.front().block);
        history.erase(history.begin());
      }
    }
    for (const Live& l : history) a.release(l.block);
    a.check_invariants();
  }
  // Six segments per width at its largest size (the six live iterates; each smaller one fits a freed
  // block), 2, 6 and 20 MiB, and three 2 MiB small segments that every width's tensors under 1 MiB
  // share. The size classes of before made 717 system allocations here and kept 1543 MiB cached.
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.requests, 3 * (345u + 100u));
  EXPECT_EQ(s.system_allocations, 3u * 6 + 3);
  EXPECT_EQ(s.bytes_reserved, (6 * (2 + 6 + 20) + 3 * 2) * kMiB);
  EXPECT_EQ(s.bytes_fragmented, 0u);  // everything merged back into whole segments
  a.empty_cache();
}

TEST_F(Allocator, SmallBlocksSplitASegmentAndMergeBack) {
  CachingAllocator a = make_allocator(kUnlimitedCache);
  const Live x = take(a, 256 * kKiB), y = take(a, 256 * kKiB), z = take(a, 100);
  EXPECT_EQ(fake.allocations, 1u);  // one 2 MiB segment holds all three
  EXPECT_EQ(static_cast<char*>(y.ptr), static_cast<char*>(x.ptr) + 256 * kKiB);
  EXPECT_EQ(static_cast<char*>(z.ptr), static_cast<char*>(y.ptr) + 256 * kKiB);
  EXPECT_EQ(a.stats().bytes_in_use, 512 * kKiB + 512);  // 100 bytes take one 512-byte unit
  a.release(x.block);
  a.release(y.block);  // merges with x's free block before it
  EXPECT_EQ(a.stats().bytes_fragmented, 2 * kMiB - 512);  // all but z, which pins the segment
  const Live w = take(a, 512 * kKiB);  // exactly the merged x + y
  EXPECT_EQ(w.ptr, x.ptr);
  a.release(w.block);
  a.release(z.block);  // now the whole segment is one free block
  const AllocatorStats s = a.stats();
  EXPECT_EQ(s.segments, 1u);
  EXPECT_EQ(s.bytes_fragmented, 0u);
  EXPECT_EQ(s.largest_free_block, 2 * kMiB);
  EXPECT_EQ(s.bytes_cached, 2 * kMiB);
  a.check_invariants();
  a.empty_cache();
  EXPECT_EQ(fake.frees, 1u);
}

TEST_F(Allocator, LargeBlocksSplitWhenTheRestCanServeALargeRequest) {
  CachingAllocator a = make_allocator(kUnlimitedCache);
  const Live big = take(a, 10 * kMiB);
  a.release(big.block);
  const Live x = take(a, 4 * kMiB);        // front of the 10 MiB segment, 6 MiB left free
  const Live y = take(a, 5 * kMiB + 100);  // the 6 MiB rest: a 1 MiB remainder is not worth a block
  EXPECT_EQ(x.ptr, big.ptr);
  EXPECT_EQ(static_cast<char*>(y.ptr), static_cast<char*>(x.ptr) + 4 * kMiB);
  EXPECT_EQ(fake.allocations, 1u);
  EXPECT_EQ(a.stats().bytes_in_use, 10 * kMiB);
  // A small request never takes a piece of a large segment: it gets a small segment of its own.
  const Live s = take(a, 1000);
  EXPECT_EQ(fake.allocations, 2u);
  a.release(y.block);
  a.release(x.block);
  a.release(s.block);
  EXPECT_EQ(a.stats().segments, 2u);
  EXPECT_EQ(a.stats().largest_free_block, 10 * kMiB);
  a.check_invariants();
  a.empty_cache();
}

TEST_F(Allocator, CacheLimitBoundsTheFreeSegmentsKept) {
  CachingAllocator a = make_allocator(8 * kMiB);
  std::vector<Live> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(take(a, 3 * kMiB + kKiB));  // a 4 MiB segment each
  EXPECT_EQ(a.stats().bytes_reserved, 40 * kMiB);
  for (const Live& l : blocks) {
    a.release(l.block);
    const AllocatorStats s = a.stats();
    EXPECT_LE(s.bytes_cached - s.bytes_fragmented, s.cache_limit);
    a.check_invariants();
  }
  EXPECT_EQ(fake.frees, 8u);  // two 4 MiB segments stay within 8 MiB
  // The ones kept are the most recently freed.
  const Live again = take(a, 3 * kMiB + kKiB);
  EXPECT_TRUE(again.ptr == blocks[8].ptr || again.ptr == blocks[9].ptr);
  a.release(again.block);
  // Lowering the limit gives back at once what no longer fits.
  a.set_cache_limit(4 * kMiB);
  EXPECT_EQ(a.stats().bytes_reserved, 4 * kMiB);
  a.set_cache_limit(0);
  EXPECT_EQ(a.stats().segments, 0u);
  EXPECT_EQ(fake.live, 0u);
}

TEST_F(Allocator, EmptyCacheReturnsEveryFreeSegment) {
  CachingAllocator a = make_allocator(kUnlimitedCache);
  const Live kept = take(a, 3000);
  std::vector<Live> blocks;
  for (std::size_t bytes : {std::size_t{100}, 3 * kMiB, 700 * kKiB, 20 * kMiB, 5 * kMiB})
    blocks.push_back(take(a, bytes));
  for (const Live& l : blocks) a.release(l.block);
  a.empty_cache();
  // Only the segment holding `kept` (with 100 and 700 KiB freed inside it) stays.
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.segments, 1u);
  EXPECT_EQ(s.bytes_reserved, 2 * kMiB);
  EXPECT_EQ(s.bytes_in_use, 3072u);
  EXPECT_EQ(s.bytes_fragmented, s.bytes_cached);
  EXPECT_EQ(fake.live, 2 * kMiB);
  a.release(kept.block);
  a.empty_cache();
  s = a.stats();
  EXPECT_EQ(s.bytes_reserved, 0u);
  EXPECT_EQ(s.bytes_cached, 0u);
  EXPECT_EQ(s.system_allocations, s.system_frees);
}

TEST_F(Allocator, RefusedSystemAllocationEmptiesTheCacheAndRetries) {
  CachingAllocator a = make_allocator(kUnlimitedCache);
  a.release(take(a, 8 * kMiB).block);
  fake.cap = 12 * kMiB;
  const Live l = take(a, 10 * kMiB);  // fits only once the cached 8 MiB segment is gone
  EXPECT_EQ(a.stats().system_frees, 1u);
  const std::string message = error_of([&] { take(a, 4 * kMiB); });
  EXPECT_NE(message.find("out of memory on cpu"), std::string::npos) << message;
  EXPECT_NE(message.find("10485760 bytes in use"), std::string::npos) << message;
  a.check_invariants();
  a.release(l.block);
  a.empty_cache();
}

// Random sizes from 1 byte to 12 MiB, freed in random order; every block is filled with its own
// pattern and checked when freed, so overlapping blocks would show.
TEST_F(Allocator, RandomSizesAndFreeOrderKeepTheInvariants) {
  CachingAllocator a = make_allocator(16 * kMiB);
  std::mt19937_64 rng(12);
  std::vector<Live> live;
  std::uint64_t peak_live_bytes = 0, live_bytes = 0;
  const auto fill_byte = [](const Live& l) {
    return static_cast<unsigned char>(reinterpret_cast<std::uintptr_t>(l.ptr) >> 9);
  };
  for (int op = 0; op < 6000; ++op) {
    if (live.empty() || rng() % 100 < 52) {
      const double log_size = std::uniform_real_distribution<double>(0.0, std::log2(12.0 * kMiB))(rng);
      const Live l = take(a, static_cast<std::size_t>(std::exp2(log_size)));
      std::memset(l.ptr, fill_byte(l), l.bytes);
      live.push_back(l);
      live_bytes += CachingAllocator::round_request(l.bytes);
      peak_live_bytes = std::max(peak_live_bytes, live_bytes);
    } else {
      const std::size_t i = rng() % live.size();
      const Live l = live[i];
      const auto* bytes = static_cast<const unsigned char*>(l.ptr);
      ASSERT_TRUE(std::all_of(bytes, bytes + l.bytes, [&](unsigned char b) { return b == fill_byte(l); }))
          << "block of " << l.bytes << " bytes was overwritten";
      a.release(l.block);
      live_bytes -= CachingAllocator::round_request(l.bytes);
      live[i] = live.back();
      live.pop_back();
    }
    if (op % 50 == 0) {
      ASSERT_NO_THROW(a.check_invariants()) << "after operation " << op;
      const AllocatorStats s = a.stats();
      ASSERT_EQ(s.bytes_reserved, s.bytes_in_use + s.bytes_cached);
      ASSERT_EQ(s.bytes_reserved, fake.live);
      ASSERT_EQ(s.segments, fake.allocations - fake.frees);
      ASSERT_GE(s.bytes_in_use, live_bytes);  // a block may carry a rest too small to split off
    }
  }
  for (const Live& l : live) a.release(l.block);
  a.check_invariants();
  const AllocatorStats s = a.stats();
  EXPECT_LE(s.bytes_cached, s.cache_limit);
  EXPECT_LE(s.peak_bytes_in_use, peak_live_bytes + 100 * kMiB);
  a.empty_cache();
}

TEST(AllocatorCacheLimit, ParsesBytesAndBinaryUnits) {
  using backend::parse_cache_limit;
  EXPECT_EQ(parse_cache_limit("0", "X"), 0u);
  EXPECT_EQ(parse_cache_limit("536870912", "X"), 536870912u);
  EXPECT_EQ(parse_cache_limit("64KiB", "X"), 64 * kKiB);
  EXPECT_EQ(parse_cache_limit("512MiB", "X"), 512 * kMiB);
  EXPECT_EQ(parse_cache_limit("2GiB", "X"), std::size_t{2} << 30);
  EXPECT_EQ(parse_cache_limit("unlimited", "X"), kUnlimitedCache);
}

TEST(AllocatorCacheLimit, BadValuesAreRefusedNamingTheVariable) {
  for (const char* text : {"", "abc", "-1", "+5", " 5", "1.5GiB", "12 MiB", "10MB", "10mib", "5GiBs", "0x10"}) {
    const std::string message =
        error_of([&] { backend::parse_cache_limit(text, "FPI_ALLOCATOR_CACHE_LIMIT"); });
    EXPECT_EQ(message.rfind("FPI_ALLOCATOR_CACHE_LIMIT: expected a byte count", 0), 0u) << text << ": " << message;
    EXPECT_NE(message.find(std::string("got '") + text + "'"), std::string::npos) << message;
  }
  for (const char* text : {"99999999999999999999", "17179869184GiB"}) {
    const std::string message = error_of([&] { backend::parse_cache_limit(text, "FPI_ALLOCATOR_CACHE_LIMIT"); });
    EXPECT_NE(message.find("more bytes than fit in 64 bits"), std::string::npos) << message;
  }
  EXPECT_NE(error_of([] { backend::parse_cache_limit(std::string_view("1\n2", 3), "V"); }).find("'1\\x0a2'"),
            std::string::npos);
}

std::size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// The CPU allocator's freed segments leave the process: resident memory falls when they are released.
TEST(AllocatorCpu, ReleasedSegmentsLeaveTheProcess) {
  const std::size_t limit = allocator_stats().cache_limit;
  const std::size_t before = resident_bytes();
  ASSERT_GT(before, 0u) << "no VmRSS in /proc/self/status";
  {
    Tensor t = empty({64, 1024, 1024});  // 256 MiB
    t.fill_(1.0);
    EXPECT_GE(resident_bytes(), before + 200 * kMiB);
  }
  set_allocator_cache_limit(kCPU, 0);
  EXPECT_LE(resident_bytes(), before + 50 * kMiB);
  EXPECT_EQ(allocator_stats().cache_limit, 0u);
  set_allocator_cache_limit(kCPU, limit);
  EXPECT_EQ(allocator_stats().cache_limit, limit);
}

}  // namespace
}  // namespace fpi
