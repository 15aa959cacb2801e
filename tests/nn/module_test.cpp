// nn module mechanics: names, QConfig patterns and mixed precision, state
// dict round trips, strict / non-strict loading and its errors, train / eval,
// the tape-less forward, copies, pre-LN wiring, and finite-difference
// gradient checks (double) of the layers with quantization off.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "common/error_of.hpp"
#include "nn/nn_test_util.hpp"
#include "qaware/autograd/gradcheck.hpp"
#include "qaware/io/safetensors.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/transformer_block.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/sum.hpp"
#include "qaware/quant/observers.hpp"

namespace qaware {
namespace {

nn::BlockConfig small_block(Index C = 16, Index NH = 2, Index FF = 32) {
  nn::BlockConfig c;
  c.hidden = C;
  c.heads = NH;
  c.intermediate = FF;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.init_std = 0.3;
  return c;
}

template <typename Scalar>
DynTensor<Scalar> randn(Shape s, Rng& rng, double std = 1.0) {
  DynTensor<Scalar> t(std::move(s));
  init::normal(t, rng, 0.0, std);
  return t;
}

DynTensor<float> padding_mask(Index B, Index T, std::initializer_list<Index> lengths) {
  DynTensor<float> m(Shape{B, T}, 0.0f);
  Index b = 0;
  for (Index n : lengths) {
    for (Index t = 0; t < n; ++t) m[b * T + t] = 1.0f;
    ++b;
  }
  return m;
}

using test::error_of;

// ---------------------------------------------------------------------------
// Names.

TEST(ModuleTest, BlockParameterNamesAreHuggingFaceBertLayerNames) {
  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::fp32());
  std::set<std::string> names;
  for (auto& kv : block.named_parameters()) names.insert(kv.first);
  const std::set<std::string> expected = {
      "attention.self.query.weight", "attention.self.query.bias", "attention.self.key.weight",
      "attention.self.key.bias", "attention.self.value.weight", "attention.self.value.bias",
      "attention.output.dense.weight", "attention.output.dense.bias", "attention.output.LayerNorm.weight",
      "attention.output.LayerNorm.bias", "intermediate.dense.weight", "intermediate.dense.bias",
      "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"};
  EXPECT_EQ(names, expected);
  EXPECT_TRUE(block.named_quant_points().empty());  // FP32: no quantization points
  // The prefix is prepended with a dot.
  EXPECT_EQ(block.named_parameters("encoder.layer.3").front().first, "encoder.layer.3.attention.self.query.weight");
}

TEST(ModuleTest, LearnableQuantizationParamsAreNamedParameters) {
  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::lsq(8, 8));
  std::set<std::string> names;
  for (auto& kv : block.named_parameters()) names.insert(kv.first);
  EXPECT_TRUE(names.count("attention.self.query.weight_fake_quant.scale"));
  EXPECT_TRUE(names.count("attention.self.query.weight_fake_quant.zero_point"));
  EXPECT_TRUE(names.count("attention.self.query.input_fake_quant.scale"));
  EXPECT_TRUE(names.count("attention.self.scores_fake_quant.zero_point"));
  // Per-channel weight scales have one entry per output row from the start.
  for (auto& kv : block.named_parameters()) {
    if (kv.first == "intermediate.dense.weight_fake_quant.scale") {
      EXPECT_EQ(kv.second->shape(), Shape({32}));
    }
  }
  // Fixed-scale points expose no Params, only buffers.
  nn::QATTransformerBlock<float> fixed(small_block(), nn::QConfig::w8a8());
  EXPECT_EQ(fixed.named_parameters().size(), 16u);
  EXPECT_TRUE(fixed.state_dict().count("attention.self.query.weight_fake_quant.scale"));
}

// ---------------------------------------------------------------------------
// QConfig patterns and mixed precision.

TEST(QConfigTest, GlobMatchesWholeDottedNames) {
  using nn::glob_match;
  EXPECT_TRUE(glob_match("encoder.layer.*.intermediate.dense", "encoder.layer.0.intermediate.dense"));
  EXPECT_TRUE(glob_match("encoder.layer.*.intermediate.dense", "encoder.layer.11.intermediate.dense"));
  EXPECT_FALSE(glob_match("encoder.layer.*.intermediate.dense", "encoder.layer.0.intermediate.dense.x"));
  EXPECT_FALSE(glob_match("encoder.layer.*.intermediate.dense", "encoder.layer.0.output.dense"));
  EXPECT_TRUE(glob_match("*dense", "encoder.layer.0.output.dense"));  // * crosses dots
  EXPECT_TRUE(glob_match("encoder.layer.?.output.dense", "encoder.layer.7.output.dense"));
  EXPECT_FALSE(glob_match("encoder.layer.?.output.dense", "encoder.layer.10.output.dense"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_FALSE(glob_match("a", ""));
}

TEST(QConfigTest, LastMatchingOverrideWins) {
  nn::ModelQConfig cfg(nn::QConfig::w8a8());
  cfg.override_pattern("*.dense", nn::QConfig::wa(4, 8));
  cfg.override_pattern("encoder.layer.0.*", nn::QConfig::fp32());
  EXPECT_EQ(cfg.resolve("encoder.layer.1.attention.self.query").weight->spec.bits, 8);
  EXPECT_EQ(cfg.resolve("encoder.layer.1.output.dense").weight->spec.bits, 4);
  EXPECT_FALSE(cfg.resolve("encoder.layer.0.output.dense").enabled());  // both match; the later one wins
}

TEST(QConfigTest, W4A8FeedForwardChangesTheRangesUsed) {
  nn::BertConfig bc;
  bc.vocab_size = 20;
  bc.block.hidden = 16;
  bc.layers = 2;
  bc.block.heads = 2;
  bc.block.intermediate = 32;
  bc.max_positions = 8;
  bc.block.hidden_dropout = bc.block.attention_dropout = 0.0;
  bc.block.init_std = 0.3;
  nn::ModelQConfig mixed(nn::QConfig::w8a8());
  mixed.override_pattern("encoder.layer.*.intermediate.dense", nn::QConfig::wa(4, 8));
  Rng r1(5), r2(5);
  nn::QATBertModel<float> model(bc, r1, mixed);
  nn::QATBertModel<float> int8(bc, r2, nn::ModelQConfig(nn::QConfig::w8a8()));  // same weights
  DynTensor<std::int64_t> ids(Shape{2, 8});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = (i * 7) % 20;
  Tape<float> t1, t2;
  const DynTensor<float> y_mixed = model.forward(t1, ids).sequence_output.value();
  const DynTensor<float> y_int8 = int8.forward(t2, ids).sequence_output.value();

  for (std::size_t l = 0; l < 2; ++l) {
    nn::QATTransformerBlock<float>& layer = model.layer(l);
    const QuantParams ffn = layer.intermediate_dense().weight_quant().qparams();
    EXPECT_EQ(ffn.quant_min, -8);
    EXPECT_EQ(ffn.quant_max, 7);
    EXPECT_EQ(ffn.scale.size(), 32u);  // per output row
    EXPECT_EQ(layer.intermediate_dense().input_quant().qparams().quant_max, 255);  // A8
    EXPECT_EQ(layer.output_dense().weight_quant().qparams().quant_max, 127);       // INT8 elsewhere
    EXPECT_EQ(layer.attention().query().weight_quant().qparams().quant_max, 127);
    // The fake-quantized FFN weight takes at most 16 values per row, on the 4-bit grid.
    const DynTensor<float>& w = layer.intermediate_dense().weight().value();
    const DynTensor<float> wq = fake_quantize(w, ffn);
    for (Index r = 0; r < 32; ++r) {
      std::set<float> levels(wq.data() + r * 16, wq.data() + (r + 1) * 16);
      EXPECT_LE(levels.size(), 16u);
      for (float v : levels) {
        // v = k * scale rounded to float, so v / scale is k within an ulp or two.
        const double k = static_cast<double>(v) / ffn.scale[static_cast<std::size_t>(r)];
        EXPECT_NEAR(k, std::nearbyint(k), 1e-5);
        EXPECT_GE(std::nearbyint(k), -8.0);
        EXPECT_LE(std::nearbyint(k), 7.0);
      }
    }
    // The same weights under INT8 keep a range 16 times wider in levels.
    EXPECT_EQ(int8.layer(l).intermediate_dense().weight_quant().qparams().quant_max, 127);
  }
  // And the model computes something different.
  EXPECT_GT(test::scaled_error(y_mixed, y_int8), 1e-3);
}

TEST(QConfigTest, ApplyQConfigOnABlockUsesModuleNames) {
  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::w8a8());
  nn::ModelQConfig cfg(nn::QConfig::w8a8());
  cfg.override_pattern("attention.self.*", nn::QConfig::fp32());
  cfg.override_pattern("attention", nn::QConfig::wa(8, 4));  // the attention's own points
  nn::apply_qconfig(block, cfg);
  std::set<std::string> points;
  for (auto& kv : block.named_quant_points()) points.insert(kv.first);
  EXPECT_FALSE(points.count("attention.self.query.weight_fake_quant"));  // off by pattern
  ASSERT_TRUE(points.count("attention.self.scores_fake_quant"));
  EXPECT_EQ(block.attention().scores_quant().qparams().quant_max, 15);  // A4
  EXPECT_TRUE(points.count("attention.output.dense.weight_fake_quant"));
  EXPECT_TRUE(points.count("output.dense.input_fake_quant"));
}

// ---------------------------------------------------------------------------
// State dicts.

TEST(StateDictTest, RoundTripThroughSafetensorsReproducesTheBlock) {
  nn::BlockConfig bc = small_block();
  bc.quantize_probs = true;
  nn::QConfig qc = nn::QConfig::w8a8();
  qc.activation->learnable = true;  // learnable activations, observed weights
  nn::QATTransformerBlock<float> a(bc, qc, 1);
  Rng rng(9);
  const DynTensor<float> mask = padding_mask(2, 5, {5, 3});
  for (int step = 0; step < 3; ++step) {  // observers see data, scales move
    Tape<float> tape;
    Var<float> y = a.forward(tape, tape.constant(randn<float>({2, 5, 16}, rng)), mask);
    tape.backward(sum(y * y));
    if (step == 0) a.enable_param_learning();
    for (auto* p : a.parameters()) {
      if (!p->requires_grad()) continue;
      for (Index i = 0; i < p->numel(); ++i) p->value()[i] -= 1e-3f * p->grad()[i];
      p->zero_grad();
    }
  }
  const std::string path = ::testing::TempDir() + "qaware_nn_state.safetensors";
  io::save_safetensors(path, a.state_dict());
  nn::QATTransformerBlock<float> b(bc, qc, 2);  // different weights
  const nn::LoadResult r = b.load_state_dict(io::load_safetensors(path).tensors);
  EXPECT_TRUE(r.complete());
  const io::TensorDict sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, t] : sa) {
    ASSERT_TRUE(sb.count(name)) << name;
    EXPECT_EQ(t.dtype, sb.at(name).dtype) << name;
    EXPECT_EQ(t.shape, sb.at(name).shape) << name;
    EXPECT_EQ(t.bytes, sb.at(name).bytes) << name;
  }
  a.eval();
  b.eval();
  const DynTensor<float> x = randn<float>({2, 5, 16}, rng);
  EXPECT_TRUE(test::bit_identical(a.forward(x, mask), b.forward(x, mask), "forward after load"));
}

TEST(StateDictTest, StrictLoadNamesMissingUnexpectedAndMisShapedEntries) {
  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::w8a8());
  const io::TensorDict good = block.state_dict();

  io::TensorDict missing = good;
  missing.erase("intermediate.dense.bias");
  std::string e = error_of([&] { block.load_state_dict(missing); });
  EXPECT_NE(e.find("1 missing"), std::string::npos) << e;
  EXPECT_NE(e.find("intermediate.dense.bias"), std::string::npos) << e;

  io::TensorDict unexpected = good;
  unexpected["encoder.layer.0.typo.weight"] = good.at("intermediate.dense.bias");
  e = error_of([&] { block.load_state_dict(unexpected); });
  EXPECT_NE(e.find("1 unexpected"), std::string::npos) << e;
  EXPECT_NE(e.find("encoder.layer.0.typo.weight"), std::string::npos) << e;

  io::TensorDict quant_missing = good;
  quant_missing.erase("output.dense.weight_fake_quant.activation_post_process.min_val");
  e = error_of([&] { block.load_state_dict(quant_missing); });
  EXPECT_NE(e.find("output.dense.weight_fake_quant.activation_post_process.min_val"), std::string::npos) << e;

  io::TensorDict misshaped = good;
  misshaped["output.dense.weight"] = io::TensorData::from(DynTensor<float>(Shape{32, 16}, 0.0f));
  e = error_of([&] { block.load_state_dict(misshaped); });
  EXPECT_NE(e.find("output.dense.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[32, 16]"), std::string::npos) << e;
  EXPECT_NE(e.find("[16, 32]"), std::string::npos) << e;
  // Shape mismatches raise in non-strict mode too.
  EXPECT_THROW(block.load_state_dict(misshaped, nn::LoadOptions::non_strict()), Error);

  io::TensorDict bad_dtype = good;
  bad_dtype["output.dense.bias"] = io::TensorData::from(DynTensor<std::int32_t>(Shape{16}, 1));
  e = error_of([&] { block.load_state_dict(bad_dtype); });
  EXPECT_NE(e.find("output.dense.bias"), std::string::npos) << e;
  EXPECT_NE(e.find("I32"), std::string::npos) << e;

  // A failed load changes nothing.
  const io::TensorDict after = block.state_dict();
  for (const auto& [name, t] : good) EXPECT_EQ(t.bytes, after.at(name).bytes) << name;
}

TEST(StateDictTest, BadQuantizationValuesNameThePointAndLeaveTheModelUnchanged) {
  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::w8a8());
  DynTensor<float> x(Shape{2, 3, 16});
  for (Index i = 0; i < x.numel(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  block.train();
  block.forward(x);  // calibrates the observers
  const io::TensorDict good = block.state_dict();
  struct Case {
    std::string key;
    double value;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"intermediate.dense.input_fake_quant.zero_point", 1e20, "zero_point[0] is 1e+20"},
      {"intermediate.dense.input_fake_quant.scale", 0.0, "scale[0] is 0"},
      {"intermediate.dense.input_fake_quant.fake_quant_enabled", 0.5, "'fake_quant_enabled' must be 0 or 1"},
      {"output.dense.weight_fake_quant.activation_post_process.min_val", std::nan(""), "min_val / max_val"},
  };
  for (const Case& c : cases) {
    io::TensorDict bad = good;
    DynTensor<double> v = nn::detail::tensor_to_double(bad.at(c.key));
    v[0] = c.value;
    bad[c.key] = io::TensorData::from(v);
    nn::LoadOptions check;
    check.validate_only = true;
    for (const nn::LoadOptions& o : {nn::LoadOptions(), check}) {
      const std::string e = error_of([&] { block.load_state_dict(bad, o); });
      const std::string point = c.key.substr(0, c.key.find("_fake_quant") + 11);
      EXPECT_NE(e.find("quantization point '" + point + "'"), std::string::npos) << e;
      EXPECT_NE(e.find(c.needle), std::string::npos) << e;
    }
    const io::TensorDict after = block.state_dict();
    for (const auto& [name, t] : good) EXPECT_EQ(t.bytes, after.at(name).bytes) << c.key << ": " << name << " changed";
  }
  // validate_only accepts a good state without loading it.
  nn::QATTransformerBlock<float> other(small_block(), nn::QConfig::w8a8(), 5);
  const io::TensorDict other_before = other.state_dict();
  nn::LoadOptions check;
  check.validate_only = true;
  other.load_state_dict(good, check);
  for (const auto& [name, t] : other_before) EXPECT_EQ(t.bytes, other.state_dict().at(name).bytes) << name;
}

TEST(StateDictTest, AnImpossiblySizedLayerIsAnErrorNotACrash) {
  // 2^31 x 2^31 floats is 2^64 bytes: the weight's byte count wraps size_t
  // (it segfaulted in the initialiser, issue 22).
  Rng rng(1);
  const Index n = Index(1) << 31;
  EXPECT_THROW(nn::QATLinear<float>(n, n, rng), Error);
}

TEST(StateDictTest, NonStrictLoadReturnsTheListsAndLoadsTheRest) {
  nn::QATTransformerBlock<float> src(small_block(), nn::QConfig::fp32(), 1);
  nn::QATTransformerBlock<float> dst(small_block(), nn::QConfig::fp32(), 2);
  io::TensorDict d = src.state_dict();
  d.erase("attention.self.key.weight");
  d["extra.tensor"] = d.at("attention.self.key.bias");
  d["embeddings.position_ids"] = io::TensorData::from(DynTensor<std::int64_t>(Shape{1, 4}, 0));
  nn::LoadOptions opt = nn::LoadOptions::non_strict();
  opt.ignore = {"*position_ids"};
  const nn::LoadResult r = dst.load_state_dict(d, opt);
  EXPECT_EQ(r.missing, std::vector<std::string>({"attention.self.key.weight"}));
  EXPECT_EQ(r.unexpected, std::vector<std::string>({"extra.tensor"}));
  EXPECT_TRUE(test::bit_identical(dst.attention().query().weight().value(), src.attention().query().weight().value(), "query"));
  EXPECT_FALSE(test::bit_identical(dst.attention().key().weight().value(), src.attention().key().weight().value(), "key"));
}

TEST(StateDictTest, ParamsLoadFromHalfPrecisionAndDouble) {
  nn::QATLinear<float> lin(4, 3, *std::make_unique<Rng>(1), nn::QConfig::fp32());
  DynTensor<float> w(Shape{3, 4});
  for (Index i = 0; i < 12; ++i) w[i] = 0.25f * static_cast<float>(i) - 1.0f;  // exact in F16 and BF16
  io::TensorDict d;
  d["weight"] = io::TensorData::from_float(w, io::DType::F16);
  d["bias"] = io::TensorData::from(DynTensor<double>(Shape{3}, 0.5));
  lin.load_state_dict(d);
  EXPECT_TRUE(test::bit_identical(lin.weight().value(), w, "weight from F16"));
  EXPECT_EQ(lin.bias().value()[2], 0.5f);
}

// ---------------------------------------------------------------------------
// Modes, the tape-less forward, copies.

TEST(ModuleTest, TapelessForwardEqualsTheTapeForwardBitForBit) {
  for (const nn::QConfig& qc : {nn::QConfig::fp32(), nn::QConfig::w8a8(), nn::QConfig::lsq(4, 8)}) {
    nn::BlockConfig bc = small_block();
    bc.quantize_matmul_inputs = true;
    nn::QATTransformerBlock<float> block(bc, qc, 3);
    Rng rng(4);
    const DynTensor<float> mask = padding_mask(2, 6, {6, 2});
    {
      Tape<float> calib;  // let the observers see one batch
      block.forward(calib, calib.constant(randn<float>({2, 6, 16}, rng)), mask);
    }
    block.eval();
    const DynTensor<float> x = randn<float>({2, 6, 16}, rng);
    Tape<float> tape;
    const DynTensor<float> with_tape = block.forward(tape, tape.leaf(x), mask).value();
    EXPECT_TRUE(test::bit_identical(block.forward(x, mask), with_tape, "tape-less forward " + qc.str()));
  }
}

TEST(ModuleTest, EvalModeFreezesObserversAndDisablesDropout) {
  nn::BlockConfig bc = small_block();
  bc.hidden_dropout = 0.3;
  bc.attention_dropout = 0.3;
  nn::QATTransformerBlock<float> block(bc, nn::QConfig::w8a8(), 3);
  Rng rng(4);
  const DynTensor<float> x = randn<float>({2, 6, 16}, rng);
  // Training: dropout draws, so two forwards differ; the observers move.
  const DynTensor<float> t1 = block.forward(x), t2 = block.forward(x);
  EXPECT_FALSE(test::bit_identical(t1, t2, "two training forwards"));
  block.eval();
  EXPECT_FALSE(block.is_training());
  EXPECT_FALSE(block.attention().query().is_training());  // the whole tree
  const io::TensorDict before = block.state_dict();
  const DynTensor<float> e1 = block.forward(x), e2 = block.forward(randn<float>({2, 6, 16}, rng, 5.0));
  (void)e2;
  const io::TensorDict after = block.state_dict();
  for (const auto& [name, t] : before) EXPECT_EQ(t.bytes, after.at(name).bytes) << name;
  EXPECT_TRUE(test::bit_identical(block.forward(x), e1, "eval forwards"));
  block.train();
  EXPECT_TRUE(block.attention().query().is_training());
}

TEST(ModuleTest, CopiesAreIndependentModels) {
  nn::QATTransformerBlock<float> a(small_block(), nn::QConfig::lsq(8, 8), 3);
  nn::QATTransformerBlock<float> b = a;
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    EXPECT_NE(pa[i].second, pb[i].second);  // distinct storage
  }
  Rng rng(1);
  Tape<float> tape;
  Var<float> y = b.forward(tape, tape.constant(randn<float>({1, 4, 16}, rng)));
  tape.backward(sum(y));
  for (auto& kv : a.named_parameters())
    for (float g : kv.second->grad()) EXPECT_EQ(g, 0.0f) << kv.first;  // only the copy got gradients
  nn::QATTransformerBlock<float> c = std::move(b);
  EXPECT_EQ(c.named_parameters().size(), pa.size());
}

// ---------------------------------------------------------------------------
// Wiring and gradients (double, quantization off).

// Every Param's gradient against central differences of loss().
void check_module_gradients(nn::Module<double>& m, const std::function<Var<double>(Tape<double>&)>& loss,
                            double rtol = 1e-6, double atol = 1e-8) {
  m.zero_grad();
  {
    Tape<double> tape;
    tape.backward(loss(tape));
  }
  auto value = [&]() {
    Tape<double> t;
    t.set_grad_enabled(false);
    return loss(t).item();
  };
  int checked = 0;
  for (auto& [name, p] : m.named_parameters()) {
    for (Index i = 0; i < p->numel(); ++i) {
      const double x0 = p->value()[i], h = 1e-6 * std::max(1.0, std::abs(x0));
      p->value()[i] = x0 + h;
      const double lp = value();
      p->value()[i] = x0 - h;
      const double lm = value();
      p->value()[i] = x0;
      const double numeric = (lp - lm) / (2 * h), analytic = p->grad()[i];
      ASSERT_LE(std::abs(numeric - analytic), atol + rtol * std::max(std::abs(numeric), std::abs(analytic)))
          << name << "[" << i << "]: analytic " << analytic << " numeric " << numeric;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST(GradientTest, PostAndPreLayerNormBlocksMatchFiniteDifferences) {
  for (bool pre : {false, true}) {
    nn::BlockConfig bc = small_block(8, 2, 12);
    bc.pre_layer_norm = pre;
    bc.layer_norm_eps = 1e-5;
    nn::QATTransformerBlock<double> block(bc, nn::QConfig::fp32(), 11);
    Rng rng(12);
    const DynTensor<double> x = randn<double>({2, 3, 8}, rng), w = randn<double>({2, 3, 8}, rng);
    DynTensor<double> mask(Shape{2, 3}, 1.0);
    mask[5] = 0.0;
    check_module_gradients(block, [&](Tape<double>& t) {
      return sum(block.forward(t, t.constant(x), mask) * t.constant(w));
    });
  }
}

TEST(GradientTest, EmbeddingsPoolerAndHeadsMatchFiniteDifferences) {
  nn::BertConfig bc;
  bc.vocab_size = 7;
  bc.block.hidden = 6;
  bc.layers = 1;
  bc.block.heads = 2;
  bc.block.intermediate = 8;
  bc.max_positions = 4;
  bc.block.hidden_dropout = bc.block.attention_dropout = 0.0;
  bc.block.layer_norm_eps = 1e-5;
  bc.block.init_std = 0.5;
  Rng rng(2);
  nn::QATBertModel<double> model(bc, rng, nn::ModelQConfig(nn::QConfig::fp32()));
  nn::QATMLMHead<double> mlm(6, 7, rng, nn::QConfig::fp32(), 1e-5, 0.5);
  DynTensor<std::int64_t> ids(Shape{2, 3}), types(Shape{2, 3});
  for (Index i = 0; i < 6; ++i) {
    ids[i] = (i * 3 + 1) % 7;
    types[i] = i % 2;
  }
  const DynTensor<double> w = randn<double>({2, 6}, rng), wl = randn<double>({2, 3, 7}, rng);
  auto loss = [&](Tape<double>& t) {
    const auto out = model.forward(t, ids, types);
    const Var<double> logits = mlm.forward(t, out.sequence_output, t.param(model.embeddings().word_embeddings()));
    return sum(out.pooled_output * t.constant(w)) + sum(logits * t.constant(wl));
  };
  check_module_gradients(model, loss);
  check_module_gradients(mlm, loss);
}

TEST(ModuleTest, PreLayerNormWiringMatchesItsDefinition) {
  nn::BlockConfig bc = small_block();
  bc.pre_layer_norm = true;
  nn::QATTransformerBlock<double> block(bc, nn::QConfig::fp32(), 5);
  Rng rng(6);
  const DynTensor<double> x = randn<double>({2, 4, 16}, rng);
  // h = x + attention(LN1(x)); y = h + output.dense(gelu(intermediate.dense(LN2(h)))).
  const DynTensor<double> a = block.attention().forward(block.attention_layer_norm().forward(x));
  DynTensor<double> h(x.shape());
  for (Index i = 0; i < h.numel(); ++i) h[i] = x[i] + a[i];
  const DynTensor<double> f = block.output_dense().forward(
      block.intermediate_act().forward(block.intermediate_dense().forward(block.output_layer_norm().forward(h))));
  DynTensor<double> expect(x.shape());
  for (Index i = 0; i < h.numel(); ++i) expect[i] = h[i] + f[i];
  EXPECT_TRUE(test::bit_identical(block.forward(x), expect, "pre-LN block"));
}

// ---------------------------------------------------------------------------
// Errors.

TEST(ErrorTest, BadConfigurationsAndInputsNameTheValues) {
  std::string e = error_of([] {
    nn::BlockConfig c = small_block();
    c.heads = 3;
    nn::QATTransformerBlock<float> b(c, nn::QConfig::fp32());
  });
  EXPECT_NE(e.find("16"), std::string::npos) << e;
  EXPECT_NE(e.find("3"), std::string::npos) << e;

  e = error_of([] { nn::QATTransformerBlock<float> b(small_block(), nn::QConfig::wa(9, 8)); });
  EXPECT_NE(e.find("9"), std::string::npos) << e;

  nn::QATTransformerBlock<float> block(small_block(), nn::QConfig::w8a8());
  e = error_of([&] { block.forward(DynTensor<float>(Shape{2, 4, 12}, 0.0f)); });
  EXPECT_NE(e.find("[2, 4, 12]"), std::string::npos) << e;
  e = error_of([&] { block.forward(DynTensor<float>(Shape{2, 4, 16}, 0.0f), DynTensor<float>(Shape{2, 5}, 1.0f)); });
  EXPECT_NE(e.find("[2, 5]"), std::string::npos) << e;
  e = error_of([&] { block.forward(DynTensor<float>(Shape{1, 2, 16}, 0.0f), DynTensor<float>(Shape{1, 2}, 0.5f)); });
  EXPECT_NE(e.find("0.5"), std::string::npos) << e;

  nn::BertConfig bc;
  bc.vocab_size = 5;
  bc.block.hidden = 4;
  bc.layers = 1;
  bc.block.heads = 2;
  bc.block.intermediate = 4;
  bc.max_positions = 3;
  Rng rng(1);
  nn::QATBertModel<float> model(bc, rng, nn::ModelQConfig(nn::QConfig::fp32()));
  e = error_of([&] { model.forward(DynTensor<std::int64_t>(Shape{1, 4}, 0)); });
  EXPECT_NE(e.find("max_positions 3"), std::string::npos) << e;
  e = error_of([&] { model.forward(DynTensor<std::int64_t>(Shape{1, 2}, 5)); });
  EXPECT_NE(e.find("id 5"), std::string::npos) << e;
}

}  // namespace
}  // namespace qaware

namespace qaware {
namespace {

// The vectorised min / max used by the MinMax observers (quant/observers.hpp,
// sped up for the QAT training step) must equal the sequential loop bit for
// bit, including the sign of a zero result and every non-finite case.
TEST(ObserverFastPathTest, VectorisedMinMaxEqualsTheSequentialLoop) {
  Rng rng(8);
  int zero_results = 0;
  for (Index n : {1, 7, 63, 64, 65, 100, 129, 300, 1024}) {
    for (int trial = 0; trial < 40; ++trial) {
      DynTensor<float> x(Shape{n});
      init::normal(x, rng, 0.0, 1.0);
      const int kind = trial % 5;
      for (Index i = 0; i < n; ++i) {
        if (kind == 1) x[i] = std::abs(x[i]);                       // minimum may be a zero
        if (kind == 2) x[i] = -std::abs(x[i]);                      // maximum may be a zero
        if (kind >= 1 && rng.uniform() < 0.2) x[i] = rng.uniform() < 0.5 ? 0.0f : -0.0f;
        if (kind == 3) x[i] = rng.uniform() < 0.5 ? 0.0f : -0.0f;  // only zeros
      }
      const auto [a, b] = detail::obs::aminmax(x.data(), n);
      const auto [c, d] = detail::obs::aminmax_scalar(x.data(), n);
      ASSERT_EQ(std::memcmp(&a, &c, 4), 0) << "n " << n << " trial " << trial << ": " << a << " vs " << c;
      ASSERT_EQ(std::memcmp(&b, &d, 4), 0) << "n " << n << " trial " << trial << ": " << b << " vs " << d;
      zero_results += (c == 0.0f) + (d == 0.0f);
    }
  }
  EXPECT_GT(zero_results, 50);  // the signed-zero cases were exercised
  // Non-finite values: the same results as the loop, and the observers name the first one.
  DynTensor<float> x(Shape{200});
  init::normal(x, rng, 0.0, 1.0);
  x[150] = std::numeric_limits<float>::infinity();
  x[170] = std::numeric_limits<float>::quiet_NaN();
  const auto [a, b] = detail::obs::aminmax(x.data(), 200);
  const auto [c, d] = detail::obs::aminmax_scalar(x.data(), 200);
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, d);
  MinMaxObserver per_tensor(QuantSpec::uint8());
  EXPECT_NE(error_of([&] { per_tensor.observe(x); }).find("flat index 150"), std::string::npos);
  PerChannelMinMaxObserver per_channel(QuantSpec::int8().with_per_channel(0));
  EXPECT_NE(error_of([&] {
              DynTensor<float> y = x;
              y.reshape(Shape{2, 100});
              per_channel.observe(y);
            }).find("flat index 150"),
            std::string::npos);
}

TEST(ObserverFastPathTest, PerChannelObserverMatchesElementwiseReference) {
  Rng rng(9);
  for (const Shape& s : {Shape{4, 96}, Shape{3, 5, 80}, Shape{6, 10}}) {
    for (int axis = 0; axis < s.rank(); ++axis) {
      DynTensor<float> x(s);
      init::normal(x, rng, 0.0, 1.0);
      for (Index i = 0; i < x.numel(); i += 7) x[i] = (i % 2) ? 0.0f : -0.0f;
      PerChannelMinMaxObserver obs(QuantSpec::int8().with_per_channel(axis));
      obs.observe(x);
      const auto v = detail::fq::channel_view("test", s, axis);
      for (Index c = 0; c < v.channels; ++c) {
        float lo = detail::obs::kInf, hi = -detail::obs::kInf;
        for (Index o = 0; o < v.outer; ++o)
          for (Index k = 0; k < v.inner; ++k) {
            lo = std::min(lo, x[(o * v.channels + c) * v.inner + k]);
            hi = std::max(hi, x[(o * v.channels + c) * v.inner + k]);
          }
        const float got_lo = obs.min_vals()[static_cast<std::size_t>(c)], got_hi = obs.max_vals()[static_cast<std::size_t>(c)];
        EXPECT_EQ(std::memcmp(&got_lo, &lo, 4), 0) << s.str() << " axis " << axis << " channel " << c;
        EXPECT_EQ(std::memcmp(&got_hi, &hi, 4), 0) << s.str() << " axis " << axis << " channel " << c;
      }
    }
  }
}

}  // namespace
}  // namespace qaware
