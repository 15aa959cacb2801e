#pragma once
// The ONE shared quantize / requantize routine.
//
// Train/deploy parity (DESIGN.md) relies on every producer of int8 values --
// fake quantization in the QAT forward, the INT8 GEMM's requantizing output
// stage, the exporter -- rounding and saturating in exactly the same way. They
// all call quantize_value() below; do not re-implement it elsewhere.
//
// quantize_value mirrors PyTorch's quantize_val / fake_quantize kernels:
//   q = clamp(zero_point + nearbyint(x * inv_scale), qmin, qmax)
// computed in float, with inv_scale = 1.0f / scale computed once by the caller
// (as PyTorch does), nearbyint in the default rounding mode (round half to
// even) and saturation to [qmin, qmax]. NaN saturates to qmin (as fmax(NaN,
// qmin) would), never undefined behaviour.
//
// dequantize_accumulator is the matching int32 -> float step of the GEMM's
// output stages: y = fma(float(acc), scale, bias), one rounding, so a SIMD
// epilogue and a scalar reference give bit-identical floats whatever FMA
// contraction the compiler would otherwise apply.

#include <cmath>
#include <cstdint>

namespace qaware {
namespace quant {

// q = clamp(zero_point + nearbyint(x * inv_scale), qmin, qmax), as float math.
inline std::int32_t quantize_value(float x, float inv_scale, std::int32_t zero_point, std::int32_t qmin,
                                   std::int32_t qmax) {
  float q = std::nearbyint(x * inv_scale) + static_cast<float>(zero_point);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  q = q >= lo ? q : lo;  // std::fmax(q, lo), NaN -> lo, written so it vectorises
  q = q <= hi ? q : hi;  // std::fmin(q, hi)
  return static_cast<std::int32_t>(q);
}

// y = float(acc) * scale + bias with a single rounding (fused multiply-add).
inline float dequantize_accumulator(std::int32_t acc, float scale, float bias) {
  return std::fma(static_cast<float>(acc), scale, bias);
}

}  // namespace quant
}  // namespace qaware
