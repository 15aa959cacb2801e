// A tiny BERT (2 layers, hidden 32) loaded from a safetensors file that
// holds a Hugging Face BertModel state dict under transformers' exact names
// (tools/gen_bert_golden.py), with an MLM head tied to the word embeddings
// and a classifier head, against PyTorch 1.13 in float32: sequence output,
// pooled output, both logits, the loss and every gradient (the tied word
// embeddings receive the sum of both uses).
//
// Tolerances (float32, quantization off): outputs 2e-6 and gradients 2e-5
// of each tensor's largest magnitude (different summation orders in GEMMs
// and reductions give differences of a few ulps; observed ~1e-6 for
// gradients), loss relative 2e-6. The key biases' gradients are exactly
// zero in exact arithmetic; both sides must hold only rounding noise.

#include <gtest/gtest.h>

#include <string>

#include "common/fixture.hpp"
#include "nn/nn_test_util.hpp"
#include "qaware/io/safetensors.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/heads.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/cross_entropy.hpp"

namespace qaware {
namespace {

using test::Fixture;

nn::BertConfig tiny_config() {
  nn::BertConfig c;
  c.vocab_size = 40;
  c.block.hidden = 32;
  c.layers = 2;
  c.block.heads = 2;
  c.block.intermediate = 64;
  c.max_positions = 16;
  c.type_vocab_size = 2;
  c.block.hidden_dropout = 0.0;
  c.block.attention_dropout = 0.0;
  return c;
}

std::string data_path(const std::string& f) { return std::string(QAWARE_TEST_DATA_DIR) + "/" + f; }

// The fixture's head parameters under `prefix`, with the prefix removed.
io::TensorDict head_dict(const Fixture& fx, const std::string& prefix) {
  io::TensorDict d;
  const std::string full = "head." + prefix;
  for (const std::string& n : fx.names())
    if (n.compare(0, full.size(), full) == 0) d[n.substr(full.size())] = io::TensorData::from(fx.get<float>(n));
  return d;
}

struct TinyBert {
  Rng rng{3};
  nn::QATBertModel<float> model;
  nn::QATMLMHead<float> mlm;
  nn::QATClassifierHead<float> cls;
  TinyBert(const nn::ModelQConfig& q = nn::ModelQConfig(nn::QConfig::fp32()))
      : model(tiny_config(), rng, q), mlm(32, 40, rng, nn::QConfig::fp32()), cls(32, 3, rng, nn::QConfig::fp32(), 0.0) {}
};

TEST(BertGoldenTest, HuggingFaceStateDictLoadsAndMatchesPyTorch) {
  const Fixture fx = Fixture::load("nn_bert_tiny.qfx");
  TinyBert m;
  const io::Safetensors file = io::load_safetensors(data_path("nn_bert_tiny.safetensors"));
  const nn::LoadResult r = m.model.load_state_dict(file.tensors, nn::LoadOptions::hugging_face());
  EXPECT_TRUE(r.complete()) << r.missing.size() << " missing, " << r.unexpected.size() << " unexpected";
  // Every tensor of the file but the position_ids buffer is one of our parameters.
  EXPECT_EQ(m.model.named_parameters().size() + 1, file.tensors.size());
  m.mlm.load_state_dict(head_dict(fx, "cls.predictions."));
  m.cls.load_state_dict(head_dict(fx, "classifier."));

  Tape<float> tape;
  const auto ids = fx.get<std::int64_t>("ids");
  const auto out = m.model.forward(tape, ids, fx.get<std::int64_t>("token_type_ids"), fx.get<float>("attention_mask"));
  const Var<float> mlm_logits = m.mlm.forward(tape, out.sequence_output, tape.param(m.model.embeddings().word_embeddings()));
  const Var<float> cls_logits = m.cls.forward(tape, out.pooled_output);
  const Var<float> loss = cross_entropy(mlm_logits, fx.get<std::int64_t>("mlm_labels")) +
                          cross_entropy(cls_logits, fx.get<std::int64_t>("labels"));
  tape.backward(loss);

  EXPECT_TRUE(test::close_to_scale(out.sequence_output.value(), fx.get<float>("sequence_output"), 2e-6, "sequence_output"));
  EXPECT_TRUE(test::close_to_scale(out.pooled_output.value(), fx.get<float>("pooled_output"), 2e-6, "pooled_output"));
  EXPECT_TRUE(test::close_to_scale(mlm_logits.value(), fx.get<float>("mlm_logits"), 2e-6, "mlm_logits"));
  EXPECT_TRUE(test::close_to_scale(cls_logits.value(), fx.get<float>("cls_logits"), 2e-6, "cls_logits"));
  EXPECT_NEAR(loss.item(), fx.scalar<float>("loss"), 2e-6 * std::abs(fx.scalar<float>("loss")));

  int compared = 0;
  for (auto& [name, p] : m.model.named_parameters()) {
    ++compared;
    const std::string key_bias = ".attention.self.key.bias";
    if (name.size() > key_bias.size() && name.compare(name.size() - key_bias.size(), key_bias.size(), key_bias) == 0) {
      // Exactly zero in exact arithmetic (the softmax ignores a key bias);
      // both sides hold rounding noise only.
      const std::string query_bias = name.substr(0, name.size() - key_bias.size()) + ".attention.self.query.bias";
      const double scale = test::max_abs(fx.get<float>("grad." + query_bias));
      EXPECT_LE(test::max_abs(p->grad()), 1e-5 * scale) << name;
      EXPECT_LE(test::max_abs(fx.get<float>("grad." + name)), 1e-5 * scale) << name;
      continue;
    }
    EXPECT_TRUE(test::close_to_scale(p->grad(), fx.get<float>("grad." + name), 2e-5, name));
  }
  for (auto& [name, p] : m.mlm.named_parameters("cls.predictions")) {
    EXPECT_TRUE(test::close_to_scale(p->grad(), fx.get<float>("grad." + name), 2e-5, name));
    ++compared;
  }
  for (auto& [name, p] : m.cls.named_parameters("classifier")) {
    EXPECT_TRUE(test::close_to_scale(p->grad(), fx.get<float>("grad." + name), 2e-5, name));
    ++compared;
  }
  int expected = 0;
  for (const std::string& n : fx.names()) expected += n.compare(0, 5, "grad.") == 0;
  EXPECT_EQ(compared, expected);

  // The tape-less forward (eval mode) computes the same numbers bit for bit.
  m.model.eval();
  const auto values = m.model.forward(ids, fx.get<std::int64_t>("token_type_ids"), fx.get<float>("attention_mask"));
  EXPECT_TRUE(test::bit_identical(values.sequence_output, out.sequence_output.value(), "eval sequence_output"));
  EXPECT_TRUE(test::bit_identical(values.pooled_output, out.pooled_output.value(), "eval pooled_output"));
}

TEST(BertGoldenTest, QuantizedModelLoadsHuggingFaceWeightsAndReportsQuantStateMissing) {
  TinyBert m{nn::ModelQConfig(nn::QConfig::w8a8())};
  const io::Safetensors file = io::load_safetensors(data_path("nn_bert_tiny.safetensors"));
  // Strict: the quantization state is missing, and the error names it.
  try {
    m.model.load_state_dict(file.tensors);
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight_fake_quant"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("embeddings.position_ids"), std::string::npos) << e.what();
  }
  // Hugging Face options: the weights load, the quantization entries are reported missing.
  const nn::LoadResult r = m.model.load_state_dict(file.tensors, nn::LoadOptions::hugging_face());
  EXPECT_TRUE(r.unexpected.empty());
  EXPECT_FALSE(r.missing.empty());
  for (const std::string& n : r.missing) EXPECT_NE(n.find("_fake_quant."), std::string::npos) << n;
  const auto& w = file.tensors.at("encoder.layer.1.intermediate.dense.weight");
  EXPECT_TRUE(test::bit_identical(m.model.layer(1).intermediate_dense().weight().value(), w.to_float(), "loaded weight"));
}

}  // namespace
}  // namespace qaware
