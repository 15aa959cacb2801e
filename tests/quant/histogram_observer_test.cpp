// HistogramObserver against PyTorch 1.13 (tests/data/fake_quant_histogram.qfx):
// the histogram, min and max after every batch (first batch, same-range
// accumulation, range widening with up/down-sampling, one-sided data,
// ranges inside (-1, 1), an all-equal batch), then the L2 search's range and
// the qparams.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/quant/histogram_observer.hpp"
#include "quant_test_util.hpp"

namespace qaware {
namespace {

using test::Fixture;

const Fixture& fixture() {
  static const Fixture f = Fixture::load("fake_quant_histogram.qfx");
  return f;
}

QuantSpec spec_from(const Fixture& f, const std::string& p) {
  auto i = [&](const char* k) { return f.scalar<std::int64_t>(p + "spec." + k); };
  QuantSpec s;
  s.bits = static_cast<int>(i("bits"));
  s.is_signed = i("signed") != 0;
  s.narrow_range = i("narrow") != 0;
  s.reduce_range = i("reduce") != 0;
  s.symmetric = i("symmetric") != 0;
  return s;
}

TEST(HistogramObserverTest, MatchesTorchBatchByBatch) {
  const Fixture& f = fixture();
  const auto count = f.scalar<std::int64_t>("hist.count");
  ASSERT_GE(count, 8);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("hist", c);
    const QuantSpec spec = spec_from(f, p);
    SCOPED_TRACE(p + spec.str());
    HistogramObserver obs(spec);
    const auto batches = f.scalar<std::int64_t>(p + "batches");
    for (std::int64_t b = 0; b < batches; ++b) {
      const std::string s = std::to_string(b);
      obs.observe(f.get<float>(p + "x" + s));
      const auto want = f.get<float>(p + "histogram" + s);
      ASSERT_EQ(static_cast<Index>(obs.histogram().size()), want.numel());
      // Bin counts and the resampled histograms: bit for bit.
      EXPECT_TRUE(test::bits_equal(obs.histogram().data(), want.data(), want.numel(), "histogram after batch " + s));
      EXPECT_EQ(obs.min_val(), f.scalar<float>(p + "min" + s)) << "after batch " << b;
      EXPECT_EQ(obs.max_val(), f.scalar<float>(p + "max" + s)) << "after batch " << b;
    }
    const auto [lo, hi] = obs.search_range();
    EXPECT_EQ(lo, f.scalar<float>(p + "search_min"));
    EXPECT_EQ(hi, f.scalar<float>(p + "search_max"));
    const QuantParams q = obs.calculate_qparams();
    EXPECT_EQ(q.scale[0], f.get<float>(p + "scale")[0]);
    EXPECT_EQ(q.zero_point[0], f.get<std::int64_t>(p + "zero_point")[0]);

    HistogramObserver copy(spec);
    copy.load_state_dict(obs.state_dict());
    EXPECT_EQ(copy.histogram(), obs.histogram());
    EXPECT_EQ(copy.calculate_qparams().scale, q.scale);
  }
}

// Without the legacy integer truncation of the histc range every finite
// value is counted, and the search stays inside the observed range.
TEST(HistogramObserverTest, FloatRangeModeCountsEveryValue) {
  Rng rng(9);
  HistogramOptions opt;
  opt.legacy_integer_histc_range = false;
  HistogramObserver obs(QuantSpec::uint8(), opt);
  HistogramObserver legacy(QuantSpec::uint8());
  double total = 0;
  for (int b = 0; b < 3; ++b) {
    DynTensor<float> x({1000});
    init::uniform(x, rng, 0.3 + b, 2.7 + 2 * b);
    obs.observe(x);
    legacy.observe(x);
    total += 1000;
    double sum = 0, legacy_sum = 0;
    for (float h : obs.histogram()) sum += h;
    for (float h : legacy.histogram()) legacy_sum += h;
    // The resampling conserves mass up to float rounding of the bin values.
    EXPECT_NEAR(sum, total, 1e-3 * total) << "batch " << b;
    if (b == 0) {
      EXPECT_LT(legacy_sum, 0.9 * total);  // legacy histc range [0, 2] drops values above 2
    }
  }
  const auto [lo, hi] = obs.search_range();
  EXPECT_GE(lo, obs.min_val());
  EXPECT_LE(hi, obs.max_val() * (1 + 1e-6f));
  EXPECT_LT(lo, hi);
}

TEST(HistogramObserverTest, UninitialisedGivesDefaultQParams) {
  HistogramObserver obs(QuantSpec::int8(true));
  EXPECT_FALSE(obs.initialized());
  const QuantParams q = obs.calculate_qparams();
  EXPECT_EQ(q.scale[0], 1.0f);
  EXPECT_EQ(q.zero_point[0], 0);
  obs.observe(DynTensor<float>(Shape{0}));
  EXPECT_FALSE(obs.initialized());
}

}  // namespace
}  // namespace qaware
