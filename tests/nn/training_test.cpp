// Training with the QAT layers: a tiny BERT classifier learns a toy task
// with quantization on (INT8 and INT4), and a checkpointed run of a
// QATTransformerBlock with AdamW, observers, learnable scales and dropout
// resumes bit for bit (single thread).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "nn/nn_test_util.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/checkpoint.hpp"
#include "qaware/nn/heads.hpp"
#include "qaware/nn/transformer_block.hpp"
#include "qaware/ops/cross_entropy.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/clip.hpp"

namespace qaware {
namespace {

// Toy task: sequences of 8 tokens from a vocabulary of 10; the label is 1
// when token 3 occurs in the sequence, else 0 (about half the time).
void make_batch(Rng& rng, Index B, Index T, DynTensor<std::int64_t>& ids, DynTensor<std::int64_t>& labels) {
  ids = DynTensor<std::int64_t>(Shape{B, T});
  labels = DynTensor<std::int64_t>(Shape{B});
  for (Index b = 0; b < B; ++b) {
    const bool positive = rng.uniform() < 0.5;
    for (Index t = 0; t < T; ++t) {
      std::int64_t tok = static_cast<std::int64_t>(rng.next_u64() % 9);
      ids[b * T + t] = tok >= 3 ? tok + 1 : tok;  // never 3
    }
    if (positive) ids[b * T + static_cast<Index>(rng.next_u64() % static_cast<std::uint64_t>(T))] = 3;
    labels[b] = positive ? 1 : 0;
  }
}

// Mean loss over the first and the last 10 steps.
std::pair<double, double> train_classifier(const nn::QConfig& qc, int steps) {
  nn::BertConfig bc;
  bc.vocab_size = 10;
  bc.block.hidden = 32;
  bc.layers = 1;
  bc.block.heads = 2;
  bc.block.intermediate = 64;
  bc.max_positions = 8;
  bc.block.hidden_dropout = bc.block.attention_dropout = 0.0;
  Rng init(1), data(2);
  nn::QATBertModel<float> model(bc, init, nn::ModelQConfig(qc));
  nn::QATClassifierHead<float> head(32, 2, init, qc, 0.0);
  struct Both : nn::Module<float> {
    nn::QATBertModel<float>& m;
    nn::QATClassifierHead<float>& h;
    Both(nn::QATBertModel<float>& a, nn::QATClassifierHead<float>& b) : m(a), h(b) {}
    void visit(nn::Visitor<float>& v) override {
      v.child("bert", m);
      v.child("classifier", h);
    }
  } both(model, head);
  nn::ParamGroupOptions po;
  po.lr = 3e-3;
  AdamW<float> opt(nn::make_param_groups<float>(both, po));
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    DynTensor<std::int64_t> ids, labels;
    make_batch(data, 16, 8, ids, labels);
    Tape<float> tape;
    const auto out = model.forward(tape, ids);
    Var<float> loss = cross_entropy(head.forward(tape, out.pooled_output), labels);
    tape.backward(loss);
    clip_grad_norm(opt, 1.0);
    opt.step();
    opt.zero_grad();
    losses.push_back(loss.item());
  }
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) {
    first += losses[static_cast<std::size_t>(i)] / 10;
    last += losses[losses.size() - 1 - static_cast<std::size_t>(i)] / 10;
  }
  return {first, last};
}

// The initial loss is ~ln 2 = 0.69 (balanced labels); learning the task
// drives it well below. 0.35 is half of chance, far from what an
// untrained or broken model reaches.
TEST(TrainingTest, TinyBertLearnsAToyTaskWithInt8Quantization) {
  const auto [first, last] = train_classifier(nn::QConfig::w8a8(), 100);
  std::printf("W8A8: loss %.3f -> %.3f\n", first, last);
  EXPECT_GT(first, 0.6);
  EXPECT_LT(last, 0.35);
}

TEST(TrainingTest, TinyBertLearnsAToyTaskWithInt4Quantization) {
  const auto [first, last] = train_classifier(nn::QConfig::wa(4, 4), 100);
  std::printf("W4A4: loss %.3f -> %.3f\n", first, last);
  EXPECT_GT(first, 0.6);
  EXPECT_LT(last, 0.35);
}

// ---------------------------------------------------------------------------
// Checkpoint resume.

struct TrainingRun {
  nn::QATTransformerBlock<float> block;
  AdamW<float> opt;
  Rng data;
  static nn::BlockConfig config() {
    nn::BlockConfig c;
    c.hidden = 16;
    c.heads = 2;
    c.intermediate = 32;
    c.hidden_dropout = 0.1;
    c.attention_dropout = 0.1;
    c.seed = 77;
    return c;
  }
  static nn::QConfig qconfig() {
    nn::QConfig q = nn::QConfig::w8a8();
    q.weight->learnable = true;  // LSQ weight scales; activations keep moving-average observers
    return q;
  }
  explicit TrainingRun(std::uint64_t init_seed)
      : block(config(), qconfig(), init_seed), opt(nn::make_param_groups<float>(block, groups())), data(5) {}
  static nn::ParamGroupOptions groups() {
    nn::ParamGroupOptions o;
    o.lr = 2e-3;
    o.quant_lr = 1e-4;
    return o;
  }
  // One training step; the first one initialises the learnable scales from
  // the observers, then they learn.
  float step(int i) {
    DynTensor<float> x(Shape{2, 6, 16}), target(Shape{2, 6, 16});
    init::normal(x, data, 0.0, 1.0);
    init::normal(target, data, 0.0, 1.0);
    DynTensor<float> mask(Shape{2, 6}, 1.0f);
    mask[10] = mask[11] = 0.0f;
    Tape<float> tape;
    Var<float> loss = mse_loss(block.forward(tape, tape.constant(x), mask), tape.constant(target));
    tape.backward(loss);
    clip_grad_norm(opt, 1.0);
    opt.step();
    opt.zero_grad();
    if (i == 0) block.enable_param_learning();
    return loss.item();
  }
};

TEST(CheckpointTest, ResumedRunEqualsTheUninterruptedRunBitForBit) {
  const int saved_threads = num_threads();
  set_num_threads(1);
  constexpr int kSteps = 6, kSplit = 3;
  TrainingRun full(1);
  std::vector<float> expected;
  for (int i = 0; i < kSteps; ++i) expected.push_back(full.step(i));

  const std::string path = ::testing::TempDir() + "qaware_nn_resume.safetensors";
  {
    TrainingRun first(1);
    for (int i = 0; i < kSplit; ++i) EXPECT_EQ(first.step(i), expected[static_cast<std::size_t>(i)]);
    nn::save_checkpoint<float>(path, first.block, &first.opt, nullptr, kSplit, {{"data", &first.data}});
  }
  TrainingRun resumed(99);  // different initial weights, fresh optimizer and RNGs: all must come from the file
  const std::int64_t step = nn::load_checkpoint<float>(path, resumed.block, &resumed.opt, nullptr, {{"data", &resumed.data}});
  EXPECT_EQ(step, kSplit);
  for (int i = kSplit; i < kSteps; ++i)
    EXPECT_EQ(resumed.step(i), expected[static_cast<std::size_t>(i)]) << "step " << i;  // bit-identical losses

  const io::TensorDict a = full.block.state_dict(), b = resumed.block.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_EQ(t.bytes, b.at(name).bytes) << name;
  // The learnable weight scales did learn (they are not just the observer's values).
  bool moved = false;
  for (auto& [name, q] : full.block.named_quant_points())
    if (q->fake_quantize().learnable()) moved = moved || q->fake_quantize().learning_enabled();
  EXPECT_TRUE(moved);
  set_num_threads(saved_threads);
}

TEST(CheckpointTest, LoadRejectsAFileOfAnotherModel) {
  TrainingRun a(1);
  a.step(0);
  const std::string path = ::testing::TempDir() + "qaware_nn_resume_other.safetensors";
  nn::save_checkpoint<float>(path, a.block, &a.opt, nullptr, 1);
  nn::BlockConfig c = TrainingRun::config();
  c.quantize_probs = true;  // one more quantization point
  nn::QATTransformerBlock<float> other(c, TrainingRun::qconfig(), 1);
  AdamW<float> opt(nn::make_param_groups<float>(other, TrainingRun::groups()));
  try {
    nn::load_checkpoint<float>(path, other, &opt, nullptr);
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention.self.probs_fake_quant"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qaware

namespace qaware {
namespace {

// Rewrites one tensor of a saved checkpoint: element `index` becomes `value`
// (kept in the tensor's own dtype).
void tamper(const std::string& path, const std::string& name, Index index, double value) {
  io::Safetensors f = io::load_safetensors(path);
  auto it = f.tensors.find(name);
  ASSERT_NE(it, f.tensors.end()) << name;
  io::TensorData& t = it->second;
  if (t.dtype == io::DType::F64) {
    DynTensor<double> v = nn::detail::tensor_to_double(t);
    v[index] = value;
    t = io::TensorData::from(v);
  } else if (t.dtype == io::DType::F32) {
    DynTensor<float> v = nn::detail::tensor_to_double(t).cast<float>();
    v[index] = static_cast<float>(value);
    t = io::TensorData::from(v);
  } else {
    ASSERT_EQ(t.dtype, io::DType::I64) << name;
    DynTensor<std::int64_t> v(t.shape);
    std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
    v[index] = static_cast<std::int64_t>(value);
    t = io::TensorData::from(v);
  }
  io::save_safetensors(path, f.tensors, f.metadata);
}

// A refused checkpoint leaves model, optimizer and RNGs as they were.
void expect_refused_untouched(const std::string& path, const std::string& needle) {
  TrainingRun run(99);
  run.step(0);
  const io::TensorDict before = run.block.state_dict();
  const auto opt_before = run.opt.state_dict(run.block.named_parameters());
  const Rng data_before = run.data;
  try {
    nn::load_checkpoint<float>(path, run.block, &run.opt, nullptr, {{"data", &run.data}});
    ADD_FAILURE() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  const io::TensorDict after = run.block.state_dict();
  for (const auto& [name, t] : before) EXPECT_EQ(t.bytes, after.at(name).bytes) << name << " changed";
  const auto opt_after = run.opt.state_dict(run.block.named_parameters());
  ASSERT_EQ(opt_before.params.size(), opt_after.params.size());
  for (const auto& [name, st] : opt_before.params) {
    const auto& other = opt_after.params.at(name);
    EXPECT_EQ(st.step, other.step) << name;
    for (const auto& [b, v] : st.buffers)
      EXPECT_EQ(0, std::memcmp(v.data(), other.buffers.at(b).data(), v.bytes())) << name << "." << b << " changed";
  }
  Rng a = data_before, b = run.data;
  EXPECT_EQ(a.next_u64(), b.next_u64()) << "the data RNG changed";
}

std::string saved_checkpoint(const std::string& tag) {
  TrainingRun a(1);
  a.step(0);
  a.step(1);
  const std::string path = ::testing::TempDir() + "qaware_nn_tampered_" + tag + ".safetensors";
  nn::save_checkpoint<float>(path, a.block, &a.opt, nullptr, 2, {{"data", &a.data}});
  return path;
}

TEST(CheckpointTest, BadQuantizationStateIsRefusedBeforeAnythingIsRestored) {
  const std::string zp = "attention.self.query.input_fake_quant.zero_point";  // uint8, fixed
  std::string path = saved_checkpoint("zp");
  tamper(path, zp, 0, 300.0);
  expect_refused_untouched(path, "zero_point[0] is 300");
  path = saved_checkpoint("scale");
  tamper(path, "attention.self.query.input_fake_quant.scale", 0, std::nan(""));
  expect_refused_untouched(path, "attention.self.query.input_fake_quant");
  // A learnable weight scale is a Param in the checkpoint: a negative one is refused too.
  path = saved_checkpoint("lsq");
  tamper(path, "attention.self.query.weight_fake_quant.scale", 2, -0.5);
  expect_refused_untouched(path, "scale[2] is -0.5");
  path = saved_checkpoint("observer");
  tamper(path, "attention.self.query.input_fake_quant.activation_post_process.min_val", 0, 1e6);
  expect_refused_untouched(path, "min_val / max_val");
}

TEST(CheckpointTest, NegativeStepAndBadAdamWMomentsAreRefused) {
  std::string path = saved_checkpoint("step");
  tamper(path, "train.step", 0, -5);
  expect_refused_untouched(path, "train.step is -5");
  path = saved_checkpoint("v");
  tamper(path, "optimizer.state.intermediate.dense.weight.exp_avg_sq", 7, -1.0);
  expect_refused_untouched(path, "exp_avg_sq' of 'intermediate.dense.weight' holds -1 at index 7");
  path = saved_checkpoint("m");
  tamper(path, "optimizer.state.intermediate.dense.weight.exp_avg", 3, std::numeric_limits<double>::infinity());
  expect_refused_untouched(path, "(must be finite)");
}

}  // namespace
}  // namespace qaware
