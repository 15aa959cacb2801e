// permute / transpose: forward against the index definition (row-copy and
// tiled paths, size-1 and merged dimensions), backward against finite
// differences, accumulation, and bad permutations.

#include <gtest/gtest.h>

#include "ops_test_util.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/permute.hpp"

namespace qaware {
namespace {

using test::unravel;

// y[idx] = x[idx mapped back through perm], by the definition.
DynTensor<double> naive_permute(const DynTensor<double>& x, const std::vector<int>& perm) {
  std::vector<Index> ys;
  for (int p : perm) ys.push_back(x.shape()[p]);
  DynTensor<double> y{Shape(ys)};
  for (Index i = 0; i < y.numel(); ++i) {
    const std::vector<Index> yi = unravel(i, y.shape());
    std::vector<Index> xi(perm.size());
    for (std::size_t d = 0; d < perm.size(); ++d) xi[static_cast<std::size_t>(perm[d])] = yi[d];
    Index off = 0;
    for (int d = 0; d < x.rank(); ++d) off = off * x.shape()[d] + xi[static_cast<std::size_t>(d)];
    y[i] = x[off];
  }
  return y;
}

struct PermuteCase {
  Shape shape;
  std::vector<int> perm;
};

TEST(PermuteTest, ForwardMatchesDefinition) {
  const std::vector<PermuteCase> cases = {
      {Shape{2, 5, 3, 4}, {0, 2, 1, 3}},     // attention heads [B,T,NH,HS] -> [B,NH,T,HS]
      {Shape{2, 3, 5, 4}, {0, 2, 1, 3}},     // and back
      {Shape{2, 3, 37, 45}, {0, 1, 3, 2}},   // K^T: the last dimension moves (tiles with edges)
      {Shape{70, 33}, {1, 0}},               // a plain 2-D transpose, 3 x 2 tiles
      {Shape{2, 3, 4}, {2, 1, 0}},           // reversal
      {Shape{2, 3, 4, 5}, {1, 2, 3, 0}},     // rotation: merges to a 2-D transpose
      {Shape{2, 1, 3, 1, 4}, {4, 1, 0, 3, 2}},  // size-1 dimensions dropped
      {Shape{3, 4}, {0, 1}},                 // identity
      {Shape{5}, {0}},
      {Shape{}, {}},
      {Shape{2, 0, 3}, {2, 1, 0}},           // no elements
      {Shape{64, 40, 32}, {1, 0, 2}},        // 81920 elements: parallel row copy
      {Shape{48, 40, 36}, {0, 2, 1}},        // 69120 elements: parallel tiles
  };
  for (const PermuteCase& c : cases) {
    SCOPED_TRACE(c.shape.str() + " perm " + detail::perm_str(c.perm));
    const DynTensor<double> x = test::iota(c.shape);
    Tape<double> tape;
    Var<double> y = permute(tape.constant(x), c.perm);
    const DynTensor<double> ref = naive_permute(x, c.perm);
    ASSERT_EQ(y.shape(), ref.shape());
    for (Index i = 0; i < ref.numel(); ++i) ASSERT_EQ(y.value()[i], ref[i]) << "at " << i;
  }
}

TEST(PermuteTest, BackwardMatchesFiniteDifferences) {
  for (const std::vector<int>& perm : std::vector<std::vector<int>>{{0, 2, 1, 3}, {0, 1, 3, 2}, {3, 1, 0, 2}}) {
    GradCheckFn f = [perm](Tape<double>&, const std::vector<Var<double>>& v) { return permute(v[0], perm); };
    EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 4, 5}, 1)})) << detail::perm_str(perm);
  }
}

TEST(PermuteTest, BackwardAccumulatesIntoExistingGradient) {
  // x feeds two transposes whose outputs are weighted differently; x's
  // gradient is the sum of both inverse moves.
  Tape<double> tape;
  Var<double> x = tape.leaf(test::iota(Shape{40, 36}));
  const DynTensor<double> w = test::uniform(Shape{36, 40}, 2);
  Var<double> y = transpose(x, 0, 1) * tape.constant(w) + transpose(x, -1, -2);
  const DynTensor<double> g = test::uniform(y.shape(), 3);
  tape.backward(y, g);
  for (Index r = 0; r < 40; ++r)
    for (Index c = 0; c < 36; ++c)
      // 1e-15: the compiler may fuse the reference's multiply-add (FMA).
      ASSERT_NEAR(x.grad()[r * 36 + c], g[c * 40 + r] * w[c * 40 + r] + g[c * 40 + r], 1e-15);
}

TEST(PermuteTest, TransposeSwapsTwoDimensions) {
  Tape<double> tape;
  const DynTensor<double> x = test::iota(Shape{2, 3, 4});
  Var<double> y = transpose(tape.constant(x), 0, -1);
  const DynTensor<double> ref = naive_permute(x, {2, 1, 0});
  ASSERT_EQ(y.shape(), ref.shape());
  for (Index i = 0; i < ref.numel(); ++i) EXPECT_EQ(y.value()[i], ref[i]);
}

TEST(PermuteTest, BadPermutationsAreRejected) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::iota(Shape{2, 3, 4}));
  EXPECT_TRUE(test::throws_with([&] { permute(x, {0, 1}); }, {"permute", "{0, 1}", "[2, 3, 4]"}));
  EXPECT_TRUE(test::throws_with([&] { permute(x, {0, 1, 1}); }, {"permute", "{0, 1, 1}"}));
  EXPECT_TRUE(test::throws_with([&] { permute(x, {0, 1, 3}); }, {"permute", "{0, 1, 3}"}));
  EXPECT_TRUE(test::throws_with([&] { transpose(x, 0, 3); }, {"transpose", "axis 3", "rank-3"}));
}

}  // namespace
}  // namespace qaware
