#pragma once
// Straight-through estimators (STE) for the fake-quant ops.
//
// Rounding has a zero derivative almost everywhere, so quantization-aware
// training replaces it by an estimator. Let q = zp + nearbyint(x / s) be the
// unclamped integer of an element and "in range" mean
// quant_min <= q <= quant_max (the mask PyTorch saves in forward).
//
//  * SteMode::Clipped (default; PyTorch's fake_quantize_* backward):
//      dL/dx = dL/dy * [in range]. Elements that the clamp saturated get no
//      gradient.
//  * SteMode::PassThrough (the textbook STE of Bengio et al. 2013):
//      dL/dx = dL/dy for every element, saturated or not.
//  * SteMode::LearnableClip (PACT-style, Choi et al. 2018, generalised to an
//      affine range): the clipping bounds lo = (quant_min - zp) * s and
//      hi = (quant_max - zp) * s are what the scale (and zero point) learn.
//      dL/dx = dL/dy * [in range] as Clipped; for the learnable ops the scale
//      receives gradient only from saturated elements,
//        dL/ds  = sum over q < quant_min of dL/dy * (quant_min - zp)
//               + sum over q > quant_max of dL/dy * (quant_max - zp),
//      and the zero point dL/dzp = sum over saturated elements of -dL/dy * s
//      (both times the grad factor). This is PACT's dL/dalpha = dL/dy * [x >= alpha]
//      with alpha = (quant_max - zp) * s, i.e. LSQ's gradient without its
//      in-range rounding-error term (x_fq - x) / s.
//      For the non-learnable ops (constant scale) it acts as Clipped.

namespace qaware {

enum class SteMode {
  Clipped,
  PassThrough,
  LearnableClip,
};

inline const char* ste_mode_name(SteMode m) {
  switch (m) {
    case SteMode::Clipped: return "clipped";
    case SteMode::PassThrough: return "pass_through";
    case SteMode::LearnableClip: return "learnable_clip";
  }
  return "?";
}

}  // namespace qaware
