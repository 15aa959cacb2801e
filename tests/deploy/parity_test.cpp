// The exported INT8 model answers what the QAT eval forward answered, bit for
// bit: one QATLinear, one block (post- and pre-LN, with and without the
// optional quantization points), a whole BERT with pooler, classifier and
// MLM head; W8A8, W4A8, W4A4, int8 activations, per-tensor weights, LSQ and
// a mixed configuration with FP32 layers; on every GEMM path this CPU offers
// (the weights packed for each in turn) and with 1 and 2 threads. The QAT
// models are trained for a few AdamW steps first, so that observers,
// learned scales and weights have moved away from their initial values.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "deploy/bert_fixture.hpp"
#include "nn/nn_test_util.hpp"
#include "qaware/deploy/convert.hpp"
#include "qaware/qaware.hpp"

namespace qaware {
namespace {

using test::bit_identical;
using deploy_test::Bert;
using deploy_test::batch;
using deploy_test::randn;
using deploy_test::train_briefly;

// The GEMM paths this CPU runs, as instruction-set caps under which the
// converted model packs its weights for that path. Only the conversion runs
// under the cap: a packed matrix keeps its path, and the forward's other
// kernels then run as the QAT forward's did (the cap would also move the
// float GEMM to Eigen's).
std::vector<std::pair<std::string, Isa>> path_caps() {
  std::vector<std::pair<std::string, Isa>> caps;
  for (gemm::Path p : gemm::kEachPath)
    if (gemm::has(gemm::compiled_paths() & gemm::cpu_paths(), p)) caps.push_back({gemm::path_name(p), gemm::path_isa(p)});
  return caps;
}

template <class F>
auto packed_for(Isa cap, F convert) {
  ScopedMaxIsa scoped(cap);
  return convert();
}

// ---------------------------------------------------------------------------
// One linear layer.

struct LinearCase {
  std::string name;
  nn::QConfig qc;
};

std::vector<LinearCase> linear_cases() {
  std::vector<LinearCase> v;
  v.push_back({"w8a8", nn::QConfig::w8a8()});
  v.push_back({"w4a8", nn::QConfig::wa(4, 8)});
  v.push_back({"w4a4", nn::QConfig::wa(4, 4)});
  v.push_back({"w2a8", nn::QConfig::wa(2, 8)});
  v.push_back({"lsq w8a8", nn::QConfig::lsq()});
  v.push_back({"lsq w4a4", nn::QConfig::lsq(4, 4)});
  nn::QConfig per_tensor = nn::QConfig::w8a8();
  per_tensor.weight->spec.per_channel = false;
  v.push_back({"per-tensor weight", per_tensor});
  nn::QConfig int8_input = nn::QConfig::w8a8();
  int8_input.activation->spec.is_signed = true;
  v.push_back({"int8 input", int8_input});
  nn::QConfig narrow = nn::QConfig::w8a8();
  narrow.weight->spec.narrow_range = true;
  v.push_back({"narrow weight", narrow});
  v.push_back({"fp32", nn::QConfig::fp32()});
  return v;
}

TEST(DeployParityTest, LinearEqualsTheQatEvalForwardBitForBit) {
  for (const LinearCase& c : linear_cases()) {
    SCOPED_TRACE(c.name);
    Rng rng(5);
    nn::LinearOptions lo;
    lo.quantize_output = c.name == "w8a8";  // one case with the output point on
    nn::QATLinear<float> layer(40, 24, rng, c.qc, lo);
    init::normal(layer.bias().value(), rng, 0.0, 0.1);
    const DynTensor<float> x = randn(Shape{3, 5, 40}, rng), target = randn(Shape{3, 5, 24}, rng);
    train_briefly(layer, [&](Tape<float>& t) { return layer.forward(t, t.constant(x)); }, target);
    const DynTensor<float> x2 = randn(Shape{2, 7, 40}, rng, 1.5);
    const DynTensor<float> want = layer.forward(x2);
    for (const auto& [path, isa] : path_caps()) {
      const deploy::Linear d = packed_for(isa, [&] { return deploy::convert(layer, "layer"); });
      EXPECT_EQ(d.is_integer(), c.name != "fp32");
      if (d.is_integer()) {
        EXPECT_EQ(std::string(gemm::path_name(d.packed_weight().path())), path);
      }
      EXPECT_TRUE(bit_identical(d.forward(x2), want, c.name + " on " + path));
    }
  }
}

// ---------------------------------------------------------------------------
// One block.

struct BlockCase {
  std::string name;
  nn::QConfig qc;
  bool pre_ln = false, probs = false, matmul_inputs = false, ln_out = false, gelu_out = false;
  GeluApprox gelu = GeluApprox::Erf;
};

std::vector<BlockCase> block_cases() {
  std::vector<BlockCase> v;
  v.push_back({"w8a8", nn::QConfig::w8a8()});
  v.push_back({"w8a8 pre-LN", nn::QConfig::w8a8(), true});
  v.push_back({"w8a8 probs", nn::QConfig::w8a8(), false, true});
  v.push_back({"w8a8 matmul inputs", nn::QConfig::w8a8(), false, false, true});
  v.push_back({"w8a8 LN and GELU outputs", nn::QConfig::w8a8(), false, false, false, true, true});
  v.push_back({"w8a8 tanh GELU", nn::QConfig::w8a8(), false, false, false, false, false, GeluApprox::Tanh});
  v.push_back({"w4a8", nn::QConfig::wa(4, 8)});
  v.push_back({"w4a4", nn::QConfig::wa(4, 4), false, true});
  v.push_back({"w4a4 matmul inputs", nn::QConfig::wa(4, 4), false, false, true});
  v.push_back({"lsq", nn::QConfig::lsq(), false, true});
  v.push_back({"lsq matmul inputs", nn::QConfig::lsq(), true, false, true});
  v.push_back({"fp32", nn::QConfig::fp32()});
  return v;
}

TEST(DeployParityTest, BlockEqualsTheQatEvalForwardBitForBit) {
  for (const BlockCase& c : block_cases()) {
    SCOPED_TRACE(c.name);
    nn::BlockConfig bc;
    bc.hidden = 32;
    bc.heads = 4;
    bc.intermediate = 64;
    bc.pre_layer_norm = c.pre_ln;
    bc.quantize_probs = c.probs;
    bc.quantize_matmul_inputs = c.matmul_inputs;
    bc.quantize_layer_norm_output = c.ln_out;
    bc.quantize_gelu_output = c.gelu_out;
    bc.gelu = c.gelu;
    bc.init_std = 0.1;
    nn::QATTransformerBlock<float> block(bc, c.qc, 7);
    Rng rng(8);
    const DynTensor<float> x = randn(Shape{2, 6, 32}, rng), target = randn(Shape{2, 6, 32}, rng);
    DynTensor<float> mask(Shape{2, 6}, 1.0f);
    mask[5] = mask[4] = 0.0f;  // the first sequence has two padding positions
    train_briefly(block, [&](Tape<float>& t) { return block.forward(t, t.constant(x), mask); }, target);
    const DynTensor<float> x2 = randn(Shape{2, 6, 32}, rng);
    const DynTensor<float> want = block.forward(x2, mask), want_nomask = block.forward(x2);
    const DynTensor<float> add_mask = additive_attention_mask(mask, 2, 6);
    for (const auto& [path, isa] : path_caps()) {
      const deploy::Block d = packed_for(isa, [&] { return deploy::convert(block, ""); });
      EXPECT_EQ(d.attention.integer_products, c.matmul_inputs);
      EXPECT_TRUE(bit_identical(d.forward(x2, add_mask), want, c.name + " on " + path));
      EXPECT_TRUE(bit_identical(d.forward(x2, DynTensor<float>()), want_nomask, c.name + " (no mask) on " + path));
    }
  }
}

// ---------------------------------------------------------------------------
// A whole BERT with its heads.

struct ModelCase {
  ModelCase(std::string n, nn::ModelQConfig q, bool t = false) : name(std::move(n)), mq(std::move(q)), tables(t) {}
  std::string name;
  nn::ModelQConfig mq;
  bool tables;
  bool matmul_inputs = false;
  deploy::ConvertOptions options;
};

std::vector<ModelCase> model_cases() {
  std::vector<ModelCase> v;
  v.push_back({"w8a8", nn::ModelQConfig(nn::QConfig::w8a8())});
  v.push_back({"w8a8 quantized tables", nn::ModelQConfig(nn::QConfig::w8a8()), true});
  v.push_back({"w4a8", nn::ModelQConfig(nn::QConfig::wa(4, 8))});
  v.push_back({"w4a4", nn::ModelQConfig(nn::QConfig::wa(4, 4))});
  v.push_back({"lsq", nn::ModelQConfig(nn::QConfig::lsq())});
  ModelCase mm("w8a8 matmul inputs", nn::ModelQConfig(nn::QConfig::w8a8()));
  mm.matmul_inputs = true;
  v.push_back(mm);
  nn::ModelQConfig mixed(nn::QConfig::w8a8());
  mixed.override_pattern("encoder.layer.*.intermediate.dense", nn::QConfig::wa(4, 8));
  mixed.override_pattern("encoder.layer.1.output.dense", nn::QConfig::fp32());
  mixed.override_pattern("classifier", nn::QConfig::fp32());
  v.push_back({"mixed W4A8 FFN, FP32 layers", mixed});
  // Affine weights have no integer form: kept float, as the QAT forward computed them.
  nn::QConfig affine = nn::QConfig::w8a8();
  affine.weight->spec.symmetric = false;
  nn::ModelQConfig with_affine(nn::QConfig::w8a8());
  with_affine.override_pattern("cls.predictions", affine);
  with_affine.override_pattern("encoder.layer.0.attention.self.*", affine);
  ModelCase kept("affine layers kept float", with_affine);
  kept.options.keep_float = {"cls.predictions.*", "encoder.layer.0.attention.self.*"};
  v.push_back(kept);
  return v;
}

TEST(DeployParityTest, BertWithHeadsEqualsTheQatEvalForwardBitForBit) {
  for (ModelCase& c : model_cases()) {
    SCOPED_TRACE(c.name);
    Rng rng(21);
    Bert b(c.mq, c.tables, c.matmul_inputs, rng);
    deploy_test::train_bert(b, rng);
    DynTensor<std::int64_t> ids, types;
    DynTensor<float> mask;
    batch(rng, 2, 12, ids, types, mask);
    Tape<float> tape;
    tape.set_grad_enabled(false);
    const auto o = b.model.forward(tape, ids, types, mask);
    const DynTensor<float> logits = b.cls.forward(tape, o.pooled_output).value();
    const DynTensor<float> mlm =
        b.mlm.forward(tape, o.sequence_output, tape.param(b.model.embeddings().word_embeddings())).value();
    for (const auto& [path, isa] : path_caps()) {
      const deploy::BertModel d = packed_for(isa, [&] { return deploy::convert(b.model, &b.cls, &b.mlm, c.options); });
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        const std::string where = c.name + " on " + path + ", " + std::to_string(threads) + " threads";
        const deploy::BertModel::Outputs out = d.forward(ids, types, mask);
        EXPECT_TRUE(bit_identical(out.sequence_output, o.sequence_output.value(), where + ": sequence output"));
        EXPECT_TRUE(bit_identical(out.pooled_output, o.pooled_output.value(), where + ": pooled output"));
        EXPECT_TRUE(bit_identical(out.logits, logits, where + ": classifier logits"));
        EXPECT_TRUE(bit_identical(out.mlm_logits, mlm, where + ": MLM logits"));
      }
      set_num_threads(0);
    }
  }
}

// ---------------------------------------------------------------------------
// What cannot be exported exactly is refused, naming the layer.

TEST(DeployConvertTest, LayersWithoutAnIntegerFormAreRefusedUnlessKeptFloat) {
  auto error_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  Rng rng(3);
  const DynTensor<float> x = randn(Shape{4, 16}, rng);
  auto calibrated = [&](const nn::QConfig& qc) {
    nn::QATLinear<float> l(16, 8, rng, qc);
    l.train();
    l.forward(x);
    l.eval();
    return l;
  };
  nn::QConfig affine = nn::QConfig::w8a8();
  affine.weight->spec.symmetric = false;
  nn::QATLinear<float> a = calibrated(affine);
  std::string e = error_of([&] { deploy::convert(a, "encoder.layer.3.output.dense"); });
  EXPECT_NE(e.find("encoder.layer.3.output.dense"), std::string::npos) << e;
  EXPECT_NE(e.find("affine"), std::string::npos) << e;
  EXPECT_NE(e.find("keep_float"), std::string::npos) << e;
  deploy::ConvertOptions keep;
  keep.keep_float = {"encoder.layer.*.output.dense"};
  const deploy::Linear kept = deploy::convert(a, "encoder.layer.3.output.dense", keep);
  EXPECT_FALSE(kept.is_integer());
  EXPECT_TRUE(bit_identical(kept.forward(x), a.forward(x), "affine weights kept float"));
  // A layer with an integer form kept float: its product is then float, the
  // QAT forward's was integer; the two differ by float rounding only.
  nn::QATLinear<float> int8 = calibrated(nn::QConfig::w8a8());
  const deploy::Linear as_float = deploy::convert(int8, "encoder.layer.3.output.dense", keep);
  EXPECT_FALSE(as_float.is_integer());
  EXPECT_TRUE(test::close_to_scale(as_float.forward(x), int8.forward(x), 1e-5, "integer layer kept float"));

  nn::QConfig weight_only = nn::QConfig::w8a8();
  weight_only.activation.reset();
  nn::QATLinear<float> w = calibrated(weight_only);
  e = error_of([&] { deploy::convert(w, "pooler.dense"); });
  EXPECT_NE(e.find("pooler.dense"), std::string::npos) << e;
  EXPECT_NE(e.find("the input is not quantized"), std::string::npos) << e;

  nn::QConfig per_channel_input = nn::QConfig::w8a8();
  per_channel_input.activation->spec.per_channel = true;
  per_channel_input.activation->spec.axis = -1;
  nn::QATLinear<float> pc = calibrated(per_channel_input);
  e = error_of([&] { deploy::convert(pc, "classifier"); });
  EXPECT_NE(e.find("per channel"), std::string::npos) << e;

  // Never calibrated: its parameters are a default, not a calibration.
  nn::QATLinear<float> fresh(16, 8, rng, nn::QConfig::w8a8());
  e = error_of([&] { deploy::convert(fresh, "fresh"); });
  EXPECT_NE(e.find("never observed"), std::string::npos) << e;
  deploy::ConvertOptions allow;
  allow.allow_uncalibrated = true;
  fresh.eval();
  EXPECT_TRUE(bit_identical(deploy::convert(fresh, "fresh", allow).forward(x), fresh.forward(x), "uncalibrated"));
}

}  // namespace
}  // namespace qaware
