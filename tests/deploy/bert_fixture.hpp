#pragma once
// The small QAT BERT (2 layers, hidden 32, 2 heads, vocabulary 50, a
// 3-label classifier and the MLM head) that the deploy and ONNX tests convert,
// with its batches and a few AdamW steps to move observers, learned scales
// and weights away from their initial values.

#include <cstdint>

#include "nn/nn_test_util.hpp"
#include "qaware/qaware.hpp"

namespace qaware {
namespace deploy_test {

inline DynTensor<float> randn(Shape s, Rng& rng, double std = 1.0) {
  DynTensor<float> t(std::move(s));
  init::normal(t, rng, 0.0, std);
  return t;
}

// A few AdamW steps of `m` (in training mode) on MSE against a fixed random
// target; `forward` maps the tape to the output.
template <class Forward>
inline void train_briefly(nn::Module<float>& m, Forward forward, const DynTensor<float>& target, int steps = 4) {
  nn::ParamGroupOptions po;
  po.lr = 1e-2;
  AdamW<float> opt(nn::make_param_groups<float>(m, po));
  m.train();
  for (int s = 0; s < steps; ++s) {
    Tape<float> tape;
    const Var<float> y = forward(tape);
    tape.backward(mse_loss(y, tape.constant(target)));
    opt.step();
    opt.zero_grad();
  }
  m.eval();
}

struct Bert {
  nn::BertConfig bc;
  nn::QATBertModel<float> model;
  nn::QATClassifierHead<float> cls;
  nn::QATMLMHead<float> mlm;
  struct All : nn::Module<float> {
    Bert* b;
    explicit All(Bert* bert) : b(bert) {}
    void visit(nn::Visitor<float>& v) override {
      v.child("bert", b->model);
      v.child("classifier", b->cls);
      v.child("cls.predictions", b->mlm);
    }
  } all{this};

  static nn::BertConfig config(bool quantize_tables, bool matmul_inputs) {
    nn::BertConfig bc;
    bc.vocab_size = 50;
    bc.block.hidden = 32;
    bc.layers = 2;
    bc.block.heads = 2;
    bc.block.intermediate = 64;
    bc.max_positions = 12;
    bc.block.init_std = 0.1;
    bc.quantize_embedding_tables = quantize_tables;
    bc.block.quantize_matmul_inputs = matmul_inputs;
    return bc;
  }
  Bert(const nn::ModelQConfig& mq, bool quantize_tables, bool matmul_inputs, Rng& rng)
      : bc(config(quantize_tables, matmul_inputs)), model(bc, rng, mq), cls(32, 3, rng, mq.resolve("classifier"), 0.1, 0.1),
        mlm(32, 50, rng, mq.resolve("cls.predictions"), 1e-12, 0.1) {}
};

// ids in [0, 50), token types 0 then 1, and three padding positions at the
// end of the first sequence.
inline void batch(Rng& rng, Index B, Index T, DynTensor<std::int64_t>& ids, DynTensor<std::int64_t>& types,
                  DynTensor<float>& mask) {
  ids = DynTensor<std::int64_t>(Shape{B, T});
  types = DynTensor<std::int64_t>(Shape{B, T});
  mask = DynTensor<float>(Shape{B, T}, 1.0f);
  for (Index i = 0; i < B * T; ++i) {
    ids[i] = static_cast<std::int64_t>(rng.below(50));
    types[i] = (i % T) >= T / 2;
  }
  for (Index t = T - 3; t < T; ++t) mask[t] = 0.0f;  // padding at the end of the first sequence
}

// A few AdamW steps of the whole model on one batch of 3 x 10.
inline void train_bert(Bert& b, Rng& rng) {
  DynTensor<std::int64_t> ids, types;
  DynTensor<float> mask;
  batch(rng, 3, 10, ids, types, mask);
  const DynTensor<float> target = randn(Shape{3, 3}, rng);
  train_briefly(
      b.all,
      [&](Tape<float>& t) {
        const auto o = b.model.forward(t, ids, types, mask);
        const Var<float> logits = b.cls.forward(t, o.pooled_output);
        const Var<float> mlm = b.mlm.forward(t, o.sequence_output, t.param(b.model.embeddings().word_embeddings()));
        return add(logits, mean(mlm));
      },
      target);
}

}  // namespace deploy_test
}  // namespace qaware
