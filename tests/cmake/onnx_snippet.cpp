// Export an INT8 model to ONNX (link qaware::onnx).
#include <qaware/onnx/export.hpp>
#include <qaware/qaware.hpp>

#include <cstdio>

int main() {
  using namespace qaware;
  nn::BertConfig cfg;  // a small BERT encoder, W4A8: 4-bit weights, 8-bit activations
  cfg.vocab_size = 100;
  cfg.max_positions = 16;
  cfg.layers = 2;
  cfg.block.hidden = 32;
  cfg.block.heads = 2;
  cfg.block.intermediate = 64;
  Rng rng(1);
  nn::QATBertModel<float> model(cfg, rng, nn::ModelQConfig(nn::QConfig::wa(4, 8)));
  DynTensor<std::int64_t> ids({2, 16});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = (7 * i) % 100;
  model.train();
  model.forward(ids);  // (QAT training goes here)
  model.eval();

  deploy::BertModel int8 = deploy::convert(model);
  deploy::save_onnx(int8, "model.onnx");                // opset 21: 4-bit weights as INT4 tensors
  deploy::save_onnx(int8, "model.opset13.onnx", {13});  // opset 13: every weight as INT8 codes
  // Inputs input_ids, token_type_ids, attention_mask (int64 [batch, sequence]); outputs
  // sequence_output (+ pooled_output, logits, mlm_logits with those heads).
  std::printf("wrote model.onnx (%d graph nodes)\n", deploy::to_onnx(int8).graph().node_size());
  return 0;
}
