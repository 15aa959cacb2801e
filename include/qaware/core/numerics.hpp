#pragma once
// The one definition of qaware's quantization arithmetic: rounding, float ->
// code, code -> float, the INT8 GEMM's accumulator -> float step, and GELU.
// Fake quantization (scalar and every SIMD kernel), the recovery of integer
// codes from fake-quantized values, the GEMM's output stages and the
// exporter compute exactly these; SIMD kernels implement the same formulas
// lane by lane, and their tests compare them with these functions.
//
// Quantize, as PyTorch 1.13's CPU fake_quantize / quantize_val compute it on
// x86, in the precision S of the tensor (float; double for gradient checks):
//   qf = zero_point + round_half_even(x * inv_scale)    inv_scale = 1 / scale, once
//   q  = clamp(qf, qmin, qmax)
//   in_range = qmin <= qf <= qmax                       (the STE mask)
// PyTorch converts qf to int64 before the clamp, which is undefined in C++
// for NaN and |qf| >= 2^63 and yields INT64_MIN on x86. The policy here,
// the same on every ISA and platform, reproduces that result:
//   qf NaN (x NaN)                          -> qmin, out of range
//   qf >= 2^63 (x = +inf, or x/scale huge)  -> qmin, out of range
//   qf <= -2^63 (x = -inf, ...)             -> qmin, out of range (the clamp)
//   qmax < qf < 2^63                        -> qmax, out of range
// (checked against torch 1.13 in the fake-quant goldens: +inf gives quant_min
// there too). The clamp and the subtraction below are exact for ranges within
// +-2^24, so dequantize's (q - zero_point) * scale rounds once.

#include <cmath>
#include <cstdint>

#include "qaware/core/host_device.hpp"
#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

namespace qaware {
namespace numerics {

// Round to the nearest integer, ties to even (the default rounding mode).
// std::rint returns what PyTorch's std::nearbyint returns and is much
// faster: glibc's nearbyint saves and restores the floating-point
// environment on every call (rint may raise FE_INEXACT, which nobody reads).
template <typename S>
QAWARE_HD inline S round_half_even(S v) {
  return std::rint(v);
}

// 2^63: the first value PyTorch's int64 conversion cannot represent.
template <typename S>
inline constexpr S kInt64Limit = S(9223372036854775808.0);

// The clamped level q (as S) of x under the policy above; in_range is the
// STE mask. Written as selects, without branches, so loops over it vectorise:
// a NaN qf fails `qf > qmin` and becomes qmin.
template <typename S>
QAWARE_HD inline S quantize_level(S x, S inv_scale, S zero_point, S qmin, S qmax, bool& in_range) {
  const S qf = zero_point + round_half_even(x * inv_scale);
  in_range = (qf >= qmin) & (qf <= qmax);
  S q = qf > qmin ? qf : qmin;
  q = q < qmax ? q : qmax;
  return qf >= kInt64Limit<S> ? qmin : q;
}

// The integer code of x: quantize_level as int32 (qmin <= code <= qmax).
QAWARE_HD inline std::int32_t quantize(float x, float inv_scale, std::int32_t zero_point, std::int32_t qmin,
                                        std::int32_t qmax) {
  bool in_range = false;
  return static_cast<std::int32_t>(quantize_level(x, inv_scale, static_cast<float>(zero_point), static_cast<float>(qmin),
                                                  static_cast<float>(qmax), in_range));
}

// The value of level q: (q - zero_point) * scale, one rounding.
template <typename S>
QAWARE_HD inline S dequantize(S q, S zero_point, S scale) {
  return (q - zero_point) * scale;
}

// Fake quantization of one value: dequantize(quantize_level(x)).
template <typename S>
QAWARE_HD inline S fake_quantize(S x, S scale, S inv_scale, S zero_point, S qmin, S qmax, bool& in_range) {
  return dequantize(quantize_level(x, inv_scale, zero_point, qmin, qmax, in_range), zero_point, scale);
}

// The INT8 GEMM's int32 accumulator as float: fma(float(acc), scale, bias),
// one rounding, so SIMD epilogues and the scalar reference agree bit for bit
// whatever FMA contraction the compiler would otherwise apply.
QAWARE_HD inline float dequantize_accumulator(std::int32_t acc, float scale, float bias) {
  return std::fma(static_cast<float>(acc), scale, bias);
}

// GELU, erf form, y = x/2 (1 + erf(x / sqrt 2)) as torch.nn.functional.gelu,
// on n contiguous values (y may alias x). The float erf is Eigen's rational
// approximation (a few ulp from the exact value); Eigen evaluates it with the
// same formula in its vector and scalar code, so each y[i] depends on x[i]
// alone, not on n or on where the row starts. The gelu op and the INT8 GEMM's
// fused GELU stage both call this, so a fused INT8 GELU matches training.
template <typename S>
void gelu_erf(const S* x, S* y, std::ptrdiff_t n) {
  using Array = Eigen::Array<S, Eigen::Dynamic, 1>;
  const Eigen::Map<const Array> X(x, n);
  Eigen::Map<Array> Y(y, n);
  Y = S(0.5) * X * (S(1) + (X * S(0.70710678118654752440)).erf());
}

}  // namespace numerics
}  // namespace qaware
