// mul with broadcasting: forward, backward (da = dy b, db = dy a), operator*,
// and the same Var on both sides (x * x).

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/mul.hpp"

namespace qaware {
namespace {

TEST(MulTest, MatchesReferenceOnEveryBroadcastCase) {
  test::check_broadcast_op([](Var<double> a, Var<double> b) { return mul(a, b); },
                           [](double a, double b) { return a * b; }, [](double, double b) { return b; },
                           [](double a, double) { return a; });
}

TEST(MulTest, SquareThroughOneVarGetsBothContributions) {
  Tape<double> tape;
  const DynTensor<double> xv = test::uniform(Shape{5}, 3);
  Var<double> x = tape.leaf(xv);
  Var<double> y = x * x;
  tape.backward(y, DynTensor<double>(y.shape(), 1.0));
  for (Index i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(x.grad()[i], 2.0 * xv[i]);
}

TEST(MulTest, IncompatibleShapesNameBoth) {
  Tape<double> tape;
  Var<double> a = tape.constant(test::uniform(Shape{3}, 1)), b = tape.constant(test::uniform(Shape{2}, 2));
  EXPECT_TRUE(test::throws_with([&] { a * b; }, {"mul", "[3]", "[2]"}));
}

}  // namespace
}  // namespace qaware
