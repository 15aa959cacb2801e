// select_position: the forward against the definition x[:, t, :], the
// backward against finite differences (the gradient reaches position t
// only), and bad ranks and positions.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/select_position.hpp"
#include "qaware/ops/sum.hpp"

namespace qaware {
namespace {

using test::grads_match;
using test::iota;
using test::throws_with;
using test::uniform;

TEST(SelectPositionTest, ForwardIsTheSlice) {
  const DynTensor<double> x = iota(Shape{2, 3, 4});
  for (Index t = 0; t < 3; ++t) {
    Tape<double> tape;
    const Var<double> y = select_position(tape.constant(x), t);
    ASSERT_EQ(y.shape(), Shape({2, 4}));
    for (Index b = 0; b < 2; ++b)
      for (Index c = 0; c < 4; ++c) EXPECT_EQ(y.value()[b * 4 + c], x[(b * 3 + t) * 4 + c]) << t;
  }
}

TEST(SelectPositionTest, BackwardReachesPositionTOnly) {
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) { return select_position(v[0], 2); };
  EXPECT_TRUE(grads_match(f, {uniform(Shape{2, 4, 3}, 1)}));
  Tape<double> tape;
  Param<double> x(Shape{2, 4, 3});
  tape.backward(sum(select_position(tape.param(x), 1)));
  for (Index i = 0; i < x.value().numel(); ++i) EXPECT_EQ(x.grad()[i], (i / 3) % 4 == 1 ? 1.0 : 0.0) << i;
}

TEST(SelectPositionTest, BadRankAndPositionNameThem) {
  Tape<double> tape;
  EXPECT_TRUE(throws_with([&] { select_position(tape.constant(iota(Shape{2, 3})), 0); }, {"(B, T, C)", "[2, 3]"}));
  EXPECT_TRUE(throws_with([&] { select_position(tape.constant(iota(Shape{2, 3, 4})), 3); },
                          {"position 3", "[2, 3, 4]"}));
  EXPECT_TRUE(throws_with([&] { select_position(tape.constant(iota(Shape{2, 3, 4})), -1); }, {"position -1"}));
}

}  // namespace
}  // namespace qaware
