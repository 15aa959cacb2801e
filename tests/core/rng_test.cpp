// qaware::Rng: xoshiro256** seeded by splitmix64, checked against values
// computed independently from the published algorithms; stream identity and
// snapshots; the distributions' moments and shapes within statistical bounds.
//
// Statistical bounds: each test draws n = 100000 samples from a fixed seed,
// so it is deterministic; the bound is chosen so that a correct generator
// with an arbitrary seed would exceed it with probability about 1e-6 (5
// standard errors for means, variances and frequencies; the asymptotic
// Kolmogorov-Smirnov tail 2 exp(-2 n D^2) = 1e-6 for distribution shapes).
// A wrong distribution (wrong scale, shift, truncation or a biased mapping)
// misses these bounds by far.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"

namespace qaware {
namespace {

constexpr int kN = 100000;
// Kolmogorov-Smirnov bound for n = kN at a false-alarm rate of 1e-6.
const double kKsBound = std::sqrt(std::log(2.0 / 1e-6) / (2.0 * kN));

constexpr double kPi = 3.14159265358979323846;
double phi(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * kPi); }  // standard normal pdf
double Phi(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }       // standard normal cdf

struct Moments {
  double mean = 0, var = 0, skew = 0, exkurt = 0;
};
Moments moments(const std::vector<double>& x) {
  Moments m;
  const double n = static_cast<double>(x.size());
  for (double v : x) m.mean += v;
  m.mean /= n;
  double m2 = 0, m3 = 0, m4 = 0;
  for (double v : x) {
    const double d = v - m.mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  m.var = m2;
  m.skew = m3 / std::pow(m2, 1.5);
  m.exkurt = m4 / (m2 * m2) - 3.0;
  return m;
}

// Largest distance between the empirical CDF of x and cdf.
template <typename Cdf>
double ks_distance(std::vector<double> x, Cdf cdf) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, static_cast<double>(i + 1) / n - f, f - static_cast<double>(i) / n});
  }
  return d;
}

// --- Known answers -------------------------------------------------------------
// Expected values from tools/rng_reference.py, an independent Python
// implementation of splitmix64 seeding and xoshiro256** 1.0 written from
// https://prng.di.unimi.it/ (run: /usr/bin/python3 tools/rng_reference.py).

TEST(RngTest, MatchesReferenceXoshiro256StarStar) {
  const std::uint64_t seed0[6] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL,
                                  0x6aa594f1262d2d2cULL, 0xbba5ad4a1f842e59ULL, 0xffef8375d9ebcacaULL};
  const std::uint64_t seed42[6] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL, 0xae17533239e499a1ULL,
                                   0xecb8ad4703b360a1ULL, 0xfde6dc7fe2ec5e64ULL, 0xc50da53101795238ULL};
  const std::uint64_t seed5eed[6] = {0xef33f17055244b74ULL, 0xe1f591112fb5051bULL, 0xd8ab05640214863aULL,
                                     0xf985e1f2fb897b03ULL, 0xaf87a5f7e6ce1408ULL, 0x86f28e3a0746ff9eULL};
  Rng a(0), b(42), c;  // the default seed is 0x5eed
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(a.next_u64(), seed0[i]) << i;
    EXPECT_EQ(b.next_u64(), seed42[i]) << i;
    EXPECT_EQ(c.next_u64(), seed5eed[i]) << i;
  }
  Rng d(42);
  EXPECT_EQ(d.next_u32(), 0x15780b2eu);  // the high 32 bits of the first output
}

TEST(RngTest, UniformMatchesReference) {
  // (x >> 11) * 2^-53 is exact in double, so the comparison is exact.
  Rng r(42);
  EXPECT_EQ(r.uniform(), 0.08386297105988216);
  EXPECT_EQ(r.uniform(), 0.3789802506626686);
  EXPECT_EQ(r.uniform(), 0.6800434110281394);
}

TEST(RngTest, NormalMatchesReferencePolarMethod) {
  // The polar method calls log(); libm's log may differ by an ulp between
  // machines, which moves the result by a few ulps, hence rtol 1e-14.
  const double expected[4] = {-0.7262191382447857, -0.21119691823195985, 0.2216227015035933,
                              0.5227716877560146};
  Rng r(42);
  for (double e : expected) EXPECT_NEAR(r.normal(), e, 1e-14 * std::abs(e));
}

// --- Streams -------------------------------------------------------------------

TEST(RngTest, SameSeedSameStream) {
  Rng a(123456789), b(123456789);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.next_u64(), b.next_u64()) << i;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.normal(), b.normal()) << i;
}

TEST(RngTest, DifferentSeedsGiveDifferentStreams) {
  std::set<std::uint64_t> firsts;
  for (std::uint64_t seed = 0; seed < 1000; ++seed) firsts.insert(Rng(seed).next_u64());
  EXPECT_EQ(firsts.size(), 1000u);
  // Adjacent seeds share none of their first 100 outputs.
  Rng a(7), b(8);
  std::set<std::uint64_t> sa;
  for (int i = 0; i < 100; ++i) sa.insert(a.next_u64());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sa.count(b.next_u64()), 0u);
}

TEST(RngTest, SnapshotRestoreResumesTheExactStream) {
  Rng r(99);
  for (int i = 0; i < 3; ++i) r.normal();  // an odd count leaves a spare normal pending
  const Rng::Snapshot snap = r.snapshot();
  auto draw = [](Rng& g) {
    std::vector<double> v;
    for (int i = 0; i < 20; ++i) {
      v.push_back(g.normal());
      v.push_back(g.uniform());
      v.push_back(static_cast<double>(g.next_u64() >> 11));
      v.push_back(g.truncated_normal(0.0, 1.0, -0.5, 2.0));
    }
    return v;
  };
  const std::vector<double> first = draw(r);
  r.restore(snap);
  EXPECT_EQ(draw(r), first);
  Rng other(1);
  other.restore(snap);
  EXPECT_EQ(draw(other), first);
}

TEST(RngTest, ReseedDropsThePendingSpare) {
  Rng r(5);
  r.normal();  // leaves a spare
  r.reseed(9);
  Rng fresh(9);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.normal(), fresh.normal());
  EXPECT_EQ(r.next_u64(), fresh.next_u64());
}

// --- Distributions -------------------------------------------------------------

TEST(RngTest, UniformMomentsAndShape) {
  Rng r(2024);
  std::vector<double> x(kN);
  for (double& v : x) {
    v = r.uniform();
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
  }
  const Moments m = moments(x);
  // U(0,1): mean 1/2, variance 1/12. SE(mean) = sqrt(1/12 / n);
  // SE(var) = sqrt((mu4 - sigma^4) / n) with mu4 = 1/80.
  EXPECT_NEAR(m.mean, 0.5, 5 * std::sqrt(1.0 / 12 / kN));
  EXPECT_NEAR(m.var, 1.0 / 12, 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / kN));
  EXPECT_LT(ks_distance(x, [](double v) { return v; }), kKsBound);

  // uniform(lo, hi) is the same stream mapped affinely.
  Rng a(11), b(11);
  for (int i = 0; i < 1000; ++i) {
    const double v = a.uniform(-3.0, 5.0);
    EXPECT_EQ(v, -3.0 + 8.0 * b.uniform());
    EXPECT_GE(v, -3.0);
    EXPECT_LT(v, 5.0);
  }
}

TEST(RngTest, NormalMomentsAndShape) {
  Rng r(77);
  std::vector<double> x(kN);
  for (double& v : x) v = r.normal();
  const Moments m = moments(x);
  // N(0,1): SE(mean) = 1/sqrt(n), SE(var) = sqrt(2/n), SE(skew) ~ sqrt(6/n),
  // SE(excess kurtosis) ~ sqrt(24/n).
  EXPECT_NEAR(m.mean, 0.0, 5 / std::sqrt(double(kN)));
  EXPECT_NEAR(m.var, 1.0, 5 * std::sqrt(2.0 / kN));
  EXPECT_NEAR(m.skew, 0.0, 5 * std::sqrt(6.0 / kN));
  EXPECT_NEAR(m.exkurt, 0.0, 5 * std::sqrt(24.0 / kN));
  EXPECT_LT(ks_distance(x, Phi), kKsBound);

  // normal(mean, stddev) = mean + stddev * normal() on the same stream.
  Rng a(12), b(12);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.normal(3.0, 0.25), 3.0 + 0.25 * b.normal());
}

// Mean and variance of N(mu, sigma) truncated to [lo, hi] (textbook formulas).
void truncated_moments(double mu, double sigma, double lo, double hi, double* mean, double* var) {
  const double a = (lo - mu) / sigma, b = (hi - mu) / sigma;
  const double z = Phi(b) - Phi(a);
  const double pa = std::isfinite(a) ? phi(a) : 0.0, pb = std::isfinite(b) ? phi(b) : 0.0;
  const double apa = std::isfinite(a) ? a * pa : 0.0, bpb = std::isfinite(b) ? b * pb : 0.0;
  const double d = (pa - pb) / z;
  *mean = mu + sigma * d;
  *var = sigma * sigma * (1.0 + (apa - bpb) / z - d * d);
}

void check_truncated(double mu, double sigma, double lo, double hi, std::uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "N(" << mu << ", " << sigma << ") on [" << lo << ", " << hi << "]");
  Rng r(seed);
  std::vector<double> x(kN);
  for (double& v : x) {
    v = r.truncated_normal(mu, sigma, lo, hi);
    ASSERT_GE(v, lo);
    ASSERT_LE(v, hi);
  }
  double mean, var;
  truncated_moments(mu, sigma, lo, hi, &mean, &var);
  const Moments m = moments(x);
  // SE(mean) = sqrt(var / n). A truncated normal has lighter tails than a
  // normal (excess kurtosis <= 0), so SE(var) <= sqrt(2 / n) * var.
  EXPECT_NEAR(m.mean, mean, 5 * std::sqrt(var / kN));
  EXPECT_NEAR(m.var, var, 5 * std::sqrt(2.0 / kN) * var);
  const double z = Phi((hi - mu) / sigma) - Phi((lo - mu) / sigma);
  auto cdf = [&](double v) { return (Phi((v - mu) / sigma) - Phi((lo - mu) / sigma)) / z; };
  EXPECT_LT(ks_distance(x, cdf), kKsBound);
}

TEST(RngTest, TruncatedNormalMomentsAndBounds) {
  check_truncated(0.0, 1.0, -1.0, 2.0, 31);  // asymmetric, both sides cut
  check_truncated(0.0, 0.02, -0.04, 0.04, 32);  // BERT's initializer range
  check_truncated(1.0, 0.5, 1.5, std::numeric_limits<double>::infinity(), 33);  // upper tail only
}

TEST(RngTest, TruncatedNormalRejectsBadArguments) {
  Rng r(1);
  EXPECT_THROW(r.truncated_normal(0, 1, 1.0, 1.0), Error);   // empty interval
  EXPECT_THROW(r.truncated_normal(0, 1, 2.0, -2.0), Error);  // reversed
  EXPECT_THROW(r.truncated_normal(0, 0, -1.0, 1.0), Error);  // stddev 0
  EXPECT_THROW(r.truncated_normal(0, 1, 7.0, 9.0), Error);   // far tail
  // These hold ~1e-9 of the mass; rejection sampling would practically never end.
  EXPECT_THROW(r.truncated_normal(0, 1, 5.9, 6.1), Error);
  EXPECT_THROW(r.truncated_normal(0, 1, 0.0, 1e-9), Error);
  try {
    r.truncated_normal(0, 1, 5.9, 6.1);
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("truncated_normal"), std::string::npos) << m;
    EXPECT_NE(m.find("5.9"), std::string::npos) << m;
    EXPECT_NE(m.find("6.1"), std::string::npos) << m;
  }
}

TEST(RngTest, BelowIsUniformAndBernoulliHasRateP) {
  Rng r(4);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < kN; ++i) {
    const std::uint64_t k = r.below(10);
    ASSERT_LT(k, 10u);
    ++counts[k];
  }
  // Each count is Binomial(n, 0.1): sd = sqrt(n * 0.1 * 0.9).
  for (int c : counts) EXPECT_NEAR(c, kN / 10, 5 * std::sqrt(kN * 0.09));
  EXPECT_EQ(r.below(1), 0u);
  EXPECT_THROW(r.below(0), Error);

  int hits = 0;
  for (int i = 0; i < kN; ++i) hits += r.bernoulli(0.3) ? 1 : 0;
  EXPECT_NEAR(hits, 0.3 * kN, 5 * std::sqrt(kN * 0.3 * 0.7));
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(r.bernoulli(0.0));
    EXPECT_TRUE(r.bernoulli(1.0));
  }
}

// --- Initialisers --------------------------------------------------------------

TEST(RngInitTest, FillBuffersFromTheStreamInOrder) {
  DynTensor<float> f({7, 5});
  Rng r(8), ref(8);
  init::uniform(f, r, -0.1, 0.1);
  for (Index i = 0; i < f.numel(); ++i) EXPECT_EQ(f[i], static_cast<float>(ref.uniform(-0.1, 0.1)));

  Tensor<double, 2> t(4, 6);
  init::normal(t, r, 1.0, 2.0);
  for (Index i = 0; i < t.size(); ++i) EXPECT_EQ(t.data()[i], ref.normal(1.0, 2.0));

  DynTensor<double> g({50});
  init::truncated_normal(g, r, 0.0, 0.02, -0.04, 0.04);
  for (Index i = 0; i < g.numel(); ++i) {
    EXPECT_EQ(g[i], ref.truncated_normal(0.0, 0.02, -0.04, 0.04));
    EXPECT_LE(std::abs(g[i]), 0.04);
  }
}

TEST(RngInitTest, RejectBadArguments) {
  DynTensor<float> f({3});
  Rng r(1);
  EXPECT_THROW(init::uniform(f, r, 1.0, -1.0), Error);
  EXPECT_THROW(init::normal(f, r, 0.0, -1.0), Error);
  EXPECT_THROW(init::truncated_normal(f, r, 0.0, 1.0, 1.0, -1.0), Error);
}

}  // namespace
}  // namespace qaware
