// sub with broadcasting: forward, backward (db gets -dy) and operator-.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/sub.hpp"

namespace qaware {
namespace {

TEST(SubTest, MatchesReferenceOnEveryBroadcastCase) {
  test::check_broadcast_op([](Var<double> a, Var<double> b) { return sub(a, b); },
                           [](double a, double b) { return a - b; }, [](double, double) { return 1.0; },
                           [](double, double) { return -1.0; });
}

TEST(SubTest, OperatorMinusIsSub) {
  Tape<double> tape;
  Var<double> a = tape.leaf(test::uniform(Shape{2, 1, 3}, 1)), b = tape.leaf(test::uniform(Shape{4, 1}, 2));
  Var<double> y = a - b;
  ASSERT_EQ(y.shape(), Shape({2, 4, 3}));
  tape.backward(y, DynTensor<double>(y.shape(), 1.0));
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(b.grad()[i], -6.0);  // -1 from each of 2 x 3 outputs
  for (Index i = 0; i < 6; ++i) EXPECT_EQ(a.grad()[i], 4.0);
}

TEST(SubTest, IncompatibleShapesNameBoth) {
  Tape<double> tape;
  Var<double> a = tape.constant(test::uniform(Shape{2, 3, 5}, 1)), b = tape.constant(test::uniform(Shape{2, 1, 4}, 2));
  EXPECT_TRUE(test::throws_with([&] { a - b; }, {"sub", "[2, 3, 5]", "[2, 1, 4]"}));
}

}  // namespace
}  // namespace qaware
