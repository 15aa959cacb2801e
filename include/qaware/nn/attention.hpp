#pragma once
// QATAttention: multi-head self-attention with fake quantization, Hugging
// Face BERT's BertSelfAttention plus the output dense layer of BertSelfOutput.
//   x (B, T, C) -> y (B, T, C); NH heads of HS = C / NH.
//
//   q, k, v = query(x), key(x), value(x)             QATLinear: each quantizes its
//                                                    input and weight
//   q, k, v = fq_q(q), fq_k(k), fq_v(v)              option quantize_matmul_inputs
//   scores  = (q_h k_h^T) / sqrt(HS)                 [B, NH, T, T]; q_h is head h's
//                                                    HS features of q (ops/attention_products.hpp)
//   scores  = fq_scores(scores)                      option quantize_scores (default on)
//   probs   = softmax(scores + mask)                 mask: [B, T] 1 = attend, 0 = padding,
//                                                    made additive (additive_attention_mask)
//   probs   = fq_probs(probs)                        option quantize_probs, or
//                                                    quantize_matmul_inputs; always unsigned
//   probs   = dropout(probs)                         attention_probs_dropout_prob, training only
//   y       = output.dense(merge_heads(probs v_h))   QATLinear
// With quantize_matmul_inputs and per-tensor points whose codes fit 8 bits
// (integer_attention_params), q k^T and probs v run on the INT8 GEMM as the
// exported model runs them (ops/quantized_attention.hpp; probs v only where
// dropout does not scale the probabilities: in eval mode or with dropout 0);
// otherwise as float products.
// The scores are quantized before the mask is added (the mask's huge
// negative values would otherwise set the range). The score and
// probability points are always per tensor (their last dimension is the
// sequence length); the probability point always uses an unsigned affine
// range (probabilities are in [0, 1]).
// Names (relative to the module, "attention" in a block): self.query,
// self.key, self.value, output.dense (QATLinear); quantization points
// self.q_fake_quant, self.k_fake_quant, self.v_fake_quant,
// self.scores_fake_quant, self.probs_fake_quant; dropout RNG self.dropout.
// The module's own points take the QConfig resolved for its own name.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "qaware/core/rng.hpp"
#include "qaware/ops/kernels/attention_mask.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/ops/attention_products.hpp"
#include "qaware/ops/quantized_attention.hpp"
#include "qaware/ops/dropout.hpp"
#include "qaware/ops/softmax.hpp"

namespace qaware {
namespace nn {

struct AttentionOptions {
  double dropout = 0.1;  // attention_probs_dropout_prob
  bool quantize_scores = true;
  bool quantize_probs = false;
  bool quantize_matmul_inputs = false;  // Q, K, V and the probabilities
  double init_std = 0.02;
};

template <typename Scalar>
class QATAttention : public Module<Scalar> {
 public:
  QATAttention(Index hidden, Index heads, Rng& rng, const QConfig& qconfig = {}, AttentionOptions options = {})
      : C_(hidden), NH_(heads), opt_(options),
        query_(hidden, hidden, rng, qconfig, linear_options(options)),
        key_(hidden, hidden, rng, qconfig, linear_options(options)),
        value_(hidden, hidden, rng, qconfig, linear_options(options)),
        dense_(hidden, hidden, rng, qconfig, linear_options(options)) {
    QAWARE_CHECK(heads > 0 && hidden > 0 && hidden % heads == 0, "QATAttention: hidden size ", hidden,
                 " is not a multiple of the number of heads ", heads);
    QAWARE_CHECK(options.dropout >= 0 && options.dropout < 1, "QATAttention: dropout must be in [0, 1), got ",
                 options.dropout);
    HS_ = hidden / heads;
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override {
    v.child("self.query", query_);
    v.child("self.key", key_);
    v.child("self.value", value_);
    v.quant("self.q_fake_quant", q_fq_);
    v.quant("self.k_fake_quant", k_fq_);
    v.quant("self.v_fake_quant", v_fq_);
    v.quant("self.scores_fake_quant", scores_fq_);
    v.quant("self.probs_fake_quant", probs_fq_);
    v.rng("self.dropout", rng_);
    v.child("output.dense", dense_);
  }

  void configure(const QConfig& qc) override {
    const bool mm = opt_.quantize_matmul_inputs;
    q_fq_ = mm ? QuantPoint<Scalar>(qc.activation, C_) : QuantPoint<Scalar>();
    k_fq_ = mm ? QuantPoint<Scalar>(qc.activation, C_) : QuantPoint<Scalar>();
    v_fq_ = mm ? QuantPoint<Scalar>(qc.activation, C_) : QuantPoint<Scalar>();
    std::optional<FakeQuantizeConfig> per_tensor = qc.activation;
    if (per_tensor) per_tensor->spec.per_channel = false;
    scores_fq_ = opt_.quantize_scores ? QuantPoint<Scalar>(per_tensor) : QuantPoint<Scalar>();
    std::optional<FakeQuantizeConfig> probs = per_tensor;
    if (probs) {
      probs->spec.is_signed = false;
      probs->spec.symmetric = false;
    }
    probs_fq_ = (opt_.quantize_probs || mm) ? QuantPoint<Scalar>(probs) : QuantPoint<Scalar>();
  }

  // x (B, T, C); padding_mask [B, T] (1 = attend, 0 = padding) or empty.
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x, const DynTensor<Scalar>& padding_mask = DynTensor<Scalar>()) {
    const Shape& xs = x.shape();
    QAWARE_CHECK(xs.rank() == 3 && xs[2] == C_, "QATAttention: x must be (B, T, C) with C = ", C_, ", got ",
                 xs.str());
    const Index B = xs[0], T = xs[1];
    const bool tr = this->is_training();
    Var<Scalar> mask;
    if (!padding_mask.empty()) mask = tape.constant(additive_attention_mask(padding_mask, B, T));

    // q, k, v stay (B, T, C); the products read each head in place.
    const Var<Scalar> q = q_fq_(tape, query_.forward(tape, x), tr);
    const Var<Scalar> k = k_fq_(tape, key_.forward(tape, x), tr);
    const Var<Scalar> v = v_fq_(tape, value_.forward(tape, x), tr);

    const Scalar alpha = Scalar(1) / std::sqrt(static_cast<Scalar>(HS_));
    std::optional<IntegerAttentionParams> ip;
    if constexpr (std::is_same_v<Scalar, float>) ip = integer_attention_params();
    Var<Scalar> scores;
    if constexpr (std::is_same_v<Scalar, float>) {
      if (ip) scores = quantized_attention_scores(q, k, NH_, alpha, *ip);
    }
    if (!scores.valid()) scores = attention_scores(q, k, NH_, alpha);
    scores = scores_fq_(tape, scores, tr);
    Var<Scalar> probs = mask.valid() ? softmax(scores, mask) : softmax(scores);
    probs = probs_fq_(tape, probs, tr);
    probs = dropout(probs, static_cast<Scalar>(opt_.dropout), rng_, tr);
    if constexpr (std::is_same_v<Scalar, float>) {
      if (ip && (!tr || opt_.dropout == 0)) return dense_.forward(tape, quantized_attention_context(probs, v, *ip));
    }
    return dense_.forward(tape, attention_context(probs, v));
  }

  // The integer form of the two products, or nullopt (then `*why` says
  // why): quantize_matmul_inputs is on, Scalar is float, and the q, k, v and
  // probability points are on, fake-quantizing and per tensor with codes
  // within uint8 or int8. The parameters are the points' current ones.
  std::optional<IntegerAttentionParams> integer_attention_params(std::string* why = nullptr) const {
    auto none = [&](const std::string& reason) -> std::optional<IntegerAttentionParams> {
      if (why) *why = reason;
      return std::nullopt;
    };
    if (!std::is_same_v<Scalar, float>) return none("the INT8 GEMM takes float layers only");
    if (!opt_.quantize_matmul_inputs) return none("quantize_matmul_inputs is off");
    IntegerAttentionParams p;
    const std::pair<const char*, std::pair<const QuantPoint<Scalar>*, OperandQuant*>> points[] = {
        {"q", {&q_fq_, &p.q}}, {"k", {&k_fq_, &p.k}}, {"v", {&v_fq_, &p.v}}, {"probabilities", {&probs_fq_, &p.p}}};
    for (const auto& [name, pq] : points) {
      const QuantPoint<Scalar>& point = *pq.first;
      if (!point.enabled() || !point.fake_quantize().fake_quant_enabled())
        return none(::qaware::detail::concat("the ", name, " point is off"));
      const QuantParams qp = point.qparams();
      if (qp.per_channel || qp.channels() != 1) return none(::qaware::detail::concat("the ", name, " point is per channel"));
      *pq.second = OperandQuant::of(qp);
    }
    const std::string problem = p.problem();
    if (!problem.empty()) return none(problem);
    return p;
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x, const DynTensor<Scalar>& padding_mask = DynTensor<Scalar>()) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x), padding_mask); });
  }

  QATLinear<Scalar>& query() { return query_; }
  QATLinear<Scalar>& key() { return key_; }
  QATLinear<Scalar>& value() { return value_; }
  QATLinear<Scalar>& output_dense() { return dense_; }
  QuantPoint<Scalar>& scores_quant() { return scores_fq_; }
  QuantPoint<Scalar>& probs_quant() { return probs_fq_; }
  const QATLinear<Scalar>& query() const { return query_; }
  const QATLinear<Scalar>& key() const { return key_; }
  const QATLinear<Scalar>& value() const { return value_; }
  const QATLinear<Scalar>& output_dense() const { return dense_; }
  const QuantPoint<Scalar>& q_quant() const { return q_fq_; }
  const QuantPoint<Scalar>& k_quant() const { return k_fq_; }
  const QuantPoint<Scalar>& v_quant() const { return v_fq_; }
  const QuantPoint<Scalar>& scores_quant() const { return scores_fq_; }
  const QuantPoint<Scalar>& probs_quant() const { return probs_fq_; }
  const AttentionOptions& options() const { return opt_; }
  Index hidden() const { return C_; }
  Index heads() const { return NH_; }

 private:
  static LinearOptions linear_options(const AttentionOptions& o) {
    LinearOptions l;
    l.init_std = o.init_std;
    return l;
  }

  Index C_, NH_, HS_ = 0;
  AttentionOptions opt_;
  QATLinear<Scalar> query_, key_, value_, dense_;
  QuantPoint<Scalar> q_fq_, k_fq_, v_fq_, scores_fq_, probs_fq_;
  Rng rng_{0};
};

}  // namespace nn
}  // namespace qaware
