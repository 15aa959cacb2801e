// add with broadcasting (the shared machinery in ops/detail/broadcast.hpp):
// forward against a naive index map, backward against finite differences
// and the chain rule, operator+, and the error message.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/add.hpp"

namespace qaware {
namespace {

TEST(AddTest, MatchesReferenceOnEveryBroadcastCase) {
  test::check_broadcast_op([](Var<double> a, Var<double> b) { return add(a, b); },
                           [](double a, double b) { return a + b; }, [](double, double) { return 1.0; },
                           [](double, double) { return 1.0; });
}

TEST(AddTest, OperatorPlusIsAdd) {
  Tape<double> tape;
  Var<double> a = tape.leaf(test::uniform(Shape{2, 3}, 1)), b = tape.leaf(test::uniform(Shape{3}, 2));
  Var<double> y = a + b;
  for (Index i = 0; i < 6; ++i) EXPECT_EQ(y.value()[i], a.value()[i] + b.value()[i % 3]);
  tape.backward(y, DynTensor<double>(y.shape(), 1.0));
  for (Index i = 0; i < 3; ++i) EXPECT_EQ(b.grad()[i], 2.0);  // summed over the 2 rows
}

TEST(AddTest, IncompatibleShapesNameBoth) {
  Tape<double> tape;
  Var<double> a = tape.constant(test::uniform(Shape{2, 3}, 1)), b = tape.constant(test::uniform(Shape{4}, 2));
  EXPECT_TRUE(test::throws_with([&] { add(a, b); }, {"add", "[2, 3]", "[4]", "3 vs 4"}));
}

}  // namespace
}  // namespace qaware
