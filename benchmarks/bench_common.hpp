// Helpers the GEMM benchmark programs share (benchmarks/ only, not part of
// the library).
//
// CallTimes: the time of every call in a benchmark loop, so that each row
// reports the median call and the best (fastest) call next to Google
// Benchmark's mean rate. The median resists time slices lost to other
// processes on a shared machine; the best is what a yardstick measured "best
// of repeated calls" is compared with. One clock read per call: its cost
// (under a microsecond for the CPU-time clock) is part of each timed call.
//
// bench_shapes(): QAWARE_BENCH_SHAPES="MxNxK,MxNxK,..." replaces a program's
// default shapes (scripts/bench.sh runs the BERT shapes this way).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "qaware/core/shape.hpp"

namespace qaware_bench {

using Index = qaware::Index;

class CallTimes {
 public:
  // cpu_time: this thread's CPU time (what Google Benchmark times by default,
  // right for one-thread runs); else wall time (multi-threaded runs).
  explicit CallTimes(bool cpu_time) : cpu_time_(cpu_time) { seconds_.reserve(1024); }

  // Runs f() once and records how long it took.
  template <class F>
  void time(F&& f) {
    const double t0 = now();
    f();
    seconds_.push_back(now() - t0);
    total_ += seconds_.back();
  }

  bool empty() const { return seconds_.empty(); }
  double total() const { return total_; }
  double best() const { return *std::min_element(seconds_.begin(), seconds_.end()); }
  // The middle call (the upper one of the two middle calls for an even count).
  double median() const {
    std::vector<double> s = seconds_;
    auto mid = s.begin() + static_cast<std::ptrdiff_t>(s.size() / 2);
    std::nth_element(s.begin(), mid, s.end());
    return *mid;
  }

 private:
  double now() const {
    if (cpu_time_) {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  bool cpu_time_;
  std::vector<double> seconds_;
  double total_ = 0;
};

// Counters <name>_med and <name>_best: `ops` operations per call over the
// median and the best call, in 1e9 per second. Plain values (not rates), so
// repetitions aggregate them like any counter.
inline void set_call_counters(benchmark::State& state, const CallTimes& t, double ops, const std::string& name) {
  if (t.empty()) return;
  state.counters[name + "_med"] = ops / t.median() * 1e-9;
  state.counters[name + "_best"] = ops / t.best() * 1e-9;
}

// QAWARE_BENCH_SHAPES as {M, N, K} triples; `fallback` when it is unset.
// A malformed entry stops the program with a message naming it.
inline std::vector<std::array<Index, 3>> bench_shapes(std::vector<std::array<Index, 3>> fallback) {
  const char* env = std::getenv("QAWARE_BENCH_SHAPES");
  if (!env || !*env) return fallback;
  std::vector<std::array<Index, 3>> shapes;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    long long m = 0, n = 0, k = 0;
    char rest = 0;
    if (std::sscanf(item.c_str(), "%lldx%lldx%lld%c", &m, &n, &k, &rest) != 3 || m < 1 || n < 1 || k < 1) {
      std::fprintf(stderr, "QAWARE_BENCH_SHAPES: '%s' is not MxNxK with positive sizes\n", item.c_str());
      std::exit(2);
    }
    shapes.push_back({static_cast<Index>(m), static_cast<Index>(n), static_cast<Index>(k)});
  }
  return shapes.empty() ? fallback : shapes;
}

}  // namespace qaware_bench
