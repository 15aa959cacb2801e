// Export a QAT model to INT8, save it, load it back and run it.
#include <qaware/qaware.hpp>

#include <cstdio>
#include <cstring>

int main() {
  using namespace qaware;
  nn::BertConfig cfg;  // a small BERT encoder, W8A8 fake quantization
  cfg.vocab_size = 100;
  cfg.max_positions = 16;
  cfg.layers = 2;
  cfg.block.hidden = 32;
  cfg.block.heads = 2;
  cfg.block.intermediate = 64;
  Rng rng(1);
  nn::QATBertModel<float> model(cfg, rng, nn::ModelQConfig(nn::QConfig::w8a8()));

  DynTensor<std::int64_t> ids({2, 16});
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = (7 * i) % 100;
  model.train();
  model.forward(ids);  // (QAT training goes here; forwards in training mode calibrate the observers)
  model.eval();

  deploy::BertModel int8 = deploy::convert(model);  // int8 weights and the trained scales
  deploy::save(int8, "model.int8.safetensors");
  deploy::BertModel loaded = deploy::load("model.int8.safetensors");  // needs no training code

  DynTensor<float> qat = model.forward(ids).sequence_output;  // the QAT eval forward
  DynTensor<float> out = loaded.forward(ids).sequence_output;
  bool same = std::memcmp(qat.data(), out.data(), qat.bytes()) == 0;
  std::printf("INT8 model = QAT eval forward, bit for bit: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}
