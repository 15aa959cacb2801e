// quantized_linear: the INT8-GEMM forward of a fake-quantized linear layer,
// its integer parameters' checks, and its backward.
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
#include "qaware/ops/linear.hpp"
#include "qaware/ops/quantized_linear.hpp"

namespace qaware {
namespace {

// Integer codes and the fake-quantized float values they stand for.
struct Problem {
  Index R, IN, OUT;
  IntegerLinearParams q;
  std::vector<std::int32_t> qx, qw;  // codes
  DynTensor<float> x, w, b;          // x = (qx - zx) * sx, w = qw * sw[o]

  Problem(Index r, Index in, Index out, std::int32_t qmin, std::int32_t qmax, std::int32_t zx, bool per_row,
          std::uint64_t seed)
      : R(r), IN(in), OUT(out), x(Shape{r, in}), w(Shape{out, in}), b(Shape{out}) {
    Rng rng(seed);
    q.input_scale = 0.0173f;
    q.input_zero_point = zx;
    q.input_min = qmin;
    q.input_max = qmax;
    q.weight_scales.clear();
    for (Index o = 0; o < (per_row ? out : 1); ++o)
      q.weight_scales.push_back(static_cast<float>(rng.uniform(0.001, 0.01)));
    for (Index i = 0; i < r * in; ++i) {
      const auto code = qmin + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(qmax - qmin + 1)));
      qx.push_back(code);
      x[i] = static_cast<float>(code - zx) * q.input_scale;  // what fake quantization writes
    }
    for (Index o = 0; o < out; ++o)
      for (Index i = 0; i < in; ++i) {
        const auto code = -128 + static_cast<std::int32_t>(rng.below(256));
        qw.push_back(code);
        w[o * in + i] = static_cast<float>(code) * scale_of(o);
      }
    for (Index o = 0; o < out; ++o) b[o] = static_cast<float>(rng.uniform(-1, 1));
  }
  float scale_of(Index o) const { return q.weight_scales[static_cast<std::size_t>(q.weight_scales.size() == 1 ? 0 : o)]; }

  // The reference output, bit for bit.
  DynTensor<float> reference(bool bias) const {
    DynTensor<float> y(Shape{R, OUT});
    for (Index r = 0; r < R; ++r)
      for (Index o = 0; o < OUT; ++o) {
        std::int64_t acc = 0;
        for (Index i = 0; i < IN; ++i)
          acc += static_cast<std::int64_t>(qx[static_cast<std::size_t>(r * IN + i)] - q.input_zero_point) *
                 qw[static_cast<std::size_t>(o * IN + i)];
        y[r * OUT + o] = std::fma(static_cast<float>(acc), q.input_scale * scale_of(o), bias ? b[o] : 0.0f);
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
        quantized_linear(tape.constant(p.x), tape.constant(p.w), tape.constant(p.b), p.q);
    expect_bitwise_equal(y.value(), p.reference(true), "y, threads " + std::to_string(threads));
  }
  set_num_threads(0);
}

TEST(QuantizedLinearTest, SignedActivationsPerTensorWeightScaleNoBias) {
  const Problem p(8, 130, 17, -128, 127, -5, false, 2);
  Tape<float> tape;
  const Var<float> y = quantized_linear(tape.constant(p.x), tape.constant(p.w), p.q);
  expect_bitwise_equal(y.value(), p.reference(false), "y");
}

TEST(QuantizedLinearTest, NarrowAndFourBitRangesAndRank3Inputs) {
  // 4-bit unsigned activations in a rank-3 input.
  Problem p(12, 33, 9, 0, 15, 7, true, 3);
  Tape<float> tape;
  DynTensor<float> x3(Shape{3, 4, 33});
  for (Index i = 0; i < x3.numel(); ++i) x3[i] = p.x[i];
  const Var<float> y = quantized_linear(tape.constant(x3), tape.constant(p.w), tape.constant(p.b), p.q);
  ASSERT_EQ(y.shape(), Shape({3, 4, 9}));
  DynTensor<float> flat(Shape{12, 9});
  for (Index i = 0; i < flat.numel(); ++i) flat[i] = y.value()[i];
  expect_bitwise_equal(flat, p.reference(true), "y");
}

TEST(QuantizedLinearTest, AgreesWithTheFloatProductUpToRounding) {
  const Problem p(64, 768, 48, 0, 255, 128, true, 4);
  Tape<float> tape;
  const Var<float> yi = quantized_linear(tape.constant(p.x), tape.constant(p.w), tape.constant(p.b), p.q);
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
    const Var<float> y = integer ? quantized_linear(tape.param(x), tape.param(w), tape.param(b), p.q)
                                 : linear(tape.param(x), tape.param(w), tape.param(b));
    tape.backward(y, dy);
    return std::vector<DynTensor<float>>{x.grad(), w.grad(), b.grad()};
  };
  const auto gi = grads(true), gf = grads(false);
  expect_bitwise_equal(gi[0], gf[0], "dx");
  expect_bitwise_equal(gi[1], gf[1], "dw");
  expect_bitwise_equal(gi[2], gf[2], "db");
}

// An empty batch gives an empty output, as the float linear and PyTorch do
// (the GEMM itself refuses M = 0).
TEST(QuantizedLinearTest, EmptyBatchGivesAnEmptyOutput) {
  IntegerLinearParams p;
  p.input_scale = 0.1f;
  p.input_zero_point = 128;
  p.weight_scales = {0.01f};
  Tape<float> tape;
  const Var<float> x = tape.leaf(DynTensor<float>(Shape{0, 16}));
  const Var<float> w = tape.leaf(DynTensor<float>(Shape{8, 16}, 0.02f));
  const Var<float> y = quantized_linear(x, w, p);
  EXPECT_EQ(y.shape(), Shape({0, 8}));
  const Var<float> y3 = quantized_linear(tape.leaf(DynTensor<float>(Shape{2, 0, 16})), w, p);
  EXPECT_EQ(y3.shape(), Shape({2, 0, 8}));
}

TEST(QuantizedLinearTest, BadParametersNameTheValues) {
  Problem p(4, 8, 6, 0, 255, 0, true, 7);
  Tape<float> tape;
  auto expect_error = [&](const IntegerLinearParams& q, const std::string& needle) {
    EXPECT_NE(q.problem(p.OUT).find(needle), std::string::npos) << q.problem(p.OUT);
    try {
      quantized_linear(tape.constant(p.x), tape.constant(p.w), q);
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  EXPECT_EQ(p.q.problem(p.OUT), "");
  IntegerLinearParams three = p.q;
  three.weight_scales.resize(3);
  expect_error(three, "3 weight scales for a weight of 6 rows");
  IntegerLinearParams wide = p.q;
  wide.input_min = -1;
  expect_error(wide, "[-1, 255] fits neither uint8 nor int8");
  EXPECT_NE(wide.range_problem(), "");
  IntegerLinearParams zero = p.q;
  zero.input_scale = 0.0f;
  expect_error(zero, "input scale 0");
  EXPECT_EQ(zero.range_problem(), "");
  IntegerLinearParams neg = p.q;
  neg.weight_scales[2] = -1.0f;
  expect_error(neg, "weight scale -1 of row 2");
  IntegerLinearParams zp = p.q;
  zp.input_zero_point = 300;
  expect_error(zp, "input zero point 300");
  IntegerLinearParams w9 = p.q;
  w9.weight_min = -256;
  expect_error(w9, "weight range [-256, 127] does not fit int8");
  EXPECT_THROW(quantized_linear(tape.constant(p.x), tape.constant(DynTensor<float>(Shape{6, 7})), p.q), Error);
}

}  // namespace
}  // namespace qaware
