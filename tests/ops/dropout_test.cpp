// dropout: identity outside training, the mask's statistics and scale,
// determinism (seed and thread count), the mask against its definition on
// the AVX2 and scalar paths, the backward's reuse of the mask, finite
// differences with the same seed per evaluation, and bad p.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <utility>

#include "ops_test_util.hpp"
#include "qaware/ops/dropout.hpp"

namespace qaware {
namespace {

TEST(DropoutTest, IdentityWhenNotTrainingOrPZero) {
  Tape<double> tape;
  Var<double> x = tape.leaf(test::uniform(Shape{3, 4}, 1));
  Rng rng(7);
  const Rng::Snapshot before = rng.snapshot();
  EXPECT_EQ(dropout(x, 0.5, rng, false).id(), x.id());
  EXPECT_EQ(dropout(x, 0.0, rng, true).id(), x.id());
  EXPECT_EQ(rng.snapshot().s, before.s);  // no random numbers drawn
  EXPECT_EQ(tape.size(), 1u);
}

TEST(DropoutTest, MaskStatisticsAndScale) {
  // 200000 elements, p = 0.3: the dropped fraction has standard deviation
  // sqrt(0.3 * 0.7 / 200000) ~ 0.001, so |fraction - 0.3| < 0.005 is 5 sigma.
  const double p = 0.3;
  const DynTensor<double> xv = test::uniform(Shape{400, 500}, 2, 0.5, 1.5);  // never 0
  Tape<double> tape;
  Rng rng(123);
  Var<double> y = dropout(tape.constant(xv), p, rng, true);
  Index dropped = 0;
  for (Index i = 0; i < xv.numel(); ++i) {
    if (y.value()[i] == 0.0)
      ++dropped;
    else
      ASSERT_EQ(y.value()[i], xv[i] * (1.0 / (1.0 - p))) << "kept values are scaled by 1 / (1 - p)";
  }
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(xv.numel()), p, 0.005);
  // Neighbouring elements are independent: P(both dropped) ~ p^2 (sd ~ 0.0006 over 100000 pairs).
  Index both = 0;
  for (Index i = 0; i + 1 < xv.numel(); i += 2) both += (y.value()[i] == 0.0 && y.value()[i + 1] == 0.0);
  EXPECT_NEAR(static_cast<double>(both) / static_cast<double>(xv.numel() / 2), p * p, 0.004);
}

TEST(DropoutTest, DeterministicGivenRngStateAndIndependentOfThreads) {
  const DynTensor<float> xv = test::uniform<float>(Shape{50000}, 3);
  auto run = [&](std::uint64_t seed, int threads) {
    set_num_threads(threads);
    Tape<float> tape;
    Rng rng(seed);
    DynTensor<float> out = dropout(tape.constant(xv), 0.1f, rng, true).value();
    set_num_threads(0);
    return out;
  };
  const DynTensor<float> a = run(5, 0), b = run(5, 1), c = run(6, 0);
  Index differ = 0;
  for (Index i = 0; i < xv.numel(); ++i) {
    ASSERT_EQ(a[i], b[i]) << "at " << i;
    differ += a[i] != c[i];
  }
  EXPECT_GT(differ, 1000);  // another seed, another mask (~18% of elements differ)

  // One call draws exactly one number from the Rng.
  Rng used(9), reference(9);
  Tape<float> tape;
  dropout(tape.constant(xv), 0.1f, used, true);
  reference.next_u64();
  EXPECT_EQ(used.snapshot().s, reference.snapshot().s);
}

TEST(DropoutTest, KeptFractionWithinABinomialBound) {
  // 2^20 float elements (the AVX2 path where the CPU has it) for several p:
  // the kept count is Binomial(N, 1 - p); 6 standard deviations.
  const Index N = Index(1) << 20;
  const DynTensor<float> xv(Shape{N}, 1.0f);
  for (const float p : {0.1f, 0.5f, 0.9f}) {
    Tape<float> tape;
    Rng rng(31);
    Var<float> y = dropout(tape.constant(xv), p, rng, true);
    Index kept = 0;
    for (Index i = 0; i < N; ++i) kept += y.value()[i] != 0.0f;
    const double q = 1.0 - static_cast<double>(p), n = static_cast<double>(N);
    EXPECT_LE(std::abs(static_cast<double>(kept) - n * q), 6.0 * std::sqrt(n * q * (1.0 - q))) << "p = " << p;
  }
}

TEST(DropoutTest, OneAndTwoThreadsGiveTheSameMask) {
  // Large enough that two threads split it (several parallel chunks), with
  // a tail that is not a whole mask byte.
  const Index N = 300001;
  const DynTensor<float> xv = test::uniform<float>(Shape{N}, 32, 0.5, 1.5);
  const DynTensor<float> dy = test::uniform<float>(Shape{N}, 33);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tape<float> tape;
    Var<float> x = tape.leaf(xv);
    Rng rng(34);
    Var<float> y = dropout(x, 0.2f, rng, true);
    tape.backward(y, dy);
    set_num_threads(0);
    return std::make_pair(y.value(), x.grad());
  };
  const auto one = run(1), two = run(2);
  for (Index i = 0; i < N; ++i) {
    ASSERT_EQ(one.first[i], two.first[i]) << "at " << i;
    ASSERT_EQ(one.second[i], two.second[i]) << "at " << i;
  }
}

TEST(DropoutTest, MaskFollowsItsDefinitionOnEveryPath) {
  // Element i is kept iff ops::dropout_detail::kept(seed, threshold, i),
  // seed being the one number drawn from the Rng: float (AVX2 where
  // available) and double (scalar) alike, tails included.
  const Index N = 10007;
  const double p = 0.37;
  Rng probe(35);
  const std::uint64_t seed = probe.next_u64();
  const std::uint64_t thr = ops::dropout_detail::threshold(p);
  auto check = [&](auto zero) {
    using S = decltype(zero);
    Tape<S> tape;
    Rng rng(35);
    Var<S> y = dropout(tape.constant(DynTensor<S>(Shape{N}, S(1))), static_cast<S>(p), rng, true);
    for (Index i = 0; i < N; ++i)
      ASSERT_EQ(y.value()[i] != S(0), ops::dropout_detail::kept(seed, thr, i)) << "at " << i;
  };
  check(0.0f);
  check(0.0);
  // The library-wide cap holds float to the scalar loop too.
  const ScopedMaxIsa scalar(Isa::kScalar);
  EXPECT_FALSE(ops::dropout_detail::use_avx2());
  check(0.0f);
}

TEST(DropoutTest, BackwardUsesTheForwardMask) {
  const double p = 0.25;
  Tape<double> tape;
  Var<double> x = tape.leaf(test::uniform(Shape{64, 64}, 4, 0.5, 1.5));
  Rng rng(11);
  Var<double> y = dropout(x, p, rng, true);
  const DynTensor<double> dy = test::uniform(y.shape(), 5);
  tape.backward(y, dy);
  for (Index i = 0; i < x.numel(); ++i) {
    const double expected = y.value()[i] == 0.0 ? 0.0 : dy[i] / (1.0 - p);
    ASSERT_DOUBLE_EQ(x.grad()[i], expected) << "at " << i;
  }
}

TEST(DropoutTest, BackwardMatchesFiniteDifferencesWithTheSameSeed) {
  // Every evaluation builds its Rng from the same seed, so the mask is fixed
  // and the op is linear in x.
  GradCheckFn f = [](Tape<double>&, const std::vector<Var<double>>& v) {
    Rng rng(2024);
    return dropout(v[0], 0.4, rng, true);
  };
  EXPECT_TRUE(test::grads_match(f, {test::uniform(Shape{4, 10}, 6)}));
}

TEST(DropoutTest, PMustBeInZeroOne) {
  Tape<double> tape;
  Var<double> x = tape.constant(test::uniform(Shape{4}, 1));
  Rng rng(1);
  EXPECT_TRUE(test::throws_with([&] { dropout(x, 1.0, rng, true); }, {"dropout", "[0, 1)", "1"}));
  EXPECT_TRUE(test::throws_with([&] { dropout(x, -0.1, rng, false); }, {"dropout", "-0.1"}));
}

}  // namespace
}  // namespace qaware
