#pragma once
// The fuzz harnesses' bodies, shared by the libFuzzer programs
// (tests/fuzz/fuzz_*.cpp, built with -DQAWARE_FUZZ=ON and clang) and by the
// regression test of the normal suite (fuzz_regression_test.cpp), which
// replays the seed corpora and every input a fuzzer ever found.
//
// Each harness feeds `data` to one loader. A qaware::Error is a correct
// answer to a bad input; anything else that escapes (another exception, a
// crash, a sanitizer report) is a defect, and so is a broken property, which
// the harness returns as a message ("" when all holds):
//   json         a parsed document dumps, re-parses and dumps to the same text;
//   safetensors  a parsed file's tensors have the byte count their dtype
//                and shape say, and survive serialize + parse unchanged;
//   state_dict   the bytes as a safetensors state dict for a small QAT model
//                (a W8A8 block and an LSQ linear): a rejected load leaves the
//                model as it was; an accepted one gives a model whose eval
//                forward runs;
//   checkpoint   the bytes as a training checkpoint of that model with AdamW
//                and a schedule: a rejected load changes neither model nor
//                optimizer; an accepted one allows a forward;
//   int8_model   the bytes as an INT8 model file (deploy::load): an accepted
//                model runs a forward on valid ids and, where the ONNX
//                exporter is built (QAWARE_FUZZ_WITH_ONNX), is exported to
//                ONNX at opsets 21 and 13, which may refuse it only with an
//                Error (a range ONNX has no type for).

#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz/harness_io.hpp"
#include "qaware/qaware.hpp"
#if QAWARE_FUZZ_WITH_ONNX
#include "qaware/onnx/export.hpp"
#endif

namespace qaware {
namespace fuzz {

// A small model with every kind of quantization state: observer-based
// per-tensor and per-channel points (the block), learnable points (LSQ).
struct SmallModel : nn::Module<float> {
  nn::QATTransformerBlock<float> block;
  nn::QATLinear<float> head;
  static nn::BlockConfig config() {
    nn::BlockConfig c;
    c.hidden = 8;
    c.heads = 2;
    c.intermediate = 16;
    c.hidden_dropout = c.attention_dropout = 0.0;
    c.quantize_matmul_inputs = true;
    return c;
  }
  explicit SmallModel(Rng& rng)
      : block(config(), rng, nn::QConfig::w8a8()), head(8, 3, rng, nn::QConfig::lsq(4, 8)) {
    // Calibrate once, so that every point has state.
    train();
    DynTensor<float> x(Shape{2, 3, 8});
    for (Index i = 0; i < x.numel(); ++i) x[i] = 0.1f * static_cast<float>(i % 11) - 0.4f;
    head.forward(block.forward(x));
    eval();
  }
  void visit(nn::Visitor<float>& v) override {
    v.child("block", block);
    v.child("head", head);
  }
  // Throws only qaware::Error.
  void run() {
    DynTensor<float> x(Shape{1, 2, 8}, 0.25f);
    head.forward(block.forward(x));
  }
};

inline std::string state_dict(const std::uint8_t* data, std::size_t size) {
  static Rng rng(7);
  static SmallModel model(rng);
  static const io::TensorDict pristine = model.state_dict();
  io::Safetensors f;
  try {
    f = io::parse_safetensors(data, size);
  } catch (const Error&) {
    return "";
  }
  std::string which, problem;
  try {
    nn::LoadOptions o;
    o.strict = (size % 2) == 0;  // both modes, chosen by the input
    model.load_state_dict(f.tensors, o);
  } catch (const Error&) {
    if (!same(pristine, model.state_dict(), which)) problem = "state_dict: a rejected load changed '" + which + "'";
    return problem;
  }
  try {
    model.run();
  } catch (const Error& e) {
    problem = std::string("state_dict: an accepted load gives a model whose forward fails: ") + e.what();
  }
  model.load_state_dict(pristine);
  return problem;
}

inline std::string checkpoint(const std::uint8_t* data, std::size_t size) {
  static Rng rng(7);
  static SmallModel model(rng);
  static AdamW<float> opt(nn::make_param_groups<float>(model));
  static LrSchedule sched = linear_schedule_with_warmup(opt, 2, 10);
  static const io::TensorDict pristine = model.state_dict();
  static Rng data_rng(3);
  const std::string path = scratch_file("checkpoint", data, size);
  if (path.empty()) return "";
  const auto opt_before = opt.state_dict(model.named_parameters());
  std::string which, problem;
  try {
    nn::load_checkpoint<float>(path, model, &opt, &sched, {{"data", &data_rng}});
  } catch (const Error&) {
    if (!same(pristine, model.state_dict(), which)) problem = "checkpoint: a rejected load changed '" + which + "'";
    const auto opt_after = opt.state_dict(model.named_parameters());
    if (opt_after.params.size() != opt_before.params.size() || opt_after.group_lr != opt_before.group_lr)
      problem = "checkpoint: a rejected load changed the optimizer";
    std::remove(path.c_str());
    return problem;
  }
  std::remove(path.c_str());
  try {
    model.run();
  } catch (const Error& e) {
    problem = std::string("checkpoint: an accepted checkpoint gives a model whose forward fails: ") + e.what();
  }
  // Back to the pristine state for the next input (a fresh optimizer state
  // is what the seed checkpoints were written from).
  model.load_state_dict(pristine);
  opt.load_state_dict(model.named_parameters(), opt_before);
  sched.set_last_step(0);
  return problem;
}

inline std::string int8_model(const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_file("int8", data, size);
  if (path.empty()) return "";
  deploy::BertModel m;
  try {
    m = deploy::load(path);
  } catch (const Error&) {
    std::remove(path.c_str());
    return "";
  }
  std::remove(path.c_str());
  const Index T = std::min<Index>(3, m.config().max_positions);
  DynTensor<std::int64_t> ids(Shape{1, T});
  for (Index t = 0; t < T; ++t) ids[t] = t % m.config().vocab_size;
  try {
    m.forward(ids);
  } catch (const Error& e) {
    return std::string("int8_model: an accepted model's forward fails: ") + e.what();
  }
#if QAWARE_FUZZ_WITH_ONNX
  for (int opset : {21, 13}) {
    try {
      std::string bytes;
      if (!deploy::to_onnx(m, {opset}).SerializeToString(&bytes))
        return "int8_model: an accepted model's ONNX export does not serialise";
    } catch (const Error&) {
      // A documented refusal, naming the layer.
    }
  }
#endif
  return "";
}

}  // namespace fuzz
}  // namespace qaware
