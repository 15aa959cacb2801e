// GEMM benchmarks on BERT-base shapes.
//
// C (M, N) = A (M, K) * B (N, K)^T: the product inside a linear layer,
// y = x W^T, with x holding M = batch 32 x sequence 128 = 4096 token rows and
// W in PyTorch's (OUT, IN) layout. N and K take BERT-base's hidden size 768
// and FFN size 3072, which covers the Q/K/V/O projections (768 x 768) and the
// two FFN layers (3072 x 768 and 768 x 3072).
//
// BM_GemmF32Eigen is the FP32 baseline (Eigen's GEMM); BM_GemmF32Ours is
// qaware's float kernel (AVX-512 where the CPU has it, else AVX2 + FMA), which
// ops::linear and matmul use where the CPU has AVX2 + FMA;
// BM_GemmF32OursAvx2 forces its AVX2 kernel, and BM_GemmF32OneDnn (built
// when oneDNN is found) is oneDNN's sgemm, the yardstick. Later kernels
// (BM_GemmS8<Path>) register with the same shapes
// through gemm_shapes() and report through set_gemm_counters(), so every
// line of the output is comparable.
//
// Arguments: M, N, K and threads, the qaware::set_num_threads count: 1 (the
// reference line, single-threaded) and 2; QAWARE_BENCH_SHAPES=MxNxK,...
// replaces the default shapes. Counters: GFLOPS (GOPS for integer kernels) =
// 2 M N K per iteration, per second of wall time, in 10^9 (Google Benchmark's
// mean rate), and GFLOPS_med / GFLOPS_best over the median and the fastest
// call. Every operand is a 64-byte aligned DynTensor, as a caller's are.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>

#include "qaware/core/rng.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/sgemm.hpp"

#include "bench_common.hpp"

#if QAWARE_HAVE_DNNL
#include <dnnl.h>
#include <omp.h>
#endif

namespace {

using qaware::Index;
using qaware_bench::CallTimes;

// Shapes and thread counts every GEMM benchmark runs.
void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  const auto shapes = qaware_bench::bench_shapes(
      {{4096, 768, 768}, {4096, 768, 3072}, {4096, 3072, 768}, {4096, 3072, 3072}});
  for (int threads : {1, 2})
    for (const auto& s : shapes) b->Args({s[0], s[1], s[2], threads});
  b->Unit(benchmark::kMillisecond);
  b->UseRealTime();  // multi-threaded runs: the rate is per second of wall time
}

struct GemmArgs {
  Index M, N, K;
  int threads;
};

// Reads the arguments and applies the thread count.
GemmArgs gemm_args(const benchmark::State& state) {
  GemmArgs a{state.range(0), state.range(1), state.range(2), static_cast<int>(state.range(3))};
  qaware::set_num_threads(a.threads);
  return a;
}

// 2 M N K operations per iteration, reported per second in units of 10^9:
// the mean rate and, from the per-call times `t`, <name>_med and <name>_best.
// `name` is "GFLOPS" for floating point kernels, "GOPS" for integer ones.
void set_gemm_counters(benchmark::State& state, const GemmArgs& a, const CallTimes& t, const std::string& name) {
  const double ops = 2.0 * static_cast<double>(a.M) * static_cast<double>(a.N) * static_cast<double>(a.K);
  state.counters[name] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate,
                                            benchmark::Counter::kIs1000);
  qaware_bench::set_call_counters(state, t, ops, name);
}

// Per-call times on the wall clock, which these benchmarks report (UseRealTime).
CallTimes call_times() { return CallTimes(false); }

// A (M, K) and B (N, K) uniform in [-1, 1], same seed for every kernel; C (M, N).
struct F32Operands {
  qaware::DynTensor<float> a_store, b_store, c_store;
  Eigen::Map<qaware::Matrix<float>> A, B, C;
  explicit F32Operands(const GemmArgs& a)
      : a_store({a.M, a.K}), b_store({a.N, a.K}), c_store({a.M, a.N}), A(a_store.data(), a.M, a.K),
        B(b_store.data(), a.N, a.K), C(c_store.data(), a.M, a.N) {
    qaware::Rng rng(1);
    qaware::init::uniform(A.data(), A.size(), rng, -1.0, 1.0);
    qaware::init::uniform(B.data(), B.size(), rng, -1.0, 1.0);
  }
};

void BM_GemmF32Eigen(benchmark::State& state) {
  const GemmArgs a = gemm_args(state);
  F32Operands op(a);
  CallTimes t = call_times();
  for (auto _ : state) {
    t.time([&] { op.C.noalias() = op.A * op.B.transpose(); });
    benchmark::DoNotOptimize(op.C.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counters(state, a, t, "GFLOPS");
  qaware::set_num_threads(0);
}
BENCHMARK(BM_GemmF32Eigen)->Apply(gemm_shapes);

// The same product on qaware's own kernel (gemm/sgemm.hpp), which
// ops::linear and matmul use for float where the CPU has AVX2 + FMA:
// BM_GemmF32Ours with the best kernel the CPU has (AVX-512 where available),
// BM_GemmF32OursAvx2 with the AVX2 kernel.
void run_ours(benchmark::State& state, bool avx512) {
  const GemmArgs a = gemm_args(state);
  namespace sg = qaware::gemm::detail::sgemm;
  if (!qaware::isa_enabled(qaware::Isa::kAvx2)) {
    state.SkipWithError("this CPU lacks AVX2 + FMA");
    return;
  }
  // The AVX2 kernel: the cap held below AVX-512 for this benchmark.
  const qaware::ScopedMaxIsa cap(avx512 ? qaware::max_isa() : std::min(qaware::max_isa(), qaware::Isa::kAvx2Vnni));
  F32Operands op(a);
  CallTimes t = call_times();
  for (auto _ : state) {
    t.time([&] { sg::gemm(a.M, a.N, a.K, op.A.data(), a.K, false, op.B.data(), a.K, true, op.C.data(), a.N, false); });
    benchmark::DoNotOptimize(op.C.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(sg::avx512_enabled() ? "avx512" : "avx2");
  set_gemm_counters(state, a, t, "GFLOPS");
  qaware::set_num_threads(0);
}
void BM_GemmF32Ours(benchmark::State& state) { run_ours(state, true); }
void BM_GemmF32OursAvx2(benchmark::State& state) { run_ours(state, false); }
BENCHMARK(BM_GemmF32Ours)->Apply(gemm_shapes);
BENCHMARK(BM_GemmF32OursAvx2)->Apply(gemm_shapes);

#if QAWARE_HAVE_DNNL
// oneDNN's sgemm (row-major, C = A B^T), the yardstick for our float kernel:
// it picks the widest ISA the CPU has. Its threads are OpenMP's, set here.
void BM_GemmF32OneDnn(benchmark::State& state) {
  const GemmArgs a = gemm_args(state);
  omp_set_num_threads(a.threads);
  F32Operands op(a);
  CallTimes t = call_times();
  for (auto _ : state) {
    dnnl_status_t st = dnnl_success;
    t.time([&] {
      st = dnnl_sgemm('N', 'T', a.M, a.N, a.K, 1.0f, op.A.data(), a.K, op.B.data(), a.K, 0.0f, op.C.data(), a.N);
    });
    if (st != dnnl_success) {
      state.SkipWithError("dnnl_sgemm failed");
      break;
    }
    benchmark::DoNotOptimize(op.C.data());
    benchmark::ClobberMemory();
  }
  set_gemm_counters(state, a, t, "GFLOPS");
  qaware::set_num_threads(0);
}
BENCHMARK(BM_GemmF32OneDnn)->Apply(gemm_shapes);
#endif

}  // namespace

BENCHMARK_MAIN();
