// scale: y = alpha * x.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/scale.hpp"

namespace qaware {
namespace {

TEST(ScaleTest, ForwardMultipliesEveryElement) {
  Tape<double> tape;
  const DynTensor<double> xv = test::uniform(Shape{3, 4}, 1);
  Var<double> y = scale(tape.constant(xv), -0.375);
  ASSERT_EQ(y.shape(), xv.shape());
  for (Index i = 0; i < xv.numel(); ++i) EXPECT_EQ(y.value()[i], -0.375 * xv[i]);
}

TEST(ScaleTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return scale(v[0], 0.125); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4}, 2)}));
}

TEST(ScaleTest, FloatVarTakesADoubleLiteral) {
  // alpha does not take part in deduction: Scalar comes from the Var.
  Tape<float> tape;
  Var<float> x = tape.leaf(DynTensor<float>(Shape{70000}, 2.0f));  // several parallel chunks
  Var<float> y = scale(x, 0.5);
  for (Index i = 0; i < y.numel(); ++i) ASSERT_EQ(y.value()[i], 1.0f);
  tape.backward(y, DynTensor<float>(y.shape(), 4.0f));
  for (Index i = 0; i < x.numel(); ++i) ASSERT_EQ(x.grad()[i], 2.0f);
}

}  // namespace
}  // namespace qaware
