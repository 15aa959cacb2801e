// Tape mechanics: reverse-order backward, += accumulation across fan-out,
// gradients only where needed, Params receiving gradients in place, clearing.

#include <gtest/gtest.h>

#include "qaware/autograd/gradcheck.hpp"
#include "qaware/autograd/tape.hpp"
#include "qaware/ops/linear.hpp"

namespace qaware {
namespace {

DynTensor<double> filled(Shape s, double start, double step) {
  DynTensor<double> t(std::move(s));
  for (Index i = 0; i < t.numel(); ++i) t[i] = start + step * static_cast<double>(i);
  return t;
}

TEST(TapeTest, ConstantsNeedNoGradient) {
  Tape<double> tape;
  Var<double> x = tape.constant(filled({2, 3}, 0.1, 0.1));
  Var<double> w = tape.constant(filled({4, 3}, -0.2, 0.05));
  Var<double> y = linear(x, w);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(tape.grad(y), Error);
  EXPECT_THROW(tape.backward(y, DynTensor<double>(y.shape(), 1.0)), Error);
}

TEST(TapeTest, ParamGradientAccumulatesInPlaceAcrossSteps) {
  Param<double> w(filled({2, 3}, 0.5, -0.25));
  Tape<double> tape;
  DynTensor<double> ones({1, 2}, 1.0);
  for (int step = 0; step < 2; ++step) {
    Var<double> x = tape.constant(filled({1, 3}, 1.0, 1.0));  // x = [1, 2, 3]
    Var<double> y = linear(x, tape.param(w));
    tape.backward(y, ones);
    tape.clear();
  }
  // dL/dW = ones^T x, twice (no zero_grad between the steps).
  for (Index o = 0; o < 2; ++o)
    for (Index i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(w.grad()[o * 3 + i], 2.0 * static_cast<double>(i + 1));
  w.zero_grad();
  for (double g : w.grad()) EXPECT_EQ(g, 0.0);
}

TEST(TapeTest, FanOutAccumulatesBothPaths) {
  // y = linear(linear(x, A), B) + ... : the same Param used twice on one tape.
  Param<double> a(filled({3, 3}, 0.1, 0.07));
  Tape<double> tape;
  Var<double> x = tape.leaf(filled({2, 3}, -0.3, 0.11));
  Var<double> pa = tape.param(a);
  Var<double> h = linear(x, pa);
  Var<double> y = linear(h, pa);  // A used twice
  DynTensor<double> seed(y.shape(), 1.0);
  tape.backward(y, seed);
  // Reference: dA = dY^T H + (dY A)^T X with dY = ones.
  Matrix<double> X = x.value().matrix(), A = a.value().matrix(), H = X * A.transpose();
  Matrix<double> dY = Matrix<double>::Ones(2, 3);
  Matrix<double> expected = dY.transpose() * H + (dY * A).transpose() * X;
  for (Index i = 0; i < 9; ++i) EXPECT_NEAR(a.grad()[i], expected(i / 3, i % 3), 1e-12);
}

TEST(TapeTest, FrozenParamGetsNoGradient) {
  Param<double> w(filled({2, 2}, 1.0, 1.0));
  w.set_requires_grad(false);
  Tape<double> tape;
  Var<double> x = tape.leaf(filled({1, 2}, 1.0, 1.0));
  Var<double> y = linear(x, tape.param(w));
  tape.backward(y, DynTensor<double>(y.shape(), 1.0));
  for (double g : w.grad()) EXPECT_EQ(g, 0.0);
  EXPECT_TRUE(tape.has_grad(x));
}

TEST(TapeTest, NoGradModeRecordsNoGradientsAndSameValues) {
  Param<double> w(filled({2, 3}, 0.5, -0.25));
  const DynTensor<double> xv = filled({4, 3}, 0.1, 0.2);
  Tape<double> grad_tape;
  Var<double> y_grad = linear(grad_tape.leaf(xv), grad_tape.param(w));
  EXPECT_TRUE(y_grad.requires_grad());

  Tape<double> tape;
  {
    NoGradGuard<double> guard(tape);
    EXPECT_FALSE(tape.grad_enabled());
    Var<double> x = tape.leaf(xv);
    Var<double> p = tape.param(w);
    Var<double> y = linear(x, p);
    EXPECT_FALSE(x.requires_grad());
    EXPECT_FALSE(p.requires_grad());
    EXPECT_FALSE(y.requires_grad());
    EXPECT_THROW(tape.backward(y, DynTensor<double>(y.shape(), 1.0)), Error);
    // Same numbers as with gradients on: the mode only changes what is recorded.
    for (Index i = 0; i < y.numel(); ++i) EXPECT_EQ(y.value()[i], y_grad.value()[i]);
  }
  EXPECT_TRUE(tape.grad_enabled());  // the guard restores the previous setting
  Var<double> y2 = linear(tape.leaf(xv), tape.param(w));
  EXPECT_TRUE(y2.requires_grad());
  tape.backward(y2, DynTensor<double>(y2.shape(), 1.0));
  for (Index i = 0; i < w.numel(); ++i) EXPECT_NE(w.grad()[i], 0.0);
}

TEST(TapeTest, StaleAndForeignVarsAreRejected) {
  Tape<double> t1, t2;
  Var<double> a = t1.leaf(filled({2}, 1.0, 1.0));
  EXPECT_THROW(t2.value(a), Error);
  t1.clear();
  EXPECT_THROW(t1.value(a), Error);
  Var<double> empty;
  EXPECT_THROW(empty.value(), Error);
}

TEST(TapeTest, BackwardNeedsOneElementLossOrMatchingSeed) {
  Tape<double> tape;
  Var<double> x = tape.leaf(filled({2, 2}, 1.0, 1.0));
  Var<double> w = tape.leaf(filled({2, 2}, 0.5, 0.5));
  Var<double> y = linear(x, w);
  EXPECT_THROW(tape.backward(y), Error);
  EXPECT_THROW(tape.backward(y, DynTensor<double>(Shape{4}, 1.0)), Error);
}

TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return linear(v[0], v[1], v[2]); };
  GradCheckResult r = grad_check(f, {filled({2, 3, 4}, -0.7, 0.13), filled({5, 4}, 0.4, -0.09), filled({5}, 0.1, 0.2)});
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(LinearTest, ShapeMismatchNamesShapes) {
  Tape<double> tape;
  Var<double> x = tape.leaf(filled({2, 3}, 0.0, 1.0));
  Var<double> w = tape.leaf(filled({4, 5}, 0.0, 1.0));
  try {
    linear(x, w);
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qaware
