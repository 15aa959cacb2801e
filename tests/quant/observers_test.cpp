// QuantSpec ranges, choose_qparams (observer and fused algorithms) and the
// min/max, moving-average, per-channel, percentile and MSE observers against
// goldens (tests/data/fake_quant_observers.qfx): PyTorch 1.13 for its
// observers, written-out references (numpy / torch ops) for percentile and
// MSE. Histogram: histogram_observer_test.cpp.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/quant/observers.hpp"
#include "quant_test_util.hpp"

namespace qaware {
namespace {

using test::Fixture;

const Fixture& observers_fixture() {
  static const Fixture f = Fixture::load("fake_quant_observers.qfx");
  return f;
}

TEST(QParamsTest, SpecRangesMatchTorchObservers) {
  const Fixture& f = observers_fixture();
  const auto count = f.scalar<std::int64_t>("qp.count");
  ASSERT_GE(count, 20);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("qp", c);
    const QRange r = test::spec_from(f, p).range();
    EXPECT_EQ(r.quant_min, f.scalar<std::int64_t>(p + "quant_min")) << p << test::spec_from(f, p).str();
    EXPECT_EQ(r.quant_max, f.scalar<std::int64_t>(p + "quant_max")) << p << test::spec_from(f, p).str();
  }
}

TEST(QParamsTest, ChooseQParamsMatchesTorchBitForBit) {
  const Fixture& f = observers_fixture();
  for (std::int64_t c = 0; c < f.scalar<std::int64_t>("qp.count"); ++c) {
    const std::string p = test::case_prefix("qp", c);
    const QuantSpec spec = test::spec_from(f, p);
    SCOPED_TRACE(p + spec.str());
    const auto mins = f.get<float>(p + "min"), maxs = f.get<float>(p + "max");
    const auto scale = f.get<float>(p + "scale");
    const auto zp = f.get<std::int64_t>(p + "zero_point");
    const auto fscale = f.get<float>(p + "fused_scale");
    const auto fzp = f.get<std::int64_t>(p + "fused_zero_point");
    for (Index i = 0; i < mins.numel(); ++i) {
      if (!std::isfinite(scale[i])) {
        // PyTorch returns an infinite scale for a range too wide for float
        // (e.g. +-3e38); qaware refuses it (every value would quantize to 0).
        EXPECT_THROW(choose_qparams(mins[i], maxs[i], spec), Error) << "[" << mins[i] << ", " << maxs[i] << "]";
        continue;
      }
      const ScaleZeroPoint q = choose_qparams(mins[i], maxs[i], spec);
      EXPECT_TRUE(test::bits_equal(&q.scale, &scale[i], 1, "scale " + std::to_string(mins[i]) + "," + std::to_string(maxs[i])));
      EXPECT_EQ(q.zero_point, zp[i]) << "[" << mins[i] << ", " << maxs[i] << "]";
      if (i < fscale.numel() && !std::isfinite(fscale[i])) {
        EXPECT_THROW(choose_qparams(mins[i], maxs[i], spec, QParamsAlgorithm::Fused), Error);
      } else if (i < fscale.numel()) {
        const ScaleZeroPoint fq = choose_qparams(mins[i], maxs[i], spec, QParamsAlgorithm::Fused);
        EXPECT_TRUE(test::bits_equal(&fq.scale, &fscale[i], 1, "fused scale " + std::to_string(mins[i]) + "," + std::to_string(maxs[i])));
        EXPECT_EQ(fq.zero_point, fzp[i]) << "fused [" << mins[i] << ", " << maxs[i] << "]";
      }
    }
  }
}

TEST(QParamsTest, ConventionsOnHandPickedRanges) {
  // Independent of the goldens: the formulas in qparams.hpp on exact cases.
  const ScaleZeroPoint a = choose_qparams(-1.0f, 3.0f, QuantSpec::uint8(false));
  EXPECT_EQ(a.scale, 4.0f / 255.0f);
  EXPECT_EQ(a.zero_point, 64);  // 0 - round(-1 / (4/255)) = round(63.75)
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::int8(true)).scale, 3.0f / 127.5f);
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::int8(true)).zero_point, 0);
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::uint8(true)).zero_point, 128);
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::custom(0, 255, false, true)).zero_point, 127);
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::unsigned_bits(4, true)).zero_point, 7);
  EXPECT_EQ(choose_qparams(-1.0f, 3.0f, QuantSpec::uint8(true).with_reduce_range()).zero_point, 63);
  EXPECT_EQ(choose_qparams(0.0f, 0.0f, QuantSpec::int8(false)).scale, kQuantEps);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(choose_qparams(inf, -inf, QuantSpec::int8(false)).scale, 1.0f);
  EXPECT_EQ(choose_qparams(inf, -inf, QuantSpec::int8(false)).zero_point, 0);
  EXPECT_EQ(QuantSpec::int8().with_narrow_range().range().quant_min, -127);
  EXPECT_EQ(QuantSpec::unsigned_bits(8).with_narrow_range().range().quant_max, 254);
  EXPECT_EQ(QuantSpec::signed_bits(2).range().quant_min, -2);
  EXPECT_EQ(QuantSpec::signed_bits(8).with_narrow_range().with_reduce_range().range().quant_min, -64);
}

TEST(QParamsTest, ValidationNamesTheOffendingValues) {
  using ::testing::HasSubstr;
  EXPECT_THAT(test::error_of([] { QuantSpec::signed_bits(9).range(); }), HasSubstr("bits must be in [2, 8], got 9"));
  EXPECT_THAT(test::error_of([] { QuantSpec::signed_bits(1).range(); }), HasSubstr("got 1"));
  EXPECT_THAT(test::error_of([] { QuantSpec::custom(1, 10, false, false).range(); }),
              HasSubstr("custom range must include 0, got [1, 10]"));
  EXPECT_THAT(test::error_of([] { choose_qparams(2.0f, 1.0f, QuantSpec::int8()); }),
              HasSubstr("min (2) must not exceed max (1)"));
  EXPECT_THAT(test::error_of([] { choose_qparams(std::nanf(""), 1.0f, QuantSpec::int8()); }), HasSubstr("NaN"));
  EXPECT_THAT(test::error_of([] { MinMaxObserver obs{QuantSpec::int8().with_per_channel(0)}; }),
              HasSubstr("this observer is per tensor"));
  EXPECT_THAT(test::error_of([] { PerChannelMinMaxObserver obs{QuantSpec::int8()}; }),
              HasSubstr("this observer is per channel"));
  MinMaxObserver obs(QuantSpec::int8());
  DynTensor<float> x({3}, 1.0f);
  x[1] = std::numeric_limits<float>::infinity();
  EXPECT_THAT(test::error_of([&] { obs.observe(x); }), HasSubstr("non-finite value (inf) at flat index 1"));
  PerChannelMinMaxObserver pc(QuantSpec::int8().with_per_channel(1));
  pc.observe(DynTensor<float>({2, 3}, 1.0f));
  EXPECT_THAT(test::error_of([&] { pc.observe(DynTensor<float>({2, 4}, 1.0f)); }),
              HasSubstr("has 4 channels on axis 1 but earlier inputs had 3"));
}

TEST(ObserverTest, MinMaxAndMovingAverageMatchTorchOverBatches) {
  const Fixture& f = observers_fixture();
  const auto count = f.scalar<std::int64_t>("mm.count");
  ASSERT_GE(count, 6);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("mm", c);
    const QuantSpec spec = test::spec_from(f, p);
    SCOPED_TRACE(p + spec.str());
    std::unique_ptr<Observer> obs;
    if (f.scalar<std::int64_t>(p + "moving"))
      obs = std::make_unique<MovingAverageMinMaxObserver>(spec, f.scalar<double>(p + "averaging_constant"));
    else
      obs = std::make_unique<MinMaxObserver>(spec);
    EXPECT_FALSE(obs->initialized());
    EXPECT_EQ(obs->calculate_qparams().scale[0], 1.0f);
    const auto batches = f.get<float>(p + "batches");
    const auto mins = f.get<float>(p + "min"), maxs = f.get<float>(p + "max"), scale = f.get<float>(p + "scale");
    const auto zp = f.get<std::int64_t>(p + "zero_point");
    const Index B = batches.dim(0), N = batches.dim(1);
    for (Index b = 0; b < B; ++b) {
      obs->observe(batches.data() + b * N, Shape{N});
      EXPECT_TRUE(test::bits_equal(obs->min_vals().data(), &mins[b], 1, "min after batch " + std::to_string(b)));
      EXPECT_TRUE(test::bits_equal(obs->max_vals().data(), &maxs[b], 1, "max after batch " + std::to_string(b)));
      const QuantParams q = obs->calculate_qparams();
      EXPECT_TRUE(test::bits_equal(q.scale.data(), &scale[b], 1, "scale after batch " + std::to_string(b)));
      EXPECT_EQ(q.zero_point[0], zp[b]) << "after batch " << b;
    }
    // State round trip.
    auto copy = obs->clone();
    copy->reset();
    EXPECT_FALSE(copy->initialized());
    copy->load_state_dict(obs->state_dict());
    EXPECT_EQ(copy->min_vals(), obs->min_vals());
    EXPECT_EQ(copy->max_vals(), obs->max_vals());
  }
}

TEST(ObserverTest, PerChannelObserversMatchTorchOnEveryAxis) {
  const Fixture& f = observers_fixture();
  const auto count = f.scalar<std::int64_t>("pcobs.count");
  ASSERT_GE(count, 9);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("pcobs", c);
    const int axis = static_cast<int>(f.scalar<std::int64_t>(p + "axis"));
    const QuantSpec spec = test::spec_from(f, p).with_per_channel(axis);
    SCOPED_TRACE(p + spec.str());
    std::unique_ptr<Observer> obs;
    if (f.scalar<std::int64_t>(p + "moving"))
      obs = std::make_unique<MovingAveragePerChannelMinMaxObserver>(spec, f.scalar<double>(p + "averaging_constant"));
    else
      obs = std::make_unique<PerChannelMinMaxObserver>(spec);
    const auto batches = f.get<float>(p + "batches");
    const auto mins = f.get<float>(p + "min"), maxs = f.get<float>(p + "max");
    const Index B = batches.dim(0), per = batches.numel() / B, C = mins.dim(1);
    for (Index b = 0; b < B; ++b) {
      obs->observe(batches.data() + b * per, Shape{batches.dim(1), batches.dim(2), batches.dim(3)});
      ASSERT_EQ(static_cast<Index>(obs->min_vals().size()), C);
      EXPECT_TRUE(test::bits_equal(obs->min_vals().data(), &mins[b * C], C, "min after batch " + std::to_string(b)));
      EXPECT_TRUE(test::bits_equal(obs->max_vals().data(), &maxs[b * C], C, "max after batch " + std::to_string(b)));
    }
    const QuantParams q = obs->calculate_qparams();
    EXPECT_TRUE(q.per_channel);
    EXPECT_EQ(q.axis, axis);
    EXPECT_TRUE(test::bits_equal(q.scale.data(), f.get<float>(p + "scale").data(), C, "scale"));
    const auto zp = f.get<std::int64_t>(p + "zero_point");
    for (Index ch = 0; ch < C; ++ch) EXPECT_EQ(q.zero_point[static_cast<std::size_t>(ch)], zp[ch]) << "channel " << ch;
  }
}

TEST(ObserverTest, PercentileAndMseMatchTheirReferences) {
  const Fixture& f = observers_fixture();
  const auto count = f.scalar<std::int64_t>("est.count");
  ASSERT_GE(count, 4);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("est", c);
    const QuantSpec spec = test::spec_from(f, p);
    SCOPED_TRACE(p + spec.str());
    const double ac = f.scalar<double>(p + "averaging_constant");
    const std::optional<double> avg = ac > 0 ? std::optional<double>(ac) : std::nullopt;
    const bool mse = f.scalar<std::int64_t>(p + "kind") == 1;
    std::unique_ptr<BatchRangeObserver> obs;
    if (mse)
      obs = std::make_unique<MseObserver>(spec, static_cast<int>(f.scalar<std::int64_t>(p + "candidates")), avg);
    else
      obs = std::make_unique<PercentileObserver>(spec, f.scalar<double>(p + "percentile"), avg);
    const auto batches = f.get<float>(p + "batches");
    const auto ranges = f.get<double>(p + "batch_range");
    const Index B = batches.dim(0), N = batches.dim(1);
    for (Index b = 0; b < B; ++b) {
      obs->observe(batches.data() + b * N, Shape{N});
      // Percentiles: the same double arithmetic on the same sorted values, so
      // equal. MSE: the range comes from float products, equal as well.
      EXPECT_EQ(obs->last_batch_range().first, ranges[2 * b]) << "batch " << b;
      EXPECT_EQ(obs->last_batch_range().second, ranges[2 * b + 1]) << "batch " << b;
      if (mse) {
        // The reference sums the squared errors exactly (math.fsum); we sum
        // 500 terms in double (eight partial sums): relative error below
        // 500 * 2^-53 ~ 6e-14.
        const auto errs = f.get<double>(p + "errors");
        const auto& ours = static_cast<MseObserver&>(*obs).last_errors();
        const Index K = errs.dim(1);
        ASSERT_EQ(static_cast<Index>(ours.size()), K);
        for (Index k = 0; k < K; ++k)
          EXPECT_NEAR(ours[static_cast<std::size_t>(k)], errs[b * K + k], 1e-12 * errs[b * K + k] + 1e-30) << "k " << k;
      }
    }
    EXPECT_EQ(obs->min_vals()[0], f.scalar<float>(p + "min"));
    EXPECT_EQ(obs->max_vals()[0], f.scalar<float>(p + "max"));
    const QuantParams q = obs->calculate_qparams();
    EXPECT_EQ(q.scale[0], f.scalar<float>(p + "scale"));
    EXPECT_EQ(q.zero_point[0], f.get<std::int64_t>(p + "zero_point")[0]);
    auto copy = obs->clone();
    copy->reset();
    copy->load_state_dict(obs->state_dict());
    EXPECT_EQ(copy->min_vals(), obs->min_vals());
  }
}

TEST(ObserverTest, MseChoosesTheErrorMinimisingRange) {
  // Independent of the goldens: 4-bit symmetric on 20000 normal samples, where
  // clipping the tails beats the full range; the chosen range's error,
  // recomputed here with the public ops, equals the reported minimum and is
  // below the full range's.
  Rng rng(5);
  DynTensor<float> x({20000});
  init::normal(x, rng, 0.0, 1.0);
  const QuantSpec spec = QuantSpec::signed_bits(4, true);
  MseObserver obs(spec, 50);
  obs.observe(x);
  auto error_of_range = [&](float lo, float hi) {
    const ScaleZeroPoint q = choose_qparams(lo, hi, spec);
    const auto y = fake_quantize_per_tensor_affine(x, q.scale, q.zero_point, -8, 7);
    double e = 0;
    for (Index i = 0; i < x.numel(); ++i) e += (double(y[i]) - double(x[i])) * (double(y[i]) - double(x[i]));
    return e;
  };
  const auto& e = obs.last_errors();
  const double best = *std::min_element(e.begin(), e.end());
  const double chosen = error_of_range(obs.min_vals()[0], obs.max_vals()[0]);
  float amin = x[0], amax = x[0];
  for (float v : x) amin = std::min(amin, v), amax = std::max(amax, v);
  const double full = error_of_range(amin, amax);
  EXPECT_NEAR(chosen, best, 1e-9 * best);  // same terms, summed in a different way
  EXPECT_LT(chosen, 0.8 * full);
  EXPECT_LT(obs.max_vals()[0], 0.9f * amax);
  EXPECT_NEAR(full, e.back(), 1e-9 * full);
}

TEST(ObserverTest, MseScoresTheSameOnAnyNumberOfThreads) {
  // The candidates are scored in parallel; each E_k is its own fixed-order sum,
  // so one thread and several must agree exactly, errors and range.
  Rng rng(8);
  DynTensor<float> x({30001});
  init::normal(x, rng, 0.5, 2.0);
  const QuantSpec spec = QuantSpec::unsigned_bits(4, false);
  const int saved = num_threads();
  set_num_threads(1);
  MseObserver one(spec, 37);
  one.observe(x);
  set_num_threads(std::max(2, saved));
  MseObserver many(spec, 37);
  many.observe(x);
  set_num_threads(saved);
  EXPECT_EQ(one.last_errors(), many.last_errors());
  EXPECT_EQ(one.min_vals(), many.min_vals());
  EXPECT_EQ(one.max_vals(), many.max_vals());
}

TEST(ObserverTest, DoubleInputsAreObservedAsFloat) {
  DynTensor<double> x({4});
  x[0] = -1.0000000001, x[1] = 0.5, x[2] = 2.0, x[3] = 3.25;
  MinMaxObserver obs(QuantSpec::uint8());
  obs.observe(x);
  EXPECT_EQ(obs.min_val(), static_cast<float>(-1.0000000001));
  EXPECT_EQ(obs.max_val(), 3.25f);
  obs.observe(DynTensor<float>(Shape{0}));  // empty: ignored
  EXPECT_EQ(obs.max_val(), 3.25f);
}

}  // namespace
}  // namespace qaware
