// Inference of the exported INT8 model against the FP32 eval forward, in one
// program:
//
//   BM_BlockInt8/C:768/NH:12/FF:3072/B:8/T:128/threads:1   a BERT-base block exported W8A8
//   BM_BlockFp32/...                                         the same block's FP32 eval forward
//                                                            (QConfig::fp32, no tape gradients)
//   BM_BertInt8/L:12/B:1/T:128/threads:1                     BERT-base (12 layers, vocab 30522,
//                                                            pooler) exported W8A8: latency
//   BM_BertFp32/...                                          its FP32 eval forward
// at batch 8 x 128 and 1 x 128, with 1 and 2 threads, plus a small block for
// the smoke test. The INT8 models come from QAT models whose observers saw
// two batches in training mode (deploy::convert). Inputs: normal(0, 1)
// hidden states; random token ids; no padding. tools/bench_deploy_torch.py
// times the same block in PyTorch (FP32 and quantize_dynamic INT8).

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/deploy/convert.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/transformer_block.hpp"

namespace {

using namespace qaware;

nn::BlockConfig block_config(Index C, Index NH, Index FF) {
  nn::BlockConfig cfg;
  cfg.hidden = C;
  cfg.heads = NH;
  cfg.intermediate = FF;
  return cfg;
}

// A block with calibrated observers, in eval mode.
std::unique_ptr<nn::QATTransformerBlock<float>> calibrated_block(Index C, Index NH, Index FF, const nn::QConfig& qc,
                                                                 Index B, Index T) {
  auto block = std::make_unique<nn::QATTransformerBlock<float>>(block_config(C, NH, FF), qc, 1);
  Rng rng(7);
  DynTensor<float> x(Shape{B, T, C});
  block->train();
  for (int i = 0; i < 2; ++i) {
    init::normal(x, rng, 0.0, 1.0);
    block->forward(x);
  }
  block->eval();
  return block;
}

void counters(benchmark::State& state, Index C, Index FF, Index B, Index T) {
  const double tokens = static_cast<double>(B * T);
  const double macs = tokens * (4.0 * C * C + 2.0 * C * FF) + 2.0 * static_cast<double>(B) * T * T * C;
  state.counters["GOPS"] = benchmark::Counter(2.0 * macs * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void block(benchmark::State& state, bool int8) {
  const Index C = state.range(0), NH = state.range(1), FF = state.range(2), B = state.range(3), T = state.range(4);
  set_num_threads(static_cast<int>(state.range(5)));
  Rng rng(3);
  DynTensor<float> x(Shape{B, T, C});
  init::normal(x, rng, 0.0, 1.0);
  if (int8) {
    const auto qat = calibrated_block(C, NH, FF, nn::QConfig::w8a8(), B, T);
    const deploy::Block d = deploy::convert(*qat, "");
    const DynTensor<float> none;
    benchmark::DoNotOptimize(d.forward(x, none));  // warm-up
    for (auto _ : state) benchmark::DoNotOptimize(d.forward(x, none).data());
  } else {
    const auto fp32 = calibrated_block(C, NH, FF, nn::QConfig::fp32(), B, T);
    benchmark::DoNotOptimize(fp32->forward(x));
    for (auto _ : state) benchmark::DoNotOptimize(fp32->forward(x).data());
  }
  counters(state, C, FF, B, T);
  set_num_threads(0);
}

void BM_BlockInt8(benchmark::State& state) { block(state, true); }
void BM_BlockFp32(benchmark::State& state) { block(state, false); }

void block_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"C", "NH", "FF", "B", "T", "threads"});
  b->Args({64, 4, 256, 2, 16, 1});
  for (int threads : {1, 2}) {
    b->Args({768, 12, 3072, 8, 128, threads});
    b->Args({768, 12, 3072, 1, 128, threads});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_BlockInt8)->Apply(block_args);
BENCHMARK(BM_BlockFp32)->Apply(block_args);

void bert(benchmark::State& state, bool int8) {
  const Index L = state.range(0), B = state.range(1), T = state.range(2);
  set_num_threads(static_cast<int>(state.range(3)));
  nn::BertConfig bc;
  bc.layers = L;
  Rng init(1), rng(2);
  nn::QATBertModel<float> model(bc, init, nn::ModelQConfig(int8 ? nn::QConfig::w8a8() : nn::QConfig::fp32()));
  DynTensor<std::int64_t> ids(Shape{B, T});
  auto fill = [&] {
    for (Index i = 0; i < ids.numel(); ++i) ids[i] = static_cast<std::int64_t>(rng.below(30522));
  };
  model.train();
  for (int i = 0; i < 2; ++i) {
    fill();
    model.forward(ids);
  }
  model.eval();
  fill();
  if (int8) {
    const deploy::BertModel d = deploy::convert(model);
    benchmark::DoNotOptimize(d.forward(ids));
    for (auto _ : state) benchmark::DoNotOptimize(d.forward(ids).sequence_output.data());
  } else {
    benchmark::DoNotOptimize(model.forward(ids));
    for (auto _ : state) benchmark::DoNotOptimize(model.forward(ids).sequence_output.data());
  }
  counters(state, 768, 3072, B * L, T);
  set_num_threads(0);
}

void BM_BertInt8(benchmark::State& state) { bert(state, true); }
void BM_BertFp32(benchmark::State& state) { bert(state, false); }

void bert_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "B", "T", "threads"});
  b->Args({12, 1, 128, 1});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_BertInt8)->Apply(bert_args);
BENCHMARK(BM_BertFp32)->Apply(bert_args);

}  // namespace

BENCHMARK_MAIN();
