// The FakeQuantize module against torch.ao.quantization.FakeQuantize and
// _LearnableFakeQuantize run over several steps with observation and fake
// quantization switched on and off (tests/data/fake_quant_observers.qfx),
// plus state round trips and construction from a config.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/quant/fake_quantize_module.hpp"
#include "quant_test_util.hpp"

namespace qaware {
namespace {

using test::Fixture;

const Fixture& module_fixture() {
  static const Fixture f = Fixture::load("fake_quant_observers.qfx");
  return f;
}

TEST(FakeQuantizeModuleTest, MatchesTorchFakeQuantizeStepByStep) {
  const Fixture& f = module_fixture();
  for (int c = 0; c < 3; ++c) {
    const std::string p = "fqm." + std::to_string(c) + ".";
    FakeQuantizeConfig cfg;
    cfg.spec = test::spec_from(f, p);
    const auto axis = f.scalar<std::int64_t>(p + "axis");
    if (axis >= 0) cfg.spec.with_per_channel(static_cast<int>(axis));
    cfg.observer.kind = f.scalar<std::int64_t>(p + "moving") ? ObserverKind::MovingAverageMinMax : ObserverKind::MinMax;
    SCOPED_TRACE(p + cfg.spec.str());
    FakeQuantize<float> fq(cfg);
    const auto steps = f.scalar<std::int64_t>(p + "steps");
    for (std::int64_t t = 0; t < steps; ++t) {
      const std::string s = std::to_string(t);
      const auto plan = f.get<std::int64_t>(p + "plan" + s);
      fq.enable_observer(plan[0] != 0);
      fq.enable_fake_quant(plan[1] != 0);
      const auto x = f.get<float>(p + "x" + s);
      const auto want = f.get<float>(p + "y" + s);
      DynTensor<float> y;
      if (t % 2 == 0) {  // alternate the tape and the plain forward
        Tape<float> tape;
        y = fq.forward(tape, tape.leaf(x)).value();
      } else {
        y = fq.forward(x);
      }
      EXPECT_TRUE(test::bits_equal(y.data(), want.data(), x.numel(), "y at step " + s));
      const QuantParams q = fq.qparams();
      const auto ws = f.get<float>(p + "scale" + s);
      const auto wz = f.get<std::int64_t>(p + "zero_point" + s);
      ASSERT_EQ(static_cast<Index>(q.scale.size()), ws.numel()) << "step " << t;
      EXPECT_TRUE(test::bits_equal(q.scale.data(), ws.data(), ws.numel(), "scale at step " + s));
      for (Index i = 0; i < wz.numel(); ++i) EXPECT_EQ(q.zero_point[static_cast<std::size_t>(i)], wz[i]) << "step " << t;
    }
    // Saving and loading reproduces the module: same qparams, same output.
    FakeQuantize<float> copy(cfg);
    copy.load_state_dict(fq.state_dict());
    EXPECT_EQ(copy.qparams().scale, fq.qparams().scale);
    EXPECT_EQ(copy.qparams().zero_point, fq.qparams().zero_point);
    EXPECT_EQ(copy.observer().min_vals(), fq.observer().min_vals());
    EXPECT_EQ(copy.observer_enabled(), fq.observer_enabled());
    const auto x = f.get<float>(p + "x0");
    copy.disable_observer();
    fq.disable_observer();
    const auto a = copy.forward(x), b = fq.forward(x);
    EXPECT_TRUE(test::bits_equal(a.data(), b.data(), x.numel(), "after reload"));
  }
}

TEST(FakeQuantizeModuleTest, LearnableMatchesTorchLearnableFakeQuantize) {
  const Fixture& f = module_fixture();
  const std::string p = "lfqm.0.";
  FakeQuantizeConfig cfg;
  cfg.spec = test::spec_from(f, p);
  cfg.learnable = true;  // grad factor: LSQ default, as use_grad_scaling=True
  FakeQuantize<float> fq(cfg);
  for (int t = 0; t < 2; ++t) {
    const std::string s = std::to_string(t);
    const auto x = f.get<float>(p + "x" + s);
    Tape<float> tape;
    Var<float> y = fq.forward(tape, tape.leaf(x));
    EXPECT_TRUE(test::bits_equal(y.value().data(), f.get<float>(p + "y" + s).data(), x.numel(), "y at step " + s));
    EXPECT_EQ(fq.scale_param().value()[0], f.get<float>(p + "scale" + s)[0]);
    EXPECT_EQ(fq.zero_point_param().value()[0], f.get<float>(p + "zero_point" + s)[0]);
  }
  fq.enable_param_learning();
  EXPECT_FALSE(fq.observer_enabled());
  EXPECT_TRUE(fq.learning_enabled());
  const auto x = f.get<float>(p + "x2"), dy = f.get<float>(p + "dy2");
  Tape<float> tape;
  Var<float> xv = tape.leaf(x);
  Var<float> y = fq.forward(tape, xv);
  EXPECT_TRUE(test::bits_equal(y.value().data(), f.get<float>(p + "y2").data(), x.numel(), "y"));
  fq.scale_param().zero_grad();
  fq.zero_point_param().zero_grad();
  tape.backward(y, dy);
  EXPECT_TRUE(test::values_equal(xv.grad().data(), f.get<float>(p + "dx2").data(), x.numel(), "dx"));
  // Sums of 96 float terms: PyTorch sums in float, we in double (see
  // learnable_test.cpp); the bound n * 2^-24 * sum|terms| with sum|terms| <=
  // sum|dy| * 255 * g (scale) and sum|dy| * scale * g (zero point).
  double abs_dy = 0;
  for (float v : dy) abs_dy += std::abs(v);
  const double g = 1.0 / std::sqrt(96.0 * 255.0);
  const double s = fq.scale_param().value()[0];
  EXPECT_NEAR(fq.scale_param().grad()[0], f.get<float>(p + "dscale2")[0], 96 * 6e-8 * abs_dy * 255 * g);
  EXPECT_NEAR(fq.zero_point_param().grad()[0], f.get<float>(p + "dzero_point2")[0], 96 * 6e-8 * abs_dy * s * g + 1e-12);
}

TEST(FakeQuantizeModuleTest, FreezingTheObserverKeepsTheParameters) {
  FakeQuantizeConfig cfg;
  cfg.spec = QuantSpec::int8(true);
  FakeQuantize<float> fq(cfg);
  Rng rng(2);
  DynTensor<float> x({64});
  for (int step = 0; step < 5; ++step) {
    init::normal(x, rng, 0.0, 1.0 + step);
    if (step == 3) fq.disable_observer();
    const QuantParams before = fq.qparams();
    fq.forward(x);
    if (step >= 3) {
      EXPECT_EQ(fq.qparams().scale, before.scale) << "step " << step;
    } else {
      EXPECT_NE(fq.qparams().scale, before.scale) << "step " << step;
    }
  }
  // Fake quantization off: the tape forward is the identity (the same Var).
  fq.disable_fake_quant();
  Tape<float> tape;
  Var<float> xv = tape.leaf(x);
  EXPECT_EQ(fq.forward(tape, xv).id(), xv.id());
}

// A learnable point calibrated with fake quantization off sees what an
// observer-based point with the same spec and observer sees, so it ends with
// the same scale, zero point and observer state: starting LSQ from an
// observer-based calibration (its state plus the learnable point's own
// `learning_enabled`, as the spam demo does) equals calibrating the learnable
// point itself. Linear scale domain (a log-domain point keeps `log_scale`).
TEST(FakeQuantizeModuleTest, LearnableCalibrationEqualsTheObserverBasedOne) {
  struct Case {
    const char* what;
    QuantSpec spec;
    ObserverKind kind;
  };
  const std::vector<Case> cases = {
      {"4-bit asymmetric min/max", QuantSpec::unsigned_bits(4), ObserverKind::MinMax},
      {"uint8 moving average", QuantSpec::uint8(), ObserverKind::MovingAverageMinMax},
      {"uint8 histogram", QuantSpec::uint8(), ObserverKind::Histogram},
      {"4-bit percentile", QuantSpec::unsigned_bits(4), ObserverKind::Percentile},
      {"3-bit MSE", QuantSpec::unsigned_bits(3), ObserverKind::Mse},
      {"int8 symmetric", QuantSpec::int8(true), ObserverKind::MinMax},
      {"int4 per channel", QuantSpec::signed_bits(4).with_per_channel(0), ObserverKind::MinMax},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    FakeQuantizeConfig cfg;
    cfg.spec = c.spec;
    cfg.observer.kind = c.kind;
    FakeQuantizeConfig lcfg = cfg;
    lcfg.learnable = true;
    FakeQuantize<float> fixed(cfg), learnable(lcfg);
    fixed.disable_fake_quant();
    learnable.disable_fake_quant();
    Rng rng(8);
    DynTensor<float> x({6, 40});
    for (int batch = 0; batch < 3; ++batch) {
      init::normal(x, rng, 0.5 * batch, 1.0 + batch);
      fixed.forward(x);
      learnable.forward(x);
    }
    const StateDict want = learnable.state_dict();
    StateDict start = FakeQuantize<float>(lcfg).state_dict();
    for (const auto& [key, value] : fixed.state_dict()) {
      ASSERT_TRUE(start.count(key)) << key;
      start[key] = value;
    }
    FakeQuantize<float> resumed(lcfg);
    resumed.load_state_dict(start);
    const StateDict got = resumed.state_dict();
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [key, value] : want) {
      ASSERT_TRUE(got.count(key)) << key;
      const DynTensor<double>& g = got.at(key);
      ASSERT_EQ(g.shape(), value.shape()) << key;
      EXPECT_TRUE(test::bits_equal(g.data(), value.data(), g.numel(), key)) << key;
    }
    // Not a vacuous match: the calibration moved the scale off its initial value.
    EXPECT_NE(want.at("scale")[0], FakeQuantize<float>(lcfg).state_dict().at("scale")[0]);
  }
}

TEST(FakeQuantizeModuleTest, EveryObserverKindConstructsFromAConfig) {
  Rng rng(4);
  DynTensor<float> x({8, 16});
  init::normal(x, rng, 0.0, 1.0);
  for (ObserverKind k : {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax, ObserverKind::Histogram,
                         ObserverKind::Percentile, ObserverKind::Mse}) {
    FakeQuantizeConfig cfg;
    cfg.spec = QuantSpec::uint8();
    cfg.observer.kind = k;
    FakeQuantize<float> fq(cfg);
    const auto y = fq.forward(x);
    const QuantParams q = fq.qparams();
    // The output is exactly the plain op with the module's parameters.
    const auto want = fake_quantize_per_tensor_affine(x, q.scale[0], q.zero_point[0], 0, 255);
    EXPECT_TRUE(test::bits_equal(y.data(), want.data(), x.numel(), fq.observer().name()));
    FakeQuantize<float> copy(fq);
    EXPECT_EQ(copy.qparams().scale, q.scale);
  }
  FakeQuantizeConfig pc;
  pc.spec = QuantSpec::int8(true).with_per_channel(1);
  pc.observer.kind = ObserverKind::Histogram;
  EXPECT_THROW(FakeQuantize<float>{pc}, Error);
}

TEST(FakeQuantizeModuleTest, LearnablePerChannelAndLogDomain) {
  Rng rng(6);
  DynTensor<float> x({4, 10});
  init::normal(x, rng, 0.0, 1.0);
  for (ScaleDomain d : {ScaleDomain::Linear, ScaleDomain::Log}) {
    FakeQuantizeConfig cfg;
    cfg.spec = QuantSpec::int8(true).with_per_channel(0);
    cfg.learnable = true;
    cfg.scale_domain = d;
    cfg.grad_factor = 1.0;
    FakeQuantize<float> fq(cfg);
    Tape<float> tape;
    Var<float> y = fq.forward(tape, tape.leaf(x));  // static estimate from the observer
    const QuantParams q = fq.qparams();
    ASSERT_EQ(q.scale.size(), 4u);
    const auto want = fake_quantize_per_channel_affine(x, q.scale, q.zero_point, 0, -128, 127);
    EXPECT_TRUE(test::bits_equal(y.value().data(), want.data(), x.numel(), "y"));
    fq.enable_param_learning();
    tape.clear();
    Var<float> y2 = fq.forward(tape, tape.leaf(x));
    tape.backward(y2, DynTensor<float>(x.shape(), 1.0f));
    // Symmetric: the zero point stays at 0 and is not trained.
    EXPECT_FALSE(fq.zero_point_param().requires_grad());
    for (Index c = 0; c < 4; ++c) EXPECT_EQ(fq.zero_point_param().value()[c], 0.0f);
    double gsum = 0;
    for (float g : fq.scale_param().grad()) gsum += std::abs(g);
    EXPECT_GT(gsum, 0.0);
    FakeQuantize<float> copy(cfg);
    copy.load_state_dict(fq.state_dict());
    EXPECT_EQ(copy.scale_param().value()[2], fq.scale_param().value()[2]);
    EXPECT_TRUE(copy.learning_enabled());
  }
}

TEST(FakeQuantizeModuleTest, ErrorsNameTheProblem) {
  using ::testing::HasSubstr;
  FakeQuantizeConfig cfg;
  FakeQuantize<float> fq(cfg);
  try {
    fq.scale_param();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("scale_param: this module is not learnable"));
  }
  Tape<float> a, b;
  Var<float> x = b.leaf(DynTensor<float>({2}, 1.0f));
  EXPECT_THROW(fq.forward(a, x), Error);
}

}  // namespace
}  // namespace qaware
