// softmax over the last dimension, with and without an additive mask:
// forward against a naive double softmax, stability with large logits,
// fully masked rows (defined as zeros), backward against finite differences
// (including the mask's own gradient), and shape errors.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops_test_util.hpp"
#include "qaware/ops/softmax.hpp"

namespace qaware {
namespace {

const double kInf = std::numeric_limits<double>::infinity();

// softmax(x + mask) row by row, by the definition (mask broadcast with the
// tests' own index map; nullptr = no mask).
DynTensor<double> naive_softmax(const DynTensor<double>& x, const DynTensor<double>* mask) {
  const Index C = x.shape().dim(-1), R = x.numel() / C;
  DynTensor<double> z(x.shape()), y(x.shape());
  for (Index i = 0; i < x.numel(); ++i)
    z[i] = x[i] + (mask ? (*mask)[test::broadcast_source(test::unravel(i, x.shape()), mask->shape())] : 0.0);
  for (Index r = 0; r < R; ++r) {
    double mx = -kInf;
    for (Index c = 0; c < C; ++c) mx = std::max(mx, z[r * C + c]);
    double s = 0.0;
    for (Index c = 0; c < C; ++c) s += std::exp(z[r * C + c] - mx);
    for (Index c = 0; c < C; ++c) y[r * C + c] = std::exp(z[r * C + c] - mx) / s;
  }
  return y;
}

TEST(SoftmaxTest, ForwardMatchesNaive) {
  const DynTensor<double> x = test::uniform(Shape{2, 3, 4, 5}, 1, -3.0, 3.0);
  DynTensor<double> mask = DynTensor<double>::zeros(Shape{2, 1, 1, 5});
  mask[3] = mask[4] = -1e4;  // batch 0: last two keys padded
  mask[5 + 4] = -kInf;       // batch 1: last key masked with -inf
  Tape<double> tape;
  Var<double> y = softmax(tape.constant(x));
  Var<double> ym = softmax(tape.constant(x), tape.constant(mask));
  const DynTensor<double> ref = naive_softmax(x, nullptr), refm = naive_softmax(x, &mask);
  for (Index i = 0; i < x.numel(); ++i) {
    // Same exp, one division vs a multiplication by the reciprocal: 1e-15.
    EXPECT_NEAR(y.value()[i], ref[i], 1e-15);
    EXPECT_NEAR(ym.value()[i], refm[i], 1e-15);
  }
  for (Index r = 0; r < 24; ++r) {
    double s = 0.0;
    for (Index c = 0; c < 5; ++c) s += ym.value()[r * 5 + c];
    EXPECT_NEAR(s, 1.0, 1e-15);
    if (r < 12) {  // batch 0: exp(-1e4 - max) underflows to 0
      EXPECT_EQ(ym.value()[r * 5 + 3], 0.0);
      EXPECT_EQ(ym.value()[r * 5 + 4], 0.0);
    } else {  // batch 1: exp(-inf) = 0
      EXPECT_EQ(ym.value()[r * 5 + 4], 0.0);
      EXPECT_GT(ym.value()[r * 5 + 3], 0.0);
    }
  }
}

TEST(SoftmaxTest, MaskShapesThatBroadcast) {
  const DynTensor<double> x = test::uniform(Shape{2, 3, 4}, 2);
  for (const Shape& ms : {Shape{2, 3, 4}, Shape{4}, Shape{3, 1}, Shape{2, 1, 1}, Shape{1}}) {
    const DynTensor<double> mask = test::uniform(ms, 3, -2.0, 2.0);
    Tape<double> tape;
    Var<double> y = softmax(tape.constant(x), tape.constant(mask));
    const DynTensor<double> ref = naive_softmax(x, &mask);
    for (Index i = 0; i < x.numel(); ++i) EXPECT_NEAR(y.value()[i], ref[i], 1e-15) << ms.str();
  }
}

TEST(SoftmaxTest, UnderflowingProbabilitiesAreExactlyZero) {
  // exp(-1e4) and exp(-inf) are 0, not the denormal Eigen's vectorised exp
  // returns; in float and double.
  DynTensor<float> xf(Shape{16}, 0.0f);
  DynTensor<double> xd(Shape{16}, 0.0);
  for (Index i = 8; i < 16; ++i) {
    xf[i] = i % 2 ? -1e4f : -std::numeric_limits<float>::infinity();
    xd[i] = i % 2 ? -1e4 : -kInf;
  }
  Tape<float> tf;
  Tape<double> td;
  Var<float> yf = softmax(tf.constant(xf));
  Var<double> yd = softmax(td.constant(xd));
  for (Index i = 0; i < 16; ++i) {
    EXPECT_EQ(yf.value()[i], i < 8 ? 0.125f : 0.0f);
    EXPECT_EQ(yd.value()[i], i < 8 ? 0.125 : 0.0);
  }
}

TEST(SoftmaxTest, LargeLogitsDoNotOverflow) {
  Tape<float> tape;
  DynTensor<float> x(Shape{2, 3});
  const float v[] = {1000.0f, 1001.0f, 1002.0f, -1000.0f, -1001.0f, -1002.0f};
  for (int i = 0; i < 6; ++i) x[i] = v[i];
  Var<float> y = softmax(tape.constant(x));
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), s = 1 + e1 + e2;
  const double ref[] = {e2 / s, e1 / s, 1 / s, 1 / s, e1 / s, e2 / s};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y.value()[i], ref[i], 1e-6);  // float exp and sum
}

TEST(SoftmaxTest, FullyMaskedRowIsZerosWithZeroGradient) {
  // Row 1 of batch 0 is -inf everywhere: defined as zeros (PyTorch: NaN).
  Tape<double> tape;
  Var<double> x = tape.leaf(test::uniform(Shape{2, 2, 3}, 4));
  DynTensor<double> mask = DynTensor<double>::zeros(Shape{2, 2, 3});
  for (int c = 0; c < 3; ++c) mask[3 + c] = -kInf;
  Var<double> y = softmax(x, tape.constant(mask));
  for (Index i = 0; i < 12; ++i) {
    EXPECT_FALSE(std::isnan(y.value()[i]));
    if (i >= 3 && i < 6) {
      EXPECT_EQ(y.value()[i], 0.0);
    }
  }
  tape.backward(y, test::uniform(y.shape(), 5));
  for (Index i = 3; i < 6; ++i) EXPECT_EQ(x.grad()[i], 0.0);
  for (Index i = 0; i < 12; ++i) EXPECT_FALSE(std::isnan(x.grad()[i]));
}

TEST(SoftmaxTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn plain = [](Tape<double>&, const std::vector<Var<double>>& v) { return softmax(v[0]); };
  EXPECT_TRUE(test::grads_match(plain, {test::uniform(Shape{3, 4, 5}, 6, -2.0, 2.0)}));

  // A padding mask with -inf entries is a constant (skipped): perturbing
  // -inf is meaningless, and masked logits must get exactly zero gradient.
  DynTensor<double> pad = DynTensor<double>::zeros(Shape{2, 1, 1, 5});
  pad[3] = pad[4] = -kInf;
  GradCheckFn masked = [](Tape<double>&, const std::vector<Var<double>>& v) { return softmax(v[0], v[1]); };
  GradCheckOptions skip_mask;
  skip_mask.skip = {1};
  EXPECT_TRUE(test::grads_match(masked, {test::uniform(Shape{2, 3, 4, 5}, 7, -2.0, 2.0), pad}, skip_mask));

  // A finite mask that needs a gradient: summed over its broadcast dims.
  EXPECT_TRUE(test::grads_match(masked, {test::uniform(Shape{2, 3, 4, 5}, 8, -2.0, 2.0),
                                         test::uniform(Shape{2, 1, 1, 5}, 9, -2.0, 2.0)}));
  EXPECT_TRUE(test::grads_match(masked, {test::uniform(Shape{2, 3, 4}, 10), test::uniform(Shape{3, 1}, 11)}));
}

TEST(SoftmaxTest, LargeBatchedRowsInParallelMatchNaive) {
  // 8 x 4 x 64 rows of 64 (the parallel path) in float against double.
  const DynTensor<double> x = test::uniform(Shape{8, 4, 64, 64}, 12, -8.0, 8.0);
  DynTensor<double> mask = DynTensor<double>::zeros(Shape{8, 1, 1, 64});
  for (Index b = 0; b < 8; ++b)
    for (Index t = 64 - 4 * b; t < 64; ++t) mask[b * 64 + t] = -1e9;
  Tape<float> tape;
  Var<float> y = softmax(tape.constant(x.cast<float>()), tape.constant(mask.cast<float>()));
  const DynTensor<double> ref = naive_softmax(x.cast<float>().cast<double>(), &mask);
  // Probabilities in [0, 1]; float exp and a 64-term sum: 1e-6 absolute.
  for (Index i = 0; i < x.numel(); ++i) ASSERT_NEAR(y.value()[i], ref[i], 1e-6) << "at " << i;
}

TEST(SoftmaxTest, BadMaskShapesAreRejected) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::uniform(Shape{2, 3, 4}, 1));
  EXPECT_TRUE(test::throws_with([&] { softmax(x, tape.constant(test::uniform(Shape{2, 1, 5}, 2))); },
                                {"softmax", "mask", "[2, 1, 5]", "[2, 3, 4]"}));
  EXPECT_TRUE(test::throws_with([&] { softmax(x, tape.constant(test::uniform(Shape{1, 2, 3, 4}, 2))); },
                                {"softmax", "mask", "[1, 2, 3, 4]", "more dimensions"}));
}

}  // namespace
}  // namespace qaware
