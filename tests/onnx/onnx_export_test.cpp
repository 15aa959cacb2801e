// The ONNX exporter against two independent judges: ONNX's own checker (the
// opset-13 files; ONNX 1.12 knows no opset 21) and onnxruntime, which runs
// the exported files on a fixed evaluation batch and must predict what the
// INT8 engine predicts (the argmax of every classifier row and of every MLM
// position) with outputs within a stated tolerance. onnxruntime evaluates a
// QDQ graph in float, so equality is not expected; see relative_tolerance().

#include <gtest/gtest.h>
#include <onnx/checker.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "deploy/bert_fixture.hpp"
#include "qaware/deploy/convert.hpp"
#include "qaware/deploy/format.hpp"
#include "qaware/onnx/export.hpp"
#include "tools/onnx/ort_runner.hpp"

namespace qaware {
namespace {

using deploy_test::Bert;

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/qaware_onnx_test_" + std::to_string(::getpid()) + "_" + name;
}

qaware_tools::OrtOptions ort_options() {
  qaware_tools::OrtOptions o;
  o.node = QAWARE_NODE;
  const char* env = std::getenv("QAWARE_ONNXRUNTIME_DIR");
  o.ort_dir = env && *env ? env : QAWARE_ORT_DIR;
  o.script = QAWARE_ORT_RUN_SCRIPT;
  return o;
}

#define SKIP_WITHOUT_ONNXRUNTIME(o)                                                           \
  do {                                                                                       \
    const std::string why = qaware_tools::ort_unavailable(o);                                \
    if (!why.empty()) GTEST_SKIP() << "onnxruntime is not available: " << why;               \
  } while (0)

struct Case {
  std::string name;
  nn::ModelQConfig mq;
  int activation_bits = 8;  // the coarsest activation quantizer's
  bool tables = false, matmul_inputs = false;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  v.push_back({"w8a8", nn::ModelQConfig(nn::QConfig::w8a8())});
  v.push_back({"w4a8", nn::ModelQConfig(nn::QConfig::wa(4, 8))});
  nn::ModelQConfig mixed(nn::QConfig::w8a8());
  mixed.override_pattern("encoder.layer.*.intermediate.dense", nn::QConfig::wa(4, 8));
  mixed.override_pattern("encoder.layer.1.output.dense", nn::QConfig::fp32());
  mixed.override_pattern("classifier", nn::QConfig::fp32());
  v.push_back({"mixed W4A8 FFN, FP32 layers", mixed});
  v.push_back({"w4a4", nn::ModelQConfig(nn::QConfig::wa(4, 4)), 4});
  v.push_back({"w8a3", nn::ModelQConfig(nn::QConfig::wa(8, 3)), 3});
  v.push_back({"w8a8 quantized tables, integer attention products", nn::ModelQConfig(nn::QConfig::w8a8()), 8, true,
               true});
  return v;
}

deploy::BertModel trained(const Case& c) {
  Rng rng(21);
  Bert b(c.mq, c.tables, c.matmul_inputs, rng);
  deploy_test::train_bert(b, rng);
  return deploy::convert(b.model, &b.cls, &b.mlm);
}

struct Batch {
  DynTensor<std::int64_t> ids, types, mask;
  DynTensor<float> float_mask;
};

Batch evaluation_batch() {
  Rng rng(5);
  Batch b;
  deploy_test::batch(rng, 4, 12, b.ids, b.types, b.float_mask);
  b.mask = DynTensor<std::int64_t>(b.float_mask.shape());
  for (Index i = 0; i < b.mask.numel(); ++i) b.mask[i] = static_cast<std::int64_t>(b.float_mask[i]);
  return b;
}

std::vector<Index> argmax_rows(const DynTensor<float>& t) {
  const Index C = t.dim(-1), R = t.numel() / C;
  std::vector<Index> a(static_cast<std::size_t>(R));
  for (Index r = 0; r < R; ++r)
    a[static_cast<std::size_t>(r)] = std::max_element(t.data() + r * C, t.data() + (r + 1) * C) - (t.data() + r * C);
  return a;
}

// onnxruntime computes with the engine's codes but multiplies dequantized
// values in float (the engine sums exact int32 products) and QuantizeLinear
// divides by the scale (the engine multiplies by its reciprocal). Both
// differences are float rounding, about 1e-7 of the outputs, unless a value
// lies within that rounding of a code boundary and moves to the next code:
// then one activation moves by one step of its quantizer, 1/(levels - 1) of
// its range, and the layers after it carry that on. On this batch no code
// moves (measured on Zen 4: at most 1.2e-6 against outputs of magnitude 1 to
// 3.5); the demo's trained W8A8 model, on 1,221 emails, moved its logits by
// up to 0.13 % (classifier) and 1 % (MLM) of their largest magnitude. So the
// tolerance is two steps of the case's coarsest activation quantizer (and at
// least 1 %) of the output's largest magnitude: room for a moved code on CPUs
// whose float kernels sum in another order, while a wrong scale, zero point,
// axis or weight layout errs by the order of the outputs themselves.
// Predictions must be identical; with activations below 8 bits, where one
// moved code is a large step, a near tie may swap in at most one row.
double relative_tolerance(int activation_bits) {
  return std::max(1e-2, 2.0 / static_cast<double>((1 << activation_bits) - 1));
}

int differing(const std::vector<Index>& a, const std::vector<Index>& b) {
  int n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

double max_abs(const DynTensor<float>& t) {
  double m = 0;
  for (Index i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(static_cast<double>(t[i])));
  return m;
}
double max_diff(const DynTensor<float>& a, const DynTensor<float>& b) {
  double m = 0;
  for (Index i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// ---------------------------------------------------------------------------

TEST(OnnxExportTest, GraphHasTheDocumentedInterfaceAndTypes) {
  const deploy::BertModel m = trained(cases()[1]);  // W4A8
  const ::onnx::ModelProto p21 = deploy::to_onnx(m);
  EXPECT_EQ(p21.ir_version(), 10);
  ASSERT_EQ(p21.opset_import_size(), 1);
  EXPECT_EQ(p21.opset_import(0).version(), 21);
  std::vector<std::string> in, out;
  for (const auto& v : p21.graph().input()) in.push_back(v.name());
  for (const auto& v : p21.graph().output()) out.push_back(v.name());
  EXPECT_EQ(in, (std::vector<std::string>{"input_ids", "token_type_ids", "attention_mask"}));
  EXPECT_EQ(out, (std::vector<std::string>{"sequence_output", "pooled_output", "logits", "mlm_logits"}));
  // Dynamic batch and sequence axes.
  const auto& ids = p21.graph().input(0).type().tensor_type().shape();
  ASSERT_EQ(ids.dim_size(), 2);
  EXPECT_EQ(ids.dim(0).dim_param(), "batch");
  EXPECT_EQ(ids.dim(1).dim_param(), "sequence");
  // 4-bit weights are INT4 at opset 21, INT8 at opset 13, with the same codes.
  auto weight = [](const ::onnx::ModelProto& p, const std::string& name) -> const ::onnx::TensorProto* {
    for (const auto& t : p.graph().initializer())
      if (t.name() == name) return &t;
    return nullptr;
  };
  const std::string q = "encoder.layer.0.attention.self.query.weight";
  const ::onnx::TensorProto* w21 = weight(p21, q);
  ASSERT_NE(w21, nullptr);
  EXPECT_EQ(w21->data_type(), deploy::onnx_detail::kInt4);
  EXPECT_EQ(w21->raw_data().size(), 32u * 32u / 2);
  const ::onnx::ModelProto p13 = deploy::to_onnx(m, {13});
  EXPECT_EQ(p13.ir_version(), 7);
  const ::onnx::TensorProto* w13 = weight(p13, q);
  ASSERT_NE(w13, nullptr);
  EXPECT_EQ(w13->data_type(), deploy::onnx_detail::kInt8);
  const std::vector<std::int8_t> codes = m.layers()[0].attention.query.weight_codes();  // [out, in]
  for (Index o = 0; o < 32; ++o)
    for (Index i = 0; i < 32; ++i) {
      const std::size_t k = static_cast<std::size_t>(i * 32 + o);  // [in, out]
      const int nib = (static_cast<std::uint8_t>(w21->raw_data()[k / 2]) >> (k % 2 ? 4 : 0)) & 0xF;
      ASSERT_EQ(nib >= 8 ? nib - 16 : nib, codes[static_cast<std::size_t>(o * 32 + i)]) << "INT4 code " << o << ", " << i;
      ASSERT_EQ(static_cast<std::int8_t>(w13->raw_data()[k]), codes[static_cast<std::size_t>(o * 32 + i)]);
    }
  // The opset-13 file passes ONNX's checker, with shape inference.
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    ::onnx::ModelProto p = deploy::to_onnx(trained(c), {13});
    EXPECT_NO_THROW(::onnx::checker::check_model(p));
  }
}

TEST(OnnxExportTest, RangesOnnxCannotQuantizeToAreRefusedNamingTheLayer) {
  const deploy::BertModel m = trained(cases()[0]);
  std::vector<deploy::Block> layers = m.layers();
  QuantParams wide;
  wide.quant_min = 0;
  wide.quant_max = 1023;  // 10 bits: no ONNX QuantizeLinear type holds it
  wide.scale = {0.01f};
  wide.zero_point = {0};
  layers[1].gelu_step = deploy::QuantStep(wide, "test");
  const deploy::BertModel bad(m.config(), m.embeddings(), layers, m.pooler(), m.classifier(), m.mlm_head());
  try {
    deploy::to_onnx(bad);
    FAIL() << "a 10-bit range was exported";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("encoder.layer.1.intermediate.intermediate_act_fn.output_fake_quant"), std::string::npos)
        << what;
    EXPECT_NE(what.find("[0, 1023]"), std::string::npos) << what;
  }
  EXPECT_THROW(deploy::to_onnx(m, {17}), Error);
}

// qaware_to_onnx writes what deploy::to_onnx builds, and fails cleanly on bad input.
TEST(QawareToOnnxTest, ConvertsASavedModelAndRefusesBadInput) {
  const deploy::BertModel m = trained(cases()[2]);  // mixed
  const std::string model = temp_path("cli.qaware"), out = temp_path("cli.onnx"), log = temp_path("cli.log");
  deploy::save(m, model);
  auto run = [&](const std::string& args) {
    const int rc = std::system((std::string(QAWARE_TO_ONNX) + " " + args + " > " + log + " 2>&1").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  for (int opset : {21, 13}) {
    std::remove(out.c_str());
    ASSERT_EQ(run(model + " " + out + " --opset " + std::to_string(opset)), 0) << qaware_tools::read_text(log);
    std::string want;
    ASSERT_TRUE(deploy::to_onnx(deploy::load(model), {opset}).SerializeToString(&want));
    EXPECT_TRUE(qaware_tools::read_text(out) == want) << "opset " << opset << ": the file differs from to_onnx's";
  }
  // A truncated model file: exit 1, the message names the file, no output written.
  const std::string bytes = qaware_tools::read_text(model);
  const std::string cut = temp_path("cut.qaware");
  {
    std::FILE* f = std::fopen(cut.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size() / 2, f);
    std::fclose(f);
  }
  std::remove(out.c_str());
  EXPECT_EQ(run(cut + " " + out), 1);
  EXPECT_NE(qaware_tools::read_text(log).find(cut), std::string::npos) << qaware_tools::read_text(log);
  EXPECT_FALSE(qaware_tools::file_exists(out));
  EXPECT_EQ(run(temp_path("missing.qaware") + " " + out), 1);
  EXPECT_EQ(run(model + " " + out + " --opset 17"), 2);
  EXPECT_NE(qaware_tools::read_text(log).find("--opset takes 21 or 13"), std::string::npos);
  EXPECT_EQ(run(model), 2);
  for (const std::string& f : {model, cut, out, log}) std::remove(f.c_str());
}

// onnxruntime's predictions equal the INT8 engine's. Configurations:
//   disabled   no graph optimisation: the graph as written
//   all, acc 1 full optimisation with qdq_matmulnbits_accuracy_level = 1
//              (a fused MatMulNBits keeps float activations)
TEST(OnnxRuntimeTest, PredictionsEqualTheInt8EnginesOnAFixedBatch) {
  qaware_tools::OrtOptions ort = ort_options();
  SKIP_WITHOUT_ONNXRUNTIME(ort);
  const Batch b = evaluation_batch();
  for (const Case& c : cases()) {
    const deploy::BertModel m = trained(c);
    const deploy::BertModel::Outputs want = m.forward(b.ids, b.types, b.float_mask);
    for (int opset : {21, 13}) {
      const std::string file = temp_path(std::to_string(opset) + ".onnx");
      deploy::save_onnx(m, file, {opset});
      for (const auto& [opt, level] : std::vector<std::pair<std::string, int>>{{"disabled", -1}, {"all", 1}, {"all", -1}}) {
        const std::string where = c.name + ", opset " + std::to_string(opset) + ", optimisation " + opt +
                                  (level >= 0 ? ", accuracy level " + std::to_string(level) : ", default accuracy level");
        SCOPED_TRACE(where);
        ort.optimization = opt;
        ort.accuracy_level = level;
        const auto got = qaware_tools::run_onnxruntime(ort, file, b.ids, b.types, b.mask, temp_path("work"));
        ASSERT_EQ(got.count("logits"), 1u);
        ASSERT_EQ(got.count("mlm_logits"), 1u);
        const DynTensor<float>& logits = got.at("logits");
        const DynTensor<float>& mlm = got.at("mlm_logits");
        ASSERT_EQ(logits.shape(), want.logits.shape());
        ASSERT_EQ(mlm.shape(), want.mlm_logits.shape());
        std::printf("%s: logits max |diff| %.3g (max |logit| %.3g), MLM %.3g (%.3g), sequence %.3g (%.3g)\n",
                    where.c_str(), max_diff(logits, want.logits), max_abs(want.logits),
                    max_diff(mlm, want.mlm_logits), max_abs(want.mlm_logits),
                    max_diff(got.at("sequence_output"), want.sequence_output), max_abs(want.sequence_output));
        for (const char* name : {"sequence_output", "pooled_output", "logits", "mlm_logits"}) {
          const DynTensor<float>& w = std::string(name) == "sequence_output" ? want.sequence_output
                                      : std::string(name) == "pooled_output" ? want.pooled_output
                                      : std::string(name) == "logits"        ? want.logits
                                                                             : want.mlm_logits;
          ASSERT_EQ(got.at(name).shape(), w.shape()) << name;
          EXPECT_LE(max_diff(got.at(name), w), relative_tolerance(c.activation_bits) * max_abs(w)) << name;
        }
        const int allowed = c.activation_bits < 8 ? 1 : 0;
        EXPECT_LE(differing(argmax_rows(logits), argmax_rows(want.logits)), allowed) << "classifier predictions";
        EXPECT_LE(differing(argmax_rows(mlm), argmax_rows(want.mlm_logits)), allowed) << "MLM predictions";
      }
      std::remove(file.c_str());
    }
  }
}

}  // namespace
}  // namespace qaware
