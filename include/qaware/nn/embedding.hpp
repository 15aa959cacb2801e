#pragma once
// QATBertEmbeddings: Hugging Face BertEmbeddings with optional fake
// quantization of the tables.
//   ids (B, T) int64, token_type_ids (B, T) int64 or empty (all type 0)
//   -> y (B, T, C):
//   e = word_embeddings[ids] + token_type_embeddings[token_type_ids]
//   e = e + position_embeddings[0..T-1]           (transformers' order of the sums)
//   y = dropout(LayerNorm(e))
// With quantize_tables, each table is fake-quantized with QConfig::weight
// (per channel along axis 0 = one scale per row by default) before the
// lookup; the whole table is quantized every forward, which costs
// V x C work per step (off by default).
// Names: word_embeddings.weight (V, C), position_embeddings.weight (P, C),
// token_type_embeddings.weight (TT, C), LayerNorm.{weight,bias}; points
// word_embeddings.weight_fake_quant, ...; dropout RNG "dropout".
// Tables start as normal(0, init_std).

#include <cstdint>

#include "qaware/core/rng.hpp"
#include "qaware/nn/layer_norm.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/dropout.hpp"
#include "qaware/ops/embedding.hpp"

namespace qaware {
namespace nn {

struct EmbeddingConfig {
  Index vocab_size = 30522;
  Index hidden = 768;
  Index max_positions = 512;
  Index type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double dropout = 0.1;  // hidden_dropout_prob
  double init_std = 0.02;
  bool quantize_tables = false;
  bool quantize_layer_norm_output = false;
};

template <typename Scalar>
class QATBertEmbeddings : public Module<Scalar> {
 public:
  QATBertEmbeddings(const EmbeddingConfig& cfg, Rng& rng, const QConfig& qconfig = {})
      : cfg_(checked(cfg)), ln_(cfg.hidden, cfg.layer_norm_eps, qconfig, cfg.quantize_layer_norm_output) {
    word_ = Param<Scalar>(Shape{cfg.vocab_size, cfg.hidden});
    pos_ = Param<Scalar>(Shape{cfg.max_positions, cfg.hidden});
    type_ = Param<Scalar>(Shape{cfg.type_vocab_size, cfg.hidden});
    for (Param<Scalar>* p : {&word_, &pos_, &type_}) init::normal(p->value(), rng, 0.0, cfg.init_std);
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override {
    v.param("word_embeddings.weight", word_);
    v.quant("word_embeddings.weight_fake_quant", word_fq_);
    v.param("position_embeddings.weight", pos_);
    v.quant("position_embeddings.weight_fake_quant", pos_fq_);
    v.param("token_type_embeddings.weight", type_);
    v.quant("token_type_embeddings.weight_fake_quant", type_fq_);
    v.child("LayerNorm", ln_);
    v.rng("dropout", rng_);
  }
  void configure(const QConfig& qc) override {
    const bool on = cfg_.quantize_tables;
    auto point = [&](Index rows) {
      return on ? QuantPoint<Scalar>(qc.weight, table_channels(qc.weight, rows)) : QuantPoint<Scalar>();
    };
    word_fq_ = point(cfg_.vocab_size);
    pos_fq_ = point(cfg_.max_positions);
    type_fq_ = point(cfg_.type_vocab_size);
  }

  Var<Scalar> forward(Tape<Scalar>& tape, const DynTensor<std::int64_t>& ids,
                      const DynTensor<std::int64_t>& token_type_ids = DynTensor<std::int64_t>()) {
    QAWARE_CHECK(ids.rank() == 2, "QATBertEmbeddings: ids must be (B, T), got ", ids.shape().str());
    const Index B = ids.dim(0), T = ids.dim(1);
    QAWARE_CHECK(T <= cfg_.max_positions, "QATBertEmbeddings: sequence length ", T, " exceeds max_positions ",
                 cfg_.max_positions);
    DynTensor<std::int64_t> types = token_type_ids;
    if (types.empty() && B * T > 0) types = DynTensor<std::int64_t>::zeros(ids.shape());
    QAWARE_CHECK(types.shape() == ids.shape(), "QATBertEmbeddings: token_type_ids ", types.shape().str(),
                 " must match ids ", ids.shape().str());
    DynTensor<std::int64_t> positions(Shape{T});
    for (Index t = 0; t < T; ++t) positions[t] = t;
    const bool tr = this->is_training();
    const Var<Scalar> w = embedding(word_fq_(tape, tape.param(word_), tr), ids);
    const Var<Scalar> ty = embedding(type_fq_(tape, tape.param(type_), tr), types);
    const Var<Scalar> p = embedding(pos_fq_(tape, tape.param(pos_), tr), positions);
    const Var<Scalar> e = add(add(w, ty), p);
    return dropout(ln_.forward(tape, e), static_cast<Scalar>(cfg_.dropout), rng_, tr);
  }
  DynTensor<Scalar> forward(const DynTensor<std::int64_t>& ids,
                            const DynTensor<std::int64_t>& token_type_ids = DynTensor<std::int64_t>()) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, ids, token_type_ids); });
  }

  Param<Scalar>& word_embeddings() { return word_; }
  Param<Scalar>& position_embeddings() { return pos_; }
  Param<Scalar>& token_type_embeddings() { return type_; }
  QATLayerNorm<Scalar>& layer_norm() { return ln_; }
  QuantPoint<Scalar>& word_quant() { return word_fq_; }
  const Param<Scalar>& word_embeddings() const { return word_; }
  const Param<Scalar>& position_embeddings() const { return pos_; }
  const Param<Scalar>& token_type_embeddings() const { return type_; }
  const QATLayerNorm<Scalar>& layer_norm() const { return ln_; }
  const QuantPoint<Scalar>& word_quant() const { return word_fq_; }
  const QuantPoint<Scalar>& position_quant() const { return pos_fq_; }
  const QuantPoint<Scalar>& token_type_quant() const { return type_fq_; }
  const EmbeddingConfig& config() const { return cfg_; }

 private:
  // Channel count of a per-channel table point along its axis (0: not per channel).
  Index table_channels(const std::optional<FakeQuantizeConfig>& c, Index rows) const {
    if (!c || !c->spec.per_channel) return 0;
    const int axis = c->spec.axis;
    const int a = axis < 0 ? axis + 2 : axis;
    QAWARE_CHECK(a == 0 || a == 1, "QATBertEmbeddings: table channel axis ", axis, " is out of range");
    return a == 0 ? rows : cfg_.hidden;
  }
  static const EmbeddingConfig& checked(const EmbeddingConfig& c) {
    QAWARE_CHECK(c.vocab_size > 0 && c.hidden > 0 && c.max_positions > 0 && c.type_vocab_size > 0,
                 "QATBertEmbeddings: vocab_size (", c.vocab_size, "), hidden (", c.hidden, "), max_positions (",
                 c.max_positions, ") and type_vocab_size (", c.type_vocab_size, ") must be positive");
    QAWARE_CHECK(c.dropout >= 0 && c.dropout < 1, "QATBertEmbeddings: dropout must be in [0, 1), got ", c.dropout);
    return c;
  }

  EmbeddingConfig cfg_;
  Param<Scalar> word_, pos_, type_;
  QuantPoint<Scalar> word_fq_, pos_fq_, type_fq_;
  QATLayerNorm<Scalar> ln_;
  Rng rng_{0};
};

}  // namespace nn
}  // namespace qaware
