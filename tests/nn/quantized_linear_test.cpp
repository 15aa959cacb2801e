// quantized_linear (the INT8-GEMM forward of a fake-quantized linear layer)
// and QATLinear's use of it.
//
// Reference: the exact integer product sum_i (qx - zx) * qw, accumulated in
// int64 by a triple loop, then the documented output stage
// fma(float(acc), sx * sw[o], b[o]) -- bit for bit. The backward must equal
// linear()'s bit for bit (it is the same function on the same values).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/nn/linear.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/ops/quantized_linear.hpp"

namespace qaware {
namespace {

// Integer codes and the fake-quantized float values they stand for.
struct Problem {
  Index R, IN, OUT;
  LinearInputQuant xq;
  LinearWeightQuant wq;
  std::vector<std::int32_t> qx, qw;  // codes
  DynTensor<float> x, w, b;          // x = (qx - zx) * sx, w = qw * sw[o]

  Problem(Index r, Index in, Index out, std::int32_t qmin, std::int32_t qmax, std::int32_t zx, bool per_row,
          std::uint64_t seed)
      : R(r), IN(in), OUT(out), x(Shape{r, in}), w(Shape{out, in}), b(Shape{out}) {
    Rng rng(seed);
    xq.scale = 0.0173f;
    xq.zero_point = zx;
    xq.quant_min = qmin;
    xq.quant_max = qmax;
    wq.scales.clear();
    for (Index o = 0; o < (per_row ? out : 1); ++o) wq.scales.push_back(static_cast<float>(rng.uniform(0.001, 0.01)));
    for (Index i = 0; i < r * in; ++i) {
      const auto q = qmin + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(qmax - qmin + 1)));
      qx.push_back(q);
      x[i] = static_cast<float>(q - zx) * xq.scale;  // what fake quantization writes
    }
    for (Index o = 0; o < out; ++o)
      for (Index i = 0; i < in; ++i) {
        const auto q = -128 + static_cast<std::int32_t>(rng.below(256));
        qw.push_back(q);
        w[o * in + i] = static_cast<float>(q) * scale_of(o);
      }
    for (Index o = 0; o < out; ++o) b[o] = static_cast<float>(rng.uniform(-1, 1));
  }
  float scale_of(Index o) const { return wq.scales[static_cast<std::size_t>(wq.scales.size() == 1 ? 0 : o)]; }

  // The reference output, bit for bit.
  DynTensor<float> reference(bool bias) const {
    DynTensor<float> y(Shape{R, OUT});
    for (Index r = 0; r < R; ++r)
      for (Index o = 0; o < OUT; ++o) {
        std::int64_t acc = 0;
        for (Index i = 0; i < IN; ++i)
          acc += static_cast<std::int64_t>(qx[static_cast<std::size_t>(r * IN + i)] - xq.zero_point) *
                 qw[static_cast<std::size_t>(o * IN + i)];
        y[r * OUT + o] = std::fma(static_cast<float>(acc), xq.scale * scale_of(o), bias ? b[o] : 0.0f);
      }
    return y;
  }
};

void expect_bitwise_equal(const DynTensor<float>& a, const DynTensor<float>& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  Index bad = 0;
  for (Index i = 0; i < a.numel(); ++i)
    if (a[i] != b[i] && bad++ < 5) ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
  EXPECT_EQ(bad, 0) << what;
}

TEST(QuantizedLinearTest, ForwardIsTheExactIntegerProductDequantized) {
  // uint8 activations with a zero point, per-row weight scales, bias; odd
  // sizes so that every path's edge handling runs.
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Problem p(37, 75, 29, 0, 255, 3, true, 1);
    Tape<float> tape;
    const Var<float> y =
        quantized_linear(tape.constant(p.x), tape.constant(p.w), tape.constant(p.b), p.xq, p.wq);
    expect_bitwise_equal(y.value(), p.reference(true), "y, threads " + std::to_string(threads));
  }
  set_num_threads(0);
}

TEST(QuantizedLinearTest, SignedActivationsPerTensorWeightScaleNoBias) {
  const Problem p(8, 130, 17, -128, 127, -5, false, 2);
  Tape<float> tape;
  const Var<float> y = quantized_linear(tape.constant(p.x), tape.constant(p.w), p.xq, p.wq);
  expect_bitwise_equal(y.value(), p.reference(false), "y");
}

TEST(QuantizedLinearTest, NarrowAndFourBitRangesAndRank3Inputs) {
  // 4-bit unsigned activations in a rank-3 input.
  Problem p(12, 33, 9, 0, 15, 7, true, 3);
  Tape<float> tape;
  DynTensor<float> x3(Shape{3, 4, 33});
  for (Index i = 0; i < x3.numel(); ++i) x3[i] = p.x[i];
  const Var<float> y = quantized_linear(tape.constant(x3), tape.constant(p.w), tape.constant(p.b), p.xq, p.wq);
  ASSERT_EQ(y.shape(), Shape({3, 4, 9}));
  DynTensor<float> flat(Shape{12, 9});
  for (Index i = 0; i < flat.numel(); ++i) flat[i] = y.value()[i];
  expect_bitwise_equal(flat, p.reference(true), "y");
}

TEST(QuantizedLinearTest, AgreesWithTheFloatProductUpToRounding) {
  const Problem p(64, 768, 48, 0, 255, 128, true, 4);
  Tape<float> tape;
  const Var<float> yi = quantized_linear(tape.constant(p.x), tape.constant(p.w), tape.constant(p.b), p.xq, p.wq);
  const Var<float> yf = linear(tape.constant(p.x), tape.constant(p.w), tape.constant(p.b));
  double max_abs = 0, max_err = 0;
  for (Index i = 0; i < yi.numel(); ++i) {
    max_abs = std::max(max_abs, std::abs(static_cast<double>(yf.value()[i])));
    max_err = std::max(max_err, std::abs(static_cast<double>(yi.value()[i]) - yf.value()[i]));
  }
  // Float accumulation over K = 768 terms: error around sqrt(K) * 2^-24 of the
  // terms' magnitude; 1e-5 of the largest output is a loose bound for it.
  EXPECT_LE(max_err, 1e-5 * max_abs) << "max |y| " << max_abs;
}

TEST(QuantizedLinearTest, BackwardIsLinearsBackward) {
  const Problem p(21, 40, 13, 0, 255, 9, true, 5);
  DynTensor<float> dy(Shape{21, 13});
  Rng rng(6);
  init::normal(dy, rng, 0.0, 1.0);
  auto grads = [&](bool integer) {
    Tape<float> tape;
    Param<float> x(Shape{21, 40}), w(Shape{13, 40}), b(Shape{13});
    x.value() = p.x;
    w.value() = p.w;
    b.value() = p.b;
    const Var<float> y = integer ? quantized_linear(tape.param(x), tape.param(w), tape.param(b), p.xq, p.wq)
                                 : linear(tape.param(x), tape.param(w), tape.param(b));
    tape.backward(y, dy);
    return std::vector<DynTensor<float>>{x.grad(), w.grad(), b.grad()};
  };
  const auto gi = grads(true), gf = grads(false);
  expect_bitwise_equal(gi[0], gf[0], "dx");
  expect_bitwise_equal(gi[1], gf[1], "dw");
  expect_bitwise_equal(gi[2], gf[2], "db");
}

TEST(QuantizedLinearTest, BadParametersNameTheValues) {
  Problem p(4, 8, 6, 0, 255, 0, true, 7);
  Tape<float> tape;
  auto run = [&](const LinearInputQuant& xq, const LinearWeightQuant& wq) {
    quantized_linear(tape.constant(p.x), tape.constant(p.w), xq, wq);
  };
  auto expect_error = [&](const LinearInputQuant& xq, const LinearWeightQuant& wq, const std::string& needle) {
    try {
      run(xq, wq);
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  LinearWeightQuant three = p.wq;
  three.scales.resize(3);
  expect_error(p.xq, three, "3 weight scales for a weight of 6 rows");
  LinearInputQuant wide = p.xq;
  wide.quant_min = -1;
  expect_error(wide, p.wq, "[-1, 255] fits neither uint8 nor int8");
  LinearInputQuant zero = p.xq;
  zero.scale = 0.0f;
  expect_error(zero, p.wq, "input scale 0");
  LinearWeightQuant neg = p.wq;
  neg.scales[2] = -1.0f;
  expect_error(p.xq, neg, "weight scale -1 of row 2");
  LinearInputQuant zp = p.xq;
  zp.zero_point = 300;
  expect_error(zp, p.wq, "input zero point 300");
  EXPECT_THROW(quantized_linear(tape.constant(p.x), tape.constant(DynTensor<float>(Shape{6, 7})), p.xq, p.wq), Error);
}

// QATLinear: the integer product runs for the default W8A8 configuration and
// agrees with the float product of the same fake-quantized values.
TEST(QuantizedLinearTest, QatLinearUsesTheIntegerProductWhenItsPointsAllowIt) {
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
  EXPECT_FALSE(run(nn::QConfig::lsq(), nullptr, nullptr));
  nn::QConfig affine_weights = nn::QConfig::w8a8();
  affine_weights.weight.symmetric = false;
  affine_weights.weight.is_signed = false;
  EXPECT_FALSE(run(affine_weights, nullptr, nullptr));
  // 4-bit weights and activations are int8 / uint8 codes: integer.
  EXPECT_TRUE(run(nn::QConfig::wa(4, 4), nullptr, nullptr));
}

}  // namespace
}  // namespace qaware
