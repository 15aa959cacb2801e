// tanh: the forward against std::tanh (double: to a few ulp; float: Eigen's
// vectorised tanh, within a few float ulp), the backward against finite
// differences and against its formula 1 - y^2.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops_test_util.hpp"
#include "qaware/ops/sum.hpp"
#include "qaware/ops/tanh.hpp"

namespace qaware {
namespace {

using test::grads_match;
using test::uniform;

TEST(TanhTest, ForwardMatchesStdTanh) {
  // Sizes past a vector width and past the parallel grain; |x| up to 12 reaches
  // the saturated tails.
  for (Index n : {Index(1), Index(17), Index(70001)}) {
    const DynTensor<double> xd = uniform(Shape{n}, 1, -12.0, 12.0);
    DynTensor<float> xf(Shape{n});
    for (Index i = 0; i < n; ++i) xf[i] = static_cast<float>(xd[i]);
    Tape<double> td;
    Tape<float> tf;
    const Var<double> yd = tanh(td.constant(xd));
    const Var<float> yf = tanh(tf.constant(xf));
    for (Index i = 0; i < n; ++i) {
      ASSERT_NEAR(yd.value()[i], std::tanh(xd[i]), 4 * std::numeric_limits<double>::epsilon()) << i;
      ASSERT_NEAR(yf.value()[i], std::tanh(static_cast<double>(xf[i])), 4 * std::numeric_limits<float>::epsilon())
          << "n " << n << " at " << i << " x " << xf[i];
    }
  }
}

TEST(TanhTest, BackwardMatchesFiniteDifferencesAndItsFormula) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return tanh(v[0]); };
  EXPECT_TRUE(grads_match(f, {uniform(Shape{3, 5}, 2, -3.0, 3.0)}));
  Tape<double> tape;
  Param<double> x(Shape{9});
  x.value() = uniform(Shape{9}, 3, -2.0, 2.0);
  tape.backward(sum(tanh(tape.param(x))));
  for (Index i = 0; i < 9; ++i) {
    const double y = std::tanh(x.value()[i]);
    EXPECT_NEAR(x.grad()[i], 1.0 - y * y, 1e-15) << i;
  }
}

}  // namespace
}  // namespace qaware
