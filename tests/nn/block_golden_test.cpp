// One QATTransformerBlock (hidden 64, 4 heads, FFN 256, batch 2, sequence 8,
// padding mask, dropout off) against the same block in PyTorch 1.13
// (tools/gen_block_golden.py -> tests/data/nn_block_*.qfx): forward output,
// loss, and the gradient of the input and of every parameter, scales and
// zero points included, with quantization off (FP32), on with fixed scales
// and on with learnable (LSQ) scales. The weights, scales and zero points
// are loaded through the block's state dict under their Hugging Face names,
// so the names are checked too.
//
// Tolerances (all float32):
//  * Forward output with quantization on: bit-identical. The generator
//    uses power-of-two scales, weights on a 2^-9 grid and biases on a 2^-6
//    grid, so every GEMM of fake-quantized operands is exact in float32 in
//    any summation order, and it checked that every element after a
//    non-exact op (softmax, LayerNorm, GELU) is >= 2^-12 steps away from a
//    rounding boundary (a few ulps are ~1e-5 steps): both sides make the
//    same rounding decisions, and the block output (after the last
//    LayerNorm's fake quant) is the same grid value.
//  * Forward output with quantization off: 2e-6 of the tensor's largest
//    magnitude (LayerNorm output ~ 1: a few float ulps from different
//    summation orders in the GEMMs and LayerNorm reductions).
//  * Loss: relative 1e-6 (qaware sums the squares in double, torch in float).
//  * Gradients: 2e-5 of each tensor's largest magnitude. They pass through
//    GEMMs of up to 256 terms and LayerNorm backward in float on both sides
//    with different summation orders; the observed differences are ~1e-6
//    (see the test output), the margin covers other compilers and thread
//    counts. LSQ scale / zero-point gradients are single numbers summed over
//    up to 16384 terms that largely cancel (qaware in double, torch in
//    float): 2e-4 of their magnitude (observed up to 4e-5).
//  * With quantization off the key bias gradient is exactly zero in exact
//    arithmetic; both sides must hold only rounding noise there.
//  * The symmetric weight points keep their zero point frozen at 0 (qaware's
//    FakeQuantize, as PyTorch's _LearnableFakeQuantize zeroing it), so the
//    zero-point gradients torch computes for them are not compared.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "common/fixture.hpp"
#include "nn/nn_test_util.hpp"
#include "qaware/nn/transformer_block.hpp"
#include "qaware/ops/mse_loss.hpp"

namespace qaware {
namespace {

using test::Fixture;

enum class Mode { Off, Fixed, Lsq };

const char* mode_name(Mode m) { return m == Mode::Off ? "off" : m == Mode::Fixed ? "fixed" : "lsq"; }

nn::BlockConfig golden_config(Mode m) {
  nn::BlockConfig c;
  c.hidden = 64;
  c.heads = 4;
  c.intermediate = 256;
  c.hidden_dropout = 0.0;
  c.attention_dropout = 0.0;
  c.layer_norm_eps = 1e-12;
  const bool q = m != Mode::Off;
  c.quantize_scores = q;
  c.quantize_probs = q;
  c.quantize_matmul_inputs = q;
  c.quantize_layer_norm_output = q;
  c.quantize_gelu_output = q;
  return c;
}

nn::QConfig golden_qconfig(Mode m) {
  if (m == Mode::Off) return nn::QConfig::fp32();
  if (m == Mode::Fixed) return nn::QConfig::w8a8();
  return nn::QConfig::lsq(8, 8);
}

const std::string kPrefixParam = "param.", kPrefixParamInt = "param_int.", kPrefixQ = "qparam.";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// The golden's block: weights, scales and zero points loaded by name.
nn::QATTransformerBlock<float> golden_block(Mode m, const Fixture& fx) {
  Rng rng(7);
  nn::QATTransformerBlock<float> block(golden_config(m), rng, golden_qconfig(m));
  io::TensorDict sd = block.state_dict();
  const float unit = fx.scalar<float>("weight_unit");
  std::set<std::string> points;
  for (const std::string& name : fx.names()) {
    if (starts_with(name, kPrefixParamInt)) {
      const DynTensor<std::int8_t> k = fx.get<std::int8_t>(name);
      DynTensor<float> w(k.shape());
      for (Index i = 0; i < w.numel(); ++i) w[i] = static_cast<float>(k[i]) * unit;  // exact
      sd[name.substr(kPrefixParamInt.size())] = io::TensorData::from(w);
    } else if (starts_with(name, kPrefixParam)) {
      sd[name.substr(kPrefixParam.size())] = io::TensorData::from(fx.get<float>(name));
    } else if (starts_with(name, kPrefixQ) && m != Mode::Off) {
      const std::string key = name.substr(kPrefixQ.size());
      const std::string point = key.substr(0, key.rfind('.'));
      points.insert(point);
      if (ends_with(key, ".zero_point")) {
        sd[key] = io::TensorData::from(fx.get<std::int32_t>(name).cast<float>());
      } else {
        sd[key] = io::TensorData::from(fx.get<float>(name));
      }
      sd[point + ".observer_enabled"] = io::TensorData::from(DynTensor<double>(Shape{}, 0.0));
      if (m == Mode::Lsq) sd[point + ".learning_enabled"] = io::TensorData::from(DynTensor<double>(Shape{}, 1.0));
    }
  }
  // Every point the fixture quantizes exists in the block (strict load:
  // an unknown name raises) and the block has no other points.
  std::set<std::string> ours;
  for (auto& kv : block.named_quant_points()) ours.insert(kv.first);
  EXPECT_EQ(ours, points);
  block.load_state_dict(sd);
  return block;
}

void run_golden(Mode m) {
  const Fixture params = Fixture::load("nn_block_params.qfx");
  const Fixture gold = Fixture::load(std::string("nn_block_") + mode_name(m) + ".qfx");
  nn::QATTransformerBlock<float> block = golden_block(m, params);

  Tape<float> tape;
  Var<float> x = tape.leaf(params.get<float>("x"));
  const DynTensor<float> mask = params.get<float>("mask");
  Var<float> y = block.forward(tape, x, mask);
  Var<float> loss = mse_loss(y, tape.constant(params.get<float>("target")));
  tape.backward(loss);

  if (m == Mode::Off) {
    EXPECT_TRUE(test::close_to_scale(y.value(), gold.get<float>("output"), 2e-6, "output"));
  } else {
    EXPECT_TRUE(test::bit_identical(y.value(), gold.get<float>("output"), "output"));
  }
  const float ref_loss = gold.scalar<float>("loss");
  EXPECT_NEAR(loss.item(), ref_loss, 1e-6 * std::abs(ref_loss));

  int compared = 0;
  double worst = 0.0;
  EXPECT_TRUE(test::close_to_scale(x.grad(), gold.get<float>("grad.input"), 2e-5, "grad.input"));
  int frozen = 0;
  for (auto& [name, p] : block.named_parameters()) {
    if (!p->requires_grad()) {  // the frozen symmetric zero points
      ++frozen;
      for (float g : p->grad()) EXPECT_EQ(g, 0.0f) << name;
      continue;
    }
    const std::string key = "grad." + name;
    ASSERT_TRUE(gold.has(key)) << key;
    const bool quant = ends_with(name, ".scale") || ends_with(name, ".zero_point");
    const double tol = quant ? 2e-4 : 2e-5;
    const DynTensor<float> ref = gold.get<float>(key);
    if (m == Mode::Off && name == "attention.self.key.bias") {
      // Exactly zero in exact arithmetic (a key bias adds q . b to a whole
      // score row; the softmax ignores it): both sides hold rounding noise.
      const double scale = test::max_abs(gold.get<float>("grad.attention.self.query.bias"));
      EXPECT_LE(test::max_abs(p->grad()), 1e-5 * scale);
      EXPECT_LE(test::max_abs(ref), 1e-5 * scale);
      ++compared;
      continue;
    }
    EXPECT_TRUE(test::close_to_scale(p->grad(), ref, tol, key));
    if (std::getenv("QAWARE_VERBOSE")) std::printf("  %s %.2e\n", key.c_str(), test::scaled_error(p->grad(), ref));
    worst = std::max(worst, test::scaled_error(p->grad(), ref));
    ++compared;
  }
  // Every parameter gradient torch computed was compared (except the
  // frozen symmetric zero points, see the file comment).
  int expected = 0;
  for (const std::string& n : gold.names())
    if (starts_with(n, "grad.") && n != "grad.input" &&
        !(ends_with(n, ".zero_point") && n.find("weight_fake_quant") != std::string::npos))
      ++expected;
  EXPECT_EQ(frozen, m == Mode::Lsq ? 6 : 0);  // one weight point per QATLinear
  EXPECT_EQ(compared, expected);
  std::printf("[%s] %d gradients compared; worst error %.2e of the tensor's scale\n", mode_name(m), compared, worst);
}

TEST(BlockGoldenTest, QuantizationOffMatchesPyTorch) { run_golden(Mode::Off); }
TEST(BlockGoldenTest, FixedScalesMatchPyTorch) { run_golden(Mode::Fixed); }
TEST(BlockGoldenTest, LearnableScalesMatchPyTorch) { run_golden(Mode::Lsq); }

}  // namespace
}  // namespace qaware
