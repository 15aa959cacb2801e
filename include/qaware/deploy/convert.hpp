#pragma once
// deploy::convert: a trained QAT model (nn/) -> the inference-only INT8 model
// (deploy/model.hpp). The only deploy header that includes nn/.
//
// What each QAT piece becomes (the parameters are the ones its eval forward
// uses; tests/deploy checks that the outputs are the same bit for bit):
//   QuantPoint   on and fake-quantizing: a QuantStep with FakeQuantize::qparams()
//                (observed, or for LSQ the clamped scale and rounded zero
//                point); off, or fake quantization disabled: nothing.
//   QATLinear    integer when nn::integer_linear_params has a value (input per
//                tensor within uint8 / int8, weight symmetric within int8, per
//                tensor or per output row): the weight's int8 codes (recovered
//                from its fake-quantized values, as the QAT forward does),
//                packed once; sub-8-bit weights keep their code range. Float
//                when both its input and weight points are off (an FP32 layer
//                of a mixed configuration) or when its name matches
//                ConvertOptions::keep_float: the weight as the QAT forward
//                multiplies it (fake-quantized when its point is on).
//                Otherwise (per-channel inputs, affine weights, a weight-only
//                configuration, QConfig::integer_linear off, ...) a
//                qaware::Error names the layer and the reason. (A layer that
//                has an integer form but is kept float computes its product
//                in float where the QAT forward's was integer: the two then
//                differ by float rounding, not bit for bit.)
//   Embedding tables with quantize_tables: their codes and parameters.
//   MLM decoder: the tied word embeddings through the decoder's points, as
//                an integer (or float) Linear of its own.
//   QATAttention with quantize_matmul_inputs: integer q k^T and probs v when
//                QATAttention::integer_attention_params has a value (as its
//                QAT forward then computes them), else an Error unless the
//                attention's name matches keep_float (its products stay float).
// A non-learnable point that never observed data (its observer is empty)
// raises an Error unless ConvertOptions::allow_uncalibrated: its scale 1 and
// zero point 0 are a default, not a calibration.

#include <string>
#include <utility>
#include <vector>

#include "qaware/deploy/model.hpp"
#include "qaware/nn/bert.hpp"
#include "qaware/nn/heads.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/nn/qconfig.hpp"
#include "qaware/nn/transformer_block.hpp"

namespace qaware {
namespace deploy {

struct ConvertOptions {
  // Glob patterns (nn::glob_match) of module names whose linear layers stay
  // float, e.g. "classifier" or "encoder.layer.*.output.dense".
  std::vector<std::string> keep_float;
  bool allow_uncalibrated = false;
};

namespace detail {

inline bool keeps_float(const ConvertOptions& o, const std::string& name) {
  for (const std::string& p : o.keep_float)
    if (nn::glob_match(p, name)) return true;
  return false;
}

inline std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}

}  // namespace detail

// The step of a quantization point (`who` names it in errors).
inline QuantStep convert_point(const nn::QuantPoint<float>& point, const std::string& who,
                               const ConvertOptions& options = {}) {
  if (!point.enabled() || !point.fake_quantize().fake_quant_enabled()) return QuantStep();
  const FakeQuantize<float>& fq = point.fake_quantize();
  QAWARE_CHECK(fq.learnable() || fq.observer().initialized() || options.allow_uncalibrated, who,
               ": this quantization point has never observed data, so its scale 1 and zero point 0 are not a "
               "calibration (run forwards in training mode first, or set ConvertOptions::allow_uncalibrated)");
  return QuantStep(point.qparams(), who);
}

namespace detail {

// A product x W^T + b whose input and weight pass the points `in` and `wt`
// (`p`: its integer form, or nullopt with `why`), named `name`: an integer
// Linear with the codes the QAT forward recovers from its fake-quantized
// weight, or a float one (see the file comment for when).
inline Linear convert_product(const nn::QuantPoint<float>& in, const nn::QuantPoint<float>& wt,
                              const DynTensor<float>& weight, std::vector<float> bias, QuantStep output,
                              const std::optional<IntegerLinearParams>& p, const std::string& why,
                              const std::string& name, const ConvertOptions& options) {
  const Index OUT = weight.dim(0), IN = weight.dim(1);
  const QuantStep input = convert_point(in, name + ".input_fake_quant", options);  // also the calibration check
  const QuantStep weight_step = convert_point(wt, name + ".weight_fake_quant", options);
  const bool keep = keeps_float(options, name);
  if (p && !keep) {
    const DynTensor<float> wq = weight_step(weight);
    const std::unique_ptr<std::int8_t[]> codes = ops::weight_codes(wq.data(), OUT, IN, *p);
    return Linear::integer(codes.get(), OUT, IN, *p, std::move(bias), std::move(output), name);
  }
  QAWARE_CHECK((!in.enabled() && !wt.enabled()) || keep, name, ": cannot be exported as an integer layer (", why,
               "); list it in ConvertOptions::keep_float to keep it in float");
  return Linear::floating(weight_step(weight), std::move(bias), input, std::move(output), name);
}

}  // namespace detail

// One QATLinear, named `name` (its module name, for keep_float and errors).
inline Linear convert(const nn::QATLinear<float>& layer, const std::string& name, const ConvertOptions& options = {}) {
  std::vector<float> bias;
  if (layer.has_bias())
    bias.assign(layer.bias().value().data(), layer.bias().value().data() + layer.out_features());
  std::string why;
  const std::optional<IntegerLinearParams> p = nn::integer_linear_params(layer, &why);
  return detail::convert_product(layer.input_quant(), layer.weight_quant(), layer.weight().value(), std::move(bias),
                                 convert_point(layer.output_quant(), name + ".output_fake_quant", options), p, why,
                                 name, options);
}

inline LayerNorm convert(const nn::QATLayerNorm<float>& ln, const std::string& name, const ConvertOptions& options = {}) {
  const DynTensor<float>& w = ln.weight().value();
  const DynTensor<float>& b = ln.bias().value();
  return LayerNorm(std::vector<float>(w.data(), w.data() + w.numel()), std::vector<float>(b.data(), b.data() + b.numel()),
                   static_cast<float>(ln.eps()), convert_point(ln.output_quant(), name + ".output_fake_quant", options),
                   name);
}

inline Attention convert(const nn::QATAttention<float>& a, const std::string& name, const ConvertOptions& options = {}) {
  Attention d;
  d.hidden = a.hidden();
  d.heads = a.heads();
  d.query = convert(a.query(), name + ".self.query", options);
  d.key = convert(a.key(), name + ".self.key", options);
  d.value = convert(a.value(), name + ".self.value", options);
  d.dense = convert(a.output_dense(), name + ".output.dense", options);
  d.q_step = convert_point(a.q_quant(), name + ".self.q_fake_quant", options);
  d.k_step = convert_point(a.k_quant(), name + ".self.k_fake_quant", options);
  d.v_step = convert_point(a.v_quant(), name + ".self.v_fake_quant", options);
  d.scores_step = convert_point(a.scores_quant(), name + ".self.scores_fake_quant", options);
  d.probs_step = convert_point(a.probs_quant(), name + ".self.probs_fake_quant", options);
  std::string why;
  d.integer_products = a.integer_attention_params(&why).has_value();
  QAWARE_CHECK(d.integer_products || !a.options().quantize_matmul_inputs || detail::keeps_float(options, name), name,
               ": its quantized matmul inputs have no integer form (", why,
               "); list it in ConvertOptions::keep_float to keep its products in float");
  d.check(name);
  return d;
}

inline Block convert(const nn::QATTransformerBlock<float>& b, const std::string& name,
                     const ConvertOptions& options = {}) {
  Block d;
  d.pre_layer_norm = b.config().pre_layer_norm;
  d.gelu = b.intermediate_act().approx();
  d.attention = convert(b.attention(), detail::join(name, "attention"), options);
  d.ln1 = convert(b.attention_layer_norm(), detail::join(name, "attention.output.LayerNorm"), options);
  d.intermediate = convert(b.intermediate_dense(), detail::join(name, "intermediate.dense"), options);
  d.gelu_step = convert_point(b.intermediate_act().output_quant(),
                              detail::join(name, "intermediate.intermediate_act_fn.output_fake_quant"), options);
  d.output = convert(b.output_dense(), detail::join(name, "output.dense"), options);
  d.ln2 = convert(b.output_layer_norm(), detail::join(name, "output.LayerNorm"), options);
  d.check(name.empty() ? "block" : name);
  return d;
}

namespace detail {

// A table through its point: its codes (the levels its fake quantization
// picks) when the point is on, else its float values.
inline EmbeddingTable convert_table(const Param<float>& table, const nn::QuantPoint<float>& point,
                                    const std::string& name, const ConvertOptions& options) {
  const QuantStep step = convert_point(point, name + "_fake_quant", options);
  if (!step.enabled()) return EmbeddingTable::floating(table.value(), name);
  const QuantParams& p = step.params();
  const DynTensor<float>& t = table.value();
  const Index rows = t.dim(0), cols = t.dim(1);
  const int axis = p.per_channel ? (p.axis < 0 ? p.axis + 2 : p.axis) : 0;
  std::vector<std::int32_t> codes(static_cast<std::size_t>(rows * cols));
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < cols; ++c) {
      const std::size_t ch = !p.per_channel ? 0 : static_cast<std::size_t>(axis == 0 ? r : c);
      codes[static_cast<std::size_t>(r * cols + c)] =
          numerics::quantize(t[r * cols + c], 1.0f / p.scale[ch], p.zero_point[ch], static_cast<std::int32_t>(p.quant_min),
                             static_cast<std::int32_t>(p.quant_max));
    }
  return EmbeddingTable::quantized(std::move(codes), rows, cols, p, name);
}

}  // namespace detail

inline Embeddings convert(const nn::QATBertEmbeddings<float>& e, const std::string& name,
                          const ConvertOptions& options = {}) {
  Embeddings d;
  d.word = detail::convert_table(e.word_embeddings(), e.word_quant(), detail::join(name, "word_embeddings.weight"), options);
  d.position = detail::convert_table(e.position_embeddings(), e.position_quant(),
                                     detail::join(name, "position_embeddings.weight"), options);
  d.token_type = detail::convert_table(e.token_type_embeddings(), e.token_type_quant(),
                                       detail::join(name, "token_type_embeddings.weight"), options);
  d.layer_norm = convert(e.layer_norm(), detail::join(name, "LayerNorm"), options);
  d.check(name.empty() ? "embeddings" : name);
  return d;
}

// The MLM head, its decoder's weight the tied word embeddings `word_embeddings`.
inline MlmHead convert(const nn::QATMLMHead<float>& h, const Param<float>& word_embeddings, const std::string& name,
                       const ConvertOptions& options = {}) {
  MlmHead d;
  d.transform = convert(h.transform_dense(), detail::join(name, "transform.dense"), options);
  d.gelu = h.transform_act().approx();
  QAWARE_CHECK(!h.transform_act().output_quant().enabled(), name, ": a quantized transform GELU is not exported");
  d.layer_norm = convert(h.transform_layer_norm(), detail::join(name, "transform.LayerNorm"), options);
  const std::string dec = detail::join(name, "decoder");
  const Index V = h.vocab_size(), C = h.hidden();
  QAWARE_CHECK(word_embeddings.value().shape() == Shape({V, C}), dec, ": the tied word embeddings must be [", V, ", ",
               C, "], got ", word_embeddings.value().shape().str());
  const DynTensor<float>& bv = h.bias().value();
  std::string why;
  const std::optional<IntegerLinearParams> p = h.decoder_params(&why);
  d.decoder = detail::convert_product(h.decoder_input_quant(), h.decoder_weight_quant(), word_embeddings.value(),
                                      std::vector<float>(bv.data(), bv.data() + V), QuantStep(), p, why, dec, options);
  d.check(name, C);
  return d;
}

// A whole QAT BERT with its heads (either may be null): pooler ("pooler")
// when the model has one, classifier ("classifier"), MLM head
// ("cls.predictions", tied to the model's word embeddings).
inline BertModel convert(const nn::QATBertModel<float>& model, const nn::QATClassifierHead<float>* classifier = nullptr,
                         const nn::QATMLMHead<float>* mlm = nullptr, const ConvertOptions& options = {}) {
  const nn::BertConfig& bc = model.config();
  ModelConfig cfg;
  cfg.hidden = bc.block.hidden;
  cfg.heads = bc.block.heads;
  cfg.intermediate = bc.block.intermediate;
  cfg.layers = bc.layers;
  cfg.vocab_size = bc.vocab_size;
  cfg.max_positions = bc.max_positions;
  cfg.type_vocab_size = bc.type_vocab_size;
  cfg.pre_layer_norm = bc.block.pre_layer_norm;
  cfg.gelu = bc.block.gelu;
  Embeddings emb = convert(model.embeddings(), "embeddings", options);
  std::vector<Block> layers;
  for (std::size_t i = 0; i < model.num_layers(); ++i)
    layers.push_back(convert(model.layer(i), "encoder.layer." + std::to_string(i), options));
  std::optional<Linear> pooler, cls;
  if (bc.add_pooler) pooler = convert(model.pooler().dense(), "pooler.dense", options);
  if (classifier) {
    QAWARE_CHECK(bc.add_pooler, "deploy::convert: a classifier needs the model's pooler (BertConfig::add_pooler)");
    cls = convert(classifier->linear(), "classifier", options);
  }
  std::optional<MlmHead> head;
  if (mlm) head = convert(*mlm, model.embeddings().word_embeddings(), "cls.predictions", options);
  return BertModel(cfg, std::move(emb), std::move(layers), std::move(pooler), std::move(cls), std::move(head));
}

}  // namespace deploy
}  // namespace qaware
