#pragma once
// Seed inputs for the fuzz harnesses, written by qaware's own writers:
// tests/fuzz/corpus/<harness>/ holds what write_seeds.cpp makes of these
// (regenerate with `qaware_fuzz_write_seeds tests/fuzz/corpus` after a
// format change), and fuzz_regression_test.cpp checks that each one is
// accepted by its loader.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fuzz/harnesses.hpp"

namespace qaware {
namespace fuzz {

using Bytes = std::vector<std::uint8_t>;

inline Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

inline Bytes file_bytes(const std::string& path) {
  Bytes out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  std::uint8_t buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return out;
}

// harness name -> its seeds.
inline std::map<std::string, std::vector<Bytes>> make_seeds() {
  std::map<std::string, std::vector<Bytes>> seeds;
  seeds["json"] = {bytes_of("{\"a\":[1,2.5e-3,-7],\"b\":{\"c\":\"\\u00e9\\n\",\"d\":[true,false,null]}}"),
                   bytes_of("[[],{},\"\",0]"), bytes_of("{\"__metadata__\":{\"format\":\"qaware-int8\"}}")};

  // Safetensors: a few dtypes and shapes, with metadata.
  io::TensorDict t;
  t["w"] = io::TensorData::from(DynTensor<float>(Shape{2, 3}, 0.5f));
  DynTensor<std::int8_t> c(Shape{4});
  for (Index i = 0; i < 4; ++i) c[i] = static_cast<std::int8_t>(i * 37 - 60);
  t["codes"] = io::TensorData::from(c);
  t["empty"] = io::TensorData::from(DynTensor<double>(Shape{0, 2}));
  seeds["safetensors"] = {io::serialize_safetensors(t, {{"format", "pt"}}), io::serialize_safetensors({})};

  // The small model's state dict, and a checkpoint of it after one AdamW step.
  Rng rng(7);
  SmallModel model(rng);
  seeds["state_dict"] = {io::serialize_safetensors(model.state_dict())};
  {
    AdamW<float> opt(nn::make_param_groups<float>(model));
    LrSchedule sched = linear_schedule_with_warmup(opt, 2, 10);
    Rng data_rng(3);
    const std::string path = "/tmp/qaware_fuzz_seed_checkpoint_" + std::to_string(::getpid()) + ".safetensors";
    nn::save_checkpoint<float>(path, model, &opt, &sched, 0, {{"data", &data_rng}});
    seeds["checkpoint"] = {file_bytes(path)};
    std::remove(path.c_str());
  }

  // A tiny exported BERT with both heads, W8A8 and W4A8.
  for (int bits : {8, 4}) {
    nn::BertConfig bc;
    bc.block = SmallModel::config();
    bc.layers = 1;
    bc.vocab_size = 12;
    bc.max_positions = 6;
    bc.type_vocab_size = 1;
    Rng r(11);
    const nn::QConfig qc = nn::QConfig::wa(bits, 8);
    nn::QATBertModel<float> bert(bc, r, nn::ModelQConfig(qc));
    nn::QATClassifierHead<float> cls(8, 2, r, qc, 0.0);
    nn::QATMLMHead<float> mlm(8, 12, r, qc);
    struct All : nn::Module<float> {
      nn::QATBertModel<float>& b;
      nn::QATClassifierHead<float>& c;
      nn::QATMLMHead<float>& m;
      All(nn::QATBertModel<float>& x, nn::QATClassifierHead<float>& y, nn::QATMLMHead<float>& z) : b(x), c(y), m(z) {}
      void visit(nn::Visitor<float>& v) override {
        v.child("bert", b);
        v.child("classifier", c);
        v.child("cls.predictions", m);
      }
    } all(bert, cls, mlm);
    all.train();
    DynTensor<std::int64_t> ids(Shape{2, 6});
    for (Index i = 0; i < ids.numel(); ++i) ids[i] = (i * 5) % 12;
    Tape<float> tape;
    const auto out = bert.forward(tape, ids);
    cls.forward(tape, out.pooled_output);
    mlm.forward(tape, out.sequence_output, tape.param(bert.embeddings().word_embeddings()));
    all.eval();
    const std::string path = "/tmp/qaware_fuzz_seed_int8_" + std::to_string(::getpid()) + ".safetensors";
    deploy::save(deploy::convert(bert, &cls, &mlm), path);
    seeds["int8_model"].push_back(file_bytes(path));
    std::remove(path.c_str());
  }
  return seeds;
}

}  // namespace fuzz
}  // namespace qaware
