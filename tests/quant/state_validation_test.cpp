// Quantization state is validated by value before it is taken (issue 22):
// every malformed entry found by fuzzing state dicts gets an Error naming
// the entry and the value, and leaves the module as it was.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "qaware/quant/fake_quantize_module.hpp"
#include "qaware/quant/histogram_observer.hpp"
#include "qaware/quant/observers.hpp"
#include "qaware/quant/qparams.hpp"

namespace qaware {
namespace {

using ::testing::HasSubstr;

constexpr double kInfD = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

DynTensor<double> scalar(double v) {
  DynTensor<double> t(Shape{1});
  t[0] = v;
  return t;
}

// A calibrated per-tensor uint8 point (observer min/max = [-1, 3]).
FakeQuantize<float> calibrated(const FakeQuantizeConfig& cfg) {
  FakeQuantize<float> fq(cfg);
  DynTensor<float> x(Shape{2, 4});
  for (Index i = 0; i < x.numel(); ++i) x[i] = -1.0f + 0.5f * static_cast<float>(i);
  fq.forward(x);
  return fq;
}

// Loads `s` into a copy of `fq`, expects an Error containing `needle`, and
// checks that the copy's state did not change.
void expect_refused(const FakeQuantize<float>& fq, const StateDict& s, const std::string& needle) {
  FakeQuantize<float> copy = fq;
  const StateDict before = copy.state_dict();
  try {
    copy.load_state_dict(s);
    ADD_FAILURE() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(needle));
  }
  const StateDict after = copy.state_dict();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [k, v] : before) {
    ASSERT_TRUE(after.count(k)) << k;
    ASSERT_EQ(v.shape(), after.at(k).shape()) << k;
    for (Index i = 0; i < v.numel(); ++i) {
      const double a = v[i], b = after.at(k)[i];
      EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << k << "[" << i << "]: " << a << " -> " << b;
    }
  }
}

TEST(QuantStateValidation, FixedScaleAndZeroPointValues) {
  const FakeQuantize<float> fq = calibrated(FakeQuantizeConfig::activation(8));
  const StateDict good = fq.state_dict();
  {
    FakeQuantize<float> copy = fq;
    copy.load_state_dict(good);  // the module's own state loads
  }
  for (double bad : {0.0, -0.5, kNaN, kInfD, 1e-60 /* 0 as a float */, 1e39 /* beyond float */}) {
    StateDict s = good;
    s["scale"] = scalar(bad);
    expect_refused(fq, s, "scale[0] is ");
  }
  // uint8: [0, 255]; 3.7 is not an integer, 1e20 and NaN would be undefined casts.
  for (double bad : {300.0, -1.0, 3.7, 1e20, 1e303, kNaN, -kInfD}) {
    StateDict s = good;
    s["zero_point"] = scalar(bad);
    expect_refused(fq, s, "zero_point[0] is ");
  }
}

TEST(QuantStateValidation, SwitchesAreZeroOrOne) {
  const FakeQuantize<float> fq = calibrated(FakeQuantizeConfig::activation(8));
  for (const char* key : {"observer_enabled", "fake_quant_enabled"}) {
    for (double bad : {0.5, 2.0, -1.0, kNaN}) {
      StateDict s = fq.state_dict();
      s[key] = scalar(bad);
      expect_refused(fq, s, std::string("'") + key + "' must be 0 or 1");
    }
  }
}

TEST(QuantStateValidation, ChannelCounts) {
  // Per tensor: one scale.
  const FakeQuantize<float> per_tensor = calibrated(FakeQuantizeConfig::activation(8));
  StateDict s = per_tensor.state_dict();
  s["scale"] = DynTensor<double>(Shape{3}, 0.1);
  s["zero_point"] = DynTensor<double>(Shape{3}, 0.0);
  expect_refused(per_tensor, s, "a per-tensor point takes one scale, got 3");

  // Per channel with 16 channels: 3 scales are refused, 16 load.
  FakeQuantize<float> w(FakeQuantizeConfig::weight(8, 0));
  DynTensor<float> weight(Shape{16, 4});
  for (Index i = 0; i < weight.numel(); ++i) weight[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
  w.forward(weight);
  StateDict ws = w.state_dict();
  ASSERT_EQ(ws.at("scale").numel(), 16);
  ws["scale"] = DynTensor<double>(Shape{3}, 0.1);
  ws["zero_point"] = DynTensor<double>(Shape{3}, 0.0);
  expect_refused(w, ws, "3 scales for a per-channel point with 16 channels");
}

TEST(QuantStateValidation, LearnableScalesAndZeroPoints) {
  FakeQuantizeConfig cfg = FakeQuantizeConfig::activation(8);
  cfg.learnable = true;
  const FakeQuantize<float> fq = calibrated(cfg);
  for (double bad : {-0.1, 0.0, kNaN, kInfD}) {
    StateDict s = fq.state_dict();
    s["scale"] = scalar(bad);
    expect_refused(fq, s, "scale[0] is ");
  }
  for (double bad : {kNaN, kInfD, 1e303}) {
    StateDict s = fq.state_dict();
    s["zero_point"] = scalar(bad);
    expect_refused(fq, s, "zero_point[0]");
  }
  // A learnable zero point may leave the range (training can push it there;
  // the forward clamps it), and need not be an integer.
  StateDict s = fq.state_dict();
  s["zero_point"] = scalar(300.25);
  FakeQuantize<float> copy = fq;
  copy.load_state_dict(s);
  EXPECT_EQ(copy.zero_point_param().value()[0], 300.25f);
  {
    StateDict t = fq.state_dict();
    t["learning_enabled"] = scalar(0.5);
    expect_refused(fq, t, "'learning_enabled' must be 0 or 1");
  }

  FakeQuantizeConfig log_cfg = cfg;
  log_cfg.scale_domain = ScaleDomain::Log;
  const FakeQuantize<float> lq = calibrated(log_cfg);
  for (double bad : {kNaN, kInfD, 100.0}) {
    StateDict t = lq.state_dict();
    t["log_scale"] = scalar(bad);
    expect_refused(lq, t, "log_scale[0] is ");
  }
  StateDict t = lq.state_dict();
  t["log_scale"] = scalar(-20.0);  // a tiny scale is legal (the eps clamp applies)
  FakeQuantize<float> lcopy = lq;
  lcopy.load_state_dict(t);
}

TEST(QuantStateValidation, ObserverRanges) {
  const FakeQuantize<float> fq = calibrated(FakeQuantizeConfig::activation(8));
  const std::string mn = "activation_post_process.min_val", mx = "activation_post_process.max_val";
  const double cases[][2] = {{5, -5}, {kNaN, 1}, {0, kNaN}, {-kInfD, 1}, {0, kInfD}, {-1e39, 1}, {kInfD, kInfD}};
  for (const auto& c : cases) {
    StateDict s = fq.state_dict();
    s[mn] = scalar(c[0]);
    s[mx] = scalar(c[1]);
    expect_refused(fq, s, "min_val / max_val [");
  }
  // The unset state (inf, -inf) is what a fresh observer saves; it loads.
  StateDict s = fq.state_dict();
  s[mn] = scalar(kInfD);
  s[mx] = scalar(-kInfD);
  FakeQuantize<float> copy = fq;
  copy.load_state_dict(s);
  EXPECT_FALSE(copy.observer().initialized());
}

TEST(QuantStateValidation, PerChannelObserverRanges) {
  PerChannelMinMaxObserver obs(QuantSpec::int8(true).with_per_channel(0));
  DynTensor<float> x(Shape{3, 2});
  for (Index i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i) - 2.0f;
  obs.observe(x);
  StateDict s = obs.state_dict();
  s["max_val"][1] = -100.0;  // channel 1: min > max
  EXPECT_THAT([&] { obs.load_state_dict(s); }, ::testing::ThrowsMessage<Error>(HasSubstr("channel 1 min_val / max_val")));
  EXPECT_EQ(obs.max_vals()[1], 1.0f);  // unchanged
}

TEST(QuantStateValidation, BatchRangeObserverCount) {
  PercentileObserver obs(QuantSpec::uint8());
  DynTensor<float> x(Shape{8});
  for (Index i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i);
  obs.observe(x);
  for (double bad : {-1.0, 2.5, kInfD, 1e30, kNaN}) {
    StateDict s = obs.state_dict();
    s["count"] = scalar(bad);
    EXPECT_THAT([&] { obs.load_state_dict(s); }, ::testing::ThrowsMessage<Error>(HasSubstr("count must be an integer")))
        << bad;
  }
  StateDict s = obs.state_dict();
  s["sum_min"] = scalar(kNaN);
  EXPECT_THAT([&] { obs.load_state_dict(s); }, ::testing::ThrowsMessage<Error>(HasSubstr("'sum_min' is")));
}

TEST(QuantStateValidation, HistogramBins) {
  HistogramObserver obs(QuantSpec::uint8());
  DynTensor<float> x(Shape{16});
  for (Index i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i);
  obs.observe(x);
  StateDict s = obs.state_dict();
  s["histogram"][3] = -1.0;
  EXPECT_THAT([&] { obs.load_state_dict(s); }, ::testing::ThrowsMessage<Error>(HasSubstr("histogram bin 3")));
}

// Widening the range resamples the old histogram through a double cumsum
// whose shifted copy is rounded to float (as PyTorch's
// _combine_histograms does), so once the upsampled mass passes 2^24 a bin
// after an empty stretch can come out slightly negative (by at most a few
// float ulps of the running total). Such a state is the observer's own and
// must load again; a negative count beyond that rounding is still refused.
TEST(QuantStateValidation, HistogramStateWithRoundingNegativesRoundTrips) {
  HistogramObserver obs(QuantSpec::uint8());
  // Batches shaped like attention probabilities: mostly tiny values and a
  // sparse tail, the range growing a little with every batch.
  DynTensor<float> x(Shape{(Index{1} << 20) + 7});
  std::uint64_t state = 12345;
  for (int batch = 0; batch < 5; ++batch) {
    for (Index i = 0; i < x.numel(); ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      const double u = static_cast<double>(state >> 11) / 9007199254740992.0;
      const double p = i % 997 == 0 ? u : 0.01 * std::pow(u, 8);
      x[i] = static_cast<float>(p * (0.5 + 0.06 * batch));
    }
    obs.observe(x);
  }
  const std::vector<float>& h = obs.histogram();
  const auto lowest = std::min_element(h.begin(), h.end());
  ASSERT_LT(*lowest, 0.0f) << "the data no longer produce a rounding negative";

  HistogramObserver copy(QuantSpec::uint8());
  copy.load_state_dict(obs.state_dict());
  EXPECT_EQ(copy.histogram(), h);
  EXPECT_EQ(copy.min_val(), obs.min_val());
  EXPECT_EQ(copy.max_val(), obs.max_val());
  EXPECT_EQ(copy.calculate_qparams().scale, obs.calculate_qparams().scale);

  StateDict s = obs.state_dict();
  const Index bin = lowest - h.begin();
  s["histogram"][bin] = -1000.0;
  EXPECT_THAT([&] { copy.load_state_dict(s); },
              ::testing::ThrowsMessage<Error>(HasSubstr("histogram bin " + std::to_string(bin))));
}

TEST(QuantStateValidation, ChooseQparamsRefusesInfiniteAndOverflowingRanges) {
  const QuantSpec u8 = QuantSpec::uint8(), s8 = QuantSpec::int8(true);
  const float inf = std::numeric_limits<float>::infinity();
  for (const QuantSpec& spec : {u8, s8}) {
    for (QParamsAlgorithm alg : {QParamsAlgorithm::Observer, QParamsAlgorithm::Fused}) {
      EXPECT_THAT([&] { choose_qparams(-inf, inf, spec, alg); }, ::testing::ThrowsMessage<Error>(HasSubstr("not finite")));
      EXPECT_THAT([&] { choose_qparams(0.0f, inf, spec, alg); }, ::testing::ThrowsMessage<Error>(HasSubstr("not finite")));
    }
    // +-3e38: the affine scale (max - min) / 255 overflows while computing
    // max - min; the symmetric one (max |x| / 127.5) does not.
    if (spec.symmetric)
      EXPECT_FLOAT_EQ(choose_qparams(-3e38f, 3e38f, spec).scale, 3e38f / 127.5f);
    else
      EXPECT_THAT([&] { choose_qparams(-3e38f, 3e38f, spec); }, ::testing::ThrowsMessage<Error>(HasSubstr("too wide")));
    // The unset state is still (1, 0); a wide but representable range works.
    EXPECT_EQ(choose_qparams(inf, -inf, spec).scale, 1.0f);
    EXPECT_TRUE(std::isfinite(choose_qparams(-1e37f, 1e37f, spec).scale));
  }
}

}  // namespace
}  // namespace qaware
