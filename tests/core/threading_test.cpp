// Thread-count control and parallel_for: every index of [begin, end) is
// visited exactly once, in contiguous chunks of at least `grain`, at most
// num_threads() of them; nested calls run serially.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "qaware/core/threading.hpp"

#if defined(QAWARE_HAS_OPENMP)
#include <omp.h>
#endif

namespace qaware {
namespace {

// Restores the default thread count when a test ends.
struct ThreadGuard {
  ~ThreadGuard() { set_num_threads(0); }
};

using Chunks = std::vector<std::pair<Index, Index>>;

// Runs parallel_for and returns the sorted chunks, checking that every index
// in [begin, end) was visited exactly once.
Chunks run_and_check(Index begin, Index end, Index grain) {
  const Index n = std::max<Index>(end - begin, 0);
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  for (auto& h : hits) h.store(0);
  std::mutex mu;
  Chunks chunks;
  parallel_for(begin, end, grain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) hits[static_cast<std::size_t>(i - begin)].fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    chunks.emplace_back(lo, hi);
  });
  for (Index i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << "index " << begin + i;
  std::sort(chunks.begin(), chunks.end());
  if (n > 0) {
    EXPECT_FALSE(chunks.empty());
    if (!chunks.empty()) {
      EXPECT_EQ(chunks.front().first, begin);
      EXPECT_EQ(chunks.back().second, end);
    }
    for (std::size_t c = 0; c < chunks.size(); ++c) {
      EXPECT_LT(chunks[c].first, chunks[c].second) << "empty chunk " << c;
      if (c > 0) {
        EXPECT_EQ(chunks[c].first, chunks[c - 1].second) << "gap or overlap before chunk " << c;
      }
    }
  }
  return chunks;
}

TEST(ThreadingTest, SetAndQueryThreadCount) {
  ThreadGuard guard;
  EXPECT_GE(hardware_threads(), 1);
  set_num_threads(3);
#if defined(QAWARE_HAS_OPENMP)
  EXPECT_EQ(num_threads(), 3);
  EXPECT_EQ(Eigen::nbThreads(), 3);  // Eigen's GEMM follows the setting
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  EXPECT_EQ(Eigen::nbThreads(), 1);
  set_num_threads(0);  // back to every core
  EXPECT_EQ(num_threads(), hardware_threads());
  set_num_threads(-5);
  EXPECT_EQ(num_threads(), hardware_threads());
#else
  EXPECT_EQ(num_threads(), 1);  // no OpenMP: always serial
#endif
}

TEST(ThreadingTest, DefaultIsAllCores) {
  ThreadGuard guard;
  set_num_threads(0);
#if defined(QAWARE_HAS_OPENMP)
  EXPECT_EQ(num_threads(), hardware_threads());
#else
  EXPECT_EQ(num_threads(), 1);
#endif
}

TEST(ThreadingTest, CoversRangeExactlyOnceInBalancedChunks) {
  ThreadGuard guard;
  for (int threads : {1, 2, 3, 4, 7}) {
    SCOPED_TRACE(threads);
    set_num_threads(threads);
    const Chunks chunks = run_and_check(7, 1007, 1);
    EXPECT_LE(chunks.size(), static_cast<std::size_t>(num_threads()));
    // Chunk sizes differ by at most one (n * t / nt boundaries).
    Index lo = chunks.front().second - chunks.front().first, hi = lo;
    for (const auto& c : chunks) {
      lo = std::min(lo, c.second - c.first);
      hi = std::max(hi, c.second - c.first);
    }
    EXPECT_LE(hi - lo, 1);
#if defined(QAWARE_HAS_OPENMP)
    // OpenMP may hand out fewer threads only under OMP_DYNAMIC; by default
    // the team has exactly the requested size.
    EXPECT_EQ(chunks.size(), static_cast<std::size_t>(threads));
#endif
  }
}

TEST(ThreadingTest, GrainLimitsTheNumberOfChunks) {
  ThreadGuard guard;
  set_num_threads(8);
  // 1000 iterations with grain 300: at most 3 chunks, each >= 300.
  const Chunks chunks = run_and_check(0, 1000, 300);
  EXPECT_LE(chunks.size(), 3u);
  for (const auto& c : chunks) EXPECT_GE(c.second - c.first, 300);
  // A range smaller than the grain is one serial call.
  const Chunks one = run_and_check(5, 105, 1000);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], std::make_pair(Index(5), Index(105)));
  // A grain <= 0 is treated as 1.
  run_and_check(0, 10, 0);
  run_and_check(0, 10, -4);
}

TEST(ThreadingTest, EmptyAndReversedRangesCallNothing) {
  ThreadGuard guard;
  set_num_threads(4);
  int calls = 0;
  parallel_for(5, 5, 1, [&](Index, Index) { ++calls; });
  parallel_for(9, 3, 1, [&](Index, Index) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadingTest, NestedCallRunsSerially) {
  ThreadGuard guard;
  set_num_threads(2);
  std::mutex mu;
  std::vector<Chunks> inner_chunks;
  std::set<int> outer_threads;
  parallel_for(0, 2, 1, [&](Index, Index) {
    Chunks mine;
    parallel_for(0, 100, 1, [&](Index lo, Index hi) { mine.emplace_back(lo, hi); });
    std::lock_guard<std::mutex> lock(mu);
    inner_chunks.push_back(mine);
#if defined(QAWARE_HAS_OPENMP)
    outer_threads.insert(omp_get_thread_num());
#endif
  });
#if defined(QAWARE_HAS_OPENMP)
  // The outer loop really ran on two threads...
  EXPECT_EQ(outer_threads.size(), 2u);
#endif
  // ...and each inner loop was a single call over its whole range.
  ASSERT_FALSE(inner_chunks.empty());
  for (const Chunks& c : inner_chunks) {
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0], std::make_pair(Index(0), Index(100)));
  }
}

}  // namespace
}  // namespace qaware
