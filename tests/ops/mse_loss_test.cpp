// mse_loss: forward against a plain loop, backward against finite
// differences (both inputs), shape errors.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/mse_loss.hpp"

namespace qaware {
namespace {

TEST(MseLossTest, ForwardIsMeanSquaredDifference) {
  const DynTensor<double> a = test::uniform(Shape{3, 7}, 1), b = test::uniform(Shape{3, 7}, 2);
  Tape<double> tape;
  Var<double> loss = mse_loss(tape.constant(a), tape.constant(b));
  double s = 0.0;
  for (Index i = 0; i < 21; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.item(), s / 21.0, 1e-15);  // 21 O(1) terms, another order
}

TEST(MseLossTest, ForwardOnManyBlocks) {
  // 10000 elements: three blocks. Each float difference is rounded once
  // (relative 6e-8, so 1.2e-7 on its square); squares are summed in double
  // and the mean rounded to float once: at most 1.8e-7 relative.
  const DynTensor<float> a = test::uniform<float>(Shape{100, 100}, 3), b = test::uniform<float>(Shape{100, 100}, 4);
  Tape<float> tape;
  Var<float> loss = mse_loss(tape.constant(a), tape.constant(b));
  double s = 0.0;
  for (Index i = 0; i < a.numel(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  EXPECT_NEAR(loss.item(), s / 1e4, 2e-7 * s / 1e4);  // float differences, final rounding
}

TEST(MseLossTest, BackwardMatchesFiniteDifferences) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return mse_loss(v[0], v[1]); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4}, 5), test::uniform(Shape{2, 3, 4}, 6)}));
}

TEST(MseLossTest, ShapesMustMatch) {
  Tape<double> tape;
  Var<double> a = tape.constant(test::uniform(Shape{2, 3}, 1)), b = tape.constant(test::uniform(Shape{3}, 2));
  EXPECT_TRUE(test::throws_with([&] { mse_loss(a, b); }, {"mse_loss", "[2, 3]", "[3]"}));
}

}  // namespace
}  // namespace qaware
