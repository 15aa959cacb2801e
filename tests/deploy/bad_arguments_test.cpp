// Bad arguments across the public API, as a careless user or a hostile file
// gives them: each is refused with a qaware::Error whose message names the
// values (checked here), or has a documented result that is tested; none
// crashes, runs into undefined behaviour (the sanitizer build runs this
// file) or changes a model it was refused by.
//
// What other suites already cover in depth is not repeated here: the
// quantization state in state dicts (tests/quant/state_validation_test.cpp),
// every GEMM argument (tests/gemm/path_test.cpp, GemmValidationTest), NaN,
// infinite and huge values in fake quantization and requantization
// (tests/quant/fake_quantize_test.cpp, tests/gemm/requantize_test.cpp; they
// take the lowest code, as x86 PyTorch does), choose_qparams on NaN and
// infinite ranges (tests/quant/observers_test.cpp) and malformed or
// truncated files (tests/io, tests/deploy/format_test.cpp, tests/fuzz).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/error_of.hpp"
#include "deploy/bert_fixture.hpp"
#include "nn/nn_test_util.hpp"
#include "qaware/deploy/convert.hpp"
#include "qaware/deploy/format.hpp"
#include "qaware/qaware.hpp"

namespace qaware {
namespace {

// `f` raises an Error whose message holds every one of `needles`.
::testing::AssertionResult refused(const std::function<void()>& f, const std::vector<std::string>& needles) {
  const std::string m = test::error_of(f);
  if (m == "(no error)" || m.rfind("(not a qaware::Error", 0) == 0)
    return ::testing::AssertionFailure() << m;
  for (const std::string& n : needles)
    if (m.find(n) == std::string::npos) return ::testing::AssertionFailure() << "'" << n << "' not in: " << m;
  return ::testing::AssertionSuccess();
}

std::string bad_args_path(const std::string& name) {
  return ::testing::TempDir() + "qaware_bad_args_" + std::to_string(::getpid()) + "_" + name;
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------
// Quantization parameters.

TEST(BadArgumentsTest, ScalesRangesZeroPointsAndBitWidths) {
  const DynTensor<float> x(Shape{4, 3}, 0.5f);
  for (const float s : {0.0f, -0.25f, kNaN, kInf}) {
    SCOPED_TRACE(s);
    EXPECT_TRUE(refused([&] { fake_quantize_per_tensor_affine(x, s, 0, -128, 127); }, {"scale", "got"}));
  }
  EXPECT_TRUE(refused([&] { fake_quantize_per_tensor_affine(x, 0.1f, 0, 7, -8); }, {"quant_min (7)", "quant_max (-8)"}));
  EXPECT_TRUE(refused([&] { fake_quantize_per_tensor_affine(x, 0.1f, 300, 0, 255); }, {"zero_point 300", "[0, 255]"}));
  EXPECT_TRUE(refused([&] { fake_quantize_per_tensor_affine(x, 0.1f, 0, 0, std::int64_t(1) << 30); }, {"2^24"}));
  for (const int bits : {0, 1, 9, 16}) {
    SCOPED_TRACE(bits);
    EXPECT_TRUE(refused([&] { QuantSpec::signed_bits(bits).range(); }, {"bits must be in [2, 8], got " + std::to_string(bits)}));
    if (bits == 0) continue;  // 0: not quantized
    EXPECT_TRUE(refused([&] { nn::QConfig::wa(bits, 8); }, {"weight bits", "got " + std::to_string(bits)}));
    EXPECT_TRUE(refused([&] { nn::QConfig::wa(8, bits); }, {"activation bits", "got " + std::to_string(bits)}));
    EXPECT_TRUE(refused([&] { FakeQuantizeConfig().with_bits(bits); }, {"got " + std::to_string(bits)}));
  }
  EXPECT_TRUE(refused([&] { QuantSpec::custom(5, 3, true, true).range(); }, {"[5, 3]"}));
  // Per channel: a scale count that is not the channel count, an axis outside the rank.
  EXPECT_TRUE(refused([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.2f},
                                                             std::vector<std::int32_t>{0, 0}, 0, -128, 127); },
                      {"2", "4"}));
  EXPECT_TRUE(refused([&] { fake_quantize_per_channel_affine(x, std::vector<float>(3, 0.1f),
                                                             std::vector<std::int32_t>(3, 0), 2, -128, 127); },
                      {"axis 2"}));
  EXPECT_TRUE(refused([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.0f, 0.1f},
                                                             std::vector<std::int32_t>(3, 0), 1, -128, 127); },
                      {"channel 1"}));
}

// Observers refuse NaN (PyTorch's would turn the range, and every scale
// after it, into NaN) and count infinities as the ends of the range, which
// choose_qparams then refuses, naming them.
TEST(BadArgumentsTest, ObserversOnNanAndInfiniteTensors) {
  MinMaxObserver obs(QuantSpec::int8(false));
  DynTensor<float> x(Shape{2, 3}, 1.0f);
  x[4] = kNaN;
  EXPECT_TRUE(refused([&] { obs.observe(x.data(), x.shape()); }, {"nan", "flat index 4"}));
  EXPECT_FALSE(obs.initialized()) << "a refused batch must leave the observer as it was";
  x[4] = kInf;
  const std::string m = test::error_of([&] {
    obs.observe(x.data(), x.shape());
    obs.calculate_qparams();
  });
  EXPECT_NE(m.find("inf"), std::string::npos) << m;
}

// ---------------------------------------------------------------------------
// Layers and configurations.

TEST(BadArgumentsTest, LayerForwardsWithTheWrongWidthOrRank) {
  Rng rng(1);
  nn::QATLinear<float> lin(16, 8, rng, nn::QConfig::w8a8());
  EXPECT_TRUE(refused([&] { lin.forward(DynTensor<float>(Shape{4, 15})); }, {"15", "16"}));
  EXPECT_TRUE(refused([&] { lin.forward(DynTensor<float>(Shape{})); }, {"16"}));
  // An empty batch gives an empty output, as PyTorch's.
  EXPECT_EQ(lin.forward(DynTensor<float>(Shape{0, 16})).shape(), Shape({0, 8}));

  nn::BlockConfig bc;
  bc.hidden = 16;
  bc.heads = 4;
  bc.intermediate = 32;
  nn::QATTransformerBlock<float> block(bc, rng, nn::QConfig::w8a8());
  EXPECT_TRUE(refused([&] { block.forward(DynTensor<float>(Shape{2, 16})); }, {"[2, 16]"}));
  EXPECT_TRUE(refused([&] { block.forward(DynTensor<float>(Shape{2, 5, 12})); }, {"12", "16"}));
  // So does an empty sequence on the integer path.
  block.eval();
  EXPECT_EQ(block.forward(DynTensor<float>(Shape{1, 0, 16})).shape(), Shape({1, 0, 16}));
  DynTensor<float> mask(Shape{2, 4}, 1.0f);
  EXPECT_TRUE(refused([&] { block.forward(DynTensor<float>(Shape{2, 5, 16}), mask); }, {"[2, 4]", "[2, 5]"}));
  DynTensor<float> half(Shape{2, 5}, 1.0f);
  half[3] = 0.5f;
  EXPECT_TRUE(refused([&] { block.forward(DynTensor<float>(Shape{2, 5, 16}), half); }, {"0.5", "flat index 3"}));
}

TEST(BadArgumentsTest, ConfigurationsThatCannotBeBuilt) {
  Rng rng(2);
  EXPECT_TRUE(refused([&] { nn::QATAttention<float>(30, 4, rng); }, {"30", "4"}));
  nn::BlockConfig bc;
  bc.hidden = 30;
  bc.heads = 4;
  EXPECT_TRUE(refused([&] { nn::QATTransformerBlock<float>(bc, rng); }, {"30", "4"}));
  bc.hidden = 32;
  bc.intermediate = 0;
  EXPECT_TRUE(refused([&] { nn::QATTransformerBlock<float>(bc, rng); }, {"0"}));
  EXPECT_TRUE(refused([&] { nn::QATLinear<float>(0, 8, rng); }, {"0"}));
  EXPECT_TRUE(refused([&] { nn::QATLinear<float>(Index(1) << 31, Index(1) << 31, rng); }, {"2147483648"}));
}

TEST(BadArgumentsTest, BertInputsOutsideTheModel) {
  Rng rng(3);
  deploy_test::Bert b(nn::ModelQConfig(nn::QConfig::w8a8()), false, false, rng);
  DynTensor<std::int64_t> ids(Shape{1, 4}, 1);
  ids[2] = 50;  // vocabulary 50
  EXPECT_TRUE(refused([&] { b.model.forward(ids); }, {"50"}));
  ids[2] = -1;
  EXPECT_TRUE(refused([&] { b.model.forward(ids); }, {"-1"}));
  EXPECT_TRUE(refused([&] { b.model.forward(DynTensor<std::int64_t>(Shape{1, 13}, 1)); }, {"13", "12"}));
  EXPECT_TRUE(refused([&] { b.model.forward(DynTensor<std::int64_t>(Shape{4}, 1)); }, {"[4]"}));
}

// ---------------------------------------------------------------------------
// State dicts and files.

bool same_state(const io::TensorDict& a, const io::TensorDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    const auto it = b.find(k);
    if (it == b.end() || it->second.bytes != v.bytes || it->second.shape != v.shape) return false;
  }
  return true;
}

TEST(BadArgumentsTest, StateDictsOfTheWrongShapeTypeValueOrModel) {
  Rng rng(4);
  nn::QATLinear<float> lin(16, 8, rng, nn::QConfig::w8a8());
  lin.train();
  lin.forward(DynTensor<float>(Shape{2, 16}, 0.3f));  // calibrated
  lin.eval();
  const io::TensorDict before = lin.state_dict();
  auto with = [&](const std::string& key, io::TensorData t) {
    io::TensorDict s = before;
    s[key] = std::move(t);
    return s;
  };
  auto f64 = [](double v) {
    io::TensorData t;
    t.dtype = io::DType::F64;
    t.shape = Shape{1};
    t.bytes.resize(8);
    std::memcpy(t.bytes.data(), &v, 8);
    return t;
  };
  io::TensorData w = before.at("weight");
  io::TensorData wrong_shape = w;
  wrong_shape.shape = Shape{16, 8};
  EXPECT_TRUE(refused([&] { lin.load_state_dict(with("weight", wrong_shape)); }, {"weight", "[16, 8]", "[8, 16]"}));
  io::TensorData wrong_type = w;
  wrong_type.dtype = io::DType::I32;
  EXPECT_TRUE(refused([&] { lin.load_state_dict(with("weight", wrong_type)); }, {"weight", "I32"}));
  EXPECT_TRUE(refused([&] { lin.load_state_dict(with("input_fake_quant.zero_point", f64(1e303))); },
                      {"input_fake_quant", "zero_point"}));
  EXPECT_TRUE(refused([&] { lin.load_state_dict(with("input_fake_quant.scale", f64(-1.0))); },
                      {"input_fake_quant", "scale"}));
  io::TensorDict missing = before;
  missing.erase("bias");
  EXPECT_TRUE(refused([&] { lin.load_state_dict(missing); }, {"bias"}));
  EXPECT_TRUE(refused([&] { lin.load_state_dict(with("extra.weight", w)); }, {"extra.weight"}));
  // Another model's state dict: a 8 -> 16 layer's.
  // Scales each valid alone whose product, the integer product's, is no float:
  // refused at load, naming the layer, not at the next forward.
  io::TensorDict huge = with("input_fake_quant.scale", f64(1e30));
  io::TensorData ws = before.at("weight_fake_quant.scale");
  for (std::size_t i = 0; i < ws.bytes.size(); i += 8) {
    const double v = 1e20;
    std::memcpy(ws.bytes.data() + i, &v, 8);
  }
  huge["weight_fake_quant.scale"] = ws;
  EXPECT_TRUE(refused([&] { lin.load_state_dict(huge); }, {"(the model)", "inf", "keeps its previous state"}));
  EXPECT_TRUE(refused([&] { lin.load_state_dict(huge, [] {
                        nn::LoadOptions o;
                        o.validate_only = true;
                        return o;
                      }()); }, {"inf"}));
  nn::QATLinear<float> other(8, 16, rng, nn::QConfig::w8a8());
  EXPECT_TRUE(refused([&] { lin.load_state_dict(other.state_dict()); }, {"[16, 8]", "[8, 16]"}));
  EXPECT_TRUE(same_state(lin.state_dict(), before)) << "a refused state dict changed the layer";
}

TEST(BadArgumentsTest, FilesOfAnotherKind) {
  Rng rng(5);
  deploy_test::Bert b(nn::ModelQConfig(nn::QConfig::w8a8()), false, false, rng);
  deploy_test::train_bert(b, rng);
  const deploy::BertModel m = deploy::convert(b.model, &b.cls, &b.mlm);
  const std::string model = bad_args_path("model.safetensors"), weights = bad_args_path("weights.safetensors");
  deploy::save(m, model);
  // A QAT state dict is not an INT8 model file, nor the other way round.
  io::save_safetensors(weights, b.model.state_dict());
  EXPECT_TRUE(refused([&] { deploy::load(weights); }, {weights, "format"}));
  const io::TensorDict before = b.model.state_dict();
  EXPECT_TRUE(refused([&] { b.model.load_state_dict(io::load_safetensors(model).tensors); }, {"weight"}));
  EXPECT_TRUE(same_state(b.model.state_dict(), before)) << "a refused file changed the model";
  EXPECT_TRUE(refused([&] { deploy::load(bad_args_path("does_not_exist")); }, {"does_not_exist"}));
  for (const std::string& f : {model, weights}) std::remove(f.c_str());
}

// ---------------------------------------------------------------------------
// The INT8 model.

TEST(BadArgumentsTest, Int8ModelInputsAndParameters) {
  Rng rng(6);
  deploy_test::Bert b(nn::ModelQConfig(nn::QConfig::w8a8()), false, false, rng);
  deploy_test::train_bert(b, rng);
  const deploy::BertModel m = deploy::convert(b.model, &b.cls, &b.mlm);
  DynTensor<std::int64_t> ids(Shape{2, 4}, 3);
  ids[5] = 99;
  EXPECT_TRUE(refused([&] { m.forward(ids); }, {"99", "flat index 5"}));
  EXPECT_TRUE(refused([&] { m.forward(DynTensor<std::int64_t>(Shape{1, 13}, 1)); }, {"13", "12"}));
  DynTensor<float> mask(Shape{2, 3}, 1.0f);
  EXPECT_TRUE(refused([&] { m.forward(DynTensor<std::int64_t>(Shape{2, 4}, 1), DynTensor<std::int64_t>(), mask); },
                      {"[2, 3]"}));
  const deploy::Linear& q = m.layers()[0].attention.query;
  EXPECT_TRUE(refused([&] { q.forward(DynTensor<float>(Shape{3, 31})); }, {"31", "32"}));
  // Integer parameters a layer cannot run.
  const std::vector<std::int8_t> codes(32 * 32, 1);
  IntegerLinearParams p = q.params();
  p.input_scale = kNaN;
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, p, {}, {}, "bad.input_scale"); },
                      {"bad.input_scale", "nan"}));
  p = q.params();
  p.weight_scales = std::vector<float>(5, 0.1f);
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, p, {}, {}, "bad.scales"); },
                      {"bad.scales", "5 weight scales", "32"}));
  p = q.params();
  p.weight_min = -8;
  p.weight_max = 7;
  std::vector<std::int8_t> wide = codes;
  wide[40] = 9;
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(wide.data(), 32, 32, p, {}, {}, "bad.codes"); },
                      {"bad.codes", "code 9", "row 1", "column 8"}));
  p = q.params();
  p.input_min = 0;
  p.input_max = 300;
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, p, {}, {}, "bad.range"); },
                      {"bad.range", "[0, 300]"}));
  // Finite scales whose product with the largest accumulator passes the largest float.
  p = q.params();
  p.input_scale = 1e30f;
  p.weight_scales = {1e4f};
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, p, {}, {}, "huge.scales"); },
                      {"huge.scales", "exceeds the largest float"}));
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, q.params(), std::vector<float>(3), {}, "bad.bias"); },
                      {"bad.bias", "3 bias values", "32"}));
  EXPECT_TRUE(refused([&] { deploy::Linear::integer(codes.data(), 32, 32, q.params(), std::vector<float>(32, kInf), {},
                                                    "inf.bias"); },
                      {"inf.bias", "inf"}));
}

}  // namespace
}  // namespace qaware
