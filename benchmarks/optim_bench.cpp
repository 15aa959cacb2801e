// Optimizer step cost on a BERT-base block's parameters (about 7.1M floats:
// Q, K, V, O 768x768 + biases, FFN 768x3072 and 3072x768 + biases, two
// LayerNorms), AdamW and SGD with momentum, plus global-norm clipping, with
// 1 and 2 threads. Counters: bytes touched per second (AdamW reads p, g, m, v
// and writes p, m, v: 28 bytes per element).

#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/clip.hpp"
#include "qaware/optim/sgd.hpp"

namespace {

using qaware::Index;
using qaware::Param;
using qaware::Shape;

struct BertBlockParams {
  std::vector<std::unique_ptr<Param<float>>> owned;
  std::vector<Param<float>*> ptrs;
  Index numel = 0;
  BertBlockParams() {
    const Index C = 768, F = 3072;
    const std::vector<Shape> shapes = {{C, C}, {C}, {C, C}, {C}, {C, C}, {C}, {C, C}, {C}, {C}, {C},
                                       {F, C}, {F}, {C, F}, {C}, {C}, {C}};
    qaware::Rng rng(1);
    for (const Shape& s : shapes) {
      owned.push_back(std::make_unique<Param<float>>(s));
      qaware::init::normal(owned.back()->value(), rng, 0.0, 0.02);
      qaware::init::normal(owned.back()->grad(), rng, 0.0, 1e-3);
      ptrs.push_back(owned.back().get());
      numel += s.numel();
    }
  }
};

void BM_OptimAdamWStep(benchmark::State& state) {
  qaware::set_num_threads(static_cast<int>(state.range(0)));
  BertBlockParams p;
  qaware::AdamW<float> opt(p.ptrs);
  for (auto _ : state) opt.step();
  state.counters["params"] = static_cast<double>(p.numel);
  state.counters["GB/s"] = benchmark::Counter(28.0 * static_cast<double>(p.numel) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  qaware::set_num_threads(0);
}
BENCHMARK(BM_OptimAdamWStep)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_OptimSGDMomentumStep(benchmark::State& state) {
  qaware::set_num_threads(static_cast<int>(state.range(0)));
  BertBlockParams p;
  qaware::SGDOptions o;
  o.lr = 1e-3;
  o.momentum = 0.9;
  qaware::SGD<float> opt(p.ptrs, o);
  for (auto _ : state) opt.step();
  state.counters["GB/s"] = benchmark::Counter(20.0 * static_cast<double>(p.numel) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  qaware::set_num_threads(0);
}
BENCHMARK(BM_OptimSGDMomentumStep)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_OptimClipGradNorm(benchmark::State& state) {
  qaware::set_num_threads(static_cast<int>(state.range(0)));
  BertBlockParams p;
  // max_norm large: measures the norm alone (no rescaling), the common case.
  for (auto _ : state) benchmark::DoNotOptimize(qaware::clip_grad_norm(p.ptrs, 1e30));
  state.counters["GB/s"] = benchmark::Counter(4.0 * static_cast<double>(p.numel) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  qaware::set_num_threads(0);
}
BENCHMARK(BM_OptimClipGradNorm)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
