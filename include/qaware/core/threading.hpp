#pragma once
// Thread-count control.
//
// qaware parallelises with OpenMP when the build has it (the qaware::qaware
// target links OpenMP::OpenMP_CXX when CMake finds it and defines
// QAWARE_HAS_OPENMP); without OpenMP everything runs on one thread.
// set_num_threads(n) governs both qaware's own loops and Eigen's GEMM;
// the default is every core the process may use.

#include <algorithm>
#include <atomic>
#include <thread>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/shape.hpp"

#if defined(QAWARE_HAS_OPENMP)
#include <omp.h>
#endif

namespace qaware {

// Number of hardware threads available to this process (at least 1).
inline int hardware_threads() {
#if defined(QAWARE_HAS_OPENMP)
  return std::max(1, omp_get_num_procs());
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

namespace detail {
inline std::atomic<int>& thread_setting() {
  static std::atomic<int> n{0};  // 0 = not set: use hardware_threads()
  return n;
}
}  // namespace detail

// Threads qaware and Eigen use from now on; n <= 0 means all cores.
inline void set_num_threads(int n) {
  detail::thread_setting().store(n > 0 ? n : 0);
  Eigen::setNbThreads(n > 0 ? n : hardware_threads());
}

// The thread count in effect (1 when built without OpenMP).
inline int num_threads() {
#if defined(QAWARE_HAS_OPENMP)
  const int n = detail::thread_setting().load();
  return n > 0 ? n : hardware_threads();
#else
  return 1;
#endif
}

namespace detail {
// Elements per parallel chunk for memory-bound elementwise loops: 32 Ki
// elements cost tens of microseconds, far more than waking a thread.
inline constexpr Index kElementGrain = Index(1) << 15;

// Rows per parallel chunk for row-wise ops with `cols` elements per row,
// about kElementGrain elements per chunk.
inline Index row_grain(Index cols) { return std::max<Index>(1, kElementGrain / std::max<Index>(cols, 1)); }

}  // namespace detail

// Calls f(begin_i, end_i) on disjoint chunks covering [begin, end), in
// parallel when there are at least two chunks of `grain` iterations and more
// than one thread. Chunks are contiguous and at most num_threads() of them.
template <typename F>
void parallel_for(Index begin, Index end, Index grain, F&& f) {
  const Index n = end - begin;
  if (n <= 0) return;
  grain = std::max<Index>(grain, 1);
  const Index max_chunks = std::max<Index>(1, n / grain);
  const int threads = static_cast<int>(std::min<Index>(num_threads(), max_chunks));
#if defined(QAWARE_HAS_OPENMP)
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      const Index t = omp_get_thread_num();
      const Index nt = omp_get_num_threads();
      const Index lo = begin + n * t / nt;
      const Index hi = begin + n * (t + 1) / nt;
      if (lo < hi) f(lo, hi);
    }
    return;
  }
#else
  (void)threads;
#endif
  f(begin, end);
}

}  // namespace qaware
