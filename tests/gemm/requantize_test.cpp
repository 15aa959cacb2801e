// The shared quantize routine (qaware/core/numerics.hpp) against PyTorch:
// q must equal torch.fake_quantize_per_tensor_affine's integer exactly (no
// tolerance: same float multiply by 1/scale, same round-half-to-even, same
// clamp), including half-way ties and saturation.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/fixture.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"
#include "qaware/core/numerics.hpp"
#include "quant/quant_test_util.hpp"

namespace qaware {
namespace {

// One configuration of the golden file: the quantization parameters and
// the inputs x.
struct GoldenConfig {
  float scale;
  std::int32_t zp, qmin, qmax;
  DynTensor<float> x;
};
GoldenConfig golden_config(const test::Fixture& fx, std::int64_t c) {
  const std::string i = std::to_string(c);
  return {fx.scalar<float>("scale_" + i), static_cast<std::int32_t>(fx.scalar<std::int64_t>("zp_" + i)),
          static_cast<std::int32_t>(fx.scalar<std::int64_t>("qmin_" + i)),
          static_cast<std::int32_t>(fx.scalar<std::int64_t>("qmax_" + i)), fx.get<float>("x_" + i)};
}

TEST(RequantizeTest, MatchesPyTorchFakeQuantize) {
  const test::Fixture fx = test::Fixture::load("requantize_golden.qawfix");
  const std::int64_t configs = fx.scalar<std::int64_t>("configs");
  ASSERT_GT(configs, 0);
  Index checked = 0, ties = 0, saturated = 0;
  for (std::int64_t c = 0; c < configs; ++c) {
    const auto [scale, zp, qmin, qmax, x] = golden_config(fx, c);
    const DynTensor<std::int32_t> q = fx.get<std::int32_t>("q_" + std::to_string(c));
    ASSERT_EQ(x.numel(), q.numel());
    const float inv = 1.0f / scale;  // as PyTorch computes it
    for (Index k = 0; k < x.numel(); ++k) {
      ASSERT_EQ(numerics::quantize(x[k], inv, zp, qmin, qmax), q[k])
          << "config " << c << " (scale " << scale << ", zp " << zp << ", [" << qmin << ", " << qmax << "]), x = "
          << x[k];
      const float t = x[k] * inv;
      ties += (t - std::floor(t) == 0.5f);
      saturated += (q[k] == qmin || q[k] == qmax);
      ++checked;
    }
  }
  // The fixture must exercise ties and saturation, or the test proves little.
  EXPECT_GT(ties, 100);
  EXPECT_GT(saturated, 100);
  EXPECT_GT(checked, 5000);
}

// The policy where PyTorch's int64 cast is undefined (NaN, |x / scale| >=
// 2^63, infinities): qmin, as x86 gives PyTorch (INT64_MIN, clamped) and as
// the fake-quant goldens record for +inf; up to 2^63 values saturate.
TEST(RequantizeTest, HugeAndNonFiniteInputsFollowThePolicy) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(numerics::quantize(3e38f, 8.0f, 0, 0, 255), 0);  // x / scale = inf
  EXPECT_EQ(numerics::quantize(1e18f, 10.0f, 0, 0, 255), 0);  // 1e19 >= 2^63
  EXPECT_EQ(numerics::quantize(9e18f, 1.0f, 0, 0, 255), 255);  // 9e18 < 2^63: saturates
  EXPECT_EQ(numerics::quantize(-3e38f, 8.0f, 0, 0, 255), 0);
  EXPECT_EQ(numerics::quantize(inf, 1.0f, 3, -128, 127), -128);
  EXPECT_EQ(numerics::quantize(-inf, 1.0f, 3, -128, 127), -128);
  EXPECT_EQ(numerics::quantize(std::nanf(""), 1.0f, 3, -128, 127), -128);
  EXPECT_EQ(numerics::quantize(1000.0f, 1.0f, 3, -128, 127), 127);
  // Fake quantization gives the same levels with a zero STE mask.
  for (const float x : {3e38f * 8.0f, 1e19f, -inf, std::nanf("")}) {
    bool in_range = true;
    EXPECT_EQ(numerics::quantize_level(x, 1.0f, 3.0f, -128.0f, 127.0f, in_range), -128.0f) << x;
    EXPECT_FALSE(in_range) << x;
  }
}

// The vectorised codes (detail::fq::quantize_codes, the quantized linear's
// code recovery) equal quantize_value element for element on every ISA this
// CPU runs: the golden's values (ties and saturation included) and special
// values, for uint8 and int8 ranges and lengths that leave a scalar tail.
template <typename Code>
void expect_codes_match(const std::vector<float>& x, float inv, std::int32_t zp, std::int32_t qmin, std::int32_t qmax,
                        const std::string& what) {
  for (const Isa isa : test::runnable_isas()) {
    const ScopedMaxIsa limit(isa);
    for (const Index n : {Index(x.size()), Index(x.size()) - 1, Index(31), Index(33)}) {
      if (n < 0 || n > Index(x.size())) continue;
      std::vector<Code> c(static_cast<std::size_t>(n) + 1, Code(0x5A));
      detail::fq::quantize_codes(x.data(), c.data(), n, inv, zp, qmin, qmax);
      for (Index k = 0; k < n; ++k)
        ASSERT_EQ(int(c[static_cast<std::size_t>(k)]), numerics::quantize(x[static_cast<std::size_t>(k)], inv, zp, qmin, qmax))
            << what << ", " << isa_name(isa) << ", n = " << n << ", x = " << x[static_cast<std::size_t>(k)];
      EXPECT_EQ(c.back(), Code(0x5A)) << what << ": wrote past n = " << n;
    }
  }
}

TEST(RequantizeTest, VectorisedCodesEqualQuantizeValueOnEveryIsa) {
  const test::Fixture fx = test::Fixture::load("requantize_golden.qawfix");
  const std::int64_t configs = fx.scalar<std::int64_t>("configs");
  int tested = 0;
  for (std::int64_t c = 0; c < configs; ++c) {
    const auto [scale, zp, qmin, qmax, xt] = golden_config(fx, c);
    const float inv = 1.0f / scale;
    std::vector<float> x(xt.data(), xt.data() + xt.numel());
    const std::string what = "config " + std::to_string(c);
    if (qmin >= 0 && qmax <= 255) {
      expect_codes_match<std::uint8_t>(x, inv, zp, qmin, qmax, what);
      ++tested;
    } else if (qmin >= -128 && qmax <= 127) {
      expect_codes_match<std::int8_t>(x, inv, zp, qmin, qmax, what);
      ++tested;
    }
  }
  EXPECT_GT(tested, 1);
  // Not finite, huge, ties at both ends of the range, and -0.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> special{std::nanf(""), inf, -inf, 3e38f, -3e38f, 1e19f, 9e18f, -1e19f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -0.0f,
                             126.5f, 127.5f, 128.5f, -127.5f, -128.5f, 254.5f, 255.5f, 1e-30f, -1e-30f};
  for (int k = 0; k < 60; ++k) special.push_back(static_cast<float>(k * 7 % 300) - 150.25f);
  expect_codes_match<std::uint8_t>(special, 1.0f, 0, 0, 255, "uint8 [0, 255]");
  expect_codes_match<std::uint8_t>(special, 1.0f, 128, 0, 255, "uint8 zp 128");
  expect_codes_match<std::uint8_t>(special, 0.5f, 3, 2, 200, "uint8 [2, 200]");
  expect_codes_match<std::int8_t>(special, 1.0f, 0, -128, 127, "int8 [-128, 127]");
  expect_codes_match<std::int8_t>(special, 2.0f, -5, -127, 127, "int8 zp -5");
}

TEST(RequantizeTest, DequantizeAccumulatorIsOneFusedRounding) {
  // 3 * (1/3f) is 1 + 2^-25 exactly; rounded to float that is 1, so a product
  // rounded before the add would give 1 - 1 = 0. The fused form keeps the
  // 2^-25 (exact in double, then one rounding to float).
  const float third = 1.0f / 3.0f;
  const float fused = numerics::dequantize_accumulator(3, third, -1.0f);
  EXPECT_EQ(fused, static_cast<float>(3.0 * static_cast<double>(third) - 1.0));
  EXPECT_NE(fused, 0.0f);
}

}  // namespace
}  // namespace qaware
