// gelu (erf and tanh forms): forward against the scalar formulas with the C
// library's erf/tanh and against values from PyTorch, backward against
// finite differences, float accuracy over a large parallel array.

#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.hpp"
#include "qaware/ops/gelu.hpp"

namespace qaware {
namespace {

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
  const double pi = 3.14159265358979323846;
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

TEST(GeluTest, DoubleForwardMatchesScalarFormulas) {
  const DynTensor<double> x = test::uniform(Shape{4, 50}, 1, -6.0, 6.0);
  Tape<double> tape;
  Var<double> ye = gelu(tape.constant(x));
  Var<double> yt = gelu(tape.constant(x), GeluApprox::Tanh);
  for (Index i = 0; i < x.numel(); ++i) {
    // Same C library functions, different association: a few ulp.
    EXPECT_NEAR(ye.value()[i], gelu_erf(x[i]), 1e-15 * (1 + std::abs(x[i]))) << x[i];
    EXPECT_NEAR(yt.value()[i], gelu_tanh(x[i]), 1e-15 * (1 + std::abs(x[i]))) << x[i];
  }
}

TEST(GeluTest, MatchesPyTorchValues) {
  // torch.nn.functional.gelu(torch.tensor([-3., -1., -0.5, 0., 0.5, 1., 3.], dtype=torch.float64))
  // and the same with approximate='tanh' (PyTorch 1.13).
  const double xs[] = {-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0};
  const double erf_ref[] = {-0.00404969409489031, -0.15865525393145702, -0.15426876936299344, 0.0,
                            0.34573123063700656,  0.841344746068543,    2.99595030590511};
  const double tanh_ref[] = {-0.0036373920817729943, -0.15880800939172324, -0.15428599017485606, 0.0,
                             0.34571400982514394,    0.8411919906082768,   2.996362607918227};
  Tape<double> tape;
  Var<double> x = tape.constant(DynTensor<double>::from(Shape{7}, xs));
  Var<double> ye = gelu(x), yt = gelu(x, GeluApprox::Tanh);
  for (int i = 0; i < 7; ++i) {
    // Printed with repr (shortest round-trip); 1e-15 allows a few ulp of
    // association difference between PyTorch's kernel and ours.
    EXPECT_NEAR(ye.value()[i], erf_ref[i], 1e-15) << xs[i];
    EXPECT_NEAR(yt.value()[i], tanh_ref[i], 1e-15) << xs[i];
  }
}

TEST(GeluTest, FloatForwardIsAccurateOnALargeArray) {
  // 100000 elements (several parallel chunks). Eigen's float erf/tanh are
  // rational approximations good to a few ulp; 2e-6 absolute + 1e-6
  // relative leaves margin over |x| <= 8.
  const DynTensor<double> x = test::uniform(Shape{100000}, 2, -8.0, 8.0);
  const DynTensor<float> xf = x.cast<float>();
  Tape<float> tape;
  Var<float> ye = gelu(tape.constant(xf)), yt = gelu(tape.constant(xf), GeluApprox::Tanh);
  for (Index i = 0; i < x.numel(); ++i) {
    const double xi = static_cast<double>(xf[i]);
    ASSERT_NEAR(ye.value()[i], gelu_erf(xi), 2e-6 + 1e-6 * std::abs(gelu_erf(xi))) << xi;
    ASSERT_NEAR(yt.value()[i], gelu_tanh(xi), 2e-6 + 1e-6 * std::abs(gelu_tanh(xi))) << xi;
  }
}

TEST(GeluTest, BackwardMatchesFiniteDifferences) {
  for (GeluApprox approx : {GeluApprox::Erf, GeluApprox::Tanh}) {
    GradCheckFn f = [approx](Tape<double>&, const std::vector<Var<double>>& v) { return gelu(v[0], approx); };
    EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{3, 20}, 3, -5.0, 5.0)}))
        << (approx == GeluApprox::Erf ? "erf" : "tanh");
  }
}

TEST(GeluTest, FloatBackwardMatchesDoubleBackward) {
  // The float derivative (Eigen's erf/tanh/exp) against the double one.
  const DynTensor<double> x = test::uniform(Shape{50000}, 4, -6.0, 6.0);
  for (GeluApprox approx : {GeluApprox::Erf, GeluApprox::Tanh}) {
    Tape<double> td;
    Var<double> xd = td.leaf(x.cast<float>().cast<double>());
    td.backward(gelu(xd, approx), DynTensor<double>(x.shape(), 1.0));
    Tape<float> tf;
    Var<float> xf = tf.leaf(x.cast<float>());
    tf.backward(gelu(xf, approx), DynTensor<float>(x.shape(), 1.0f));
    // gelu' is in [-0.17, 1.13]; over [-10, 10] the float derivative is
    // within 2.3e-7 of the double one (measured on a 2e6-point grid), so
    // 5e-7 absolute (~4 float ulps at 1) leaves margin.
    for (Index i = 0; i < x.numel(); ++i) ASSERT_NEAR(xf.grad()[i], xd.grad()[i], 5e-7) << xd.value()[i];
  }
}

}  // namespace
}  // namespace qaware
