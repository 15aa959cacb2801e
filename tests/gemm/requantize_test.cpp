// The shared quantize routine (qaware/quant/requantize.hpp) against PyTorch:
// q must equal torch.fake_quantize_per_tensor_affine's integer exactly (no
// tolerance: same float multiply by 1/scale, same round-half-to-even, same
// clamp), including half-way ties and saturation.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "common/fixture.hpp"
#include "qaware/quant/requantize.hpp"

namespace qaware {
namespace {

TEST(RequantizeTest, MatchesPyTorchFakeQuantize) {
  const test::Fixture fx = test::Fixture::load("requantize_golden.qawfix");
  const std::int64_t configs = fx.scalar<std::int64_t>("configs");
  ASSERT_GT(configs, 0);
  Index checked = 0, ties = 0, saturated = 0;
  for (std::int64_t c = 0; c < configs; ++c) {
    const std::string i = std::to_string(c);
    const float scale = fx.scalar<float>("scale_" + i);
    const auto zp = static_cast<std::int32_t>(fx.scalar<std::int64_t>("zp_" + i));
    const auto qmin = static_cast<std::int32_t>(fx.scalar<std::int64_t>("qmin_" + i));
    const auto qmax = static_cast<std::int32_t>(fx.scalar<std::int64_t>("qmax_" + i));
    const DynTensor<float> x = fx.get<float>("x_" + i);
    const DynTensor<std::int32_t> q = fx.get<std::int32_t>("q_" + i);
    ASSERT_EQ(x.numel(), q.numel());
    const float inv = 1.0f / scale;  // as PyTorch computes it
    for (Index k = 0; k < x.numel(); ++k) {
      ASSERT_EQ(quant::quantize_value(x[k], inv, zp, qmin, qmax), q[k])
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

// Where PyTorch's own cast is undefined (|x / scale| past int64) or the input
// is not finite, quantize_value still saturates; NaN goes to qmin.
TEST(RequantizeTest, SaturatesHugeAndNonFiniteInputs) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(quant::quantize_value(3e38f, 8.0f, 0, 0, 255), 255);
  EXPECT_EQ(quant::quantize_value(-3e38f, 8.0f, 0, 0, 255), 0);
  EXPECT_EQ(quant::quantize_value(inf, 1.0f, 3, -128, 127), 127);
  EXPECT_EQ(quant::quantize_value(-inf, 1.0f, 3, -128, 127), -128);
  EXPECT_EQ(quant::quantize_value(std::nanf(""), 1.0f, 3, -128, 127), -128);
}

TEST(RequantizeTest, DequantizeAccumulatorIsOneFusedRounding) {
  // 3 * (1/3f) is 1 + 2^-25 exactly; rounded to float that is 1, so a product
  // rounded before the add would give 1 - 1 = 0. The fused form keeps the
  // 2^-25 (exact in double, then one rounding to float).
  const float third = 1.0f / 3.0f;
  const float fused = quant::dequantize_accumulator(3, third, -1.0f);
  EXPECT_EQ(fused, static_cast<float>(3.0 * static_cast<double>(third) - 1.0));
  EXPECT_NE(fused, 0.0f);
}

}  // namespace
}  // namespace qaware
