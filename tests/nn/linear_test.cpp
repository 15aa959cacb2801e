// QATLinear's bridge to its integer form: integer_linear_params() says when
// the product runs on the INT8 GEMM and with what, and the QAT forward uses
// exactly those parameters.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "qaware/core/rng.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/ops/quantized_linear.hpp"

namespace qaware {
namespace {

// QATLinear: the integer product runs for the default W8A8 configuration and
// agrees with the float product of the same fake-quantized values.
TEST(QatLinearTest, UsesTheIntegerProductWhenItsPointsAllowIt) {
  auto run = [](const nn::QConfig& qc, DynTensor<float>* out, DynTensor<float>* wgrad) {
    Rng rng(11);
    nn::QATLinear<float> layer(96, 40, rng, qc);
    DynTensor<float> x(Shape{2, 7, 96}), target(Shape{2, 7, 40});
    init::normal(x, rng, 0.0, 1.0);
    init::normal(target, rng, 0.0, 1.0);
    Tape<float> tape;
    const Var<float> y = layer.forward(tape, tape.constant(x));
    tape.backward(mse_loss(y, tape.constant(target)));
    if (out) *out = y.value();
    if (wgrad) *wgrad = layer.weight().grad();
    return layer.last_forward_was_integer();
  };
  nn::QConfig integer = nn::QConfig::w8a8(), floating = nn::QConfig::w8a8();
  floating.integer_linear = false;
  DynTensor<float> yi, yf, gi, gf;
  EXPECT_TRUE(run(integer, &yi, &gi));
  EXPECT_FALSE(run(floating, &yf, &gf));
  double max_abs = 0, max_err = 0, gmax = 0, gerr = 0;
  for (Index i = 0; i < yi.numel(); ++i) {
    max_abs = std::max(max_abs, std::abs(static_cast<double>(yf[i])));
    max_err = std::max(max_err, std::abs(static_cast<double>(yi[i]) - yf[i]));
  }
  for (Index i = 0; i < gi.numel(); ++i) {
    gmax = std::max(gmax, std::abs(static_cast<double>(gf[i])));
    gerr = std::max(gerr, std::abs(static_cast<double>(gi[i]) - gf[i]));
  }
  EXPECT_GT(max_abs, 0.1);
  EXPECT_LE(max_err, 1e-5 * max_abs);
  EXPECT_LE(gerr, 1e-5 * gmax);  // dy differs by the outputs' rounding only

  // Configurations the INT8 GEMM cannot take keep the float product.
  EXPECT_FALSE(run(nn::QConfig::fp32(), nullptr, nullptr));
  // Learnable (LSQ) points have an integer form too (their clamped scale and rounded zero point).
  EXPECT_TRUE(run(nn::QConfig::lsq(), nullptr, nullptr));
  nn::QConfig affine_weights = nn::QConfig::w8a8();
  affine_weights.weight->spec.symmetric = false;
  affine_weights.weight->spec.is_signed = false;
  EXPECT_FALSE(run(affine_weights, nullptr, nullptr));
  // 4-bit weights and activations are int8 / uint8 codes: integer.
  EXPECT_TRUE(run(nn::QConfig::wa(4, 4), nullptr, nullptr));
}


// The parameters are the points' own, and the forward's output is
// quantized_linear_forward's with them, bit for bit.
TEST(QatLinearTest, IntegerLinearParamsAreThePointsParametersAndTheForwardUsesThem) {
  for (bool per_row : {true, false}) {
    Rng rng(21);
    nn::QConfig qc = nn::QConfig::w8a8();
    if (!per_row) qc.weight->spec.per_channel = false;
    nn::QATLinear<float> layer(48, 20, rng, qc);
    init::normal(layer.bias().value(), rng, 0.0, 0.1);
    DynTensor<float> x(Shape{5, 48});
    init::normal(x, rng, 0.0, 1.0);
    Tape<float> tape;
    const Var<float> y = layer.forward(tape, tape.constant(x));
    ASSERT_TRUE(layer.last_forward_was_integer());

    std::string why = "unchanged";
    const std::optional<IntegerLinearParams> p = nn::integer_linear_params(layer, &why);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(why, "unchanged");
    const QuantParams qi = layer.input_quant().qparams(), qw = layer.weight_quant().qparams();
    EXPECT_EQ(p->input_scale, qi.scale[0]);
    EXPECT_EQ(p->input_zero_point, qi.zero_point[0]);
    EXPECT_EQ(p->input_min, 0);
    EXPECT_EQ(p->input_max, 255);
    EXPECT_EQ(p->weight_scales, qw.scale);
    EXPECT_EQ(p->weight_scales.size(), per_row ? 20u : 1u);
    EXPECT_EQ(p->weight_min, -128);
    EXPECT_EQ(p->weight_max, 127);
    EXPECT_EQ(p->problem(20), "");

    // The fake-quantized operands the forward multiplied, then the kernel.
    layer.input_quant().fake_quantize().disable_observer();  // the parameters the forward used
    layer.weight_quant().fake_quantize().disable_observer();
    const DynTensor<float> xq = layer.input_quant().fake_quantize().forward(x);
    const DynTensor<float> wq = layer.weight_quant().fake_quantize().forward(layer.weight().value());
    DynTensor<float> expect(Shape{5, 20});
    ops::quantized_linear_forward(xq.data(), wq.data(), layer.bias().value().data(), expect.data(), 5, 48, 20, *p);
    for (Index i = 0; i < expect.numel(); ++i) ASSERT_EQ(y.value()[i], expect[i]) << i << (per_row ? " per row" : "");
  }
}

// Configurations without an integer form say why.
TEST(QatLinearTest, IntegerLinearParamsSayWhyNot) {
  auto reason = [](const nn::QConfig& qc) {
    Rng rng(3);
    nn::QATLinear<float> layer(8, 4, rng, qc);
    DynTensor<float> x(Shape{3, 8});
    init::normal(x, rng, 0.0, 1.0);
    Tape<float> tape;
    layer.forward(tape, tape.constant(x));  // the observers set the parameters
    std::string why;
    EXPECT_FALSE(nn::integer_linear_params(layer, &why).has_value());
    return why;
  };
  nn::QConfig off = nn::QConfig::w8a8();
  off.integer_linear = false;
  EXPECT_EQ(reason(off), "QConfig::integer_linear is off");
  EXPECT_EQ(reason(nn::QConfig::fp32()), "the input is not quantized");
  {
    // LSQ: the points' effective parameters (scale clamped, zero point rounded).
    Rng rng(3);
    nn::QATLinear<float> layer(8, 4, rng, nn::QConfig::lsq());
    DynTensor<float> x(Shape{3, 8});
    init::normal(x, rng, 0.0, 1.0);
    Tape<float> tape;
    layer.forward(tape, tape.constant(x));
    const std::optional<IntegerLinearParams> p = nn::integer_linear_params(layer);
    ASSERT_TRUE(p.has_value());
    const QuantParams qi = layer.input_quant().qparams();
    EXPECT_EQ(p->input_scale, qi.scale[0]);
    EXPECT_EQ(p->input_zero_point, qi.zero_point[0]);
    EXPECT_EQ(p->weight_scales, layer.weight_quant().qparams().scale);
  }
  nn::QConfig affine = nn::QConfig::w8a8();
  affine.weight->spec.symmetric = false;
  EXPECT_NE(reason(affine).find("the weight is affine"), std::string::npos) << reason(affine);
  nn::QConfig by_column = nn::QConfig::w8a8();
  by_column.weight->spec.axis = 1;
  EXPECT_EQ(reason(by_column), "the weight is quantized per channel along an axis other than the output rows");
  // int8 activations have an integer form too.
  nn::QConfig signed_input = nn::QConfig::w8a8();
  signed_input.activation->spec.is_signed = true;
  {
    Rng rng(3);
    nn::QATLinear<float> layer(8, 4, rng, signed_input);
    const std::optional<IntegerLinearParams> p = nn::integer_linear_params(layer);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->input_min, -128);
    EXPECT_FALSE(p->input_unsigned());
  }

  Rng rng(3);
  nn::QATLinear<double> dlayer(8, 4, rng, nn::QConfig::w8a8());
  std::string why;
  EXPECT_FALSE(nn::integer_linear_params(dlayer, &why).has_value());
  EXPECT_EQ(why, "the INT8 GEMM takes float layers only");
}

}  // namespace
}  // namespace qaware
