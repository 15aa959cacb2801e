// F16 / BF16 conversions: exhaustively against exact double arithmetic, and
// against PyTorch 1.13's conversions (tools/gen_safetensors_golden.py).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/fixture.hpp"
#include "qaware/io/float16.hpp"

namespace qaware::io {
namespace {

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The value of a half, from its definition, in double.
double half_value(std::uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0) v = std::ldexp(m, -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

TEST(Float16Test, HalfToFloatIsExactForAllHalves) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = half_bits_to_float(static_cast<std::uint16_t>(h));
    const double want = half_value(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      EXPECT_EQ(bits(f) & 0x7fffffu, static_cast<std::uint32_t>(h & 1023) << 13) << "payload kept";
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << h;
      ASSERT_EQ(std::signbit(f), (h >> 15) != 0) << h;
    }
  }
}

TEST(Float16Test, FloatToHalfRoundsToNearestEvenEverywhere) {
  // Every finite half round-trips, and every midpoint between neighbouring
  // halves (exactly representable in float) rounds to the even one; points
  // just above/below a midpoint round up/down.
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {
    for (std::uint32_t sign : {0u, 0x8000u}) {
      const std::uint16_t x = static_cast<std::uint16_t>(h | sign);
      ASSERT_EQ(float_to_half_bits(half_bits_to_float(x)), x) << h;
      const double lo = std::fabs(half_value(x));
      const double hi = h + 1 == 0x7c00 ? 65536.0 : std::fabs(half_value(static_cast<std::uint16_t>(h + 1)));
      const float mid = static_cast<float>((lo + hi) / 2);  // exact: needs at most 12 significant bits
      ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
      const float smid = sign ? -mid : mid;
      const std::uint16_t even = (h & 1) ? static_cast<std::uint16_t>((h + 1) | sign) : x;
      ASSERT_EQ(float_to_half_bits(smid), even) << "midpoint above half " << h;
      ASSERT_EQ(float_to_half_bits(std::nextafter(smid, 0.0f)), x) << h;
      ASSERT_EQ(float_to_half_bits(std::nextafter(smid, sign ? -INFINITY : INFINITY)),
                static_cast<std::uint16_t>((h + 1) | sign))
          << h;
    }
  }
  EXPECT_EQ(float_to_half_bits(INFINITY), 0x7c00);
  EXPECT_EQ(float_to_half_bits(-INFINITY), 0xfc00);
  EXPECT_EQ(float_to_half_bits(1e30f), 0x7c00);
  EXPECT_EQ(float_to_half_bits(1e-30f), 0x0000);
  EXPECT_EQ(float_to_half_bits(-1e-30f), 0x8000);
  EXPECT_EQ(float_to_half_bits(NAN), 0x7e00);
}

TEST(Float16Test, Bfloat16RoundTripsAndWidensExactly) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = bfloat16_bits_to_float(static_cast<std::uint16_t>(b));
    ASSERT_EQ(bits(f), b << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bfloat16_bits(f), b);
    }
  }
}

TEST(Float16Test, MatchesPyTorchConversions) {
  const auto fx = test::Fixture::load("safetensors_golden.qawfix");
  const auto src = fx.get<float>("conv.f32");
  const auto f16 = fx.get<std::int32_t>("conv.f16_bits");
  const auto bf16 = fx.get<std::int32_t>("conv.bf16_bits");
  ASSERT_GT(src.numel(), 600);
  int nans = 0;
  for (Index i = 0; i < src.numel(); ++i) {
    if (std::isnan(src[i])) {
      // NaN stays NaN. The bit patterns differ by code path inside PyTorch
      // (its vectorised BF16 conversion writes 0xFFFF, c10::BFloat16 0x7FC0);
      // we write c10's canonical NaNs.
      EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(src[i]))));
      EXPECT_TRUE(std::isnan(bfloat16_bits_to_float(float_to_bfloat16_bits(src[i]))));
      EXPECT_TRUE(std::isnan(half_bits_to_float(static_cast<std::uint16_t>(f16[i]))));
      EXPECT_TRUE(std::isnan(bfloat16_bits_to_float(static_cast<std::uint16_t>(bf16[i]))));
      ++nans;
      continue;
    }
    EXPECT_EQ(float_to_half_bits(src[i]), static_cast<std::uint16_t>(f16[i])) << "value " << src[i] << " (i=" << i << ")";
    EXPECT_EQ(float_to_bfloat16_bits(src[i]), static_cast<std::uint16_t>(bf16[i])) << "value " << src[i] << " (i=" << i << ")";
  }
  EXPECT_EQ(nans, 1);
}

}  // namespace
}  // namespace qaware::io
