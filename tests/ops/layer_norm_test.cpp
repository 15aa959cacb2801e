// layer_norm over the last dimension: forward against a naive double
// version, saved statistics, backward against finite differences (small)
// and against the textbook gradient formula evaluated naively (a shape with
// several row blocks), and shape errors.

#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.hpp"
#include "qaware/ops/layer_norm.hpp"

namespace qaware {
namespace {

// y = (x - mean) / sqrt(var + eps) * w + b per row, by the definition.
DynTensor<double> naive_layer_norm(const DynTensor<double>& x, const DynTensor<double>& w,
                                   const DynTensor<double>& b, double eps) {
  const Index C = x.shape().dim(-1), R = x.numel() / C;
  DynTensor<double> y(x.shape());
  for (Index r = 0; r < R; ++r) {
    double m = 0.0, v = 0.0;
    for (Index c = 0; c < C; ++c) m += x[r * C + c];
    m /= static_cast<double>(C);
    for (Index c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= static_cast<double>(C);
    for (Index c = 0; c < C; ++c) y[r * C + c] = (x[r * C + c] - m) / std::sqrt(v + eps) * w[c] + b[c];
  }
  return y;
}

TEST(LayerNormTest, ForwardMatchesNaive) {
  const DynTensor<double> x = test::uniform(Shape{2, 3, 7}, 1, -2.0, 3.0);
  const DynTensor<double> w = test::uniform(Shape{7}, 2, 0.5, 1.5), b = test::uniform(Shape{7}, 3);
  for (double eps : {1e-5, 1e-12, 0.5}) {
    Tape<double> tape;
    Var<double> y = layer_norm(tape.constant(x), tape.constant(w), tape.constant(b), eps);
    const DynTensor<double> ref = naive_layer_norm(x, w, b, eps);
    ASSERT_EQ(y.shape(), x.shape());
    // O(1) values, a handful of roundings in either order.
    for (Index i = 0; i < x.numel(); ++i) EXPECT_NEAR(y.value()[i], ref[i], 1e-14) << "eps " << eps;
  }
}

TEST(LayerNormTest, ForwardSavesMeanAndRstd) {
  const DynTensor<double> x = test::uniform(Shape{5, 9}, 4);
  const DynTensor<double> w(Shape{9}, 1.0), b(Shape{9}, 0.0);
  DynTensor<double> y(x.shape()), mean(Shape{5}), rstd(Shape{5});
  ops::layer_norm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), 5, 9, 1e-5);
  for (Index r = 0; r < 5; ++r) {
    double m = 0.0, v = 0.0;
    for (Index c = 0; c < 9; ++c) m += x[r * 9 + c] / 9.0;
    for (Index c = 0; c < 9; ++c) v += (x[r * 9 + c] - m) * (x[r * 9 + c] - m) / 9.0;
    EXPECT_NEAR(mean[r], m, 1e-15);
    EXPECT_NEAR(rstd[r], 1.0 / std::sqrt(v + 1e-5), 1e-13);
  }
}

TEST(LayerNormTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return layer_norm(v[0], v[1], v[2], 1e-5); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 6}, 5, -2.0, 2.0), test::uniform(Shape{6}, 6, 0.5, 1.5),
                                    test::uniform(Shape{6}, 7)}));
  // A larger eps and rank-1 x.
  GradCheckFn g = [](Tape<double>&, const std::vector<Var<double>>& v) { return layer_norm(v[0], v[1], v[2], 0.1); };
  EXPECT_TRUE(test::grads_match(g, {test::uniform(Shape{5}, 8), test::uniform(Shape{5}, 9), test::uniform(Shape{5}, 10)}));
}

TEST(LayerNormTest, BackwardOverManyRowBlocksMatchesFormula) {
  // 70 rows of 1024: row blocks of 32, reduced in parallel. Reference: the
  // same gradient written as plain loops over the definition
  //   dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = dy * w,
  //   dw = sum_r dy * xhat, db = sum_r dy.
  const Index R = 70, C = 1024;
  const DynTensor<double> x = test::uniform(Shape{R, C}, 11, -2.0, 2.0), w = test::uniform(Shape{C}, 12),
                          b = test::uniform(Shape{C}, 13), dy = test::uniform(Shape{R, C}, 14);
  Tape<double> tape;
  Var<double> vx = tape.leaf(x), vw = tape.leaf(w), vb = tape.leaf(b);
  tape.backward(layer_norm(vx, vw, vb, 1e-5), dy);
  DynTensor<double> dx(x.shape()), dw = DynTensor<double>::zeros(w.shape()), db = DynTensor<double>::zeros(b.shape());
  for (Index r = 0; r < R; ++r) {
    double m = 0.0, v = 0.0;
    for (Index c = 0; c < C; ++c) m += x[r * C + c] / static_cast<double>(C);
    for (Index c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m) / static_cast<double>(C);
    const double rs = 1.0 / std::sqrt(v + 1e-5);
    double mdn = 0.0, mdnx = 0.0;
    for (Index c = 0; c < C; ++c) {
      const double xh = (x[r * C + c] - m) * rs, dn = dy[r * C + c] * w[c];
      mdn += dn / static_cast<double>(C);
      mdnx += dn * xh / static_cast<double>(C);
      dw[c] += dy[r * C + c] * xh;
      db[c] += dy[r * C + c];
    }
    for (Index c = 0; c < C; ++c) {
      const double xh = (x[r * C + c] - m) * rs;
      dx[r * C + c] = rs * (dy[r * C + c] * w[c] - mdn - xh * mdnx);
    }
  }
  // Sums of up to 1024 O(1) terms in a different order: 1e-12 absolute.
  for (Index i = 0; i < x.numel(); ++i) ASSERT_NEAR(vx.grad()[i], dx[i], 1e-12) << "dx at " << i;
  for (Index c = 0; c < C; ++c) {
    ASSERT_NEAR(vw.grad()[c], dw[c], 1e-12) << "dw at " << c;
    ASSERT_NEAR(vb.grad()[c], db[c], 1e-12) << "db at " << c;
  }
}

TEST(LayerNormTest, BadShapesAndEpsAreRejected) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::uniform(Shape{2, 4}, 1));
  Var<double> w4 = tape.constant(DynTensor<double>(Shape{4}, 1.0)), w3 = tape.constant(DynTensor<double>(Shape{3}, 1.0));
  EXPECT_TRUE(test::throws_with([&] { layer_norm(x, w3, w4); }, {"layer_norm", "weight", "[3]", "[2, 4]"}));
  EXPECT_TRUE(test::throws_with([&] { layer_norm(x, w4, w3); }, {"layer_norm", "bias", "[3]", "[2, 4]"}));
  EXPECT_TRUE(test::throws_with([&] { layer_norm(x, w4, w4, -1.0); }, {"layer_norm", "eps", "-1"}));
}

}  // namespace
}  // namespace qaware
