// mean: to one element and along an axis; forward against plain loops,
// backward against finite differences, empty inputs rejected.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/mean.hpp"

namespace qaware {
namespace {

TEST(MeanTest, AllElementsToOneElement) {
  Tape<double> tape;
  Var<double> m = mean(tape.constant(test::iota(Shape{3, 4}, 1.0)));
  EXPECT_EQ(m.shape(), Shape{});
  EXPECT_DOUBLE_EQ(m.item(), 6.5);
}

TEST(MeanTest, AlongAnAxisMatchesLoops) {
  const DynTensor<double> x = test::uniform(Shape{3, 4, 5}, 1);
  Tape<double> tape;
  Var<double> y = mean(tape.constant(x), 1);
  ASSERT_EQ(y.shape(), Shape({3, 5}));
  for (Index p = 0; p < 3; ++p)
    for (Index q = 0; q < 5; ++q) {
      double s = 0.0;
      for (Index a = 0; a < 4; ++a) s += x[(p * 4 + a) * 5 + q];
      EXPECT_NEAR(y.value()[p * 5 + q], s / 4.0, 1e-15);  // 4 terms, then one rounding
    }
  Var<double> last = mean(tape.constant(x), -1);
  ASSERT_EQ(last.shape(), Shape({3, 4}));
  for (Index r = 0; r < 12; ++r) {
    double s = 0.0;
    for (Index q = 0; q < 5; ++q) s += x[r * 5 + q];
    EXPECT_NEAR(last.value()[r], s / 5.0, 1e-15);
  }
}

TEST(MeanTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn all = [](Tape<double>&, const std::vector<Var<double>>& v) { return mean(v[0]); };
  EXPECT_TRUE(test::grads_match(all, {test::uniform(Shape{2, 3, 4}, 3)}));
  for (int axis : {0, 1, -1}) {
    GradCheckFn f = [axis](Tape<double>&, const std::vector<Var<double>>& v) { return mean(v[0], axis); };
    EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4}, 4)})) << "axis " << axis;
  }
}

TEST(MeanTest, EmptyInputsAreRejected) {
  Tape<double> tape;
  Var<double> x = tape.constant(DynTensor<double>(Shape{2, 0, 3}));
  EXPECT_TRUE(test::throws_with([&] { mean(x); }, {"mean", "[2, 0, 3]", "no elements"}));
  EXPECT_TRUE(test::throws_with([&] { mean(x, 1); }, {"mean", "axis 1", "[2, 0, 3]", "empty"}));
}

}  // namespace
}  // namespace qaware
