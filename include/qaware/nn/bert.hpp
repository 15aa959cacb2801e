#pragma once
// QATBertModel: embeddings, encoder.layer.N (QATTransformerBlock) and an
// optional pooler, named as Hugging Face's BertModel, so that a BertModel
// state dict saved as safetensors loads with
//   model.load_state_dict(io::load_safetensors(path).tensors, LoadOptions::hugging_face());
//   ids (B, T) int64, token_type_ids (B, T) or empty, attention_mask (B, T)
//   of 0/1 or empty -> sequence_output (B, T, C), pooled_output (B, C).
// The ModelQConfig gives every module its configuration by name (default
// plus glob overrides, qconfig.hpp), e.g. a W4A8 FFN with
//   ModelQConfig(QConfig::w8a8()).override_pattern("encoder.layer.*.intermediate.dense", QConfig::wa(4, 8)).

#include <cstdint>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/nn/embedding.hpp"
#include "qaware/nn/heads.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/nn/transformer_block.hpp"

namespace qaware {
namespace nn {

// `block` configures every encoder layer (sizes, dropout, LayerNorm eps,
// init std, quantization switches); the embeddings and the pooler take its
// hidden size, hidden dropout, LayerNorm eps and init std. The other fields
// are the model's own.
struct BertConfig {
  BlockConfig block;
  Index layers = 12;
  Index vocab_size = 30522;
  Index max_positions = 512;
  Index type_vocab_size = 2;
  bool add_pooler = true;
  bool quantize_embedding_tables = false;
  std::uint64_t seed = 0;  // dropout streams of the whole model (Module::seed overrides block.seed)

  EmbeddingConfig embeddings() const {
    EmbeddingConfig e;
    e.vocab_size = vocab_size;
    e.hidden = block.hidden;
    e.max_positions = max_positions;
    e.type_vocab_size = type_vocab_size;
    e.layer_norm_eps = block.layer_norm_eps;
    e.dropout = block.hidden_dropout;
    e.init_std = block.init_std;
    e.quantize_tables = quantize_embedding_tables;
    e.quantize_layer_norm_output = block.quantize_layer_norm_output;
    return e;
  }
};

template <typename Scalar>
class QATBertModel : public Module<Scalar> {
 public:
  struct Output {
    Var<Scalar> sequence_output;  // (B, T, C)
    Var<Scalar> pooled_output;    // (B, C); empty without a pooler
  };
  struct Values {
    DynTensor<Scalar> sequence_output;
    DynTensor<Scalar> pooled_output;
  };

  QATBertModel(const BertConfig& cfg, Rng& rng, const ModelQConfig& qconfig = ModelQConfig())
      : cfg_(cfg), embeddings_(cfg.embeddings(), rng, qconfig.default_config()),
        pooler_(cfg.block.hidden, rng, qconfig.default_config(), cfg.block.init_std) {
    QAWARE_CHECK(cfg.layers >= 0, "QATBertModel: layers must be >= 0, got ", cfg.layers);
    layers_.reserve(static_cast<std::size_t>(cfg.layers));
    for (Index i = 0; i < cfg.layers; ++i) layers_.emplace_back(cfg.block, rng, qconfig.default_config());
    apply_qconfig(*this, qconfig);
    this->seed(cfg.seed);
  }

  void visit(Visitor<Scalar>& v) override {
    v.child("embeddings", embeddings_);
    for (std::size_t i = 0; i < layers_.size(); ++i) v.child("encoder.layer." + std::to_string(i), layers_[i]);
    if (cfg_.add_pooler) v.child("pooler", pooler_);
  }

  Output forward(Tape<Scalar>& tape, const DynTensor<std::int64_t>& ids,
                 const DynTensor<std::int64_t>& token_type_ids = DynTensor<std::int64_t>(),
                 const DynTensor<Scalar>& attention_mask = DynTensor<Scalar>()) {
    Var<Scalar> h = embeddings_.forward(tape, ids, token_type_ids);
    for (auto& layer : layers_) h = layer.forward(tape, h, attention_mask);
    Output out{h, Var<Scalar>()};
    if (cfg_.add_pooler) out.pooled_output = pooler_.forward(tape, h);
    return out;
  }
  Values forward(const DynTensor<std::int64_t>& ids,
                 const DynTensor<std::int64_t>& token_type_ids = DynTensor<std::int64_t>(),
                 const DynTensor<Scalar>& attention_mask = DynTensor<Scalar>()) {
    Tape<Scalar> tape;
    tape.set_grad_enabled(false);
    const Output o = forward(tape, ids, token_type_ids, attention_mask);
    Values v{o.sequence_output.value(), DynTensor<Scalar>()};
    if (o.pooled_output.valid()) v.pooled_output = o.pooled_output.value();
    return v;
  }

  const BertConfig& config() const { return cfg_; }
  QATBertEmbeddings<Scalar>& embeddings() { return embeddings_; }
  QATTransformerBlock<Scalar>& layer(std::size_t i) {
    QAWARE_CHECK(i < layers_.size(), "QATBertModel::layer: index ", i, " out of range (", layers_.size(), " layers)");
    return layers_[i];
  }
  std::size_t num_layers() const { return layers_.size(); }
  QATBertPooler<Scalar>& pooler() { return pooler_; }
  const QATBertEmbeddings<Scalar>& embeddings() const { return embeddings_; }
  const QATTransformerBlock<Scalar>& layer(std::size_t i) const {
    QAWARE_CHECK(i < layers_.size(), "QATBertModel::layer: index ", i, " out of range (", layers_.size(), " layers)");
    return layers_[i];
  }
  const QATBertPooler<Scalar>& pooler() const { return pooler_; }

 private:
  BertConfig cfg_;
  QATBertEmbeddings<Scalar> embeddings_;
  std::vector<QATTransformerBlock<Scalar>> layers_;
  QATBertPooler<Scalar> pooler_;  // constructed always (fixed init order); listed only with add_pooler
};

}  // namespace nn
}  // namespace qaware
