// Tape mechanics: reverse-order backward, += accumulation across fan-out,
// gradients only where needed, Params receiving gradients in place, clearing,
// and grad slots (a first write that overwrites a fresh buffer, or a Param's
// gradient left as a pending zero by zero_grad()).

#include <vector>

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

TEST(TapeTest, GradSlotIsFreshOnlyForTheFirstWriteToANodesOwnBuffer) {
  Param<double> p(filled({2, 2}, 1.0, 1.0));
  Tape<double> tape;
  Var<double> x = tape.leaf(filled({3, 2}, 0.5, 0.5));
  Var<double> c = tape.constant(filled({3, 2}, 0.0, 1.0));
  Var<double> w = tape.param(p);
  EXPECT_FALSE(tape.has_grad(x));
  const auto first = tape.grad_slot(x);
  EXPECT_TRUE(first.fresh);
  EXPECT_TRUE(tape.has_grad(x));  // counts as having a gradient once handed out
  for (Index i = 0; i < 6; ++i) first.data[i] = 2.0;
  const auto second = tape.grad_slot(x);
  EXPECT_FALSE(second.fresh);
  EXPECT_EQ(second.data, first.data);
  EXPECT_EQ(tape.grad(x)[5], 2.0);
  // A Param's gradient is external and holds earlier steps: never fresh.
  const auto ps = tape.grad_slot(w);
  EXPECT_FALSE(ps.fresh);
  EXPECT_EQ(ps.data, p.grad().data());
  // A node that needs no gradient has no slot.
  EXPECT_THROW(tape.grad_slot(c), Error);
  EXPECT_EQ(tape.grad_slot_if_needed(c).data, nullptr);
  EXPECT_FALSE(tape.grad_slot_if_needed(c).fresh);
}

TEST(TapeTest, ZeroGradIsAPendingZeroThatAGradSlotOverwrites) {
  Param<double> p(filled({2, 3}, 0.5, -0.25));
  for (Index i = 0; i < 6; ++i) p.grad()[i] = 7.0;  // an earlier step's gradient
  p.zero_grad();
  {
    // The first slot overwrites (no fill, no read); later ones accumulate.
    Tape<double> tape;
    Var<double> w = tape.param(p);
    const auto first = tape.grad_slot(w);
    EXPECT_TRUE(first.fresh);
    EXPECT_EQ(first.data, p.grad().data());
    for (Index i = 0; i < 6; ++i) first.data[i] = static_cast<double>(i);
    const auto second = tape.grad_slot(w);
    EXPECT_FALSE(second.fresh);
    EXPECT_EQ(p.grad()[5], 5.0);
  }
  // Read before any slot, a pending zero reads as zeros (const access too),
  // and a slot then accumulates into them.
  p.zero_grad();
  const Param<double>& cp = p;
  for (double g : cp.grad()) EXPECT_EQ(g, 0.0);
  Tape<double> tape;
  EXPECT_FALSE(tape.grad_slot(tape.param(p)).fresh);
}

TEST(TapeTest, ZeroGradBetweenStepsGivesEachStepsOwnGradient) {
  // The fan-out graph of FanOutAccumulatesBothPaths, twice with zero_grad()
  // between: the second gradient equals the first (the overwrite of the
  // pending zero comes first, the second use of A adds to it).
  Param<double> a(filled({3, 3}, 0.1, 0.07));
  std::vector<double> grads[2];
  for (int step = 0; step < 2; ++step) {
    a.zero_grad();
    Tape<double> tape;
    Var<double> x = tape.leaf(filled({2, 3}, -0.3, 0.11));
    Var<double> pa = tape.param(a);
    Var<double> y = linear(linear(x, pa), pa);
    tape.backward(y, DynTensor<double>(y.shape(), 1.0));
    grads[step].assign(a.grad().data(), a.grad().data() + 9);
  }
  EXPECT_EQ(grads[0], grads[1]);
  EXPECT_NE(grads[0], std::vector<double>(9, 0.0));
}

TEST(TapeTest, GradOnAFreshNodeIsZerosEvenOnRecycledMemory) {
  // Grad slots are uninitialised; grad() must still zero-fill. Free a large
  // buffer full of garbage first so the buffer cache may hand it back.
  const Shape s{256, 256};
  { DynTensor<double> junk(s, 12345.0); }
  Tape<double> tape;
  Var<double> x = tape.leaf(DynTensor<double>(s, 1.0));
  const DynTensor<double>& g = tape.grad(x);
  for (Index i = 0; i < g.numel(); ++i) ASSERT_EQ(g[i], 0.0) << "at " << i;
  // A later slot on it accumulates.
  EXPECT_FALSE(tape.grad_slot(x).fresh);
}

TEST(TapeTest, SameNodeAsBothInputsOverwritesThenAccumulates) {
  // y = x W^T with W = x (square): the backward writes dx first (fresh) and
  // adds dW into the same buffer; both terms must be there.
  Tape<double> tape;
  const DynTensor<double> xv = filled({3, 3}, -0.4, 0.1);
  Var<double> x = tape.leaf(xv);
  Var<double> y = linear(x, x);
  const DynTensor<double> dy = filled({3, 3}, 0.3, -0.05);
  tape.backward(y, dy);
  // d/dx sum(dy * x x^T) = dy x + dy^T x.
  for (Index i = 0; i < 3; ++i)
    for (Index k = 0; k < 3; ++k) {
      double e = 0.0;
      for (Index j = 0; j < 3; ++j) e += dy[i * 3 + j] * xv[j * 3 + k] + dy[j * 3 + i] * xv[j * 3 + k];
      EXPECT_NEAR(x.grad()[i * 3 + k], e, 1e-15);
    }
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
