// Checkpoints: a run resumed from a checkpoint equals the uninterrupted run
// bit for bit (single thread), and restoring validates names, dtypes and
// shapes without changing anything on failure.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "io/io_test_util.hpp"
#include "qaware/autograd/tape.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/optim/checkpoint.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/clip.hpp"
#include "qaware/optim/schedule.hpp"
#include "qaware/optim/sgd.hpp"

namespace qaware::optim {
namespace {

constexpr Index kB = 6, kIn = 5, kHidden = 8, kOut = 3;

// A 2-layer linear model trained on a fixed linear teacher, with a "scale"
// parameter in its own clamped group (its gradient is set by hand, as a
// learnable quantization scale would receive one) and a frozen parameter.
struct Model {
  Param<float> w1{Shape{kHidden, kIn}}, b1{Shape{kHidden}}, w2{Shape{kOut, kHidden}}, b2{Shape{kOut}};
  Param<float> scale{Shape{kOut}};
  Param<float> frozen{Shape{2}};

  explicit Model(std::uint64_t seed) {
    Rng r(seed);
    init::normal(w1.value(), r, 0.0, 0.4);
    init::normal(b1.value(), r, 0.0, 0.1);
    init::normal(w2.value(), r, 0.0, 0.4);
    init::normal(b2.value(), r, 0.0, 0.1);
    scale.value().fill(0.05f);
    init::normal(frozen.value(), r, 0.0, 1.0);
    frozen.set_requires_grad(false);
  }
  NamedParams<float> named() {
    return {{"encoder.layer.0.attention.self.query.weight", &w1},
            {"encoder.layer.0.attention.self.query.bias", &b1},
            {"encoder.layer.0.output.dense.weight", &w2},
            {"encoder.layer.0.output.dense.bias", &b2},
            {"encoder.layer.0.output.dense.weight_fake_quant.scale", &scale},
            {"embeddings.position_embeddings.weight", &frozen}};
  }
};

struct Trainer {
  Model model;
  std::unique_ptr<AdamW<float>> opt;
  std::unique_ptr<LrSchedule> sched;
  Rng data_rng;
  std::int64_t step = 0;

  Trainer(std::uint64_t init_seed, std::uint64_t data_seed) : model(init_seed), data_rng(data_seed) {
    ParamGroup<float> weights, scales;
    weights.params = {&model.w1, &model.b1, &model.w2, &model.b2, &model.frozen};
    scales.params = {&model.scale};
    scales.lr = 1e-2;
    scales.weight_decay = 0.0;
    scales.clamp_min = 1e-3f;
    AdamWOptions o;
    o.lr = 5e-2;
    opt = std::make_unique<AdamW<float>>(std::vector<ParamGroup<float>>{weights, scales}, o);
    sched = std::make_unique<LrSchedule>(linear_schedule_with_warmup(*opt, 3, 40));
  }

  TrainingState<float> state() {
    TrainingState<float> s;
    s.params = model.named();
    s.optimizer = opt.get();
    s.schedule = sched.get();
    s.rngs = {{"data", &data_rng}};
    s.step = step;
    return s;
  }

  // One training step; returns the loss (mean squared error vs the teacher).
  float train_step() {
    DynTensor<float> x({kB, kIn});
    init::normal(x, data_rng, 0.0, 1.0);
    // Teacher: t[b][o] = sum_i x[b][i] * (o + 1) * (i - 2) / 4.
    DynTensor<float> target({kB, kOut});
    for (Index b = 0; b < kB; ++b)
      for (Index o = 0; o < kOut; ++o) {
        float acc = 0;
        for (Index i = 0; i < kIn; ++i) acc += x[b * kIn + i] * static_cast<float>((o + 1) * (i - 2)) / 4.0f;
        target[b * kOut + o] = acc;
      }
    Tape<float> tape;
    Var<float> h = linear(tape.constant(x), tape.param(model.w1), tape.param(model.b1));
    Var<float> y = linear(h, tape.param(model.w2), tape.param(model.b2));
    const DynTensor<float>& yv = y.value();
    DynTensor<float> seed(yv.shape());
    float loss = 0;
    const float inv_n = 1.0f / static_cast<float>(yv.numel());
    for (Index i = 0; i < yv.numel(); ++i) {
      const float d = yv[i] - target[i];
      loss += d * d * inv_n;
      seed[i] = 2.0f * d * inv_n;
    }
    tape.backward(y, seed);
    for (Index o = 0; o < kOut; ++o) model.scale.grad()[o] = loss - 0.5f * static_cast<float>(o);
    clip_grad_norm(*opt, 1.0);
    opt->step();
    sched->step();
    opt->zero_grad();
    ++step;
    return loss;
  }
};

bool same_bits(const DynTensor<float>& a, const DynTensor<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

TEST(CheckpointTest, ResumeIsBitIdentical) {
  set_num_threads(1);
  constexpr int N = 12;
  Trainer full(1, 2);
  std::vector<float> full_losses;
  for (int i = 0; i < 2 * N; ++i) full_losses.push_back(full.train_step());
  EXPECT_LT(full_losses.back(), full_losses.front());  // it does learn

  test::ScratchDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  {
    Trainer first(1, 2);
    for (int i = 0; i < N; ++i) EXPECT_EQ(first.train_step(), full_losses[static_cast<std::size_t>(i)]);
    save_checkpoint(path, first.state(), {{"run", "resume-test"}});
  }
  // Different initialisation and data seed: everything must come from the file.
  Trainer resumed(77, 78);
  TrainingState<float> st = resumed.state();
  load_checkpoint(path, st);
  resumed.step = st.step;
  EXPECT_EQ(resumed.step, N);
  EXPECT_EQ(resumed.sched->last_step(), N);
  for (int i = N; i < 2 * N; ++i)
    EXPECT_EQ(resumed.train_step(), full_losses[static_cast<std::size_t>(i)]) << "step " << i;
  const auto a = full.model.named(), b = resumed.model.named();
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bits(a[i].second->value(), b[i].second->value())) << a[i].first;
  for (std::size_t g = 0; g < 2; ++g) EXPECT_EQ(full.opt->lr(g), resumed.opt->lr(g));
  for (float s : resumed.model.scale.value()) EXPECT_GE(s, 1e-3f);
  set_num_threads(0);
}

TEST(CheckpointTest, FileLayoutAndMetadata) {
  Trainer t(1, 2);
  t.train_step();
  test::ScratchDir dir;
  const std::string path = dir.file("c.safetensors");
  save_checkpoint(path, t.state(), {{"run", "x"}});
  const Safetensors f = load_safetensors(path);
  EXPECT_EQ(f.metadata.at("format"), "qaware.checkpoint");
  EXPECT_EQ(f.metadata.at("format_version"), "1");
  EXPECT_EQ(f.metadata.at("optimizer"), "AdamW");
  EXPECT_EQ(f.metadata.at("run"), "x");
  const std::string q = "encoder.layer.0.attention.self.query.weight";
  EXPECT_EQ(f.tensors.at(q).shape, Shape({kHidden, kIn}));
  EXPECT_EQ(f.tensors.at("optimizer.state." + q + ".exp_avg").shape, Shape({kHidden, kIn}));
  EXPECT_EQ(f.tensors.at("optimizer.state." + q + ".exp_avg_sq").dtype, DType::F32);
  EXPECT_EQ(f.tensors.at("optimizer.state." + q + ".step").as<std::int64_t>()[0], 1);
  // The frozen parameter is saved, but has no optimizer state.
  EXPECT_EQ(f.tensors.count("embeddings.position_embeddings.weight"), 1u);
  EXPECT_EQ(f.tensors.count("optimizer.state.embeddings.position_embeddings.weight.step"), 0u);
  EXPECT_EQ(f.tensors.at("optimizer.group.1.initial_lr").as<double>()[0], 1e-2);
  EXPECT_EQ(f.tensors.at("scheduler.last_step").as<std::int64_t>()[0], 1);
  EXPECT_EQ(f.tensors.at("train.step").as<std::int64_t>()[0], 1);
  EXPECT_EQ(f.tensors.at("rng.data.state").shape, Shape({4}));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"c.safetensors"});
}

// Saves a one-step checkpoint, lets `mutate` edit its tensors/metadata,
// writes it back and expects load_checkpoint to fail mentioning `needle`,
// leaving the target trainer untouched.
void expect_restore_error(const std::function<void(Safetensors&)>& mutate, const std::string& needle) {
  Trainer src(1, 2);
  src.train_step();
  auto [tensors, md] = checkpoint_tensors(src.state());
  Safetensors f{md, tensors};
  mutate(f);
  Trainer dst(5, 6);
  const DynTensor<float> w_before = dst.model.w1.value();
  const auto rng_before = dst.data_rng.snapshot().s;
  TrainingState<float> st = dst.state();
  try {
    restore_checkpoint(f, st, "mutated");
    FAIL() << "expected an Error containing " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_TRUE(same_bits(dst.model.w1.value(), w_before));
  EXPECT_EQ(dst.data_rng.snapshot().s, rng_before);
  EXPECT_EQ(dst.opt->state(dst.model.w1)->step, 0);
  EXPECT_EQ(dst.sched->last_step(), 0);
}

TEST(CheckpointTest, RestoreRejectsMissingOrMisshapenTensors) {
  const std::string q = "encoder.layer.0.attention.self.query.weight";
  expect_restore_error([&](Safetensors& f) { f.tensors.erase(q); }, "lacks tensor '" + q + "'");
  expect_restore_error(
      [&](Safetensors& f) { f.tensors[q] = TensorData::from(DynTensor<float>({kIn, kHidden}, 0.0f)); },
      "tensor '" + q + "' has shape [5, 8], expected [8, 5]");
  expect_restore_error([&](Safetensors& f) { f.tensors[q] = TensorData::from(DynTensor<double>({kHidden, kIn}, 0.0)); },
                       "tensor '" + q + "' is F64, expected F32");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("optimizer.state." + q + ".exp_avg_sq"); },
                       "lacks buffer 'exp_avg_sq'");
  expect_restore_error(
      [&](Safetensors& f) {
        f.tensors["optimizer.state." + q + ".exp_avg"] = TensorData::from(DynTensor<float>({3}, 0.0f));
      },
      "tensor 'optimizer.state." + q + ".exp_avg' has shape [3], expected [8, 5]");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("optimizer.state." + q + ".step"); },
                       "lacks tensor 'optimizer.state." + q + ".step'");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("rng.data.state"); }, "lacks tensor 'rng.data.state'");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("scheduler.last_step"); }, "scheduler.last_step");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("optimizer.group.1.lr"); }, "optimizer.group.1.lr");
  expect_restore_error([&](Safetensors& f) { f.tensors.erase("train.step"); }, "train.step");
  expect_restore_error(
      [&](Safetensors& f) { f.tensors["encoder.extra.weight"] = TensorData::from(DynTensor<float>({1}, 0.0f)); },
      "unexpected tensor 'encoder.extra.weight'");
  expect_restore_error(
      [&](Safetensors& f) {
        f.tensors["optimizer.state.nope.exp_avg"] = TensorData::from(DynTensor<float>({1}, 0.0f));
      },
      "optimizer state 'optimizer.state.nope.exp_avg' names no parameter");
  expect_restore_error(
      [&](Safetensors& f) {
        f.tensors["optimizer.state." + q + ".momentum_buffer"] = TensorData::from(DynTensor<float>({kHidden, kIn}, 0.0f));
      },
      "unexpected buffer 'momentum_buffer'");
}

TEST(CheckpointTest, RestoreRejectsForeignFiles) {
  expect_restore_error([](Safetensors& f) { f.metadata.erase("format"); }, "is not a qaware checkpoint");
  expect_restore_error([](Safetensors& f) { f.metadata["format_version"] = "2"; }, "format version '2'");
  expect_restore_error([](Safetensors& f) { f.metadata["optimizer"] = "SGD"; }, "optimizer 'SGD'");
}

TEST(CheckpointTest, SaveValidatesNames) {
  Trainer t(1, 2);
  TrainingState<float> s = t.state();
  s.params.push_back({"encoder.layer.0.output.dense.bias", &t.model.b2});
  EXPECT_THROW(checkpoint_tensors(s), Error);
  s = t.state();
  s.params.push_back({"optimizer.x", &t.model.b2});
  EXPECT_THROW(checkpoint_tensors(s), Error);
  s = t.state();
  s.params.pop_back();  // the frozen Param is in the optimizer but unnamed
  EXPECT_THROW(checkpoint_tensors(s), Error);
}

TEST(CheckpointTest, ParamsOnlyAndSgdCheckpoints) {
  test::ScratchDir dir;
  Model m(3);
  TrainingState<float> s;
  s.params = m.named();
  s.step = 9;
  save_checkpoint(dir.file("p.safetensors"), s);
  Model m2(4);
  TrainingState<float> s2;
  s2.params = m2.named();
  load_checkpoint(dir.file("p.safetensors"), s2);
  EXPECT_EQ(s2.step, 9);
  EXPECT_TRUE(same_bits(m.w2.value(), m2.w2.value()));

  // SGD with momentum state.
  Model a(5), b(6);
  SGDOptions o;
  o.momentum = 0.9;
  SGD<float> oa(std::vector<Param<float>*>{&a.w1, &a.b1}, o), ob(std::vector<Param<float>*>{&b.w1, &b.b1}, o);
  a.w1.grad().fill(0.5f);
  a.b1.grad().fill(-0.25f);
  oa.step();
  TrainingState<float> sa, sb;
  sa.params = {{"w1", &a.w1}, {"b1", &a.b1}};
  sa.optimizer = &oa;
  sb.params = {{"w1", &b.w1}, {"b1", &b.b1}};
  sb.optimizer = &ob;
  save_checkpoint(dir.file("sgd.safetensors"), sa);
  load_checkpoint(dir.file("sgd.safetensors"), sb);
  EXPECT_TRUE(same_bits(ob.state(b.w1)->buffers.at("momentum_buffer"), oa.state(a.w1)->buffers.at("momentum_buffer")));
  // An AdamW training state cannot load it.
  Trainer t(1, 2);
  TrainingState<float> st = t.state();
  EXPECT_THROW(load_checkpoint(dir.file("sgd.safetensors"), st), Error);
}

}  // namespace
}  // namespace qaware::optim
