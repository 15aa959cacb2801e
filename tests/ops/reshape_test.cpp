// reshape: same elements, new shape; the gradient flows back unchanged.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/reshape.hpp"

namespace qaware {
namespace {

TEST(ReshapeTest, KeepsRowMajorOrder) {
  Tape<double> tape;
  const DynTensor<double> xv = test::iota(Shape{2, 3, 4});
  Var<double> y = reshape(tape.constant(xv), Shape{4, 6});
  ASSERT_EQ(y.shape(), Shape({4, 6}));
  for (Index i = 0; i < 24; ++i) EXPECT_EQ(y.value()[i], static_cast<double>(i));
  Var<double> s = reshape(tape.constant(DynTensor<double>(Shape{1, 1}, 3.0)), Shape{});
  EXPECT_EQ(s.item(), 3.0);
}

TEST(ReshapeTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return reshape(v[0], Shape{6, 2, 2}); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4}, 1)}));
}

TEST(ReshapeTest, ElementCountMismatchNamesShapes) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::iota(Shape{2, 3}));
  EXPECT_TRUE(test::throws_with([&] { reshape(x, Shape{4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"}));
}

}  // namespace
}  // namespace qaware
