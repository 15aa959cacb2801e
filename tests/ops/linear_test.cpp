// linear: the forward against the definition in double, the float forward
// (the float GEMM where the CPU has it) against the same definition, the
// backward against finite differences, the overwrite modes against
// accumulation into zeros, and bad shapes.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops_test_util.hpp"
#include "qaware/ops/linear.hpp"

namespace qaware {
namespace {

using test::grads_match;
using test::throws_with;
using test::uniform;

// y[r][o] = sum_i x[r][i] w[o][i] (+ b[o]), in double.
std::vector<double> naive_linear(const double* x, const double* w, const double* b, Index R, Index IN, Index OUT) {
  std::vector<double> y(static_cast<std::size_t>(R * OUT));
  for (Index r = 0; r < R; ++r)
    for (Index o = 0; o < OUT; ++o) {
      double s = b ? b[o] : 0.0;
      for (Index i = 0; i < IN; ++i) s += x[r * IN + i] * w[o * IN + i];
      y[static_cast<std::size_t>(r * OUT + o)] = s;
    }
  return y;
}

TEST(LinearTest, ForwardMatchesTheDefinitionRank3WithAndWithoutBias) {
  const DynTensor<double> x = uniform(Shape{2, 3, 7}, 1), w = uniform(Shape{5, 7}, 2), b = uniform(Shape{5}, 3);
  for (bool with_bias : {true, false}) {
    Tape<double> tape;
    const Var<double> y = with_bias ? linear(tape.constant(x), tape.constant(w), tape.constant(b))
                                    : linear(tape.constant(x), tape.constant(w));
    ASSERT_EQ(y.shape(), Shape({2, 3, 5}));
    const std::vector<double> ref = naive_linear(x.data(), w.data(), with_bias ? b.data() : nullptr, 6, 7, 5);
    for (Index i = 0; i < 30; ++i) EXPECT_NEAR(y.value()[i], ref[static_cast<std::size_t>(i)], 1e-14) << i;
  }
}

// float: sizes around the float GEMM's register blocks and a deep K; the
// error bound is float accumulation over K terms of O(1) products.
TEST(LinearTest, FloatForwardMatchesTheDefinitionOverShapes) {
  const Index shapes[][3] = {{1, 1, 1}, {3, 17, 5}, {16, 64, 48}, {33, 300, 31}, {8, 1030, 9}};
  for (const auto& s : shapes) {
    const Index R = s[0], IN = s[1], OUT = s[2];
    const DynTensor<float> x = uniform<float>(Shape{R, IN}, 4), w = uniform<float>(Shape{OUT, IN}, 5),
                           b = uniform<float>(Shape{OUT}, 6);
    std::vector<double> xd(x.data(), x.data() + x.numel()), wd(w.data(), w.data() + w.numel()),
        bd(b.data(), b.data() + b.numel());
    Tape<float> tape;
    const Var<float> y = linear(tape.constant(x), tape.constant(w), tape.constant(b));
    const std::vector<double> ref = naive_linear(xd.data(), wd.data(), bd.data(), R, IN, OUT);
    const double tol = 4.0 * std::sqrt(static_cast<double>(IN)) * std::ldexp(1.0, -24) * static_cast<double>(IN);
    for (Index i = 0; i < R * OUT; ++i)
      ASSERT_NEAR(y.value()[i], ref[static_cast<std::size_t>(i)], tol) << R << "x" << IN << "x" << OUT << " at " << i;
  }
}

TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn with_bias = [](Tape<double>&, const std::vector<Var<double>>& v) { return linear(v[0], v[1], v[2]); };
  EXPECT_TRUE(grads_match(with_bias, {uniform(Shape{2, 3, 4}, 7), uniform(Shape{5, 4}, 8), uniform(Shape{5}, 9)}));
  GradCheckFn no_bias = [](Tape<double>&, const std::vector<Var<double>>& v) { return linear(v[0], v[1]); };
  EXPECT_TRUE(grads_match(no_bias, {uniform(Shape{6, 4}, 10), uniform(Shape{3, 4}, 11)}));
  // x and W one node: both gradient contributions reach it.
  GradCheckFn shared = [](Tape<double>&, const std::vector<Var<double>>& v) { return linear(v[0], v[0]); };
  EXPECT_TRUE(grads_match(shared, {uniform(Shape{4, 4}, 12)}));
}

// Overwriting dx / dw gives what accumulating into zeros gives, bit for bit
// (float, so the float GEMM's path is the one checked where the CPU has it).
TEST(LinearTest, OverwriteEqualsAccumulatingIntoZeros) {
  const Index R = 19, IN = 70, OUT = 23;
  const DynTensor<float> x = uniform<float>(Shape{R, IN}, 13), w = uniform<float>(Shape{OUT, IN}, 14),
                         dy = uniform<float>(Shape{R, OUT}, 15);
  std::vector<float> dx0(static_cast<std::size_t>(R * IN), 0.0f), dw0(static_cast<std::size_t>(OUT * IN), 0.0f),
      db0(static_cast<std::size_t>(OUT), 0.0f);
  std::vector<float> dx1(dx0.size(), 7.0f), dw1(dw0.size(), -3.0f), db1(db0.size(), 0.0f);
  ops::linear_backward(dy.data(), x.data(), w.data(), dx0.data(), dw0.data(), db0.data(), R, IN, OUT);
  ops::linear_backward(dy.data(), x.data(), w.data(), dx1.data(), dw1.data(), db1.data(), R, IN, OUT, true, true);
  EXPECT_EQ(dx0, dx1);
  EXPECT_EQ(dw0, dw1);
  EXPECT_EQ(db0, db1);
}

TEST(LinearTest, BadShapesNameTheShapes) {
  Tape<double> tape;
  const Var<double> x = tape.constant(uniform(Shape{2, 3}, 1));
  EXPECT_TRUE(throws_with([&] { linear(x, tape.constant(uniform(Shape{4, 5}, 2))); }, {"[2, 3]", "[4, 5]", "expects 5"}));
  EXPECT_TRUE(throws_with([&] { linear(x, tape.constant(uniform(Shape{4, 3, 1}, 2))); }, {"(OUT, IN)", "[4, 3, 1]"}));
  EXPECT_TRUE(throws_with([&] { linear(x, tape.constant(uniform(Shape{4, 3}, 2)), tape.constant(uniform(Shape{5}, 3))); },
                          {"bias [5]", "[4, 3]"}));
}

}  // namespace
}  // namespace qaware
