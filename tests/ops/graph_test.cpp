// Small graphs built from several ops: fan-out (one Var used several
// times), residual connections, and a tiny attention block, each checked
// against finite differences in double; fan-out also against the exact
// derivative.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops_test_util.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/gelu.hpp"
#include "qaware/ops/layer_norm.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/ops/matmul.hpp"
#include "qaware/ops/mean.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/permute.hpp"
#include "qaware/ops/reshape.hpp"
#include "qaware/ops/scale.hpp"
#include "qaware/ops/softmax.hpp"
#include "qaware/ops/sub.hpp"

namespace qaware {
namespace {

TEST(GraphTest, FanOutAccumulatesEveryUse) {
  // y = x * x + x - 3x: x is used four times; dy/dx = 2x + 1 - 3 = 2x - 2.
  Tape<double> tape;
  const DynTensor<double> xv = test::uniform(Shape{2, 5}, 1);
  Var<double> x = tape.leaf(xv);
  Var<double> y = x * x + x - scale(x, 3.0);
  tape.backward(y, DynTensor<double>(y.shape(), 1.0));
  for (Index i = 0; i < xv.numel(); ++i) EXPECT_NEAR(x.grad()[i], 2.0 * xv[i] - 2.0, 1e-15);

  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    Var<double> h = v[0] * v[1];
    return h * h + mean(h) * v[0];  // h used three times, x twice, a broadcast scalar
  };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{3, 4}, 2), test::uniform(Shape{4}, 3)}));
}

TEST(GraphTest, ResidualBlockMatchesFiniteDifferences) {
  // out = layer_norm(x + W2 gelu(W1 x + b1) + b2): the residual adds the
  // block's input to its output, so x receives two gradient contributions.
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    Var<double> h = v[0] + linear(gelu(linear(v[0], v[1], v[2])), v[3], v[4]);
    return layer_norm(h, v[5], v[6]);
  };
  EXPECT_TRUE(test::grads_match(
      f, {test::uniform(Shape{2, 3, 4}, 1), test::uniform(Shape{6, 4}, 2), test::uniform(Shape{6}, 3),
          test::uniform(Shape{4, 6}, 4), test::uniform(Shape{4}, 5), test::uniform(Shape{4}, 6, 0.5, 1.5),
          test::uniform(Shape{4}, 7)}));
}

TEST(GraphTest, TinyAttentionMatchesFiniteDifferences) {
  // B = 2, T = 3, C = 4, NH = 2, HS = 2; batch 1 has its last key padded.
  const Index B = 2, T = 3, C = 4, NH = 2, HS = 2;
  DynTensor<double> pad = DynTensor<double>::zeros(Shape{B, 1, 1, T});
  pad[B * T - 1] = -std::numeric_limits<double>::infinity();
  GradCheckFn f = [&](Tape<double>& tape, const std::vector<Var<double>>& v) {
    auto heads = [&](Var<double> t) { return permute(reshape(t, Shape{B, T, NH, HS}), {0, 2, 1, 3}); };
    Var<double> q = heads(linear(v[0], v[1])), k = heads(linear(v[0], v[2])), vv = heads(linear(v[0], v[3]));
    Var<double> p = softmax(scale(matmul(q, k, false, true), 1.0 / std::sqrt(double(HS))), tape.constant(pad));
    Var<double> ctx = reshape(transpose(matmul(p, vv), 1, 2), Shape{B, T, C});
    return v[0] + ctx;
  };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{B, T, C}, 1), test::uniform(Shape{C, C}, 2),
                                    test::uniform(Shape{C, C}, 3), test::uniform(Shape{C, C}, 4)}));
}

}  // namespace
}  // namespace qaware
