// 03_export_int8: train a small BERT classifier with QAT, export it as a real
// INT8 model, save it, load it back and run it.
//
// The task is synthetic: a sequence of random tokens is positive when more
// than a quarter of its tokens come from the first eighth of the
// vocabulary. The model (embeddings, L QATTransformerBlocks, pooler,
// classifier) trains with fake quantization (W8A8 by default) and AdamW.
// Then:
//   deploy::convert   the QAT model -> deploy::BertModel (int8 weights packed
//                     for this CPU, the trained scales and zero points)
//   deploy::save      -> an INT8 model file (safetensors + metadata)
//   deploy::load      <- the same file, as a program without the training
//                     code would (deploy/format.hpp)
// and it prints the parity check (the loaded model's logits against the QAT
// eval forward's, bit for bit), the accuracy of both, the file sizes (the
// INT8 file against an FP32 checkpoint of the same weights) and the time of
// one forward of each (the INT8 model against the FP32 eval forward of the
// same weights). Exits 1 if any logit differs.
//
// Build and run:
//   cmake --build build --target qaware_example_export_int8
//   ./build/examples/qaware_example_export_int8 [--steps N] [--hidden C] [--layers L] [--heads NH]
//       [--seq T] [--batch B] [--bits W] [--act-bits A] [--out FILE] [--threads N] [--seed S]
// Defaults: 300 steps of batch 32 x 32 tokens, C = 64, 2 layers, 4 heads,
// W8A8, one thread, the file in the system's temporary directory.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "qaware/qaware.hpp"

namespace {

using namespace qaware;

struct Options {
  int steps = 300;
  Index hidden = 64, layers = 2, heads = 4, seq = 32, batch = 32;
  int bits = 8, act_bits = 8;
  std::string out = (std::filesystem::temp_directory_path() / "qaware_example_int8.safetensors").string();
  int threads = 1;
  std::uint64_t seed = 1;
};

constexpr Index kVocab = 64;

void usage(const char* argv0) {
  std::printf(
      "usage: %s [--steps N] [--hidden C] [--layers L] [--heads NH] [--seq T] [--batch B] [--bits W]\n"
      "          [--act-bits A] [--out FILE] [--threads N] [--seed S]\n",
      argv0);
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(argv[0]);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s needs a value\n", argv[0], a.c_str());
      return false;
    }
    const char* v = argv[++i];
    char* end = nullptr;
    const long long n = std::strtoll(v, &end, 10);
    const bool num = end != v && *end == '\0';
    if (a == "--out") {
      o.out = v;
      continue;
    }
    if (!num || n < 0) {
      std::fprintf(stderr, "%s: %s takes a non-negative integer, got '%s'\n", argv[0], a.c_str(), v);
      return false;
    }
    if (a == "--steps") o.steps = static_cast<int>(n);
    else if (a == "--hidden") o.hidden = n;
    else if (a == "--layers") o.layers = n;
    else if (a == "--heads") o.heads = n;
    else if (a == "--seq") o.seq = n;
    else if (a == "--batch") o.batch = n;
    else if (a == "--bits") o.bits = static_cast<int>(n);
    else if (a == "--act-bits") o.act_bits = static_cast<int>(n);
    else if (a == "--threads") o.threads = static_cast<int>(n);
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(n);
    else {
      std::fprintf(stderr, "%s: unknown option %s\n", argv[0], a.c_str());
      usage(argv[0]);
      return false;
    }
  }
  return true;
}

// A batch of the synthetic task: ids (B, T) and labels (B).
void make_batch(Rng& rng, Index B, Index T, DynTensor<std::int64_t>& ids, DynTensor<std::int64_t>& labels) {
  ids = DynTensor<std::int64_t>(Shape{B, T});
  labels = DynTensor<std::int64_t>(Shape{B});
  for (Index b = 0; b < B; ++b) {
    // Half the sequences draw their tokens mostly from the first eighth.
    const bool rich = rng.below(2) == 1;
    Index count = 0;
    for (Index t = 0; t < T; ++t) {
      const bool low = rng.uniform() < (rich ? 0.4 : 0.1);
      const auto id = static_cast<std::int64_t>(low ? rng.below(kVocab / 8) : kVocab / 8 + rng.below(kVocab * 7 / 8));
      ids[b * T + t] = id;
      count += id < kVocab / 8;
    }
    labels[b] = count * 4 > T;
  }
}

double accuracy(const DynTensor<float>& logits, const DynTensor<std::int64_t>& labels) {
  Index right = 0;
  for (Index b = 0; b < labels.numel(); ++b) right += (logits[b * 2 + 1] > logits[b * 2]) == (labels[b] == 1);
  return 100.0 * static_cast<double>(right) / static_cast<double>(labels.numel());
}

template <class F>
double median_ms(F f, int reps = 15) {
  std::vector<double> t;
  f();  // warm-up
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Classifier : nn::Module<float> {
  nn::QATBertModel<float> bert;
  nn::QATClassifierHead<float> head;
  Classifier(const nn::BertConfig& bc, Rng& rng, const nn::QConfig& qc)
      : bert(bc, rng, nn::ModelQConfig(qc)), head(bc.block.hidden, 2, rng, qc, 0.0) {}
  void visit(nn::Visitor<float>& v) override {
    v.child("bert", bert);
    v.child("classifier", head);
  }
  DynTensor<float> logits(const DynTensor<std::int64_t>& ids) {
    return head.forward(bert.forward(ids).pooled_output);
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) return 2;
  try {
    set_num_threads(o.threads);
    nn::BertConfig bc;
    bc.vocab_size = kVocab;
    bc.max_positions = o.seq;
    bc.layers = o.layers;
    bc.block.hidden = o.hidden;
    bc.block.heads = o.heads;
    bc.block.intermediate = 4 * o.hidden;
    bc.block.hidden_dropout = bc.block.attention_dropout = 0.0;
    const nn::QConfig qc = nn::QConfig::wa(o.bits, o.act_bits);
    Rng init(o.seed), data(o.seed + 1);
    Classifier model(bc, init, qc);
    std::printf("QAT of a %lld-layer BERT classifier (hidden %lld, %lld heads), %s, %d steps of %lld x %lld tokens\n",
                static_cast<long long>(o.layers), static_cast<long long>(o.hidden), static_cast<long long>(o.heads),
                qc.str().c_str(), o.steps, static_cast<long long>(o.batch), static_cast<long long>(o.seq));

    nn::ParamGroupOptions po;
    po.lr = 2e-3;
    AdamW<float> opt(nn::make_param_groups<float>(model, po));
    model.train();
    DynTensor<std::int64_t> ids, labels;
    for (int step = 1; step <= o.steps; ++step) {
      make_batch(data, o.batch, o.seq, ids, labels);
      Tape<float> tape;
      const auto out = model.bert.forward(tape, ids);
      const Var<float> loss = cross_entropy(model.head.forward(tape, out.pooled_output), labels);
      tape.backward(loss);
      clip_grad_norm(opt, 1.0);
      opt.step();
      opt.zero_grad();
      if (step % 50 == 0 || step == o.steps) std::printf("  step %4d  loss %.4f\n", step, loss.item());
    }
    model.eval();

    // Held-out batch: the QAT eval forward, then the exported model.
    Rng eval_rng(o.seed + 1000);
    make_batch(eval_rng, 256, o.seq, ids, labels);
    const DynTensor<float> qat_logits = model.logits(ids);

    const deploy::BertModel exported = deploy::convert(model.bert, &model.head);
    deploy::save(exported, o.out);
    const deploy::BertModel loaded = deploy::load(o.out);
    const DynTensor<float> int8_logits = loaded.forward(ids).logits;
    Index same = 0;
    for (Index i = 0; i < qat_logits.numel(); ++i)
      same += std::memcmp(&qat_logits[i], &int8_logits[i], sizeof(float)) == 0;
    std::printf("\nparity: %lld of %lld logits of the loaded INT8 model equal the QAT eval forward's bit for bit%s\n",
                static_cast<long long>(same), static_cast<long long>(qat_logits.numel()),
                same == qat_logits.numel() ? "" : "  <-- MISMATCH");
    std::printf("accuracy on 256 held-out sequences: QAT %.1f %%, INT8 %.1f %%\n", accuracy(qat_logits, labels),
                accuracy(int8_logits, labels));

    // An FP32 model with the same weights: its checkpoint and its eval forward.
    Rng unused(0);
    Classifier fp32(bc, unused, nn::QConfig::fp32());
    nn::LoadOptions lo;
    lo.strict = false;
    fp32.load_state_dict(model.state_dict(), lo);
    fp32.eval();
    const std::string ckpt = o.out + ".fp32-checkpoint";
    io::save_safetensors(ckpt, fp32.state_dict());
    const auto int8_bytes = std::filesystem::file_size(o.out), fp32_bytes = std::filesystem::file_size(ckpt);
    std::filesystem::remove(ckpt);
    std::printf("file: %s, %.1f KiB; the FP32 checkpoint of the same weights %.1f KiB (%.2fx)\n", o.out.c_str(),
                static_cast<double>(int8_bytes) / 1024, static_cast<double>(fp32_bytes) / 1024,
                static_cast<double>(int8_bytes) / static_cast<double>(fp32_bytes));
    const double t_int8 = median_ms([&] { loaded.forward(ids); });
    const double t_fp32 = median_ms([&] { fp32.logits(ids); });
    std::printf("forward of 256 x %lld tokens, %d thread(s): INT8 %.2f ms, FP32 eval %.2f ms (%.2fx)\n",
                static_cast<long long>(o.seq), num_threads(), t_int8, t_fp32, t_fp32 / t_int8);
    return same == qat_logits.numel() ? 0 : 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
