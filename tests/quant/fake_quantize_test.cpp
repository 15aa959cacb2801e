// fake_quantize_per_tensor_affine / _per_channel_affine against PyTorch 1.13
// goldens (tests/data/fake_quant_ops.qfx, tools/gen_fake_quant_golden.py):
// outputs bit for bit and the STE masks exactly, on every kernel ISA the CPU
// runs; the STE backward against the analytic mask; validation messages.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/ops/add.hpp"
#include "qaware/quant/fake_quantize.hpp"
#include "quant_test_util.hpp"

namespace qaware {
namespace {

using test::Fixture;

const Fixture& ops_fixture() {
  static const Fixture f = Fixture::load("fake_quant_ops.qfx");
  return f;
}

std::vector<std::int32_t> to_i32(const DynTensor<std::int32_t>& t) { return {t.begin(), t.end()}; }
std::vector<float> to_vec(const DynTensor<float>& t) { return {t.begin(), t.end()}; }

::testing::AssertionResult mask_equal(const BitMask& got, const DynTensor<std::uint8_t>& want) {
  if (got.size() != want.numel())
    return ::testing::AssertionFailure() << "mask size " << got.size() << " vs " << want.numel();
  for (Index i = 0; i < want.numel(); ++i)
    if (got[i] != (want[i] != 0))
      return ::testing::AssertionFailure() << "mask[" << i << "] = " << got[i] << ", PyTorch " << int(want[i]);
  for (Index i = want.numel(); i < got.num_words() * 64; ++i)
    if ((got.words()[i >> 6] >> (i & 63)) & 1u) return ::testing::AssertionFailure() << "padding bit " << i << " set";
  return ::testing::AssertionSuccess();
}

TEST(FakeQuantizeTest, PerTensorMatchesTorchBitForBitOnEveryIsa) {
  const Fixture& f = ops_fixture();
  const auto count = f.scalar<std::int64_t>("pt.count");
  ASSERT_GT(count, 50);
  for (auto isa : test::runnable_isas()) {
    const ScopedMaxIsa limit(isa);
    for (std::int64_t c = 0; c < count; ++c) {
      const std::string p = test::case_prefix("pt", c);
      SCOPED_TRACE(p + " isa " + isa_name(isa));
      const auto x = f.get<float>(p + "x");
      const auto want = f.get<float>(p + "y");
      const auto r = fake_quantize_per_tensor_affine_cachemask(x, f.scalar<float>(p + "scale"),
                                                               f.scalar<std::int64_t>(p + "zero_point"),
                                                               f.scalar<std::int64_t>(p + "quant_min"),
                                                               f.scalar<std::int64_t>(p + "quant_max"));
      EXPECT_TRUE(test::bits_equal(r.output.data(), want.data(), x.numel(), "y"));
      EXPECT_TRUE(mask_equal(r.mask, f.get<std::uint8_t>(p + "mask")));
      // The mask-free entry point computes the same values.
      const auto y2 = fake_quantize_per_tensor_affine(x, f.scalar<float>(p + "scale"),
                                                      f.scalar<std::int64_t>(p + "zero_point"),
                                                      f.scalar<std::int64_t>(p + "quant_min"),
                                                      f.scalar<std::int64_t>(p + "quant_max"));
      EXPECT_TRUE(test::bits_equal(y2.data(), want.data(), x.numel(), "y (no mask)"));
    }
  }
}

TEST(FakeQuantizeTest, PerChannelMatchesTorchBitForBitOnEveryAxisAndIsa) {
  const Fixture& f = ops_fixture();
  const auto count = f.scalar<std::int64_t>("pc.count");
  ASSERT_GE(count, 20);
  for (auto isa : test::runnable_isas()) {
    const ScopedMaxIsa limit(isa);
    for (std::int64_t c = 0; c < count; ++c) {
      const std::string p = test::case_prefix("pc", c);
      SCOPED_TRACE(p + " isa " + isa_name(isa));
      const auto x = f.get<float>(p + "x");
      const auto want = f.get<float>(p + "y");
      const auto r = fake_quantize_per_channel_affine_cachemask(
          x, to_vec(f.get<float>(p + "scale")), to_i32(f.get<std::int32_t>(p + "zero_point")),
          static_cast<int>(f.scalar<std::int64_t>(p + "axis")), f.scalar<std::int64_t>(p + "quant_min"),
          f.scalar<std::int64_t>(p + "quant_max"));
      EXPECT_TRUE(test::bits_equal(r.output.data(), want.data(), x.numel(), "y"));
      EXPECT_TRUE(mask_equal(r.mask, f.get<std::uint8_t>(p + "mask")));
    }
  }
}

TEST(FakeQuantizeTest, KernelFamilyFollowsTheCap) {
  for (Isa cap : kEachIsa) {
    const ScopedMaxIsa scope(cap);
    const auto admits = [&](Isa level) { return static_cast<int>(level) <= static_cast<int>(cap) && cpu_has(level); };
    const Isa want = admits(Isa::kAvx512) ? Isa::kAvx512 : admits(Isa::kAvx2) ? Isa::kAvx2 : Isa::kScalar;
    EXPECT_EQ(detail::fq::active_isa(), want) << "cap " << isa_name(cap);
  }
}

TEST(FakeQuantizeTest, NegativeAxisCountsFromTheEnd) {
  const Fixture& f = ops_fixture();
  const std::string p = "pc.2.";  // rank 3
  const auto x = f.get<float>(p + "x");
  const int axis = static_cast<int>(f.scalar<std::int64_t>(p + "axis"));
  const auto y = fake_quantize_per_channel_affine(x, to_vec(f.get<float>(p + "scale")),
                                                  to_i32(f.get<std::int32_t>(p + "zero_point")), axis - x.rank(),
                                                  f.scalar<std::int64_t>(p + "quant_min"),
                                                  f.scalar<std::int64_t>(p + "quant_max"));
  EXPECT_TRUE(test::bits_equal(y.data(), f.get<float>(p + "y").data(), x.numel(), "y"));
}

// The documented non-finite rule on a hand-written case (independent of the
// goldens): NaN, +inf, -inf and |x / scale| >= 2^63 give the lowest level.
TEST(FakeQuantizeTest, NonFiniteAndHugeInputsMapToQuantMin) {
  const float inf = std::numeric_limits<float>::infinity();
  DynTensor<float> x({7});
  const float vals[] = {std::nanf(""), inf, -inf, 1e30f, -1e30f, 9.2e18f, 9.3e18f};
  for (int i = 0; i < 7; ++i) x[i] = vals[i];
  for (auto isa : test::runnable_isas()) {
    const ScopedMaxIsa limit(isa);
    const auto r = fake_quantize_per_tensor_affine_cachemask(x, 1.0f, 10, 0, 255);
    const float lowest = (0.0f - 10.0f) * 1.0f, highest = 245.0f;
    const float want[] = {lowest, lowest, lowest, lowest, lowest, highest, lowest};
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(r.output[i], want[i]) << "element " << i << " isa " << isa_name(isa);
      EXPECT_FALSE(r.mask[i]) << "element " << i;
    }
  }
}

// Every ISA agrees with the scalar kernel on random data, odd lengths and
// unaligned starts, per tensor and per channel (both channel kernels).
TEST(FakeQuantizeTest, SimdKernelsAgreeWithScalarOnRandomData) {
  Rng rng(7);
  for (Index n : {1, 7, 63, 64, 65, 200, 1000, 4099}) {
    DynTensor<float> buf({n + 3});
    init::normal(buf, rng, 0.0, 3.0);
    for (Index off : {0, 1, 3}) {
      const Index m = n + 3 - off;
      DynTensor<float> x = DynTensor<float>::from({m}, buf.data() + off);
      const ScopedMaxIsa scalar(Isa::kScalar);
      const auto ref = fake_quantize_per_tensor_affine_cachemask(x, 0.037f, 5, -16, 15);
      for (auto isa : test::runnable_isas()) {
        const ScopedMaxIsa limit(isa);
        const auto got = fake_quantize_per_tensor_affine_cachemask(x, 0.037f, 5, -16, 15);
        ASSERT_TRUE(test::bits_equal(got.output.data(), ref.output.data(), m, "y"));
        for (Index i = 0; i < ref.mask.num_words(); ++i) ASSERT_EQ(got.mask.words()[i], ref.mask.words()[i]);
      }
    }
  }
  for (const Shape& s : {Shape{3, 37, 40}, Shape{5, 11}, Shape{2, 9, 3}, Shape{4, 3, 17}}) {
    DynTensor<float> x(s);
    init::normal(x, rng, 0.0, 2.0);
    for (int axis = 0; axis < s.rank(); ++axis) {
      std::vector<float> scale;
      std::vector<std::int32_t> zp;
      for (Index c = 0; c < s[axis]; ++c) {
        scale.push_back(static_cast<float>(rng.uniform(0.01, 0.1)));
        zp.push_back(static_cast<std::int32_t>(rng.below(256)));
      }
      const ScopedMaxIsa scalar(Isa::kScalar);
      const auto ref = fake_quantize_per_channel_affine_cachemask(x, scale, zp, axis, 0, 255);
      // Independent per-element reference (PyTorch's formula, written out).
      Index inner = 1;
      for (int i = axis + 1; i < s.rank(); ++i) inner *= s[i];
      for (Index i = 0; i < x.numel(); ++i) {
        const Index c = (i / inner) % s[axis];
        const float inv = 1.0f / scale[static_cast<std::size_t>(c)];
        const float qf = static_cast<float>(zp[static_cast<std::size_t>(c)]) + std::nearbyint(x[i] * inv);
        const float qc = std::min(std::max(qf, 0.0f), 255.0f);
        ASSERT_EQ(ref.output[i], (qc - static_cast<float>(zp[static_cast<std::size_t>(c)])) * scale[static_cast<std::size_t>(c)]);
        ASSERT_EQ(ref.mask[i], qf >= 0.0f && qf <= 255.0f);
      }
      const std::size_t prev_stream = detail::fq::stream_threshold().load();
      for (std::size_t threshold : {prev_stream, std::size_t(0)}) {  // with and without streaming stores
        detail::fq::stream_threshold().store(threshold);
        for (auto isa : test::runnable_isas()) {
          const ScopedMaxIsa limit(isa);
          const auto got = fake_quantize_per_channel_affine_cachemask(x, scale, zp, axis, 0, 255);
          ASSERT_TRUE(test::bits_equal(got.output.data(), ref.output.data(), x.numel(), "y"));
          for (Index i = 0; i < ref.mask.num_words(); ++i) ASSERT_EQ(got.mask.words()[i], ref.mask.words()[i]);
        }
      }
      detail::fq::stream_threshold().store(prev_stream);
    }
  }
}

TEST(FakeQuantizeTest, ResultDoesNotDependOnThreadCountOrStreamingStores) {
  Rng rng(11);
  DynTensor<float> x({300001});
  init::normal(x, rng, 0.0, 1.0);
  const auto ref = fake_quantize_per_tensor_affine_cachemask(x, 0.01f, -3, -128, 127);
  const int prev = num_threads();
  set_num_threads(1);
  const std::size_t prev_stream = detail::fq::stream_threshold().load();
  detail::fq::stream_threshold().store(0);  // stream every output
  const auto got = fake_quantize_per_tensor_affine_cachemask(x, 0.01f, -3, -128, 127);
  detail::fq::stream_threshold().store(prev_stream);
  set_num_threads(prev);
  EXPECT_TRUE(test::bits_equal(got.output.data(), ref.output.data(), x.numel(), "y"));
  for (Index i = 0; i < ref.mask.num_words(); ++i) ASSERT_EQ(got.mask.words()[i], ref.mask.words()[i]);
}

// The tape op's backward is the STE: dx = dy * mask (clipped), dy
// (pass-through); the mask is PyTorch's.
TEST(FakeQuantizeTest, SteBackwardMatchesAnalyticMask) {
  const Fixture& f = ops_fixture();
  Rng rng(3);
  for (std::int64_t c : {0, 5, 17, 33}) {
    const std::string p = test::case_prefix("pt", c);
    const auto x = f.get<float>(p + "x");
    const auto mask = f.get<std::uint8_t>(p + "mask");
    DynTensor<float> dy(x.shape());
    init::normal(dy, rng, 0.0, 1.0);
    for (SteMode ste : {SteMode::Clipped, SteMode::PassThrough, SteMode::LearnableClip}) {
      Tape<float> tape;
      Var<float> xv = tape.leaf(x);
      Var<float> y = fake_quantize_per_tensor_affine(xv, f.scalar<float>(p + "scale"),
                                                     f.scalar<std::int64_t>(p + "zero_point"),
                                                     f.scalar<std::int64_t>(p + "quant_min"),
                                                     f.scalar<std::int64_t>(p + "quant_max"), ste);
      EXPECT_TRUE(test::bits_equal(y.value().data(), f.get<float>(p + "y").data(), x.numel(), "y"));
      tape.backward(y, dy);
      for (Index i = 0; i < x.numel(); ++i) {
        const float want = ste == SteMode::PassThrough ? dy[i] : dy[i] * static_cast<float>(mask[i]);
        ASSERT_EQ(xv.grad()[i], want) << p << " element " << i << " ste " << ste_mode_name(ste);
      }
    }
  }
  for (std::int64_t c : {0, 4, 9, 15}) {
    const std::string p = test::case_prefix("pc", c);
    const auto x = f.get<float>(p + "x");
    const auto mask = f.get<std::uint8_t>(p + "mask");
    DynTensor<float> dy(x.shape());
    init::normal(dy, rng, 0.0, 1.0);
    Tape<float> tape;
    Var<float> xv = tape.leaf(x);
    Var<float> y = fake_quantize_per_channel_affine(
        xv, to_vec(f.get<float>(p + "scale")), to_i32(f.get<std::int32_t>(p + "zero_point")),
        static_cast<int>(f.scalar<std::int64_t>(p + "axis")), f.scalar<std::int64_t>(p + "quant_min"),
        f.scalar<std::int64_t>(p + "quant_max"));
    tape.backward(y, dy);
    for (Index i = 0; i < x.numel(); ++i)
      ASSERT_EQ(xv.grad()[i], dy[i] * static_cast<float>(mask[i])) << p << " element " << i;
  }
}

// Gradients accumulate (+=) like every tape op, and a constant input records
// no backward.
TEST(FakeQuantizeTest, TapeOpAccumulatesAndSkipsConstants) {
  DynTensor<float> x({4});
  x[0] = 0.1f, x[1] = 10.0f, x[2] = -0.3f, x[3] = 0.0f;
  Param<float> p(x);
  Tape<float> tape;
  for (SteMode ste : {SteMode::Clipped, SteMode::PassThrough}) {
    Var<float> y = fake_quantize_per_tensor_affine(tape.param(p), 0.1f, 0, -8, 7, ste);
    tape.backward(y, DynTensor<float>(x.shape(), 1.0f));
    tape.clear();
  }
  EXPECT_EQ(p.grad()[0], 2.0f);
  EXPECT_EQ(p.grad()[1], 1.0f);  // 10 / 0.1 = 100 > 7: masked by the clipped STE only
  Var<float> k = tape.constant(x);
  EXPECT_FALSE(fake_quantize_per_tensor_affine(k, 0.1f, 0, -8, 7).requires_grad());
}

TEST(FakeQuantizeTest, FirstGradientWriteOverwritesAndEqualsAccumulatingIntoZeros) {
  // x feeds two fake-quantize ops: the later op's backward writes x's fresh
  // gradient buffer (=), the earlier one adds (+=). On every ISA and STE
  // mode the result is bitwise the old one, where both added into zeros
  // (forced by asking for tape.grad(x) first), signed zeros included; and it
  // is the sum of each op's gradient alone. 203 elements: a SIMD body, a
  // tail, and gradients dy * 0 = -0 for masked negative dy.
  Rng rng(11);
  DynTensor<float> xv({203}), dy({203});
  init::normal(xv, rng, 0.0, 1.0);
  init::normal(dy, rng, 0.0, 1.0);
  auto grad = [&](bool first, bool second, bool zeroed, SteMode ste) {
    Tape<float> tape;
    Var<float> x = tape.leaf(xv);
    Var<float> y1 = fake_quantize_per_tensor_affine(x, 0.02f, 0, -8, 7, ste);
    Var<float> y2 = fake_quantize_per_tensor_affine(x, 0.05f, 3, -16, 15, ste);
    Var<float> y = first && second ? y1 + y2 : first ? y1 : y2;
    if (zeroed) tape.grad(x);
    tape.backward(y, dy);
    return x.grad();
  };
  for (auto isa : test::runnable_isas()) {
    const ScopedMaxIsa limit(isa);
    for (SteMode ste : {SteMode::Clipped, SteMode::PassThrough}) {
      const DynTensor<float> both = grad(true, true, false, ste), a = grad(true, false, false, ste);
      const DynTensor<float> b = grad(false, true, false, ste), both_zeroed = grad(true, true, true, ste);
      const DynTensor<float> a_zeroed = grad(true, false, true, ste);
      for (Index i = 0; i < xv.numel(); ++i) {
        ASSERT_EQ(std::signbit(a[i]), std::signbit(a_zeroed[i])) << "at " << i;
        ASSERT_EQ(a[i], a_zeroed[i]) << "at " << i;
        ASSERT_EQ(both[i], both_zeroed[i]) << "at " << i;
        ASSERT_EQ(both[i], a[i] + b[i]) << "at " << i;
      }
    }
  }
}

TEST(FakeQuantizeTest, DoubleInstantiationAgreesOnExactCases) {
  // Dyadic scale: x / scale is exact in both precisions, so float and double agree.
  const Fixture& f = ops_fixture();
  for (std::int64_t c = 0; c < f.scalar<std::int64_t>("pt.count"); ++c) {
    const std::string p = test::case_prefix("pt", c);
    if (f.scalar<float>(p + "scale") != 0.125f) continue;
    const auto x = f.get<float>(p + "x");
    const auto want = f.get<float>(p + "y");
    const auto y = fake_quantize_per_tensor_affine(x.cast<double>(), 0.125, f.scalar<std::int64_t>(p + "zero_point"),
                                                   f.scalar<std::int64_t>(p + "quant_min"),
                                                   f.scalar<std::int64_t>(p + "quant_max"));
    for (Index i = 0; i < x.numel(); ++i) {
      if (!std::isfinite(x[i]) || std::abs(x[i]) > 1e6f) continue;  // float x * 8 overflows differently
      ASSERT_EQ(static_cast<float>(y[i]), want[i]) << p << " element " << i;
    }
  }
}

TEST(FakeQuantizeTest, EigenTensorAndQuantParamsOverloads) {
  Tensor<float, 2> x(3, 4);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = 0.07f * static_cast<float>(i) - 0.4f;
  const Tensor<float, 2> y = fake_quantize_per_tensor_affine(x, 0.05f, 2, -8, 7);
  const auto yd = fake_quantize_per_tensor_affine(DynTensor<float>::from(x), 0.05f, 2, -8, 7);
  EXPECT_TRUE(test::bits_equal(y.data(), yd.data(), 12, "y"));
  const Tensor<float, 2> yc = fake_quantize_per_channel_affine(x, std::vector<float>{0.05f, 0.1f, 0.2f},
                                                               std::vector<std::int32_t>{0, 1, -1}, 0, -8, 7);
  QuantParams qp;
  qp.per_channel = true;
  qp.axis = 0;
  qp.scale = {0.05f, 0.1f, 0.2f};
  qp.zero_point = {0, 1, -1};
  qp.quant_min = -8;
  qp.quant_max = 7;
  const auto yq = fake_quantize(DynTensor<float>::from(x), qp);
  EXPECT_TRUE(test::bits_equal(yc.data(), yq.data(), 12, "y"));
}

TEST(FakeQuantizeTest, ValidationNamesTheOffendingValues) {
  DynTensor<float> x({2, 3}, 0.5f);
  using ::testing::HasSubstr;
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, 0.0f, 0, -8, 7); }),
              HasSubstr("scale must be positive and finite, got 0"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, -0.5f, 0, -8, 7); }), HasSubstr("got -0.5"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, std::nanf(""), 0, -8, 7); }), HasSubstr("got nan"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, std::numeric_limits<float>::infinity(), 0, -8, 7); }),
              HasSubstr("got inf"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, 0.1f, 0, 7, -8); }),
              HasSubstr("quant_min (7) must not exceed quant_max (-8)"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, 0.1f, 9, -8, 7); }),
              HasSubstr("zero_point 9 is outside [quant_min, quant_max] = [-8, 7]"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_tensor_affine(x, 0.1f, 0, 0, std::int64_t(1) << 30); }),
              HasSubstr("exceeds +-2^24"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.1f},
                                                              std::vector<std::int32_t>{0, 0}, 1, -8, 7); }),
              HasSubstr("2 scales for 3 channels (axis 1 of shape [2, 3])"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.1f},
                                                              std::vector<std::int32_t>{0}, 0, -8, 7); }),
              HasSubstr("2 scales but 1 zero points"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.1f},
                                                              std::vector<std::int32_t>{0, 0}, 2, -8, 7); }),
              HasSubstr("axis 2 is out of range for shape [2, 3] (rank 2)"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, -1.0f},
                                                              std::vector<std::int32_t>{0, 0}, 0, -8, 7); }),
              HasSubstr("got -1 for channel 1"));
  EXPECT_THAT(test::error_of([&] { fake_quantize_per_channel_affine(x, std::vector<float>{0.1f, 0.1f},
                                                              std::vector<std::int32_t>{0, 8}, 0, -8, 7); }),
              HasSubstr("zero_point 8 of channel 1 is outside [quant_min, quant_max] = [-8, 7]"));
  // The tape op validates before recording anything.
  Tape<float> tape;
  Var<float> xv = tape.leaf(x);
  EXPECT_THROW(fake_quantize_per_tensor_affine(xv, 0.0f, 0, -8, 7), Error);
  EXPECT_EQ(tape.size(), 1u);
}

}  // namespace
}  // namespace qaware
