// Learnable (LSQ) fake quantization against PyTorch 1.13's
// _fake_quantize_learnable_per_tensor_affine / _per_channel_affine
// (tests/data/fake_quant_learnable.qfx): forward and dx bit for bit, every
// per-element scale / zero-point gradient term bit for bit, the summed
// gradients to float-summation accuracy; STE variants, log-domain scale,
// validation.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "qaware/quant/learnable.hpp"
#include "quant_test_util.hpp"

namespace qaware {
namespace {

using test::Fixture;

const Fixture& learnable_fixture() {
  static const Fixture f = Fixture::load("fake_quant_learnable.qfx");
  return f;
}

// PyTorch sums the per-element gradient terms in float with its own reduction
// order; we sum the identical terms in double. The difference is bounded by
// float summation error, at most n * 2^-24 * sum|terms| for n terms (the
// recursive-summation bound; PyTorch's cascade sum is far tighter). We allow
// that bound (n * 6e-8 * sum|terms|) plus 1e-30 for all-zero sums.
void expect_sum_close(double ours, float torch_sum, double abs_sum, Index n, const std::string& what) {
  const double tol = static_cast<double>(n) * 6e-8 * abs_sum + 1e-30;
  EXPECT_NEAR(ours, static_cast<double>(torch_sum), tol) << what << " (sum of |terms| " << abs_sum << ")";
}

DynTensor<float> slice1(const DynTensor<float>& t, Index i) { return DynTensor<float>::from({1}, t.data() + i); }

TEST(LearnableTest, PerTensorForwardAndGradientsMatchTorch) {
  const Fixture& f = learnable_fixture();
  const auto count = f.scalar<std::int64_t>("lpt.count");
  ASSERT_GE(count, 8);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("lpt", c);
    SCOPED_TRACE(p);
    const auto x = f.get<float>(p + "x");
    const auto dy = f.get<float>(p + "dy");
    const float scale = f.scalar<float>(p + "scale"), zp = f.scalar<float>(p + "zero_point");
    const auto qmin = f.scalar<std::int64_t>(p + "quant_min"), qmax = f.scalar<std::int64_t>(p + "quant_max");
    const double gf = f.scalar<double>(p + "grad_factor");

    // Plain functions.
    const auto y = fake_quantize_learnable_per_tensor_affine(x, scale, zp, qmin, qmax);
    EXPECT_TRUE(test::bits_equal(y.data(), f.get<float>(p + "y").data(), x.numel(), "y"));
    const auto g = fake_quantize_learnable_per_tensor_affine_backward(dy, x, scale, zp, qmin, qmax, gf);
    EXPECT_TRUE(test::values_equal(g.dx.data(), f.get<float>(p + "dx").data(), x.numel(), "dx"));

    // Every per-element term, bit for bit (PyTorch called on one element at a time).
    const auto ds_e = f.get<float>(p + "dscale_elem"), dz_e = f.get<float>(p + "dzero_point_elem");
    double abs_s = 0, abs_z = 0;
    for (Index i = 0; i < x.numel(); ++i) {
      const auto gi = fake_quantize_learnable_per_tensor_affine_backward(slice1(dy, i), slice1(x, i), scale, zp, qmin,
                                                                         qmax, gf);
      abs_s += std::abs(static_cast<double>(gi.dscale[0]));
      abs_z += std::abs(static_cast<double>(gi.dzero_point[0]));
      if (i < ds_e.numel()) {
        ASSERT_TRUE(test::bits_equal(gi.dscale.data(), &ds_e[i], 1, "dscale term " + std::to_string(i)));
        ASSERT_TRUE(test::bits_equal(gi.dzero_point.data(), &dz_e[i], 1, "dzero_point term " + std::to_string(i)));
      }
    }
    expect_sum_close(g.dscale[0], f.scalar<float>(p + "dscale"), abs_s, x.numel(), "dscale");
    expect_sum_close(g.dzero_point[0], f.scalar<float>(p + "dzero_point"), abs_z, x.numel(), "dzero_point");

    // Tape op, with the golden's grad factor (or the LSQ default, which must be the same number).
    LearnableOptions opt;
    if (f.scalar<std::int64_t>(p + "lsq_default") == 0) {
      opt.grad_factor = gf;
    } else {
      EXPECT_EQ(static_cast<float>(1.0 / std::sqrt(double(x.numel()) * double(qmax))), static_cast<float>(gf));
    }
    Tape<float> tape;
    Var<float> xv = tape.leaf(x), sv = tape.leaf(DynTensor<float>({1}, scale)), zv = tape.leaf(DynTensor<float>({1}, zp));
    Var<float> yv = fake_quantize_learnable_per_tensor_affine(xv, sv, zv, qmin, qmax, opt);
    EXPECT_TRUE(test::bits_equal(yv.value().data(), f.get<float>(p + "y").data(), x.numel(), "tape y"));
    tape.backward(yv, dy);
    EXPECT_TRUE(test::values_equal(xv.grad().data(), f.get<float>(p + "dx").data(), x.numel(), "tape dx"));
    expect_sum_close(sv.grad()[0], f.scalar<float>(p + "dscale"), abs_s, x.numel(), "tape dscale");
    expect_sum_close(zv.grad()[0], f.scalar<float>(p + "dzero_point"), abs_z, x.numel(), "tape dzero_point");
  }
}

TEST(LearnableTest, PerChannelForwardAndGradientsMatchTorch) {
  const Fixture& f = learnable_fixture();
  const auto count = f.scalar<std::int64_t>("lpc.count");
  ASSERT_GE(count, 6);
  for (std::int64_t c = 0; c < count; ++c) {
    const std::string p = test::case_prefix("lpc", c);
    SCOPED_TRACE(p);
    const auto x = f.get<float>(p + "x");
    const auto dy = f.get<float>(p + "dy");
    const auto st = f.get<float>(p + "scale"), zt = f.get<float>(p + "zero_point");
    const std::vector<float> scale(st.begin(), st.end()), zp(zt.begin(), zt.end());
    const int axis = static_cast<int>(f.scalar<std::int64_t>(p + "axis"));
    const auto qmin = f.scalar<std::int64_t>(p + "quant_min"), qmax = f.scalar<std::int64_t>(p + "quant_max");
    const double gf = f.scalar<double>(p + "grad_factor");
    const Index C = st.numel(), per_channel = x.numel() / C;

    const auto y = fake_quantize_learnable_per_channel_affine(x, scale, zp, axis, qmin, qmax);
    EXPECT_TRUE(test::bits_equal(y.data(), f.get<float>(p + "y").data(), x.numel(), "y"));
    const auto g = fake_quantize_learnable_per_channel_affine_backward(dy, x, scale, zp, axis, qmin, qmax, gf);
    EXPECT_TRUE(test::values_equal(g.dx.data(), f.get<float>(p + "dx").data(), x.numel(), "dx"));
    const auto ds = f.get<float>(p + "dscale"), dz = f.get<float>(p + "dzero_point");
    // Per-channel |term| sums bound the summation error; a term is at most
    // |dy| * max(|quant_min - zp|, |quant_max - zp|, scale) * g in magnitude.
    for (Index ch = 0; ch < C; ++ch) {
      double bound_s = 0, bound_z = 0;
      const double zr = std::nearbyint(std::min(std::max<double>(zp[static_cast<std::size_t>(ch)], double(qmin)), double(qmax)));
      const double span = std::max({std::abs(qmin - zr), std::abs(qmax - zr), 1.0});
      // Sum of |dy| over the channel (element order does not matter for a bound).
      Index outer = 1, inner = 1;
      for (int i = 0; i < axis; ++i) outer *= x.dim(i);
      for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
      for (Index o = 0; o < outer; ++o)
        for (Index k = 0; k < inner; ++k) {
          const double a = std::abs(static_cast<double>(dy[(o * C + ch) * inner + k]));
          bound_s += a * span * gf;
          bound_z += a * scale[static_cast<std::size_t>(ch)] * gf;
        }
      if (per_channel == 1) {  // one element per channel: the sum is the single term, exactly
        EXPECT_EQ(static_cast<float>(g.dscale[static_cast<std::size_t>(ch)]), ds[ch]) << "channel " << ch;
        EXPECT_EQ(static_cast<float>(g.dzero_point[static_cast<std::size_t>(ch)]), dz[ch]) << "channel " << ch;
      } else {
        expect_sum_close(g.dscale[static_cast<std::size_t>(ch)], ds[ch], bound_s, per_channel, "dscale ch " + std::to_string(ch));
        expect_sum_close(g.dzero_point[static_cast<std::size_t>(ch)], dz[ch], bound_z, per_channel, "dzp ch " + std::to_string(ch));
      }
    }

    LearnableOptions opt;
    if (f.scalar<std::int64_t>(p + "lsq_default") == 0) opt.grad_factor = gf;
    Tape<float> tape;
    Var<float> xv = tape.leaf(x), sv = tape.leaf(st), zv = tape.leaf(zt);
    Var<float> yv = fake_quantize_learnable_per_channel_affine(xv, sv, zv, axis, qmin, qmax, opt);
    EXPECT_TRUE(test::bits_equal(yv.value().data(), f.get<float>(p + "y").data(), x.numel(), "tape y"));
    tape.backward(yv, dy);
    EXPECT_TRUE(test::values_equal(xv.grad().data(), f.get<float>(p + "dx").data(), x.numel(), "tape dx"));
    for (Index ch = 0; ch < C; ++ch) {
      EXPECT_EQ(sv.grad()[ch], static_cast<float>(g.dscale[static_cast<std::size_t>(ch)])) << "channel " << ch;
      EXPECT_EQ(zv.grad()[ch], static_cast<float>(g.dzero_point[static_cast<std::size_t>(ch)])) << "channel " << ch;
    }
  }
}

// PassThrough: dx = dy everywhere. LearnableClip: the scale gradient keeps
// only the saturated elements' terms (PyTorch's per-element terms where its
// dx is 0 and dy is not), the rest is unchanged.
TEST(LearnableTest, SteVariantsFollowTheirDefinitions) {
  const Fixture& f = learnable_fixture();
  for (std::int64_t c : {1, 3, 5}) {
    const std::string p = test::case_prefix("lpt", c);
    const auto x_all = f.get<float>(p + "x"), dy_all = f.get<float>(p + "dy"), dx_all = f.get<float>(p + "dx");
    const auto ds_e = f.get<float>(p + "dscale_elem"), dz_e = f.get<float>(p + "dzero_point_elem");
    const Index m = ds_e.numel();
    const auto x = DynTensor<float>::from({m}, x_all.data()), dy = DynTensor<float>::from({m}, dy_all.data());
    const float scale = f.scalar<float>(p + "scale"), zp = f.scalar<float>(p + "zero_point");
    const auto qmin = f.scalar<std::int64_t>(p + "quant_min"), qmax = f.scalar<std::int64_t>(p + "quant_max");
    const double gf = f.scalar<double>(p + "grad_factor");
    const auto clipped = fake_quantize_learnable_per_tensor_affine_backward(dy, x, scale, zp, qmin, qmax, gf);
    const auto pass = fake_quantize_learnable_per_tensor_affine_backward(dy, x, scale, zp, qmin, qmax, gf,
                                                                         SteMode::PassThrough);
    const auto pact = fake_quantize_learnable_per_tensor_affine_backward(dy, x, scale, zp, qmin, qmax, gf,
                                                                         SteMode::LearnableClip);
    EXPECT_TRUE(test::values_equal(pass.dx.data(), dy.data(), m, "pass-through dx"));
    EXPECT_TRUE(test::values_equal(pact.dx.data(), dx_all.data(), m, "learnable-clip dx"));
    EXPECT_EQ(pass.dscale[0], clipped.dscale[0]);
    EXPECT_EQ(pass.dzero_point[0], clipped.dzero_point[0]);
    EXPECT_EQ(pact.dzero_point[0], clipped.dzero_point[0]);
    double want = 0, abs_sum = 0;
    int saturated = 0;
    for (Index i = 0; i < m; ++i) {
      if (dx_all[i] == 0.0f && dy[i] != 0.0f) {
        want += ds_e[i];
        abs_sum += std::abs(ds_e[i]);
        ++saturated;
        EXPECT_NE(dz_e[i], 0.0f) << "saturated element " << i << " has a zero-point term";
      }
    }
    ASSERT_GT(saturated, 3) << "the case should saturate some elements";
    // Both sums are in double over the same float terms (only the order
    // differs, 1e-12 relative is ample); the result is then rounded to float
    // (half an ulp, 6e-8 relative).
    EXPECT_NEAR(pact.dscale[0], want, 1e-12 * abs_sum + 6e-8 * std::abs(want) + 1e-30);
    EXPECT_NE(pact.dscale[0], clipped.dscale[0]);
  }
}

TEST(LearnableTest, LogDomainScaleChainsTheGradient) {
  const Fixture& f = learnable_fixture();
  const std::string p = "lpt.1.";
  const auto x = f.get<float>(p + "x"), dy = f.get<float>(p + "dy");
  const float scale = f.scalar<float>(p + "scale"), zp = f.scalar<float>(p + "zero_point");
  const auto qmin = f.scalar<std::int64_t>(p + "quant_min"), qmax = f.scalar<std::int64_t>(p + "quant_max");
  LearnableOptions lin, lg;
  lin.grad_factor = lg.grad_factor = 1.0;
  lg.scale_domain = ScaleDomain::Log;
  Tape<float> tape;
  Var<float> x1 = tape.leaf(x), s1 = tape.leaf(DynTensor<float>({1}, scale)), z1 = tape.leaf(DynTensor<float>({1}, zp));
  Var<float> y1 = fake_quantize_learnable_per_tensor_affine(x1, s1, z1, qmin, qmax, lin);
  tape.backward(y1, dy);
  // log(scale) in float, so exp(log s) is the float nearest to s (or a neighbour).
  const float log_s = std::log(scale);
  Var<float> x2 = tape.leaf(x), s2 = tape.leaf(DynTensor<float>({1}, log_s)), z2 = tape.leaf(DynTensor<float>({1}, zp));
  Var<float> y2 = fake_quantize_learnable_per_tensor_affine(x2, s2, z2, qmin, qmax, lg);
  tape.backward(y2, dy);
  const float s_used = std::exp(log_s);
  // With the same effective scale the outputs agree exactly; exp(log s) may be
  // one ulp from s, so compare against a linear-domain run at s_used.
  Tape<float> t3;
  Var<float> x3 = t3.leaf(x), s3 = t3.leaf(DynTensor<float>({1}, s_used)), z3 = t3.leaf(DynTensor<float>({1}, zp));
  Var<float> y3 = fake_quantize_learnable_per_tensor_affine(x3, s3, z3, qmin, qmax, lin);
  t3.backward(y3, dy);
  EXPECT_TRUE(test::bits_equal(y2.value().data(), y3.value().data(), x.numel(), "y"));
  EXPECT_TRUE(test::values_equal(x2.grad().data(), x3.grad().data(), x.numel(), "dx"));
  // dL/dlog s = dL/ds * s, formed in double before the final rounding to float.
  EXPECT_EQ(s2.grad()[0], static_cast<float>(static_cast<double>(s3.grad()[0]) * s_used));
  EXPECT_EQ(z2.grad()[0], z3.grad()[0]);
  (void)y1;
}

TEST(LearnableTest, FreshGradientSlotEqualsAccumulatingIntoZeros) {
  // The x gradient overwrites a fresh buffer; bitwise (signed zeros too) what
  // adding into a zero-filled one (tape.grad(x) asked for first) gives, per
  // tensor and per channel, every STE mode.
  Rng rng(5);
  DynTensor<float> x({3, 4, 37}), dy({3, 4, 37});
  init::normal(x, rng, 0.0, 1.0);
  init::normal(dy, rng, 0.0, 1.0);
  for (SteMode ste : {SteMode::Clipped, SteMode::PassThrough, SteMode::LearnableClip}) {
    for (bool per_channel : {false, true}) {
      auto dx = [&](bool zeroed) {
        LearnableOptions opt;
        opt.ste = ste;
        Tape<float> tape;
        Var<float> xv = tape.leaf(x);
        const Index n = per_channel ? 4 : 1;
        Var<float> sv = tape.leaf(DynTensor<float>({n}, 0.05f)), zv = tape.leaf(DynTensor<float>({n}, 1.0f));
        Var<float> y = per_channel ? fake_quantize_learnable_per_channel_affine(xv, sv, zv, 1, -8, 7, opt)
                                   : fake_quantize_learnable_per_tensor_affine(xv, sv, zv, -8, 7, opt);
        if (zeroed) tape.grad(xv);
        tape.backward(y, dy);
        return xv.grad();
      };
      EXPECT_TRUE(test::bits_equal(dx(false).data(), dx(true).data(), x.numel(), "dx"));
    }
  }
}

TEST(LearnableTest, ScaleIsClampedToEps) {
  DynTensor<float> x({3});
  x[0] = 1e-8f, x[1] = -3e-7f, x[2] = 5.0f;
  Tape<float> tape;
  Var<float> xv = tape.leaf(x), sv = tape.leaf(DynTensor<float>({1}, -1.0f)), zv = tape.leaf(DynTensor<float>({1}, 0.0f));
  LearnableOptions opt;
  opt.grad_factor = 1.0;
  Var<float> y = fake_quantize_learnable_per_tensor_affine(xv, sv, zv, -128, 127, opt);
  const auto want = fake_quantize_per_tensor_affine(x, kQuantEps, 0, -128, 127);
  EXPECT_TRUE(test::bits_equal(y.value().data(), want.data(), 3, "y"));
}

TEST(LearnableTest, ValidationNamesTheOffendingValues) {
  using ::testing::HasSubstr;
  DynTensor<float> x({2, 3}, 0.5f);
  Tape<float> tape;
  Var<float> xv = tape.leaf(x);
  Var<float> s1 = tape.leaf(DynTensor<float>({1}, 0.1f)), z1 = tape.leaf(DynTensor<float>({1}, 0.0f));
  Var<float> s2 = tape.leaf(DynTensor<float>({2}, 0.1f)), z3 = tape.leaf(DynTensor<float>({3}, 0.0f));
  Var<float> znan = tape.leaf(DynTensor<float>({1}, std::nanf("")));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_tensor_affine(xv, s1, z1, 1, 7); }),
              HasSubstr("needs quant_min <= 0 <= quant_max, got [1, 7]"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_tensor_affine(xv, s2, z1, -8, 7); }),
              HasSubstr("scale must have one element, got shape [2]"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_tensor_affine(xv, s1, znan, -8, 7); }),
              HasSubstr("zero_point must be finite, got nan"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_tensor_affine(xv, s1, z1, -8, 0); }),
              HasSubstr("needs quant_max > 0, got 0"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_channel_affine(xv, s2, z3, 1, -8, 7); }),
              HasSubstr("has 3 channels on axis 1 but scale has 2 and zero_point 3 elements"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_channel_affine(xv, s2, z3, 5, -8, 7); }),
              HasSubstr("axis 5 is out of range for shape [2, 3]"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_learnable_per_tensor_affine_backward(x, x, 0.0f, 0.0f, -8, 7, 1.0); }),
              HasSubstr("scale must be positive and finite, got 0"));
}

}  // namespace
}  // namespace qaware
