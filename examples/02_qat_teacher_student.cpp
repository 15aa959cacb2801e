// 02_qat_teacher_student: quantization-aware training of a BERT block.
//
// A frozen FP32 QATTransformerBlock (the teacher, quantization off) maps
// random inputs [B, T, C] with a padding mask to targets. Two students with
// the same architecture and the same initial weights learn to match it with
// mse_loss: one in FP32 (QConfig::fp32()) and one with fake quantization
// (INT8 by default: per-channel symmetric weights, per-tensor affine uint8
// activations, quantized attention scores). Each step: forward on the tape,
// backward, gradient clipping at global norm 1.0, AdamW (parameter groups:
// weights with weight decay, biases / LayerNorm without, learnable scales
// clamped to >= eps after each step), a linear warmup + decay schedule.
// At the end both students are evaluated (eval mode) on held-out batches.
//
// Build and run:
//   cmake --build build --target qaware_example_qat_teacher_student
//   ./build/examples/qaware_example_qat_teacher_student [--steps N] [--batch B] [--seq T]
//       [--hidden C] [--heads NH] [--ffn F] [--bits W] [--act-bits A] [--lsq] [--lr LR]
//       [--print-every N] [--threads N] [--seed S]
// Defaults: 1500 steps of batch 8 x 16 tokens, C = 64, 4 heads, FFN 256,
// INT8, one thread: about 15 s here.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "qaware/qaware.hpp"

namespace {

using namespace qaware;

struct Options {
  int steps = 1500;
  Index batch = 8, seq = 16, hidden = 64, heads = 4, ffn = 256;
  int bits = 8, act_bits = 8;
  bool lsq = false;
  double lr = 2e-3;
  int print_every = 250;
  // One thread by default: the default block is small (C = 64), and with
  // more threads the per-op synchronisation costs more than it saves,
  // badly so on a machine shared with other jobs. --threads 0 = all cores.
  int threads = 1;
  std::uint64_t seed = 1;
};

void usage(const char* argv0) {
  std::printf(
      "usage: %s [--steps N] [--batch B] [--seq T] [--hidden C] [--heads NH] [--ffn F]\n"
      "          [--bits W] [--act-bits A] [--lsq] [--lr LR] [--print-every N] [--threads N] [--seed S]\n",
      argv0);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps") o.steps = std::atoi(next());
    else if (a == "--batch") o.batch = std::atol(next());
    else if (a == "--seq") o.seq = std::atol(next());
    else if (a == "--hidden") o.hidden = std::atol(next());
    else if (a == "--heads") o.heads = std::atol(next());
    else if (a == "--ffn") o.ffn = std::atol(next());
    else if (a == "--bits") o.bits = std::atoi(next());
    else if (a == "--act-bits") o.act_bits = std::atoi(next());
    else if (a == "--lsq") o.lsq = true;
    else if (a == "--lr") o.lr = std::atof(next());
    else if (a == "--print-every") o.print_every = std::atoi(next());
    else if (a == "--threads") o.threads = std::atoi(next());
    else if (a == "--seed") o.seed = std::strtoull(next(), nullptr, 10);
    else if (a == "--help" || a == "-h") {
      usage(argv[0]);
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage(argv[0]);
      std::exit(2);
    }
  }
  if (o.steps < 1 || o.batch < 1 || o.seq < 1 || o.print_every < 1) {
    std::fprintf(stderr, "steps, batch, seq and print-every must be positive\n");
    std::exit(2);
  }
  return o;
}

// One batch: inputs ~ N(0, 1), a padding mask with random lengths in [T/2, T].
struct Batch {
  DynTensor<float> x, mask;
};
Batch make_batch(Rng& rng, const Options& o) {
  Batch b{DynTensor<float>(Shape{o.batch, o.seq, o.hidden}), DynTensor<float>(Shape{o.batch, o.seq}, 0.0f)};
  init::normal(b.x, rng, 0.0, 1.0);
  for (Index i = 0; i < o.batch; ++i) {
    const Index len = o.seq - static_cast<Index>(rng.next_u64() % static_cast<std::uint64_t>(o.seq / 2 + 1));
    for (Index t = 0; t < len; ++t) b.mask[i * o.seq + t] = 1.0f;
  }
  return b;
}

// Mean squared error over the valid (unpadded) positions only.
Var<float> masked_mse(Var<float> y, const DynTensor<float>& target, const DynTensor<float>& mask, Index C) {
  Tape<float>& tape = y.tape();
  DynTensor<float> w(target.shape());
  double valid = 0;
  for (Index i = 0; i < mask.numel(); ++i) valid += mask[i];
  for (Index i = 0; i < w.numel(); ++i) w[i] = mask[i / C];
  // sum(((y - t) * w)^2) / (valid * C)
  const Var<float> d = (y - tape.constant(target)) * tape.constant(w);
  return scale(sum(d * d), static_cast<float>(1.0 / (valid * static_cast<double>(C))));
}

struct Student {
  std::string name;
  nn::QATTransformerBlock<float> block;
  AdamW<float> opt;
  LrSchedule schedule;
  double running = 0;
  int counted = 0;
  Student(std::string n, const nn::BlockConfig& cfg, const nn::QConfig& qc, const Options& o)
      : name(std::move(n)), block(cfg, qc, o.seed + 1), opt(groups(block, o)),
        schedule(linear_schedule_with_warmup(opt, o.steps / 20, o.steps)) {}
  static std::vector<ParamGroup<float>> groups(nn::QATTransformerBlock<float>& b, const Options& o) {
    nn::ParamGroupOptions g;
    g.lr = o.lr;
    g.weight_decay = 0.01;
    g.quant_lr = o.lr * 0.1;  // scales want a smaller step than weights
    return nn::make_param_groups(b, g);
  }
  float step(const Batch& b, const DynTensor<float>& target, Index C) {
    Tape<float> tape;
    const Var<float> loss = masked_mse(block.forward(tape, tape.constant(b.x), b.mask), target, b.mask, C);
    tape.backward(loss);
    clip_grad_norm(opt, 1.0);
    opt.step();
    schedule.step();
    opt.zero_grad();
    running += loss.item();
    ++counted;
    return loss.item();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_num_threads(o.threads);

  nn::BlockConfig cfg;
  cfg.hidden = o.hidden;
  cfg.heads = o.heads;
  cfg.intermediate = o.ffn;
  cfg.hidden_dropout = 0.0;  // a deterministic regression target: no dropout
  cfg.attention_dropout = 0.0;
  nn::BlockConfig teacher_cfg = cfg;
  teacher_cfg.init_std = 0.1;  // a teacher with larger weights computes a less trivial function

  nn::QConfig qat = o.lsq ? nn::QConfig::lsq(o.bits, o.act_bits) : nn::QConfig::wa(o.bits, o.act_bits);
  nn::QATTransformerBlock<float> teacher(teacher_cfg, nn::QConfig::fp32(), o.seed);
  teacher.eval();
  Student fp32("FP32", cfg, nn::QConfig::fp32(), o);
  Student quant("QAT", cfg, qat, o);

  std::printf("teacher-student: block C=%td NH=%td FFN=%td, batch %td x %td, %d steps, threads: %d\n",
              static_cast<std::ptrdiff_t>(o.hidden), static_cast<std::ptrdiff_t>(o.heads),
              static_cast<std::ptrdiff_t>(o.ffn), static_cast<std::ptrdiff_t>(o.batch),
              static_cast<std::ptrdiff_t>(o.seq), o.steps, num_threads());
  std::printf("QAT student: %s\n", qat.str().c_str());

  Rng data(o.seed + 100);
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= o.steps; ++step) {
    const Batch b = make_batch(data, o);
    const DynTensor<float> target = teacher.forward(b.x, b.mask);
    fp32.step(b, target, o.hidden);
    quant.step(b, target, o.hidden);
    // LSQ: the first step initialised the scales from the observers; from
    // now on they are trained.
    if (step == 1 && o.lsq) quant.block.enable_param_learning();
    if (step % o.print_every == 0 || step == o.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %5d  train mse  FP32 %.5f  QAT %.5f  (mean of last %d steps)  %.1f s\n", step,
                  fp32.running / fp32.counted, quant.running / quant.counted, fp32.counted, secs);
      fp32.running = quant.running = 0;
      fp32.counted = quant.counted = 0;
    }
  }

  // Held-out evaluation, eval mode (no observer updates).
  fp32.block.eval();
  quant.block.eval();
  Rng held_out(o.seed + 200);
  double e_fp32 = 0, e_qat = 0, e_zero = 0;
  constexpr int kEvalBatches = 8;
  for (int i = 0; i < kEvalBatches; ++i) {
    const Batch b = make_batch(held_out, o);
    const DynTensor<float> target = teacher.forward(b.x, b.mask);
    Tape<float> tape;
    tape.set_grad_enabled(false);
    e_fp32 += masked_mse(tape.constant(fp32.block.forward(b.x, b.mask)), target, b.mask, o.hidden).item();
    e_qat += masked_mse(tape.constant(quant.block.forward(b.x, b.mask)), target, b.mask, o.hidden).item();
    e_zero += masked_mse(tape.constant(DynTensor<float>(target.shape(), 0.0f)), target, b.mask, o.hidden).item();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nheld-out mse (%d batches; predicting 0 gives %.5f):\n", kEvalBatches, e_zero / kEvalBatches);
  std::printf("  FP32 student  %.5f\n  QAT student   %.5f   (%s)\n", e_fp32 / kEvalBatches, e_qat / kEvalBatches,
              o.lsq ? "learnable scales" : "observed scales");
  std::printf("done in %.1f s\n", secs);
  return std::isfinite(e_qat) && std::isfinite(e_fp32) ? 0 : 1;
}
