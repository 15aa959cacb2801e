#pragma once
// QATTransformerBlock: one BERT encoder layer (Hugging Face BertLayer) with
// fake quantization.
//   x (B, T, C) -> y (B, T, C); padding mask [B, T] (1 = attend, 0 = padding).
//
// Post-LN (BERT, the default):
//   a  = dropout(attention(x, mask))                 hidden_dropout
//   h  = attention.output.LayerNorm(a + x)
//   f  = intermediate_act_fn(intermediate.dense(h))  GELU
//   o  = dropout(output.dense(f))
//   y  = output.LayerNorm(o + h)
// Pre-LN (BlockConfig::pre_layer_norm):
//   h  = x + dropout(attention(attention.output.LayerNorm(x), mask))
//   y  = h + dropout(output.dense(gelu(intermediate.dense(output.LayerNorm(h)))))
// (the same Parameters and names in both forms).
// The residual additions stay in float; every QATLinear quantizes its input
// and weight; the scores are quantized before the softmax; the LayerNorm
// and GELU outputs, the softmax output and the attention matmul inputs can
// be quantized too (BlockConfig switches).
//
// Names (Hugging Face BertLayer): attention.self.{query,key,value}.{weight,bias},
// attention.output.dense.*, attention.output.LayerNorm.*, intermediate.dense.*,
// output.dense.*, output.LayerNorm.*; quantization points under the module
// they belong to (e.g. attention.self.query.weight_fake_quant,
// attention.self.scores_fake_quant, intermediate.intermediate_act_fn.output_fake_quant).
// A block constructed with a QConfig uses it everywhere; apply_qconfig()
// gives each sub-module its own.

#include <cstdint>
#include <memory>

#include "qaware/core/rng.hpp"
#include "qaware/nn/attention.hpp"
#include "qaware/nn/gelu.hpp"
#include "qaware/nn/layer_norm.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/dropout.hpp"

namespace qaware {
namespace nn {

struct BlockConfig {
  Index hidden = 768;
  Index heads = 12;
  Index intermediate = 3072;
  double hidden_dropout = 0.1;     // hidden_dropout_prob
  double attention_dropout = 0.1;  // attention_probs_dropout_prob
  double layer_norm_eps = 1e-12;   // Hugging Face BERT's
  bool pre_layer_norm = false;
  GeluApprox gelu = GeluApprox::Erf;
  bool quantize_scores = true;
  bool quantize_probs = false;
  bool quantize_matmul_inputs = false;
  bool quantize_layer_norm_output = false;
  bool quantize_gelu_output = false;
  double init_std = 0.02;
  std::uint64_t seed = 0;  // dropout streams (Module::seed)
};

template <typename Scalar>
class QATTransformerBlock : public Module<Scalar> {
 public:
  QATTransformerBlock(const BlockConfig& cfg, Rng& rng, const QConfig& qconfig = {})
      : cfg_(checked(cfg)),
        attention_(cfg.hidden, cfg.heads, rng, qconfig, attention_options(cfg)),
        ln1_(cfg.hidden, cfg.layer_norm_eps, qconfig, cfg.quantize_layer_norm_output),
        inter_(cfg.hidden, cfg.intermediate, rng, qconfig, linear_options(cfg)),
        act_(qconfig, cfg.quantize_gelu_output, cfg.gelu, cfg.intermediate),
        out_(cfg.intermediate, cfg.hidden, rng, qconfig, linear_options(cfg)),
        ln2_(cfg.hidden, cfg.layer_norm_eps, qconfig, cfg.quantize_layer_norm_output) {
    this->seed(cfg.seed);
  }
  // Weights drawn from Rng(init_seed).
  explicit QATTransformerBlock(const BlockConfig& cfg, const QConfig& qconfig = {}, std::uint64_t init_seed = 0)
      : QATTransformerBlock(cfg, *std::make_unique<Rng>(init_seed), qconfig) {}

  void visit(Visitor<Scalar>& v) override {
    v.child("attention", attention_);
    v.rng("attention.output.dropout", rng_attn_);
    v.child("attention.output.LayerNorm", ln1_);
    v.child("intermediate.dense", inter_);
    v.child("intermediate.intermediate_act_fn", act_);
    v.child("output.dense", out_);
    v.rng("output.dropout", rng_out_);
    v.child("output.LayerNorm", ln2_);
  }

  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x, const DynTensor<Scalar>& padding_mask = DynTensor<Scalar>()) {
    QAWARE_CHECK(x.rank() == 3 && x.dim(2) == cfg_.hidden, "QATTransformerBlock: x must be (B, T, C) with C = ",
                 cfg_.hidden, ", got ", x.shape().str());
    const bool tr = this->is_training();
    const Scalar p = static_cast<Scalar>(cfg_.hidden_dropout);
    if (!cfg_.pre_layer_norm) {
      const Var<Scalar> a = dropout(attention_.forward(tape, x, padding_mask), p, rng_attn_, tr);
      const Var<Scalar> h = ln1_.forward(tape, add(a, x));
      const Var<Scalar> o = dropout(ffn(tape, h), p, rng_out_, tr);
      return ln2_.forward(tape, add(o, h));
    }
    const Var<Scalar> a = dropout(attention_.forward(tape, ln1_.forward(tape, x), padding_mask), p, rng_attn_, tr);
    const Var<Scalar> h = add(x, a);
    const Var<Scalar> o = dropout(ffn(tape, ln2_.forward(tape, h)), p, rng_out_, tr);
    return add(h, o);
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x, const DynTensor<Scalar>& padding_mask = DynTensor<Scalar>()) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x), padding_mask); });
  }

  const BlockConfig& config() const { return cfg_; }
  QATAttention<Scalar>& attention() { return attention_; }
  QATLayerNorm<Scalar>& attention_layer_norm() { return ln1_; }
  QATLinear<Scalar>& intermediate_dense() { return inter_; }
  QATGelu<Scalar>& intermediate_act() { return act_; }
  QATLinear<Scalar>& output_dense() { return out_; }
  QATLayerNorm<Scalar>& output_layer_norm() { return ln2_; }
  const QATAttention<Scalar>& attention() const { return attention_; }
  const QATLayerNorm<Scalar>& attention_layer_norm() const { return ln1_; }
  const QATLinear<Scalar>& intermediate_dense() const { return inter_; }
  const QATGelu<Scalar>& intermediate_act() const { return act_; }
  const QATLinear<Scalar>& output_dense() const { return out_; }
  const QATLayerNorm<Scalar>& output_layer_norm() const { return ln2_; }

 private:
  Var<Scalar> ffn(Tape<Scalar>& tape, Var<Scalar> h) {
    return out_.forward(tape, act_.forward(tape, inter_.forward(tape, h)));
  }
  static const BlockConfig& checked(const BlockConfig& c) {
    QAWARE_CHECK(c.hidden > 0 && c.heads > 0 && c.intermediate > 0, "QATTransformerBlock: hidden (", c.hidden,
                 "), heads (", c.heads, ") and intermediate (", c.intermediate, ") must be positive");
    QAWARE_CHECK(c.hidden % c.heads == 0, "QATTransformerBlock: hidden size ", c.hidden,
                 " is not a multiple of the number of heads ", c.heads);
    QAWARE_CHECK(c.hidden_dropout >= 0 && c.hidden_dropout < 1, "QATTransformerBlock: hidden_dropout must be in [0, 1), got ",
                 c.hidden_dropout);
    return c;
  }
  static AttentionOptions attention_options(const BlockConfig& c) {
    AttentionOptions o;
    o.dropout = c.attention_dropout;
    o.quantize_scores = c.quantize_scores;
    o.quantize_probs = c.quantize_probs;
    o.quantize_matmul_inputs = c.quantize_matmul_inputs;
    o.init_std = c.init_std;
    return o;
  }
  static LinearOptions linear_options(const BlockConfig& c) {
    LinearOptions o;
    o.init_std = c.init_std;
    return o;
  }

  BlockConfig cfg_;
  QATAttention<Scalar> attention_;
  QATLayerNorm<Scalar> ln1_;
  QATLinear<Scalar> inter_;
  QATGelu<Scalar> act_;
  QATLinear<Scalar> out_;
  QATLayerNorm<Scalar> ln2_;
  Rng rng_attn_{0}, rng_out_{0};
};

}  // namespace nn
}  // namespace qaware
