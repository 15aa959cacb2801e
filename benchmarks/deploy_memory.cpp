// File size and peak memory of the exported INT8 BERT-base against FP32.
//
//   qaware_deploy_memory save DIR [--bits W]   builds BERT-base (12 layers, vocab 30522, pooler,
//                                              embedding tables quantized), calibrates it on two
//                                              batches, writes DIR/model.int8.safetensors (W-bit
//                                              weights, 8-bit activations; W = 8 or 4) and
//                                              DIR/model.fp32.safetensors (the FP32 checkpoint of
//                                              the same weights: every parameter in F32), and
//                                              prints both sizes and their ratio
//   qaware_deploy_memory int8 FILE             loads the INT8 file and runs one 1 x 128 forward
//   qaware_deploy_memory fp32 FILE             builds the FP32 model, loads the checkpoint and
//                                              runs one 1 x 128 eval forward; FILE "-" skips the
//                                              load (the model's own initial weights: the least
//                                              an FP32 forward of this model can hold)
// The last two print the process's peak resident memory (getrusage's
// ru_maxrss), so that each mode is measured in a process of its own.

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "qaware/deploy/convert.hpp"
#include "qaware/deploy/format.hpp"
#include "qaware/nn/bert.hpp"

namespace {

using namespace qaware;

nn::BertConfig base_config() {
  nn::BertConfig bc;  // BERT-base
  bc.quantize_embedding_tables = true;
  return bc;
}

DynTensor<std::int64_t> token_ids(std::uint64_t seed) {
  DynTensor<std::int64_t> ids(Shape{1, 128});
  Rng rng(seed);
  for (Index i = 0; i < ids.numel(); ++i) ids[i] = static_cast<std::int64_t>(rng.below(30522));
  return ids;
}

double peak_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

int save(const std::string& dir, int bits) {
  nn::QConfig qc = nn::QConfig::wa(bits, 8);
  Rng init(1);
  nn::QATBertModel<float> model(base_config(), init, nn::ModelQConfig(qc));
  model.train();
  for (std::uint64_t s = 0; s < 2; ++s) model.forward(token_ids(s));
  model.eval();
  std::filesystem::create_directories(dir);
  const std::string int8 = dir + "/model.int8.safetensors", fp32 = dir + "/model.fp32.safetensors";
  deploy::save(deploy::convert(model), int8);
  io::TensorDict params;
  for (auto& [name, t] : model.state_dict())
    if (name.find("fake_quant") == std::string::npos) params.emplace(name, t);
  io::save_safetensors(fp32, params);
  const double a = static_cast<double>(std::filesystem::file_size(int8));
  const double b = static_cast<double>(std::filesystem::file_size(fp32));
  std::printf("W%dA8 INT8 file %.1f MiB, FP32 checkpoint %.1f MiB: %.3fx\n", bits, a / 1048576, b / 1048576, a / b);
  return 0;
}

int run_int8(const std::string& file) {
  const deploy::BertModel m = deploy::load(file);
  const auto out = m.forward(token_ids(9));
  std::printf("int8: sequence output %s, peak resident memory %.1f MiB\n", out.sequence_output.shape().str().c_str(),
              peak_mib());
  return 0;
}

int run_fp32(const std::string& file) {
  Rng init(1);
  nn::QATBertModel<float> model(base_config(), init, nn::ModelQConfig(nn::QConfig::fp32()));
  if (file != "-") model.load_state_dict(io::load_safetensors(file).tensors);
  model.eval();
  const auto out = model.forward(token_ids(9));
  std::printf("fp32: sequence output %s, peak resident memory %.1f MiB\n", out.sequence_output.shape().str().c_str(),
              peak_mib());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "save" && argc >= 3) {
      const int bits = argc >= 5 && std::strcmp(argv[3], "--bits") == 0 ? std::atoi(argv[4]) : 8;
      return save(argv[2], bits);
    }
    if (mode == "int8" && argc == 3) return run_int8(argv[2]);
    if (mode == "fp32" && argc == 3) return run_fp32(argv[2]);
    std::fprintf(stderr, "usage: %s save DIR [--bits 8|4] | int8 FILE | fp32 FILE\n", argv[0]);
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
