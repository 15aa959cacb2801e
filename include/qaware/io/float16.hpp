#pragma once
// IEEE half (F16) and bfloat16 (BF16) conversions, bit-exact and portable
// (no F16C needed), with PyTorch's conventions:
//   float -> F16 and float -> BF16 round to nearest, ties to even; values
//   beyond the largest finite half become infinity; NaN becomes the
//   canonical quiet NaN (sign | 0x7E00 for F16, 0x7FC0 for BF16), as
//   c10::Half and c10::BFloat16 do.
//   F16 -> float and BF16 -> float are exact (NaN payloads kept).

#include <cstdint>
#include <cstring>

namespace qaware {
namespace io {

namespace detail {
inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace detail

inline std::uint16_t float_to_half_bits(float f) {
  const std::uint32_t u = detail::float_bits(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7fffffffu;  // |f|
  if (a >= 0x7f800000u) return static_cast<std::uint16_t>(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));
  // 65520 = 65504 + half an ulp of 65504: from here on RNE gives infinity.
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (a < 0x38800000u) {
    // |f| < 2^-14: the result is a subnormal half (or zero), an integer
    // multiple of 2^-24. Compute round(|f| / 2^-24) to nearest even in
    // integer arithmetic: |f| = m * 2^(e - 150) with m the 24-bit significand.
    const std::uint32_t e = a >> 23;
    if (e < 102) return static_cast<std::uint16_t>(sign);  // |f| < 2^-25: rounds to 0 (2^-25 itself is a tie to 0)
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;  // e >= 102 > 0: normal float
    const std::uint32_t shift = 126 - e;                  // |f| / 2^-24 = m >> shift; 14 <= shift <= 24
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);  // q == 0x400 carries into the smallest normal, as it should
  }
  // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped
  // mantissa bits to nearest even; a carry out of the mantissa bumps the
  // exponent, which is again correct.
  const std::uint32_t lsb = (a >> 13) & 1u;
  const std::uint32_t r = a - (112u << 23) + 0xfffu + lsb;
  return static_cast<std::uint16_t>(sign | (r >> 13));
}

inline float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return detail::bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return detail::bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return detail::bits_float(sign);
  // Subnormal: mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
  return sign ? -v : v;
}

inline std::uint16_t float_to_bfloat16_bits(float f) {
  const std::uint32_t u = detail::float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
  const std::uint32_t lsb = (u >> 16) & 1u;
  return static_cast<std::uint16_t>((u + 0x7fffu + lsb) >> 16);
}

inline float bfloat16_bits_to_float(std::uint16_t b) { return detail::bits_float(static_cast<std::uint32_t>(b) << 16); }

}  // namespace io
}  // namespace qaware
