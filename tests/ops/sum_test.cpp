// sum: to one element and along an axis; forward against plain loops,
// backward against finite differences.

#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.hpp"
#include "qaware/ops/sum.hpp"

namespace qaware {
namespace {

// Sum along `axis` by the definition.
DynTensor<double> naive_sum_axis(const DynTensor<double>& x, int axis, double factor = 1.0) {
  std::vector<Index> ys;
  for (int d = 0; d < x.rank(); ++d)
    if (d != axis) ys.push_back(x.shape()[d]);
  DynTensor<double> y = DynTensor<double>::zeros(Shape(ys));
  for (Index i = 0; i < x.numel(); ++i) {
    const std::vector<Index> xi = test::unravel(i, x.shape());
    Index off = 0;
    for (int d = 0; d < x.rank(); ++d)
      if (d != axis) off = off * x.shape()[d] + xi[static_cast<std::size_t>(d)];
    y[off] += x[i];
  }
  for (Index i = 0; i < y.numel(); ++i) y[i] *= factor;
  return y;
}

TEST(SumTest, AllElementsToOneElement) {
  Tape<double> tape;
  const DynTensor<double> x = test::iota(Shape{3, 4}, 1.0);
  Var<double> s = sum(tape.constant(x));
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.item(), 78.0);  // 1 + ... + 12
}

TEST(SumTest, AlongEachAxisMatchesLoops) {
  const DynTensor<double> x = test::uniform(Shape{3, 4, 5}, 1);
  for (int axis = -3; axis < 3; ++axis) {
    Tape<double> tape;
    Var<double> y = sum(tape.constant(x), axis);
    const DynTensor<double> ref = naive_sum_axis(x, axis < 0 ? axis + 3 : axis);
    ASSERT_EQ(y.shape(), ref.shape()) << "axis " << axis;
    // At most 5 terms, summed in the same order: 1e-15 covers any reassociation.
    for (Index i = 0; i < ref.numel(); ++i) EXPECT_NEAR(y.value()[i], ref[i], 1e-15) << "axis " << axis;
  }
}

TEST(SumTest, LargeAxisSumsUseEveryPath) {
  // Q == 1 rows, many p with whole rows, and few p with Q split across threads.
  for (const Shape& s : {Shape{300, 257}, Shape{64, 7, 300}, Shape{2, 50, 1000}}) {
    const DynTensor<double> x = test::uniform(s, 2);
    for (int axis : {0, 1}) {
      Tape<double> tape;
      Var<double> y = sum(tape.constant(x), axis);
      const DynTensor<double> ref = naive_sum_axis(x, axis);
      // Up to 300 O(1) terms, possibly reassociated by Eigen's vectorised sum.
      for (Index i = 0; i < ref.numel(); ++i) ASSERT_NEAR(y.value()[i], ref[i], 1e-12) << s.str() << " axis " << axis;
    }
  }
}

TEST(SumTest, FloatTotalOfManyElementsIsAccurate) {
  // 10^6 floats of 0.1: a naive float running sum drifts by ~1%; the sum is
  // accumulated in double, so only the final rounding to float remains
  // (relative 2^-24 ~ 6e-8).
  Tape<float> tape;
  Var<float> s = sum(tape.constant(DynTensor<float>(Shape{1000, 1000}, 0.1f)));
  const double exact = 1e6 * static_cast<double>(0.1f);
  EXPECT_NEAR(s.item(), exact, exact * 6e-8);
}

TEST(SumTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn all = [](Tape<double>&, const std::vector<Var<double>>& v) { return sum(v[0]); };
  EXPECT_TRUE(test::grads_match(all, {test::uniform(Shape{2, 3, 4}, 3)}));
  for (int axis : {0, 1, 2, -1}) {
    GradCheckFn f = [axis](Tape<double>&, const std::vector<Var<double>>& v) { return sum(v[0], axis); };
    EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4}, 4)})) << "axis " << axis;
  }
}

TEST(SumTest, AxisOutOfRangeIsRejected) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::iota(Shape{2, 3}));
  EXPECT_TRUE(test::throws_with([&] { sum(x, 2); }, {"sum", "axis 2", "rank-2"}));
  EXPECT_TRUE(test::throws_with([&] { sum(x, -3); }, {"sum", "axis -3"}));
}

}  // namespace
}  // namespace qaware
