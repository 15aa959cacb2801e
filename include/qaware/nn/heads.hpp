#pragma once
// Model heads, with Hugging Face BERT's names.
//
// QATBertPooler ("pooler"): pooled (B, C) = tanh(dense(x[:, 0, :])) for a
//   sequence output x (B, T, C); dense is a QATLinear ("pooler.dense.*").
// QATClassifierHead ("classifier"): logits (B, L) = linear(dropout(pooled));
//   its parameters are "weight" and "bias" directly under the head's name
//   (BertForSequenceClassification's classifier.weight); dropout RNG "dropout".
// QATMLMHead ("cls.predictions", BertLMPredictionHead):
//   h      = transform.LayerNorm(gelu(transform.dense(x)))       x (B, T, C)
//   logits = h E^T + bias                                         (B, T, V)
//   E is the word-embedding table (V, C), passed to forward (tied weights:
//   its gradient accumulates from both uses); "bias" (V) is the head's own.
//   The decoder product quantizes its input ("decoder.input_fake_quant") and
//   E ("decoder.weight_fake_quant", per row by default) like a QATLinear, and
//   runs on the INT8 GEMM when those points allow it, as a QATLinear does
//   (nn::integer_product_params).

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "qaware/core/rng.hpp"
#include "qaware/ops/select_position.hpp"
#include "qaware/ops/tanh.hpp"
#include "qaware/nn/gelu.hpp"
#include "qaware/nn/layer_norm.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/ops/dropout.hpp"
#include "qaware/ops/linear.hpp"

namespace qaware {
namespace nn {

template <typename Scalar>
class QATBertPooler : public Module<Scalar> {
 public:
  QATBertPooler(Index hidden, Rng& rng, const QConfig& qconfig = {}, double init_std = 0.02)
      : dense_(hidden, hidden, rng, qconfig, options(init_std)) {}

  void visit(Visitor<Scalar>& v) override { v.child("dense", dense_); }

  // x (B, T, C) -> (B, C).
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x) {
    QAWARE_CHECK(x.rank() == 3 && x.dim(2) == dense_.in_features() && x.dim(1) > 0,
                 "QATBertPooler: x must be (B, T, C) with T > 0 and C = ", dense_.in_features(), ", got ",
                 x.shape().str());
    return qaware::tanh(dense_.forward(tape, qaware::select_position(x, 0)));
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x)); });
  }
  QATLinear<Scalar>& dense() { return dense_; }
  const QATLinear<Scalar>& dense() const { return dense_; }

 private:
  static LinearOptions options(double init_std) {
    LinearOptions o;
    o.init_std = init_std;
    return o;
  }
  QATLinear<Scalar> dense_;
};

template <typename Scalar>
class QATClassifierHead : public Module<Scalar> {
 public:
  QATClassifierHead(Index hidden, Index num_labels, Rng& rng, const QConfig& qconfig = {}, double dropout = 0.1,
                    double init_std = 0.02)
      : p_(dropout), linear_(hidden, num_labels, rng, qconfig, options(init_std)) {
    QAWARE_CHECK(dropout >= 0 && dropout < 1, "QATClassifierHead: dropout must be in [0, 1), got ", dropout);
  }

  void visit(Visitor<Scalar>& v) override {
    v.rng("dropout", rng_);
    v.child("", linear_);
  }

  // pooled (B, C) -> logits (B, L).
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> pooled) {
    return linear_.forward(tape, dropout(pooled, static_cast<Scalar>(p_), rng_, this->is_training()));
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& pooled) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(pooled)); });
  }
  QATLinear<Scalar>& linear() { return linear_; }
  const QATLinear<Scalar>& linear() const { return linear_; }

 private:
  static LinearOptions options(double init_std) {
    LinearOptions o;
    o.init_std = init_std;
    return o;
  }
  double p_;
  QATLinear<Scalar> linear_;
  Rng rng_{0};
};

template <typename Scalar>
class QATMLMHead : public Module<Scalar> {
 public:
  QATMLMHead(Index hidden, Index vocab_size, Rng& rng, const QConfig& qconfig = {}, double layer_norm_eps = 1e-12,
             double init_std = 0.02)
      : C_(hidden), V_(vocab_size), dense_(hidden, hidden, rng, qconfig, options(init_std)),
        act_(qconfig, false), ln_(hidden, layer_norm_eps, qconfig) {
    QAWARE_CHECK(vocab_size > 0, "QATMLMHead: vocab_size must be positive, got ", vocab_size);
    bias_ = Param<Scalar>(Shape{V_});
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override {
    v.child("transform.dense", dense_);
    v.child("transform.transform_act_fn", act_);
    v.child("transform.LayerNorm", ln_);
    v.quant("decoder.input_fake_quant", in_fq_);
    v.quant("decoder.weight_fake_quant", w_fq_);
    v.param("bias", bias_);
  }
  void configure(const QConfig& qc) override {
    qconfig_ = qc;
    in_fq_ = QuantPoint<Scalar>(qc.activation, C_);
    w_fq_ = QuantPoint<Scalar>(qc.weight, QATLinear<Scalar>::channels_of(qc.weight, V_, C_));
  }

  // x (B, T, C), word_embeddings (V, C) -> logits (B, T, V).
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x, Var<Scalar> word_embeddings) {
    QAWARE_CHECK(word_embeddings.shape() == Shape({V_, C_}), "QATMLMHead: the tied word embeddings must be [", V_,
                 ", ", C_, "], got ", word_embeddings.shape().str());
    const bool tr = this->is_training();
    const Var<Scalar> h = ln_.forward(tape, act_.forward(tape, dense_.forward(tape, x)));
    const Var<Scalar> hq = in_fq_(tape, h, tr), eq = w_fq_(tape, word_embeddings, tr);
    if constexpr (std::is_same_v<Scalar, float>) {
      if (const std::optional<IntegerLinearParams> p = decoder_params())
        return quantized_linear(hq, eq, tape.param(bias_), *p);
    }
    return linear(hq, eq, tape.param(bias_));
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x, Param<Scalar>& word_embeddings) {
    return detail::run_no_grad<Scalar>(
        [&](Tape<Scalar>& t) { return forward(t, t.constant(x), t.param(word_embeddings)); });
  }
  // After a load: the decoder's integer product must be runnable (as QATLinear's).
  void check_loaded() const override { decoder_params(); }

  // The integer form of the decoder product, or nullopt (then `*why` says why).
  std::optional<IntegerLinearParams> decoder_params(std::string* why = nullptr) const {
    return integer_product_params(in_fq_, w_fq_, V_, qconfig_.integer_linear, why);
  }

  Param<Scalar>& bias() { return bias_; }
  const Param<Scalar>& bias() const { return bias_; }
  QATLinear<Scalar>& transform_dense() { return dense_; }
  QATGelu<Scalar>& transform_act() { return act_; }
  QATLayerNorm<Scalar>& transform_layer_norm() { return ln_; }
  QuantPoint<Scalar>& decoder_input_quant() { return in_fq_; }
  QuantPoint<Scalar>& decoder_weight_quant() { return w_fq_; }
  const QATLinear<Scalar>& transform_dense() const { return dense_; }
  const QATGelu<Scalar>& transform_act() const { return act_; }
  const QATLayerNorm<Scalar>& transform_layer_norm() const { return ln_; }
  const QuantPoint<Scalar>& decoder_input_quant() const { return in_fq_; }
  const QuantPoint<Scalar>& decoder_weight_quant() const { return w_fq_; }
  Index hidden() const { return C_; }
  Index vocab_size() const { return V_; }

 private:
  static LinearOptions options(double init_std) {
    LinearOptions o;
    o.init_std = init_std;
    return o;
  }
  Index C_, V_;
  QATLinear<Scalar> dense_;
  QATGelu<Scalar> act_;
  QATLayerNorm<Scalar> ln_;
  QConfig qconfig_;
  QuantPoint<Scalar> in_fq_, w_fq_;
  Param<Scalar> bias_;
};

}  // namespace nn
}  // namespace qaware
