// INT8 GEMM benchmarks: our paths against Eigen's FP32 GEMM and, when CMake
// found oneDNN, oneDNN's f32 and u8s8s32 matmuls -- all in this one binary so
// every ratio compares numbers measured side by side.
//
//   BM_GemmF32Eigen/M:../N:../K:../threads:..          Eigen, float, row-major
//   BM_GemmF32OneDnn/...                               oneDNN matmul f32
//   BM_GemmU8S8OneDnn/...                              oneDNN matmul u8 x s8 -> s32
//   BM_GemmU8S8OneDnnZp/...                            the same with A's zero point (3, set
//                                                      at creation), i.e. the work ours does
//   BM_GemmU8S8<Path>/.../weights:0|1|2                ours, int32 output (weights 1:
//                                                      normal(0, 20) "trained", 0: uniform;
//                                                      AVX2 also 2: normal(0, 40) like BERT's
//                                                      initial weights per channel, with
//                                                      layer-norm-like A, normal(128, 25), zero
//                                                      point 128, packed by pack_b_for_a)
//   BM_GemmU8S8RequantBest/...                         ours, best path, uint8 output with
//                                                      per-channel scale, bias and ReLU
// Timing: with threads:1 the rates use the benchmark thread's CPU time
// (Google Benchmark's default), so time slices lost to other processes on a
// shared machine do not count; with more threads, wall time (UseRealTime).
// Memory: every operand, ours and the yardsticks', is a 64-byte aligned
// DynTensor, the memory a caller's activations and weights live in.
// Counters: GOPS (2 M N K per second, 1e9, Google Benchmark's mean rate),
// GOPS_med and GOPS_best (over the median and the fastest call of the row),
// vs_fp32 (our median / Eigen FP32's median for the same shape and threads),
// vs_onednn and vs_onednn_best (ours / oneDNN u8s8s32 without a zero point,
// median over median and best over best), vs_onednn_zp and vs_onednn_zp_best
// (the same against oneDNN with A's zero point, like for like: ours always runs
// with zero point kAZeroPoint), and for oneDNN's int8 matmuls `inexact`: the
// fraction of its outputs that differ from the exact int32 product (its AVX2
// kernel lets int16 pair sums saturate).
// The FP32 and oneDNN figures behind the ratios are measured in this process
// (a timed loop as long as the minimum benchmark time, cached per shape and
// thread count).
//
// Only paths this CPU runs are registered. QAWARE_BENCH_THREADS=1,2,16
// changes the thread counts (default 1,2); QAWARE_BENCH_MIN_TIME the minimum
// seconds per benchmark (default 0.5); QAWARE_BENCH_SHAPES=MxNxK,... the shapes
// (default below); QAWARE_BENCH_SCALAR=1 adds the slow scalar path. On machines with AVX-512 / AMX,
// ONEDNN_MAX_CPU_ISA=AVX2 or AVX512_CORE_VNNI pins oneDNN to an ISA for a
// like-for-like comparison; the impl it picked is printed in the context.

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/rng.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/gemm.hpp"

#include "bench_common.hpp"

#if defined(QAWARE_BENCH_HAVE_DNNL)
#include <dnnl.hpp>
#endif
#if defined(QAWARE_HAS_OPENMP)
#include <omp.h>
#endif

namespace {

using qaware::Index;
using qaware::DynTensor;
using qaware_bench::CallTimes;
namespace qg = qaware::gemm;

struct Shape {
  Index M, N, K;
};

// QAWARE_BENCH_SHAPES, else these.
std::vector<Shape> bench_shapes() {
  std::vector<Shape> out;
  for (const auto& s : qaware_bench::bench_shapes(
           {{4096, 768, 768}, {4096, 3072, 768}, {4096, 768, 3072}, {128, 768, 768}, {16, 768, 768}}))
    out.push_back({s[0], s[1], s[2]});
  return out;
}

// A's zero point in our benchmarks and in the like-for-like oneDNN one.
constexpr std::int32_t kAZeroPoint = 3;

std::vector<int> bench_threads() {
  std::vector<int> t;
  const char* s = std::getenv("QAWARE_BENCH_THREADS");
  std::stringstream ss(s ? s : "1,2");
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) t.push_back(std::max(1, std::atoi(item.c_str())));
  if (t.empty()) t = {1, 2};
  return t;
}

void set_threads(int n) {
  qaware::set_num_threads(n);  // qaware and Eigen
#if defined(QAWARE_HAS_OPENMP)
  omp_set_num_threads(n);  // oneDNN (OpenMP runtime)
#endif
}

double gops(const Shape& s) { return 2.0 * static_cast<double>(s.M) * static_cast<double>(s.N) * static_cast<double>(s.K) * 1e-9; }

// The clock of a row with this many threads: this thread's CPU time for one
// thread (robust to other processes sharing the cores, as Google Benchmark's
// default CPU time is), wall time for several.
CallTimes call_times(int threads) { return CallTimes(threads == 1); }

// Seconds each cached baseline is timed for: QAWARE_BENCH_MIN_TIME, at least 0.2.
double baseline_seconds() {
  const char* mt = std::getenv("QAWARE_BENCH_MIN_TIME");
  return mt ? std::max(0.2, std::atof(mt)) : 0.5;
}

// A baseline's GOPS over its median and its fastest call.
struct Rate {
  double median, best;
};

// f() timed call by call for baseline_seconds() after one warm-up call.
template <class F>
Rate measure_gops(const Shape& s, int threads, F&& f) {
  const double duration = baseline_seconds();
  f();
  CallTimes t = call_times(threads);
  do t.time(f);
  while (t.total() < duration);
  return {gops(s) / t.median(), gops(s) / t.best()};
}

// ---------------------------------------------------------------------------
// Inputs, built once per shape.

// Every buffer a DynTensor (64-byte aligned), for ours and the yardsticks.
struct Inputs {
  DynTensor<std::uint8_t> a;              // M x K
  DynTensor<std::int8_t> b_uniform;       // N x K (PyTorch weight layout)
  DynTensor<std::int8_t> b_trained;       // N x K, normal(0, 20) rounded and clipped
  DynTensor<std::int8_t> b_init;          // N x K, normal(0, 40) rounded and clipped to +-127
  DynTensor<std::uint8_t> a_ln;           // M x K, normal(128, 25) rounded and clipped
  DynTensor<float> af, bf;                // float twins, M x K and K x N
  explicit Inputs(const Shape& s)
      : a({s.M, s.K}), b_uniform({s.N, s.K}), b_trained({s.N, s.K}), b_init({s.N, s.K}), a_ln({s.M, s.K}),
        af({s.M, s.K}), bf({s.K, s.N}) {}
};

const Inputs& inputs(const Shape& s) {
  static std::map<std::tuple<Index, Index, Index>, std::unique_ptr<Inputs>> cache;
  auto& slot = cache[{s.M, s.N, s.K}];
  if (!slot) {
    slot = std::make_unique<Inputs>(s);
    qaware::Rng rng(1234);
    for (auto& x : slot->a) x = static_cast<std::uint8_t>(rng.below(256));
    for (auto& x : slot->b_uniform) x = static_cast<std::int8_t>(static_cast<int>(rng.below(256)) - 128);
    for (auto& x : slot->b_trained)
      x = static_cast<std::int8_t>(std::max(-128.0, std::min(127.0, std::nearbyint(rng.normal(0.0, 20.0)))));
    for (auto& x : slot->b_init)
      x = static_cast<std::int8_t>(std::max(-127.0, std::min(127.0, std::nearbyint(rng.normal(0.0, 40.0)))));
    for (auto& x : slot->a_ln)
      x = static_cast<std::uint8_t>(std::max(0.0, std::min(255.0, std::nearbyint(rng.normal(128.0, 25.0)))));
    for (Index i = 0; i < slot->a.numel(); ++i) slot->af[i] = static_cast<float>(slot->a[i]) * 0.01f;
    for (auto& x : slot->bf) x = static_cast<float>(rng.uniform(-1, 1));
  }
  return *slot;
}

// The weights:N kinds.
enum class Weights { kUniform = 0, kTrained = 1, kInit = 2 };
constexpr std::int32_t kLnZeroPoint = 128;  // a_ln's

const qg::PackedMatrix& packed(const Shape& s, qg::Path path, Weights w) {
  static std::map<std::tuple<Index, Index, Index, unsigned, int>, std::unique_ptr<qg::PackedMatrix>> cache;
  auto& slot = cache[{s.M, s.N, s.K, static_cast<unsigned>(path), static_cast<int>(w)}];
  if (!slot) {
    const Inputs& in = inputs(s);
    if (w == Weights::kInit) {
      slot = std::make_unique<qg::PackedMatrix>(qg::pack_b_for_a(in.a_ln.data(), s.M, s.K, kLnZeroPoint, in.b_init.data(),
                                                                 s.K, s.N, s.K, qg::BLayout::kNxK, 0, path));
    } else {
      const auto& b = w == Weights::kTrained ? in.b_trained : in.b_uniform;
      slot = std::make_unique<qg::PackedMatrix>(qg::pack_b(b.data(), s.K, s.N, s.K, qg::BLayout::kNxK, 0, path));
    }
  }
  return *slot;
}

// ---------------------------------------------------------------------------
// Eigen FP32.

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct EigenF32 {
  Eigen::Map<const RowMatrix> a, b;
  DynTensor<float> c_store;
  Eigen::Map<RowMatrix> c;
  explicit EigenF32(const Shape& s)
      : a(inputs(s).af.data(), s.M, s.K), b(inputs(s).bf.data(), s.K, s.N), c_store({s.M, s.N}),
        c(c_store.data(), s.M, s.N) {}
  void run() { c.noalias() = a * b; }
};

Rate eigen_gops(const Shape& s, int threads) {
  static std::map<std::tuple<Index, Index, Index, int>, Rate> cache;
  auto key = std::make_tuple(s.M, s.N, s.K, threads);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  set_threads(threads);
  EigenF32 e(s);
  const Rate g = measure_gops(s, threads, [&] { e.run(); });
  cache[key] = g;
  return g;
}

void BM_GemmF32Eigen(benchmark::State& state, Shape s, int threads) {
  set_threads(threads);
  EigenF32 e(s);
  CallTimes t = call_times(threads);
  for (auto _ : state) {
    t.time([&] { e.run(); });
    benchmark::DoNotOptimize(e.c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GOPS"] = benchmark::Counter(gops(s), benchmark::Counter::kIsIterationInvariantRate);
  qaware_bench::set_call_counters(state, t, gops(s) * 1e9, "GOPS");
}

// ---------------------------------------------------------------------------
// oneDNN.

#if defined(QAWARE_BENCH_HAVE_DNNL)
struct OneDnnMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  dnnl::memory a, b, c;
  DynTensor<std::int32_t> c_s32;  // C's storage (int8), or
  DynTensor<float> c_f32;         // (f32)
  std::string impl;

  // a_zp != 0 (int8 only): A's zero point, given to oneDNN at creation.
  OneDnnMatmul(const Shape& s, bool int8, std::int32_t a_zp = 0) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const Inputs& in = inputs(s);
    const dt ta = int8 ? dt::u8 : dt::f32, tb = int8 ? dt::s8 : dt::f32, tc = int8 ? dt::s32 : dt::f32;
    dnnl::memory::desc a_md({s.M, s.K}, ta, tag::ab), c_md({s.M, s.N}, tc, tag::ab);
    dnnl::memory::desc b_any({s.K, s.N}, tb, tag::any);
    // Weights given as N x K (PyTorch layout) = K x N with strides (1, K): tag ba.
    dnnl::memory::desc b_user({s.K, s.N}, tb, tag::ba);
    dnnl::primitive_attr attr;
    if (int8 && a_zp != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {a_zp});
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_any, c_md), attr, eng);
    impl = pd.impl_info_str();
    prim = dnnl::matmul(pd);
    a = dnnl::memory(a_md, eng, int8 ? static_cast<void*>(const_cast<std::uint8_t*>(in.a.data()))
                                     : static_cast<void*>(const_cast<float*>(in.af.data())));
    dnnl::memory b_src;
    if (int8) {
      b_src = dnnl::memory(b_user, eng, const_cast<std::int8_t*>(in.b_uniform.data()));
    } else {
      b_src = dnnl::memory(dnnl::memory::desc({s.K, s.N}, tb, tag::ab), eng, const_cast<float*>(in.bf.data()));
    }
    b = dnnl::memory(pd.weights_desc(), eng);  // reordered once, like our pack_b
    dnnl::reorder(b_src, b).execute(strm, b_src, b);
    if (int8) {
      c_s32 = DynTensor<std::int32_t>({s.M, s.N});
      c = dnnl::memory(c_md, eng, c_s32.data());
    } else {
      c_f32 = DynTensor<float>({s.M, s.N});
      c = dnnl::memory(c_md, eng, c_f32.data());
    }
    strm.wait();
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    strm.wait();
  }
};

Rate onednn_int8_gops(const Shape& s, int threads, std::int32_t a_zp) {
  static std::map<std::tuple<Index, Index, Index, int, std::int32_t>, Rate> cache;
  auto key = std::make_tuple(s.M, s.N, s.K, threads, a_zp);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  set_threads(threads);
  OneDnnMatmul mm(s, true, a_zp);
  const Rate g = measure_gops(s, threads, [&] { mm.run(); });
  cache[key] = g;
  return g;
}

// Fraction of oneDNN's int8 outputs that differ from the exact product with
// A's zero point a_zp (computed by our GEMM on the reference-tested best path);
// uniform weights.
double onednn_inexact_fraction(const Shape& s, OneDnnMatmul& mm, std::int32_t a_zp) {
  const Inputs& in = inputs(s);
  const qg::PackedMatrix pb =
      qg::pack_b(in.b_uniform.data(), s.K, s.N, s.K, qg::BLayout::kNxK, 0, qg::best_path(qg::compiled_paths() & qg::cpu_paths()));
  DynTensor<std::int32_t> exact({s.M, s.N});
  qg::gemm(in.a.data(), s.M, s.K, s.K, a_zp, pb, qg::Output::int32(exact.data(), s.N));
  mm.run();
  const std::int32_t* got = mm.c_s32.data();
  std::size_t diff = 0;
  for (Index i = 0; i < exact.numel(); ++i) diff += got[i] != exact[i];
  return static_cast<double>(diff) / static_cast<double>(exact.numel());
}

void BM_GemmOneDnn(benchmark::State& state, Shape s, int threads, bool int8, std::int32_t a_zp = 0) {
  set_threads(threads);
  OneDnnMatmul mm(s, int8, a_zp);
  state.SetLabel(mm.impl + (a_zp ? " zp=" + std::to_string(a_zp) : std::string()));
  CallTimes t = call_times(threads);
  for (auto _ : state) {
    t.time([&] { mm.run(); });
    benchmark::ClobberMemory();
  }
  state.counters["GOPS"] = benchmark::Counter(gops(s), benchmark::Counter::kIsIterationInvariantRate);
  qaware_bench::set_call_counters(state, t, gops(s) * 1e9, "GOPS");
  if (int8 && !t.empty()) {
    state.counters["inexact"] = onednn_inexact_fraction(s, mm, a_zp);
    state.counters["vs_fp32"] = gops(s) / t.median() / eigen_gops(s, threads).median;
  }
}
#endif

// ---------------------------------------------------------------------------
// Ours.

void BM_GemmOurs(benchmark::State& state, Shape s, int threads, qg::Path path, Weights w, bool requant) {
  set_threads(threads);
  const Inputs& in = inputs(s);
  const qg::PackedMatrix& pb = packed(s, path, w);
  const std::uint8_t* a = w == Weights::kInit ? in.a_ln.data() : in.a.data();
  const std::int32_t za = w == Weights::kInit ? kLnZeroPoint : kAZeroPoint;
  DynTensor<std::int32_t> c32;
  DynTensor<std::uint8_t> c8;
  DynTensor<float> scales({s.N}, 0.002f), bias({s.N}, 0.1f);
  qg::Dequantize dq;
  dq.a_scale = 0.05f;
  dq.b_scales = scales.data();
  dq.b_scale_count = s.N;
  dq.bias = bias.data();
  dq.activation = qg::Activation::kRelu;
  qg::Output out = qg::Output::int32(nullptr, s.N);
  if (requant) {
    c8 = DynTensor<std::uint8_t>({s.M, s.N});
    out = qg::Output::requantize(c8.data(), s.N, dq, 0.1f, 0);
  } else {
    c32 = DynTensor<std::int32_t>({s.M, s.N});
    out = qg::Output::int32(c32.data(), s.N);
  }
  CallTimes t = call_times(threads);
  for (auto _ : state) {
    t.time([&] { qg::gemm(a, s.M, s.K, s.K, za, pb, out); });
    benchmark::ClobberMemory();
  }
  const char* fmt = pb.format() == qg::detail::Format::kAvx2Quads  ? "maddubs"
                    : pb.format() == qg::detail::Format::kAvx2Pairs ? "int16-pairs"
                    : pb.format() == qg::detail::Format::kAvx2FixA  ? "a-fixed"
                                                                     : qg::path_name(path);
  state.SetLabel(std::string(fmt) + (pb.correction_count() ? " corrections=" + std::to_string(pb.correction_count()) : ""));
  state.counters["GOPS"] = benchmark::Counter(gops(s), benchmark::Counter::kIsIterationInvariantRate);
  qaware_bench::set_call_counters(state, t, gops(s) * 1e9, "GOPS");
  if (t.empty()) return;
  // Ratios: this row's median and best call against the cached baselines'.
  const double med = gops(s) / t.median(), best = gops(s) / t.best();
  state.counters["vs_fp32"] = med / eigen_gops(s, threads).median;
#if defined(QAWARE_BENCH_HAVE_DNNL)
  const Rate dnn = onednn_int8_gops(s, threads, 0), dnn_zp = onednn_int8_gops(s, threads, kAZeroPoint);
  state.counters["vs_onednn"] = med / dnn.median;
  state.counters["vs_onednn_best"] = best / dnn.best;
  state.counters["vs_onednn_zp"] = med / dnn_zp.median;
  state.counters["vs_onednn_zp_best"] = best / dnn_zp.best;
#endif
}

std::string bench_name(const std::string& base, const Shape& s, int threads, const std::string& extra = "") {
  return base + "/M:" + std::to_string(s.M) + "/N:" + std::to_string(s.N) + "/K:" + std::to_string(s.K) +
         "/threads:" + std::to_string(threads) + extra;
}

std::string path_bench_name(qg::Path p) {
  switch (p) {
    case qg::Path::kScalar: return "Scalar";
    case qg::Path::kAvx2: return "Avx2";
    case qg::Path::kAvxVnni: return "AvxVnni";
    case qg::Path::kAvx512Vnni: return "Avx512Vnni";
    case qg::Path::kAmx: return "Amx";
    default: return "None";
  }
}

void register_all() {
  const qg::Path runnable = qg::compiled_paths() & qg::cpu_paths();
  const char* mt = std::getenv("QAWARE_BENCH_MIN_TIME");
  const double min_time = mt ? std::max(0.01, std::atof(mt)) : 0.5;
  const bool with_scalar = std::getenv("QAWARE_BENCH_SCALAR") != nullptr;  // slow; off by default
  for (int threads : bench_threads()) {
    for (const Shape& s : bench_shapes()) {
      auto reg = [&](const std::string& name, auto fn) {
        auto* b = benchmark::RegisterBenchmark(name.c_str(), fn)->Unit(benchmark::kMillisecond)->MinTime(min_time);
        // One thread: CPU time of the benchmark thread (other processes on the
        // machine do not count against it); several: wall time.
        if (threads > 1) b->UseRealTime();
      };
      reg(bench_name("BM_GemmF32Eigen", s, threads), [=](benchmark::State& st) { BM_GemmF32Eigen(st, s, threads); });
#if defined(QAWARE_BENCH_HAVE_DNNL)
      reg(bench_name("BM_GemmF32OneDnn", s, threads), [=](benchmark::State& st) { BM_GemmOneDnn(st, s, threads, false); });
      reg(bench_name("BM_GemmU8S8OneDnn", s, threads), [=](benchmark::State& st) { BM_GemmOneDnn(st, s, threads, true); });
      reg(bench_name("BM_GemmU8S8OneDnnZp", s, threads),
          [=](benchmark::State& st) { BM_GemmOneDnn(st, s, threads, true, kAZeroPoint); });
#endif
      for (qg::Path p : qg::kEachPath) {
        if (!qg::has(runnable, p) || (p == qg::Path::kScalar && !with_scalar)) continue;
        for (Weights w : {Weights::kTrained, Weights::kUniform, Weights::kInit}) {
          // The weight distribution only changes the AVX2 path (its format choice).
          if (w != Weights::kTrained && p != qg::Path::kAvx2) continue;
          reg(bench_name("BM_GemmU8S8" + path_bench_name(p), s, threads, "/weights:" + std::to_string(static_cast<int>(w))),
              [=](benchmark::State& st) { BM_GemmOurs(st, s, threads, p, w, false); });
        }
      }
      reg(bench_name("BM_GemmU8S8RequantBest", s, threads, "/weights:1"),
          [=](benchmark::State& st) { BM_GemmOurs(st, s, threads, qg::best_path(runnable), Weights::kTrained, true); });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const qg::Path runnable = qg::compiled_paths() & qg::cpu_paths();
  benchmark::AddCustomContext("qaware_compiled_paths", qg::paths_string(qg::compiled_paths()));
  benchmark::AddCustomContext("qaware_paths", qg::paths_string(runnable));
  benchmark::AddCustomContext("qaware_best_path", qg::path_name(qg::best_path(runnable)));
#if defined(QAWARE_BENCH_HAVE_DNNL)
  {
    OneDnnMatmul probe(Shape{64, 64, 64}, true);
    benchmark::AddCustomContext("onednn_u8s8s32_impl", probe.impl);
    benchmark::AddCustomContext("onednn_version", std::to_string(dnnl_version()->major) + "." +
                                                      std::to_string(dnnl_version()->minor) + "." +
                                                      std::to_string(dnnl_version()->patch));
    const char* isa = std::getenv("ONEDNN_MAX_CPU_ISA");
    benchmark::AddCustomContext("ONEDNN_MAX_CPU_ISA", isa ? isa : "<unset>");
  }
#else
  benchmark::AddCustomContext("onednn", "not found at build time");
#endif
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
