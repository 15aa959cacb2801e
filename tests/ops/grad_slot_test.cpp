// Grad slots: an op's first write into an input's gradient overwrites a
// fresh (uninitialised) buffer instead of adding into zeros. For every op
// that does so, in float (the AVX2 paths) and double:
// - the gradient is bitwise the one accumulated into a zero-filled buffer
//   (tape.grad(x) asked for before backward forces that path), signed
//   zeros included;
// - with fan-out, y = opA(x) + opB(x), the first write overwrites and the
//   second accumulates: x's gradient is bitwise the one accumulated into
//   zeros, and gA + gB (each computed alone) up to rounding.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <functional>

#include "ops_test_util.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/dropout.hpp"
#include "qaware/ops/gelu.hpp"
#include "qaware/ops/layer_norm.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/ops/matmul.hpp"
#include "qaware/ops/mse_loss.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/permute.hpp"
#include "qaware/ops/reshape.hpp"
#include "qaware/ops/scale.hpp"
#include "qaware/ops/softmax.hpp"
#include "qaware/ops/sub.hpp"

namespace qaware {
namespace grad_slot_test {  // a named namespace: this file shares a unity build
namespace {

template <typename Scalar>
using Op = std::function<Var<Scalar>(Var<Scalar>)>;

// x's gradient from y = op(x) with a fixed random seed gradient; `zeroed`
// asks for tape.grad(x) first, so every write into it accumulates.
template <typename Scalar>
DynTensor<Scalar> grad_of(const Op<Scalar>& op, const DynTensor<Scalar>& xv, bool zeroed) {
  Tape<Scalar> tape;
  Var<Scalar> x = tape.leaf(xv);
  Var<Scalar> y = op(x);
  if (zeroed) tape.grad(x);
  tape.backward(y, test::uniform<Scalar>(y.shape(), 99));
  return x.grad();
}

template <typename Scalar>
::testing::AssertionResult bitwise_equal(const DynTensor<Scalar>& a, const DynTensor<Scalar>& b) {
  if (a.shape() != b.shape()) return ::testing::AssertionFailure() << a.shape().str() << " vs " << b.shape().str();
  for (Index i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(Scalar)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// Both properties for opA and opB (same output shape) on x.
template <typename Scalar>
void check_pair(const char* what, const Op<Scalar>& a, const Op<Scalar>& b, const DynTensor<Scalar>& xv) {
  SCOPED_TRACE(what);
  const DynTensor<Scalar> ga = grad_of(a, xv, false), gb = grad_of(b, xv, false);
  EXPECT_TRUE(bitwise_equal(ga, grad_of(a, xv, true)));
  EXPECT_TRUE(bitwise_equal(gb, grad_of(b, xv, true)));
  const Op<Scalar> both = [&](Var<Scalar> x) { return add(a(x), b(x)); };
  const DynTensor<Scalar> g = grad_of(both, xv, false);
  EXPECT_TRUE(bitwise_equal(g, grad_of(both, xv, true)));
  // The second write may fuse its product into the add (FMA), so gA + gB
  // rounded separately can differ in the last place.
  const double tol = std::is_same_v<Scalar, float> ? 1e-6 : 1e-15;
  for (Index i = 0; i < g.numel(); ++i)
    ASSERT_NEAR(g[i], ga[i] + gb[i], tol * (1.0 + std::abs(static_cast<double>(ga[i]) + gb[i]))) << "at " << i;
}

template <typename Scalar>
Var<Scalar> constant(Var<Scalar> like, Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  return like.tape().constant(test::uniform<Scalar>(std::move(s), seed, lo, hi));
}

template <typename Scalar>
void check_all_families() {
  using V = Var<Scalar>;
  const DynTensor<Scalar> x2 = test::uniform<Scalar>(Shape{6, 8}, 1);
  const DynTensor<Scalar> x3 = test::uniform<Scalar>(Shape{2, 6, 8}, 2);
  // K <= 256 (one KC block of the float GEMM), so gA + gB is what the
  // accumulating GEMM computes.
  check_pair<Scalar>(
      "linear + matmul", [](V x) { return linear(x, constant(x, Shape{5, 8}, 3), constant(x, Shape{5}, 4)); },
      [](V x) { return matmul(x, constant(x, Shape{8, 5}, 5)); }, x3);
  check_pair<Scalar>(
      "linear weight + matmul b", [](V w) { return linear(constant(w, Shape{4, 8}, 6), w); },
      [](V w) { return matmul(constant(w, Shape{4, 8}, 7), w, false, true); }, x2);
  check_pair<Scalar>(
      "batched matmul a (transposed) + b", [](V x) { return matmul(x, constant(x, Shape{2, 6, 8}, 8), true, false); },
      [](V x) { return matmul(constant(x, Shape{2, 8, 6}, 9), x); }, x3);
  check_pair<Scalar>(
      "shared-b matmul: transposed a (db summed over batches) + one stacked GEMM",
      [](V w) { return matmul(constant(w, Shape{2, 6, 5}, 10), w, true, false); },
      [](V w) { return matmul(constant(w, Shape{2, 5, 6}, 11), w); }, x2);
  check_pair<Scalar>("gelu + scale", [](V x) { return gelu(x); }, [](V x) { return scale(x, Scalar(-0.75)); }, x3);
  check_pair<Scalar>("gelu tanh + mul", [](V x) { return gelu(x, GeluApprox::Tanh); },
                     [](V x) { return mul(x, constant(x, Shape{2, 6, 8}, 12)); }, x3);
  check_pair<Scalar>(
      "softmax + layer_norm", [](V x) { return softmax(x); },
      [](V x) { return layer_norm(x, constant(x, Shape{8}, 13, 0.5, 1.5), constant(x, Shape{8}, 14)); }, x3);
  check_pair<Scalar>("permute + reshape", [](V x) { return permute(x, {0, 2, 1}); },
                     [](V x) { return reshape(x, Shape{2, 8, 6}); }, x3);
  check_pair<Scalar>(
      "add (row broadcast on the other side) + sub (x subtracted)",
      [](V x) { return add(x, constant(x, Shape{8}, 15)); }, [](V x) { return sub(constant(x, Shape{2, 6, 8}, 16), x); },
      x3);
  check_pair<Scalar>(
      "dropout + mul (x broadcast on the other side)",
      [](V x) {
        Rng rng(17);
        return dropout(x, Scalar(0.3), rng, true);
      },
      [](V x) { return mul(constant(x, Shape{2, 6, 8}, 18), x); }, x3);
  check_pair<Scalar>(
      "mse_loss a + mse_loss b", [](V x) { return mse_loss(x, constant(x, Shape{2, 6, 8}, 19)); },
      [](V x) { return mse_loss(constant(x, Shape{2, 6, 8}, 20), x); }, x3);
}

TEST(GradSlotTest, FirstWriteOverwritesSecondAccumulatesFloat) { check_all_families<float>(); }
TEST(GradSlotTest, FirstWriteOverwritesSecondAccumulatesDouble) { check_all_families<double>(); }

TEST(GradSlotTest, BroadcastInputStillAccumulatesIntoZeros) {
  // x is the broadcast operand (its gradient is a sum over rows): it goes
  // through the zero-filled Tape::grad, and first + second uses still add.
  const DynTensor<double> xv = test::uniform(Shape{8}, 21);
  for (auto op : std::vector<Op<double>>{
           [](Var<double> x) { return add(constant(x, Shape{3, 8}, 22), x); },
           [](Var<double> x) { return sub(constant(x, Shape{3, 8}, 23), x); },
           [](Var<double> x) { return mul(constant(x, Shape{3, 8}, 24), x); }}) {
    EXPECT_TRUE(bitwise_equal(grad_of(op, xv, false), grad_of(op, xv, true)));
    GradCheckFn f = [op](Tape<double>&, const std::vector<Var<double>>& v) { return add(op(v[0]), op(v[0])); };
    EXPECT_TRUE(test::grads_match(f, {xv}));
  }
}

TEST(GradSlotTest, SameNodeTwiceInOneOpMatchesFiniteDifferences) {
  // a and b are one node: the slot for b is no longer fresh.
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    Var<double> x = v[0];
    return add(add(x * x, x + x), add(matmul(x, x, false, true), mse_loss(x, x) + sub(x, x)));
  };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{4, 4}, 25)}));
}

}  // namespace
}  // namespace grad_slot_test
}  // namespace qaware
