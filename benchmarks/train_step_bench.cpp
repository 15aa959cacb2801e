// One training step of a BERT encoder block: forward on the tape, mse loss
// against a fixed target, backward, AdamW (forward + backward + optimizer
// step), for the FP32 block (QConfig::fp32()) and the QAT INT8 block
// (fake quantization at the seed-style points: weights per channel, int8
// symmetric; every linear's input per tensor, uint8 affine with a
// moving-average observer; attention scores before the softmax), with 1 and
// 2 threads.
//
//   BM_TrainStepFP32/C:768/NH:12/FF:3072/B:8/T:128/threads:1      BERT-base block, batch 8 x 128
//   BM_TrainStepQAT/...
// plus a small case (C:64/NH:4/FF:256/B:2/T:16) for the smoke test.
// Dropout 0.1 (BERT's default) on the probabilities and both residual
// branches; a padding mask with the last eighth of the second sequence
// padded. The Params' gradients are zeroed each step (part of the timing,
// as optimizer.zero_grad() in PyTorch). Each run of a case starts with one
// untimed warm-up step on its fresh block, as the PyTorch script does.
// Counter "GFLOP/s": 3 x the forward
// multiply-adds x 2 (the GEMMs only) per step. tools/bench_train_step_torch.py
// times the same step in PyTorch.
//
// QAWARE_TRAIN_STEP_PROFILE=1 prints a per-phase breakdown (forward,
// backward, optimizer) of the last measured iteration of each case to
// stderr.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/nn/transformer_block.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/optim/adamw.hpp"

namespace {

using namespace qaware;

double forward_macs(Index C, Index NH, Index FF, Index B, Index T) {
  (void)NH;
  const double tokens = static_cast<double>(B * T);
  const double linears = tokens * (4.0 * C * C + 2.0 * C * FF);
  const double attention = 2.0 * static_cast<double>(B) * T * T * C;  // q k^T and probs v over all heads
  return linears + attention;
}

void train_step(benchmark::State& state, bool quantized) {
  const Index C = state.range(0), NH = state.range(1), FF = state.range(2), B = state.range(3), T = state.range(4);
  const int threads = static_cast<int>(state.range(5));
  set_num_threads(threads);

  nn::BlockConfig cfg;
  cfg.hidden = C;
  cfg.heads = NH;
  cfg.intermediate = FF;
  nn::QATTransformerBlock<float> block(cfg, quantized ? nn::QConfig::w8a8() : nn::QConfig::fp32(), 1);
  AdamW<float> opt(nn::make_param_groups(block));
  Rng rng(2);
  DynTensor<float> x(Shape{B, T, C}), target(Shape{B, T, C}), mask(Shape{B, T}, 1.0f);
  init::normal(x, rng, 0.0, 1.0);
  init::normal(target, rng, 0.0, 1.0);
  if (B > 1)
    for (Index t = T - T / 8; t < T; ++t) mask[T + t] = 0.0f;

  // One untimed warm-up step, as tools/bench_train_step_torch.py takes one:
  // the first step of a fresh block also initialises the observers, packs
  // and allocates what later steps reuse, and touches fresh memory.
  {
    Tape<float> tape;
    tape.backward(mse_loss(block.forward(tape, tape.constant(x), mask), tape.constant(target)));
    opt.step();
    opt.zero_grad();
  }

  using clock = std::chrono::steady_clock;
  double t_fwd = 0, t_bwd = 0, t_opt = 0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    Tape<float> tape;
    Var<float> loss = mse_loss(block.forward(tape, tape.constant(x), mask), tape.constant(target));
    const auto t1 = clock::now();
    tape.backward(loss);
    const auto t2 = clock::now();
    opt.step();
    opt.zero_grad();
    const auto t3 = clock::now();
    benchmark::DoNotOptimize(loss.item());
    t_fwd = std::chrono::duration<double>(t1 - t0).count();
    t_bwd = std::chrono::duration<double>(t2 - t1).count();
    t_opt = std::chrono::duration<double>(t3 - t2).count();
  }
  const double flops = 3.0 * 2.0 * forward_macs(C, NH, FF, B, T);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (std::getenv("QAWARE_TRAIN_STEP_PROFILE"))
    std::fprintf(stderr, "%s C=%td B=%td T=%td threads=%d: forward %.3f s, backward %.3f s, optimizer %.3f s\n",
                 quantized ? "QAT " : "FP32", static_cast<std::ptrdiff_t>(C), static_cast<std::ptrdiff_t>(B),
                 static_cast<std::ptrdiff_t>(T), threads, t_fwd, t_bwd, t_opt);
  set_num_threads(0);
}

void BM_TrainStepFP32(benchmark::State& state) { train_step(state, false); }
void BM_TrainStepQAT(benchmark::State& state) { train_step(state, true); }

void cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "NH", "FF", "B", "T", "threads"});
  for (int threads : {1, 2}) {
    b->Args({64, 4, 256, 2, 16, threads});
    b->Args({768, 12, 3072, 8, 128, threads});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_TrainStepFP32)->Apply(cases);
BENCHMARK(BM_TrainStepQAT)->Apply(cases);

}  // namespace

BENCHMARK_MAIN();
