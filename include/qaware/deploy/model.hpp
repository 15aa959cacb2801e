#pragma once
// The exported INT8 model: inference only, built from deploy::convert
// (deploy/convert.hpp) or loaded from a file (deploy/format.hpp). Its headers
// include no tape, Module or optimizer: only core, gemm, quant, io and the
// ops' kernels.
//
// Every piece mirrors one QAT module's eval forward (nn/), running the same
// kernels on the same values in the same order, so that the outputs are the
// QAT eval forward's bit for bit (tests/deploy):
//   LayerNorm   layer_norm_forward, then its output step       QATLayerNorm
//   Attention   Q, K, V = Linear; their steps (matmul-input     QATAttention
//               quantization); scores = alpha q_h k_h^T; the
//               score step; softmax(scores + mask); the
//               probability step; context = p_h v_h; dense
//               (the two products in integers where the QAT
//               attention runs them so)
//   Block       post- or pre-LN residual block, GELU with its   QATTransformerBlock
//               output step
//   Embeddings  word + token type + position lookups (tables    QATBertEmbeddings
//               kept as their codes when quantized), LayerNorm
//   heads       pooler (tanh(dense(x[:, 0]))), classifier,      QATBertPooler, QATClassifierHead,
//               MLM head (dense, GELU, LayerNorm, decoder)      QATMLMHead
// Dropout is the identity in eval mode and has no counterpart here.
// Threads: qaware::set_num_threads, as everywhere in the library.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/deploy/linear.hpp"
#include "qaware/ops/detail/broadcast.hpp"
#include "qaware/ops/kernels/add.hpp"
#include "qaware/ops/kernels/attention_mask.hpp"
#include "qaware/ops/kernels/attention_products.hpp"
#include "qaware/ops/kernels/embedding.hpp"
#include "qaware/ops/kernels/gelu.hpp"
#include "qaware/ops/kernels/layer_norm.hpp"
#include "qaware/ops/kernels/quantized_attention.hpp"
#include "qaware/ops/kernels/select_position.hpp"
#include "qaware/ops/kernels/softmax.hpp"
#include "qaware/ops/kernels/tanh.hpp"

namespace qaware {
namespace deploy {
namespace detail {

inline DynTensor<float> add(const DynTensor<float>& a, const DynTensor<float>& b) {
  const ::qaware::detail::BroadcastPlan plan = ::qaware::detail::make_broadcast_plan("add", a.shape(), b.shape());
  DynTensor<float> y(plan.out);
  ops::add_forward(plan, a.data(), b.data(), y.data());
  return y;
}


}  // namespace detail

// ---------------------------------------------------------------------------

class LayerNorm {
 public:
  LayerNorm() = default;
  LayerNorm(std::vector<float> weight, std::vector<float> bias, float eps, QuantStep output, const std::string& who)
      : w_(std::move(weight)), b_(std::move(bias)), eps_(eps), output_(std::move(output)) {
    QAWARE_CHECK(!w_.empty() && w_.size() == b_.size(), who, ": ", w_.size(), " weights and ", b_.size(),
                 " biases (need the same positive count)");
    QAWARE_CHECK(std::isfinite(eps_) && eps_ >= 0, who, ": eps must be finite and >= 0, got ", eps_);
    detail::check_finite(w_.data(), channels(), who, "weight");
    detail::check_finite(b_.data(), channels(), who, "bias");
  }
  Index channels() const { return static_cast<Index>(w_.size()); }
  const std::vector<float>& weight() const { return w_; }
  const std::vector<float>& bias() const { return b_; }
  float eps() const { return eps_; }
  const QuantStep& output_step() const { return output_; }

  // x (..., C) -> y (..., C).
  DynTensor<float> forward(const DynTensor<float>& x) const {
    const Index C = channels();
    QAWARE_CHECK(x.rank() >= 1 && x.dim(-1) == C, "deploy::LayerNorm: x ", x.shape().str(), " must end in C = ", C);
    const Index R = x.shape().rows();
    DynTensor<float> y(x.shape());
    std::vector<float> mean(static_cast<std::size_t>(R)), rstd(static_cast<std::size_t>(R));
    ops::layer_norm_forward(x.data(), w_.data(), b_.data(), y.data(), mean.data(), rstd.data(), R, C, eps_);
    return output_(std::move(y));
  }

 private:
  std::vector<float> w_, b_;
  float eps_ = 1e-12f;
  QuantStep output_;
};

// ---------------------------------------------------------------------------

struct Attention {
  Index hidden = 0, heads = 0;
  Linear query, key, value, dense;
  // Matmul-input steps (q, k, v), the score step and the probability step,
  // each off where the QAT attention had none.
  QuantStep q_step, k_step, v_step, scores_step, probs_step;
  // q k^T and probs v on the INT8 GEMM (ops/kernels/quantized_attention.hpp),
  // with the q, k, v and probability steps' parameters (then each per
  // tensor). Their codes are those of the fake-quantized values, so these
  // steps are not applied as float passes first; integer projections
  // without output steps requantize straight to the q, k and v codes.
  bool integer_products = false;

  IntegerAttentionParams integer_params() const {
    IntegerAttentionParams p;
    const std::pair<const QuantStep*, OperandQuant*> operands[] = {
        {&q_step, &p.q}, {&k_step, &p.k}, {&v_step, &p.v}, {&probs_step, &p.p}};
    for (const auto& [step, o] : operands) {
      QAWARE_CHECK(step->enabled() && !step->params().per_channel && step->params().scale.size() == 1,
                   "deploy::Attention: integer products need per-tensor q, k, v and probability steps");
      *o = OperandQuant::of(step->params());
    }
    return p;
  }

  void check(const std::string& who) const {
    QAWARE_CHECK(heads > 0 && hidden > 0 && hidden % heads == 0, who, ": hidden size ", hidden,
                 " is not a positive multiple of the number of heads ", heads);
    for (const Linear* l : {&query, &key, &value, &dense})
      QAWARE_CHECK(l->in_features() == hidden && l->out_features() == hidden, who, ": its projections must be ",
                   hidden, " x ", hidden, ", got ", l->out_features(), " x ", l->in_features());
    QAWARE_CHECK(!scores_step.enabled() || !scores_step.params().per_channel, who, ": the score step must be per tensor");
    QAWARE_CHECK(!probs_step.enabled() || !probs_step.params().per_channel, who,
                 ": the probability step must be per tensor");
    if (integer_products) integer_params().check(who.c_str());
  }

  // x (B, T, C), mask: the additive mask [B, 1, 1, T] or empty.
  DynTensor<float> forward(const DynTensor<float>& x, const DynTensor<float>& mask) const {
    const Index B = x.dim(0), T = x.dim(1), C = hidden, NH = heads, HS = C / NH;
    const float alpha = 1.0f / std::sqrt(static_cast<float>(HS));
    std::optional<IntegerAttentionParams> ip;
    if (integer_products) ip = integer_params();
    DynTensor<float> scores(Shape{B, NH, T, T});
    if (ip && codes_out(query) && codes_out(key) && codes_out(value))
      return integer_forward(x, mask, *ip, std::move(scores), alpha);
    DynTensor<float> q = query.forward(x), k = key.forward(x), v = value.forward(x);
    if (ip) {
      ops::quantized_attention_scores_forward(q.data(), k.data(), scores.data(), B, T, C, NH, alpha, *ip);
    } else {
      q = q_step(std::move(q));
      k = k_step(std::move(k));
      v = v_step(std::move(v));
      ops::attention_scores_forward(q.data(), k.data(), scores.data(), B, T, C, NH, alpha);
    }
    return finish(std::move(scores), mask, ip, v.data());
  }

 private:
  static bool codes_out(const Linear& l) { return l.is_integer() && !l.output_step().enabled(); }

  // The integer path with the projections' codes straight from their GEMMs.
  DynTensor<float> integer_forward(const DynTensor<float>& x, const DynTensor<float>& mask,
                                   const IntegerAttentionParams& ip, DynTensor<float> scores, float alpha) const {
    const Index B = x.dim(0), T = x.dim(1), C = hidden, NH = heads;
    const ops::OperandCodes q = query.forward_codes(x, ip.q);
    const ops::OperandCodes k = key.forward_codes(x, ops::as_int8_operand(ip.k));
    const ops::OperandCodes v = value.forward_codes(x, ops::as_int8_operand(ip.v));
    ops::quantized_attention_scores_codes(q, k, scores.data(), B, T, C, NH, alpha, ip);
    const std::optional<IntegerAttentionParams> p = ip;
    return finish(std::move(scores), mask, p, nullptr, &v);
  }

  // From the scores on: the score step, softmax, the probability step and
  // the context (from v's floats, or from its codes), then the dense layer.
  DynTensor<float> finish(DynTensor<float> scores, const DynTensor<float>& mask,
                          const std::optional<IntegerAttentionParams>& ip, const float* v,
                          const ops::OperandCodes* v_codes = nullptr) const {
    const Index B = scores.dim(0), NH = heads, T = scores.dim(2), C = hidden;
    scores = scores_step(std::move(scores));
    DynTensor<float> probs(scores.shape());
    const Index R = scores.shape().rows();
    if (mask.empty()) {
      ops::softmax_forward(scores.data(), probs.data(), R, T);
    } else {
      const ::qaware::detail::RowBroadcast rows =
          ::qaware::detail::make_row_broadcast("softmax", "mask", scores.shape(), mask.shape());
      ops::softmax_forward(scores.data(), mask.data(), rows, probs.data(), R, T);
    }
    DynTensor<float> ctx(Shape{B, T, C});
    if (v_codes) {
      ops::quantized_attention_context_codes(ops::operand_codes(probs.data(), probs.numel(), ip->p), *v_codes,
                                             ctx.data(), B, T, C, NH, *ip);
    } else if (ip) {
      ops::quantized_attention_context_forward(probs.data(), v, ctx.data(), B, T, C, NH, *ip);
    } else {
      probs = probs_step(std::move(probs));
      ops::attention_context_forward(probs.data(), v, ctx.data(), B, T, C, NH);
    }
    return dense.forward(ctx);
  }
};

// ---------------------------------------------------------------------------

struct Block {
  bool pre_layer_norm = false;
  GeluApprox gelu = GeluApprox::Erf;
  Attention attention;
  LayerNorm ln1, ln2;       // attention.output.LayerNorm, output.LayerNorm
  Linear intermediate, output;
  QuantStep gelu_step;      // intermediate.intermediate_act_fn's output point

  void check(const std::string& who) const {
    attention.check(who + ".attention");
    const Index C = attention.hidden;
    QAWARE_CHECK(ln1.channels() == C && ln2.channels() == C, who, ": LayerNorms of ", ln1.channels(), " and ",
                 ln2.channels(), " channels for hidden size ", C);
    QAWARE_CHECK(intermediate.in_features() == C && output.out_features() == C &&
                     output.in_features() == intermediate.out_features(),
                 who, ": FFN ", intermediate.in_features(), " -> ", intermediate.out_features(), " -> ",
                 output.in_features(), " -> ", output.out_features(), " does not fit hidden size ", C);
  }

  // x (B, T, C), mask as Attention's.
  DynTensor<float> forward(const DynTensor<float>& x, const DynTensor<float>& mask) const {
    if (!pre_layer_norm) {
      const DynTensor<float> h = ln1.forward(detail::add(attention.forward(x, mask), x));
      return ln2.forward(detail::add(ffn(h), h));
    }
    const DynTensor<float> h = detail::add(x, attention.forward(ln1.forward(x), mask));
    return detail::add(h, ffn(ln2.forward(h)));
  }

 private:
  DynTensor<float> ffn(const DynTensor<float>& h) const {
    // The erf GELU fuses into an integer layer's output stage (the same
    // numerics::gelu_erf as gelu_forward, element by element), unless the
    // layer's own output step comes between.
    if (gelu == GeluApprox::Erf && intermediate.is_integer() && !intermediate.output_step().enabled())
      return output.forward(gelu_step(intermediate.forward(h, gemm::Activation::kGelu)));
    DynTensor<float> a = intermediate.forward(h);
    ops::gelu_forward(a.data(), a.data(), a.numel(), gelu);
    return output.forward(gelu_step(std::move(a)));
  }
};

// ---------------------------------------------------------------------------

// An embedding table: float values, or the integer codes of a quantized
// table with the parameters that give its values back (dequantize(code) is
// the table's fake-quantized value, bit for bit).
class EmbeddingTable {
 public:
  EmbeddingTable() = default;
  static EmbeddingTable floating(DynTensor<float> table, const std::string& who) {
    QAWARE_CHECK(table.rank() == 2 && table.dim(0) > 0 && table.dim(1) > 0, who, ": a table must be (rows, C), got ",
                 table.shape().str());
    detail::check_finite(table.data(), table.numel(), who, "table");
    EmbeddingTable t;
    t.rows_ = table.dim(0);
    t.cols_ = table.dim(1);
    t.values_ = std::move(table);
    return t;
  }
  // codes (rows x cols) within params' range, which must fit int8 or uint8;
  // params per tensor or per channel along axis 0 (rows) or 1 (columns).
  static EmbeddingTable quantized(std::vector<std::int32_t> codes, Index rows, Index cols, QuantParams params,
                                  const std::string& who) {
    QAWARE_CHECK(rows > 0 && cols > 0 && static_cast<Index>(codes.size()) == rows * cols, who, ": ", codes.size(),
                 " codes for a ", rows, " x ", cols, " table");
    QuantStep::check(params, who);
    const bool s8 = params.quant_min >= -128 && params.quant_max <= 127;
    const bool u8 = params.quant_min >= 0 && params.quant_max <= 255;
    QAWARE_CHECK(s8 || u8, who, ": range [", params.quant_min, ", ", params.quant_max, "] fits neither int8 nor uint8");
    const int axis = params.per_channel ? (params.axis < 0 ? params.axis + 2 : params.axis) : 0;
    QAWARE_CHECK(!params.per_channel || ((axis == 0 || axis == 1) &&
                                         static_cast<Index>(params.scale.size()) == (axis == 0 ? rows : cols)),
                 who, ": ", params.scale.size(), " per-channel scales along axis ", params.axis, " of a ", rows,
                 " x ", cols, " table");
    EmbeddingTable t;
    t.rows_ = rows;
    t.cols_ = cols;
    t.signed_ = s8;
    t.codes_.resize(codes.size());
    for (std::size_t i = 0; i < codes.size(); ++i) {
      const std::int32_t c = codes[i];
      QAWARE_CHECK(c >= params.quant_min && c <= params.quant_max, who, ": code ", c, " at flat index ", i,
                   " is outside the declared range [", params.quant_min, ", ", params.quant_max, "]");
      t.codes_[i] = static_cast<std::uint8_t>(c);  // two's complement for int8
    }
    params.axis = axis;
    t.params_ = std::move(params);
    return t;
  }

  bool is_quantized() const { return params_.has_value(); }
  Index rows() const { return rows_; }
  Index cols() const { return cols_; }
  const DynTensor<float>& float_values() const { return values_; }
  const QuantParams& params() const { return *params_; }
  std::int32_t code(Index i) const {
    const std::uint8_t c = codes_[static_cast<std::size_t>(i)];
    return signed_ ? static_cast<std::int32_t>(static_cast<std::int8_t>(c)) : static_cast<std::int32_t>(c);
  }

  // y (N, cols) = the rows `ids` (each in [0, rows)).
  DynTensor<float> lookup(const std::int64_t* ids, Index N) const {
    DynTensor<float> y(Shape{N, cols_});
    if (!is_quantized()) {
      ops::embedding_forward(values_.data(), ids, y.data(), N, cols_);
      return y;
    }
    const QuantParams& p = *params_;
    for (Index n = 0; n < N; ++n) {
      const Index r = static_cast<Index>(ids[n]);
      for (Index c = 0; c < cols_; ++c) {
        const std::size_t ch = !p.per_channel ? 0 : static_cast<std::size_t>(p.axis == 0 ? r : c);
        y[n * cols_ + c] = numerics::dequantize(static_cast<float>(code(r * cols_ + c)),
                                                static_cast<float>(p.zero_point[ch]), p.scale[ch]);
      }
    }
    return y;
  }

 private:
  Index rows_ = 0, cols_ = 0;
  DynTensor<float> values_;
  std::vector<std::uint8_t> codes_;
  bool signed_ = true;
  std::optional<QuantParams> params_;
};

struct Embeddings {
  EmbeddingTable word, position, token_type;
  LayerNorm layer_norm;

  void check(const std::string& who) const {
    const Index C = word.cols();
    QAWARE_CHECK(position.cols() == C && token_type.cols() == C && layer_norm.channels() == C, who,
                 ": tables of ", word.cols(), ", ", position.cols(), " and ", token_type.cols(),
                 " columns and a LayerNorm of ", layer_norm.channels(), " channels (need one hidden size)");
  }

  // ids (B, T), token types (B, T) or empty -> (B, T, C).
  DynTensor<float> forward(const DynTensor<std::int64_t>& ids, const DynTensor<std::int64_t>& token_type_ids) const {
    QAWARE_CHECK(ids.rank() == 2, "deploy::Embeddings: ids must be (B, T), got ", ids.shape().str());
    const Index B = ids.dim(0), T = ids.dim(1), C = word.cols();
    QAWARE_CHECK(T <= position.rows(), "deploy::Embeddings: sequence length ", T, " exceeds max_positions ",
                 position.rows());
    const bool typed = !token_type_ids.empty();
    QAWARE_CHECK(!typed || token_type_ids.shape() == ids.shape(), "deploy::Embeddings: token_type_ids ",
                 token_type_ids.shape().str(), " must match ids ", ids.shape().str());
    for (Index i = 0; i < B * T; ++i) {
      QAWARE_CHECK(ids[i] >= 0 && ids[i] < word.rows(), "deploy::Embeddings: id ", ids[i], " at flat index ", i,
                   " is outside the vocabulary [0, ", word.rows(), ")");
      QAWARE_CHECK(!typed || (token_type_ids[i] >= 0 && token_type_ids[i] < token_type.rows()),
                   "deploy::Embeddings: token type ", typed ? token_type_ids[i] : 0, " at flat index ", i,
                   " is outside [0, ", token_type.rows(), ")");
    }
    const DynTensor<std::int64_t> types = typed ? token_type_ids : DynTensor<std::int64_t>::zeros(ids.shape());
    DynTensor<std::int64_t> positions(Shape{T});
    for (Index t = 0; t < T; ++t) positions[t] = t;
    DynTensor<float> w = word.lookup(ids.data(), B * T), ty = token_type.lookup(types.data(), B * T);
    w.reshape(Shape{B, T, C});
    ty.reshape(Shape{B, T, C});
    const DynTensor<float> p = position.lookup(positions.data(), T);
    return layer_norm.forward(detail::add(detail::add(w, ty), p));
  }
};

// ---------------------------------------------------------------------------

struct MlmHead {
  Linear transform;       // transform.dense
  GeluApprox gelu = GeluApprox::Erf;
  LayerNorm layer_norm;   // transform.LayerNorm
  Linear decoder;         // the tied word embeddings (V x C) as its weight, its own bias

  void check(const std::string& who, Index hidden) const {
    QAWARE_CHECK(transform.in_features() == hidden && transform.out_features() == hidden &&
                     layer_norm.channels() == hidden && decoder.in_features() == hidden,
                 who, ": sizes do not fit hidden size ", hidden);
  }
  // x (B, T, C) -> logits (B, T, V).
  DynTensor<float> forward(const DynTensor<float>& x) const {
    DynTensor<float> h = transform.forward(x);
    ops::gelu_forward(h.data(), h.data(), h.numel(), gelu);
    return decoder.forward(layer_norm.forward(h));
  }
};

// The model's shape; the quantization lives in its layers.
struct ModelConfig {
  Index hidden = 768;
  Index heads = 12;
  Index intermediate = 3072;
  Index layers = 12;
  Index vocab_size = 30522;
  Index max_positions = 512;
  Index type_vocab_size = 2;
  bool pre_layer_norm = false;
  GeluApprox gelu = GeluApprox::Erf;
};

class BertModel {
 public:
  struct Outputs {
    DynTensor<float> sequence_output;  // (B, T, C)
    DynTensor<float> pooled_output;    // (B, C), with a pooler
    DynTensor<float> logits;           // (B, L), with a classifier
    DynTensor<float> mlm_logits;       // (B, T, V), with an MLM head
  };

  BertModel() = default;
  BertModel(ModelConfig config, Embeddings embeddings, std::vector<Block> layers, std::optional<Linear> pooler,
            std::optional<Linear> classifier, std::optional<MlmHead> mlm)
      : cfg_(config), embeddings_(std::move(embeddings)), layers_(std::move(layers)), pooler_(std::move(pooler)),
        classifier_(std::move(classifier)), mlm_(std::move(mlm)) {
    const Index C = cfg_.hidden;
    QAWARE_CHECK(static_cast<Index>(layers_.size()) == cfg_.layers, "deploy::BertModel: ", layers_.size(),
                 " layers for a configuration of ", cfg_.layers);
    embeddings_.check("embeddings");
    QAWARE_CHECK(embeddings_.word.cols() == C && embeddings_.word.rows() == cfg_.vocab_size &&
                     embeddings_.position.rows() == cfg_.max_positions &&
                     embeddings_.token_type.rows() == cfg_.type_vocab_size,
                 "deploy::BertModel: embedding tables [", embeddings_.word.rows(), ", ", embeddings_.word.cols(),
                 "], [", embeddings_.position.rows(), ", ...], [", embeddings_.token_type.rows(),
                 ", ...] do not match vocab_size ", cfg_.vocab_size, ", max_positions ", cfg_.max_positions,
                 ", type_vocab_size ", cfg_.type_vocab_size, ", hidden ", C);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const std::string who = "encoder.layer." + std::to_string(i);
      layers_[i].check(who);
      QAWARE_CHECK(layers_[i].attention.hidden == C && layers_[i].attention.heads == cfg_.heads &&
                       layers_[i].intermediate.out_features() == cfg_.intermediate,
                   who, ": does not match the configuration (hidden ", C, ", heads ", cfg_.heads, ", intermediate ",
                   cfg_.intermediate, ")");
    }
    if (pooler_)
      QAWARE_CHECK(pooler_->in_features() == C && pooler_->out_features() == C, "pooler.dense: must be ", C, " x ",
                   C);
    if (classifier_) {
      QAWARE_CHECK(pooler_.has_value(), "classifier: needs the pooler");
      QAWARE_CHECK(classifier_->in_features() == C, "classifier: takes ", classifier_->in_features(),
                   " features, the pooler gives ", C);
    }
    if (mlm_) {
      mlm_->check("cls.predictions", C);
      QAWARE_CHECK(mlm_->decoder.out_features() == cfg_.vocab_size, "cls.predictions: ",
                   mlm_->decoder.out_features(), " logits for a vocabulary of ", cfg_.vocab_size);
    }
  }

  const ModelConfig& config() const { return cfg_; }
  const Embeddings& embeddings() const { return embeddings_; }
  const std::vector<Block>& layers() const { return layers_; }
  const std::optional<Linear>& pooler() const { return pooler_; }
  const std::optional<Linear>& classifier() const { return classifier_; }
  const std::optional<MlmHead>& mlm_head() const { return mlm_; }

  // ids (B, T) in [0, vocab_size), token_type_ids (B, T) or empty,
  // padding_mask (B, T) of 0/1 or empty; T <= max_positions.
  Outputs forward(const DynTensor<std::int64_t>& ids,
                  const DynTensor<std::int64_t>& token_type_ids = DynTensor<std::int64_t>(),
                  const DynTensor<float>& padding_mask = DynTensor<float>()) const {
    Outputs out;
    DynTensor<float> h = embeddings_.forward(ids, token_type_ids);
    const Index B = ids.dim(0), T = ids.dim(1), C = cfg_.hidden;
    const DynTensor<float> mask = padding_mask.empty() ? DynTensor<float>() : additive_attention_mask(padding_mask, B, T);
    for (const Block& layer : layers_) h = layer.forward(h, mask);
    if (pooler_ && T > 0) {
      DynTensor<float> first(Shape{B, C});
      ops::select_position_forward(h.data(), first.data(), B, T, C, 0);
      out.pooled_output = pooler_->forward(first);
      ops::tanh_forward(out.pooled_output.data(), out.pooled_output.data(), out.pooled_output.numel());
      if (classifier_) out.logits = classifier_->forward(out.pooled_output);
    }
    if (mlm_) out.mlm_logits = mlm_->forward(h);
    out.sequence_output = std::move(h);
    return out;
  }

 private:
  ModelConfig cfg_;
  Embeddings embeddings_;
  std::vector<Block> layers_;
  std::optional<Linear> pooler_, classifier_;
  std::optional<MlmHead> mlm_;
};

}  // namespace deploy
}  // namespace qaware
