// cross_entropy: forward against a naive log-softmax, ignore_index (default
// and custom), all targets ignored (defined as 0), large logits, backward
// against finite differences, and target/shape errors; with class
// probabilities as targets the same, plus rows of zeros and the equivalence
// with integer targets for one-hot probabilities.

#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.hpp"
#include "qaware/ops/cross_entropy.hpp"

namespace qaware {
namespace {

// Mean over non-ignored rows of -log softmax(row)[target], by the definition.
double naive_ce(const DynTensor<double>& logits, const DynTensor<std::int64_t>& t, std::int64_t ignore) {
  const Index C = logits.shape().dim(-1), R = logits.numel() / C;
  double total = 0.0;
  Index n = 0;
  for (Index r = 0; r < R; ++r) {
    if (t[r] == ignore) continue;
    double s = 0.0;
    for (Index c = 0; c < C; ++c) s += std::exp(logits[r * C + c]);
    total += -std::log(std::exp(logits[r * C + t[r]]) / s);
    ++n;
  }
  return total / static_cast<double>(n);
}

TEST(CrossEntropyTest, ForwardMatchesNaiveWithIgnoredTargets) {
  const DynTensor<double> logits = test::uniform(Shape{2, 3, 5}, 1, -3.0, 3.0);
  const DynTensor<std::int64_t> t = test::ints(Shape{2, 3}, {4, -100, 0, 2, 2, -100});
  Tape<double> tape;
  Var<double> loss = cross_entropy(tape.constant(logits), t);
  EXPECT_EQ(loss.shape(), Shape{});
  // exp/log of O(1) values, 4 rows: 1e-14.
  EXPECT_NEAR(loss.item(), naive_ce(logits, t, -100), 1e-14);

  const DynTensor<std::int64_t> custom = test::ints(Shape{2, 3}, {4, 1, 0, 2, 3, 3});
  Var<double> l3 = cross_entropy(tape.constant(logits), custom, 3);
  EXPECT_NEAR(l3.item(), naive_ce(logits, custom, 3), 1e-14);
}

TEST(CrossEntropyTest, AllIgnoredGivesZeroLossAndZeroGradient) {
  Tape<double> tape;
  Var<double> logits = tape.leaf(test::uniform(Shape{3, 4}, 2));
  Var<double> loss = cross_entropy(logits, test::ints(Shape{3}, {-100, -100, -100}));
  EXPECT_EQ(loss.item(), 0.0);  // PyTorch: NaN; qaware: 0
  tape.backward(loss);
  for (Index i = 0; i < 12; ++i) EXPECT_EQ(logits.grad()[i], 0.0);
}

TEST(CrossEntropyTest, LargeLogitsAreStable) {
  Tape<float> tape;
  DynTensor<float> logits(Shape{1, 3});
  logits[0] = 1000.0f;
  logits[1] = 1001.0f;
  logits[2] = 1002.0f;
  Var<float> loss = cross_entropy(tape.constant(logits), test::ints(Shape{1}, {0}));
  // -log softmax = 2 + log(1 + e^-1 + e^-2) = 2.4076059644...; no float
  // value near 1000 (ulp 6e-5) is formed, so float rounding is ~1e-7.
  EXPECT_NEAR(loss.item(), 2.4076059644443806, 1e-6);
}

TEST(CrossEntropyTest, BackwardMatchesFiniteDifferences) {
  const DynTensor<std::int64_t> t = test::ints(Shape{2, 3}, {4, -100, 0, 2, 2, 1});
  GradCheckFn f = [&t](Tape<double>&, const std::vector<Var<double>>& v) { return cross_entropy(v[0], t); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 5}, 3, -2.0, 2.0)}));
  const DynTensor<std::int64_t> one = test::ints(Shape{}, {2});
  GradCheckFn g = [&one](Tape<double>&, const std::vector<Var<double>>& v) { return cross_entropy(v[0], one); };
  EXPECT_TRUE(test::grads_match(g, {test::uniform(Shape{4}, 4)}));
}

TEST(CrossEntropyTest, BackwardIsSoftmaxMinusOneHotOverCount) {
  // 300 rows of 50 classes in float (the parallel path) against the
  // closed form (softmax - onehot) / n in double.
  const Index R = 300, C = 50;
  const DynTensor<double> x = test::uniform(Shape{R, C}, 5, -4.0, 4.0);
  DynTensor<std::int64_t> t(Shape{R});
  Index n = 0;
  for (Index r = 0; r < R; ++r) {
    t[r] = r % 7 == 0 ? -100 : (r * 13) % C;
    n += t[r] != -100;
  }
  Tape<float> tape;
  Var<float> logits = tape.leaf(x.cast<float>());
  tape.backward(cross_entropy(logits, t));
  for (Index r = 0; r < R; ++r) {
    double s = 0.0;
    for (Index c = 0; c < C; ++c) s += std::exp(static_cast<double>(static_cast<float>(x[r * C + c])));
    for (Index c = 0; c < C; ++c) {
      double ref = 0.0;
      if (t[r] != -100)
        ref = (std::exp(static_cast<double>(static_cast<float>(x[r * C + c]))) / s - (c == t[r] ? 1.0 : 0.0)) /
              static_cast<double>(n);
      // Gradients are O(1/n) = O(4e-3); float relative error ~1e-6.
      ASSERT_NEAR(logits.grad()[r * C + c], ref, 1e-8) << r << ", " << c;
    }
  }
}

TEST(CrossEntropyTest, BadTargetsAreRejected) {
  Tape<double> tape;
  Var<double> logits = tape.constant(test::uniform(Shape{2, 5}, 1));
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, test::ints(Shape{2}, {1, 5})); },
                                {"cross_entropy", "target 5", "C = 5"}));
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, test::ints(Shape{2}, {-1, 0})); },
                                {"cross_entropy", "target -1", "ignore_index = -100"}));
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, test::ints(Shape{2, 1}, {1, 2})); },
                                {"cross_entropy", "[2, 1]", "[2]", "[2, 5]"}));
}

// Soft targets: (1 / R) * sum_r sum_c -p[r, c] * log softmax(row)[c], by the definition.
double naive_soft_ce(const DynTensor<double>& logits, const DynTensor<double>& p) {
  const Index C = logits.shape().dim(-1), R = logits.numel() / C;
  double total = 0.0;
  for (Index r = 0; r < R; ++r) {
    double s = 0.0;
    for (Index c = 0; c < C; ++c) s += std::exp(logits[r * C + c]);
    for (Index c = 0; c < C; ++c) total -= p[r * C + c] * std::log(std::exp(logits[r * C + c]) / s);
  }
  return total / static_cast<double>(R);
}

// Rows of a softmax of random values (probabilities), row 1 all zeros.
DynTensor<double> soft_targets(Shape s, std::uint64_t seed) {
  DynTensor<double> p = test::uniform(s, seed, -2.0, 2.0);
  const Index C = s.dim(-1), R = p.numel() / C;
  for (Index r = 0; r < R; ++r) {
    double sum = 0.0;
    for (Index c = 0; c < C; ++c) sum += p[r * C + c] = std::exp(p[r * C + c]);
    for (Index c = 0; c < C; ++c) p[r * C + c] = r == 1 ? 0.0 : p[r * C + c] / sum;
  }
  return p;
}

TEST(SoftCrossEntropyTest, ForwardMatchesNaiveAndZeroRowsCountInTheMean) {
  const DynTensor<double> logits = test::uniform(Shape{2, 3, 5}, 1, -3.0, 3.0);
  const DynTensor<double> p = soft_targets(Shape{2, 3, 5}, 2);
  Tape<double> tape;
  Var<double> loss = cross_entropy(tape.constant(logits), p);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.item(), naive_soft_ce(logits, p), 1e-14);
  // The zero row adds nothing to the sum but divides it: 6 rows, not 5.
  double five = 0.0;
  for (Index r = 0; r < 6; ++r) {
    if (r == 1) continue;
    DynTensor<double> lr(Shape{1, 5}), pr(Shape{1, 5});
    for (Index c = 0; c < 5; ++c) lr[c] = logits[r * 5 + c], pr[c] = p[r * 5 + c];
    five += naive_soft_ce(lr, pr);
  }
  EXPECT_NEAR(loss.item(), five / 6.0, 1e-14);
}

TEST(SoftCrossEntropyTest, OneHotProbabilitiesEqualIntegerTargets) {
  // With no ignored rows both means run over all R rows.
  const DynTensor<double> logits = test::uniform(Shape{4, 7}, 3, -3.0, 3.0);
  const DynTensor<std::int64_t> t = test::ints(Shape{4}, {6, 0, 3, 3});
  DynTensor<double> p(Shape{4, 7});
  for (Index i = 0; i < p.numel(); ++i) p[i] = 0.0;
  for (Index r = 0; r < 4; ++r) p[r * 7 + t[r]] = 1.0;
  Tape<double> tape;
  Var<double> a = tape.leaf(logits), b = tape.leaf(logits);
  Var<double> la = cross_entropy(a, p), lb = cross_entropy(b, t);
  EXPECT_NEAR(la.item(), lb.item(), 1e-15);
  tape.backward(la + lb);
  for (Index i = 0; i < logits.numel(); ++i) EXPECT_NEAR(a.grad()[i], b.grad()[i], 1e-16) << i;
}

TEST(SoftCrossEntropyTest, BackwardMatchesFiniteDifferences) {
  // Rows that do not sum to 1 (0.5 and 2 times a distribution) too: the
  // gradient is softmax * mass - p.
  DynTensor<double> p = soft_targets(Shape{2, 3, 5}, 4);
  for (Index c = 0; c < 5; ++c) p[2 * 5 + c] *= 0.5, p[3 * 5 + c] *= 2.0;
  GradCheckFn f = [&p](Tape<double>&, const std::vector<Var<double>>& v) { return cross_entropy(v[0], p); };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{2, 3, 5}, 5, -2.0, 2.0)}));
}

TEST(SoftCrossEntropyTest, FloatParallelPathMatchesClosedForm) {
  // 300 rows of 50 classes in float against (softmax - p) / R in double.
  const Index R = 300, C = 50;
  const DynTensor<double> x = test::uniform(Shape{R, C}, 6, -4.0, 4.0);
  const DynTensor<double> p = soft_targets(Shape{R, C}, 7);
  Tape<float> tape;
  Var<float> logits = tape.leaf(x.cast<float>());
  const DynTensor<float> pf = p.cast<float>();
  Var<float> loss = cross_entropy(logits, pf);
  DynTensor<double> xf(Shape{R, C}), pd(Shape{R, C});
  for (Index i = 0; i < R * C; ++i) xf[i] = static_cast<float>(x[i]), pd[i] = pf[i];
  // A mean of O(4) terms in float: 1e-5 relative.
  EXPECT_NEAR(loss.item(), naive_soft_ce(xf, pd), 1e-5 * naive_soft_ce(xf, pd));
  tape.backward(loss);
  for (Index r = 0; r < R; ++r) {
    double s = 0.0, mass = 0.0;
    for (Index c = 0; c < C; ++c) s += std::exp(xf[r * C + c]), mass += pd[r * C + c];
    for (Index c = 0; c < C; ++c) {
      const double ref = (mass * std::exp(xf[r * C + c]) / s - pd[r * C + c]) / static_cast<double>(R);
      // Gradients are O(1/R) = O(3e-3); float relative error ~1e-6.
      ASSERT_NEAR(logits.grad()[r * C + c], ref, 1e-8) << r << ", " << c;
    }
  }
}

TEST(SoftCrossEntropyTest, BadProbabilitiesAreRejected) {
  Tape<double> tape;
  Var<double> logits = tape.constant(test::uniform(Shape{2, 5}, 1));
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, DynTensor<double>(Shape{2, 4})); },
                                {"cross_entropy", "[2, 4]", "[2, 5]"}));
  EXPECT_TRUE(test::throws_with(
      [&] { cross_entropy(tape.constant(DynTensor<double>(Shape{2, 0})), DynTensor<double>(Shape{2, 0})); },
      {"cross_entropy", "[2, 0]", "no classes"}));
  DynTensor<double> p = soft_targets(Shape{2, 5}, 8);
  p[7] = -0.25;
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, p); }, {"cross_entropy", "-0.25", "row 1", "class 2"}));
  p[7] = std::nan("");
  EXPECT_TRUE(test::throws_with([&] { cross_entropy(logits, p); }, {"cross_entropy", "nan", "row 1", "class 2"}));
}

}  // namespace
}  // namespace qaware
