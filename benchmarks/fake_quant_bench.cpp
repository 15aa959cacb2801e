// Fake quantization throughput: forward + STE mask of a 4096 x 3072 float
// tensor (48 MiB, larger than the L3), single thread, per kernel ISA
// (isa 0 scalar, 1 AVX2, 2 AVX-512; an ISA the CPU lacks reports an error).
//
// The "GB" counter (printed as GB/s) counts the bytes the op must move per
// element: 4 read (x) + 4 written (y) + 1/8 written (the mask bit), i.e.
// N * 8.125 bytes per call, divided by the wall time, in 1e9 bytes/s.
// BM_Memcpy (N * 4 read + N * 4 written) and BM_StreamCopy (an AVX2 load +
// non-temporal-store copy, the ceiling for this kernel's memory pattern) are
// measured in the same binary. PyTorch: benchmarks/fake_quant_torch.py.
//
//   ./qaware_fake_quant_bench --benchmark_min_time=1

#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/quant/fake_quantize.hpp"

namespace {

using qaware::Index;
namespace fq = qaware::detail::fq;

constexpr Index kRows = 4096, kCols = 3072, kN = kRows * kCols;

struct Buffers {
  qaware::DynTensor<float> x{qaware::Shape{kRows, kCols}};
  qaware::DynTensor<float> y{qaware::Shape{kRows, kCols}};
  qaware::BitMask mask{kN};
  std::vector<float> scale, scale_cols;
  std::vector<std::int32_t> zp, zp_cols;
  Buffers() {
    qaware::Rng rng(1);
    qaware::init::normal(x, rng, 0.0, 0.05);
    for (Index r = 0; r < kRows; ++r) {
      scale.push_back(static_cast<float>(rng.uniform(0.0002, 0.0006)));
      zp.push_back(static_cast<std::int32_t>(rng.below(5)) - 2);
    }
    for (Index c = 0; c < kCols; ++c) {
      scale_cols.push_back(static_cast<float>(rng.uniform(0.0002, 0.0006)));
      zp_cols.push_back(static_cast<std::int32_t>(rng.below(5)) - 2);
    }
  }
};

Buffers& buffers() {
  static Buffers b;
  return b;
}

// The kernel families, by benchmark argument: 0 scalar, 1 AVX2, 2 AVX-512.
constexpr qaware::Isa kIsas[] = {qaware::Isa::kScalar, qaware::Isa::kAvx2, qaware::Isa::kAvx512};

// Whether this CPU has the argument's ISA (the benchmark is skipped if not).
bool runnable(benchmark::State& state, qaware::Isa isa) {
  if (qaware::cpu_has(isa)) return true;
  state.SkipWithError("ISA not supported by this CPU");
  return false;
}

void set_counters(benchmark::State& state) {
  const double bytes = static_cast<double>(kN) * (4.0 + 4.0 + 1.0 / 8.0);
  state.counters["GB"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["Gelem"] = benchmark::Counter(static_cast<double>(kN) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// range(0): ISA, range(1): 1 = non-temporal stores allowed (default threshold), 0 = never.
void BM_FakeQuantPerTensor(benchmark::State& state) {
  qaware::set_num_threads(1);
  const qaware::Isa isa = kIsas[state.range(0)];
  if (!runnable(state, isa)) return;
  const qaware::ScopedMaxIsa cap(isa);  // the kernels of this ISA
  const std::size_t saved = fq::stream_threshold().load();
  if (state.range(1) == 0) fq::stream_threshold().store(~std::size_t(0));
  Buffers& b = buffers();
  for (auto _ : state) {
    qaware::ops::fake_quantize_per_tensor_forward(b.x.data(), b.y.data(), b.mask.words(), kN, 0.0004f, 0, -128, 127);
    benchmark::DoNotOptimize(b.y.data());
    benchmark::DoNotOptimize(b.mask.words());
    benchmark::ClobberMemory();
  }
  fq::stream_threshold().store(saved);
  set_counters(state);
}

// range(0): ISA, range(1): channel axis (0: 4096 channels of 3072 contiguous
// elements, the run kernel; 1: 3072 channels alternating every element, the
// vector-parameter kernel).
void BM_FakeQuantPerChannel(benchmark::State& state) {
  qaware::set_num_threads(1);
  const qaware::Isa isa = kIsas[state.range(0)];
  if (!runnable(state, isa)) return;
  const qaware::ScopedMaxIsa cap(isa);  // the kernels of this ISA
  Buffers& b = buffers();
  const bool axis0 = state.range(1) == 0;
  for (auto _ : state) {
    if (axis0)
      qaware::ops::fake_quantize_per_channel_forward(b.x.data(), b.y.data(), b.mask.words(), 1, kRows, kCols,
                                                     b.scale.data(), b.zp.data(), -128, 127);
    else
      qaware::ops::fake_quantize_per_channel_forward(b.x.data(), b.y.data(), b.mask.words(), kRows, kCols, 1,
                                                     b.scale_cols.data(), b.zp_cols.data(), -128, 127);
    benchmark::DoNotOptimize(b.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state);
}

// STE backward: dx += dy * mask. Bytes: dy read 4 + dx read 4 + dx written 4 + mask 1/8.
void BM_FakeQuantBackward(benchmark::State& state) {
  qaware::set_num_threads(1);
  const qaware::Isa isa = kIsas[state.range(0)];
  if (!runnable(state, isa)) return;
  const qaware::ScopedMaxIsa cap(isa);  // the kernels of this ISA
  Buffers& b = buffers();
  qaware::ops::fake_quantize_per_tensor_forward(b.x.data(), b.y.data(), b.mask.words(), kN, 0.0004f, 0, -128, 127);
  qaware::DynTensor<float> dx = qaware::DynTensor<float>::zeros(b.x.shape());
  for (auto _ : state) {
    qaware::ops::fake_quantize_backward(b.x.data(), b.mask.words(), dx.data(), kN, qaware::SteMode::Clipped);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(kN) * (12.0 + 1.0 / 8.0);
  state.counters["GB"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// Cache-resident size (256 x 1024 floats: 1 MiB in, 1 MiB out, fits the L3):
// the kernel's compute throughput without the DRAM limit. Same byte count.
void BM_FakeQuantPerTensorInCache(benchmark::State& state) {
  qaware::set_num_threads(1);
  const qaware::Isa isa = kIsas[state.range(0)];
  if (!runnable(state, isa)) return;
  const qaware::ScopedMaxIsa cap(isa);  // the kernels of this ISA
  constexpr Index n = 256 * 1024;
  Buffers& b = buffers();
  for (auto _ : state) {
    qaware::ops::fake_quantize_per_tensor_forward(b.x.data(), b.y.data(), b.mask.words(), n, 0.0004f, 0, -128, 127);
    benchmark::DoNotOptimize(b.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] = benchmark::Counter(static_cast<double>(n) * (8.0 + 1.0 / 8.0) / 1e9,
                                            benchmark::Counter::kIsIterationInvariantRate);
}

// The bandwidth ceiling: memcpy of the same 48 MiB (4 read + 4 written per element).
void BM_Memcpy(benchmark::State& state) {
  Buffers& b = buffers();
  for (auto _ : state) {
    std::memcpy(b.y.data(), b.x.data(), static_cast<std::size_t>(kN) * sizeof(float));
    benchmark::DoNotOptimize(b.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] =
      benchmark::Counter(static_cast<double>(kN) * 8.0 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

#if QAWARE_FQ_X86
// The ceiling for a kernel that reads x and writes y with non-temporal
// stores (as the fake-quant kernels do for large outputs): an AVX2 copy, load
// + streaming store, nothing else. Same 8 bytes per element as BM_Memcpy.
__attribute__((target("avx2"))) void stream_copy(const float* x, float* y, Index n) {
  for (Index i = 0; i < n; i += 8) _mm256_stream_ps(y + i, _mm256_load_ps(x + i));
  _mm_sfence();
}

void BM_StreamCopy(benchmark::State& state) {
  if (!qaware::cpu_has(qaware::Isa::kAvx2)) {
    state.SkipWithError("needs AVX2");
    return;
  }
  Buffers& b = buffers();
  for (auto _ : state) {
    stream_copy(b.x.data(), b.y.data(), kN);
    benchmark::DoNotOptimize(b.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] =
      benchmark::Counter(static_cast<double>(kN) * 8.0 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_StreamCopy)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

void isa_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"isa", "stream"});
  for (int isa = 0; isa <= 2; ++isa) b->Args({isa, 1});
  for (int isa = 0; isa <= 2; ++isa) b->Args({isa, 0});
}

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FakeQuantPerTensor)->Apply(isa_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FakeQuantPerChannel)
    ->ArgNames({"isa", "axis"})
    ->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_FakeQuantPerTensorInCache)->ArgNames({"isa"})->DenseRange(0, 2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_FakeQuantBackward)->ArgNames({"isa"})->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
