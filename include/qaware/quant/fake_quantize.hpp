#pragma once
// fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine, as
// PyTorch's ops of the same names (same argument order), with a
// straight-through-estimator backward.
//
//   q = clamp(zero_point + nearbyint(x * (1 / scale)), quant_min, quant_max)
//   y = (q - zero_point) * scale
//
// computed in Scalar arithmetic, rounding half to even, bit-identical to
// PyTorch 1.13's CPU kernel for float (fake_quantize_kernels.hpp documents the
// exact arithmetic, including NaN, +-inf and huge inputs, which all map to
// quant_min). The mask of in-range elements (quant_min <= unclamped q <=
// quant_max) is kept as bits for backward:
//   SteMode::Clipped (default, PyTorch):  dx += dy * mask
//   SteMode::PassThrough:                 dx += dy
//   SteMode::LearnableClip:               as Clipped (the scale is a constant here)
//
// Shapes: per tensor, any shape. Per channel, x is viewed as (OUTER, C, INNER)
// around `axis` (negative counts from the end); scale and zero_point have C
// entries.
//
// Three layers, as ops/linear.hpp: raw-pointer ops::*_forward/_backward
// (validated inputs, parallel over 64-element blocks) and plain tensor
// functions (DynTensor and Eigen Tensor, validating), both in
// quant/kernels/fake_quantize.hpp without the tape, and here the Var ops that
// record the backward on the tape.
//
// Errors (qaware::Error, naming the values): scale <= 0 or non-finite,
// quant_min > quant_max, a range beyond +-2^24, a zero point outside
// [quant_min, quant_max], a channel-count mismatch, an axis out of range.

#include <cstdint>
#include <utility>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/quant/kernels/fake_quantize.hpp"

namespace qaware {

// ---------------------------------------------------------------------------
// Tape ops.

namespace detail {
namespace fq {
template <typename Scalar>
Var<Scalar> record_ste(Var<Scalar> x, DynTensor<Scalar> y, BitMask mask, SteMode ste) {
  return x.tape().record(std::move(y), {x},
                         [x, ste, mask = std::move(mask)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                           const auto dx = t.grad_slot(x);
                           ops::fake_quantize_backward(dy.data(), mask.words(), dx.data, dy.numel(), ste, dx.fresh);
                         });
}
}  // namespace fq
}  // namespace detail

template <typename Scalar>
Var<Scalar> fake_quantize_per_tensor_affine(Var<Scalar> x, detail::identity_t<Scalar> scale, std::int64_t zero_point,
                                            std::int64_t quant_min, std::int64_t quant_max,
                                            SteMode ste = SteMode::Clipped) {
  detail::fq::validate_per_tensor("fake_quantize_per_tensor_affine", static_cast<double>(scale), zero_point, quant_min,
                                  quant_max);
  const DynTensor<Scalar>& xv = x.value();
  DynTensor<Scalar> y(xv.shape());
  const bool need_mask = x.requires_grad() && ste != SteMode::PassThrough;
  BitMask mask(need_mask ? xv.numel() : 0);
  ops::fake_quantize_per_tensor_forward(xv.data(), y.data(), need_mask ? mask.words() : nullptr, xv.numel(), scale,
                                        zero_point, quant_min, quant_max);
  return detail::fq::record_ste(x, std::move(y), std::move(mask), ste);
}

template <typename Scalar>
Var<Scalar> fake_quantize_per_channel_affine(Var<Scalar> x, const std::vector<Scalar>& scale,
                                             const std::vector<std::int32_t>& zero_point, int axis,
                                             std::int64_t quant_min, std::int64_t quant_max,
                                             SteMode ste = SteMode::Clipped) {
  const DynTensor<Scalar>& xv = x.value();
  const auto v = detail::fq::validate_per_channel("fake_quantize_per_channel_affine", xv.shape(), scale.data(),
                                                  static_cast<Index>(scale.size()), zero_point.data(),
                                                  static_cast<Index>(zero_point.size()), axis, quant_min, quant_max);
  DynTensor<Scalar> y(xv.shape());
  const bool need_mask = x.requires_grad() && ste != SteMode::PassThrough;
  BitMask mask(need_mask ? xv.numel() : 0);
  ops::fake_quantize_per_channel_forward(xv.data(), y.data(), need_mask ? mask.words() : nullptr, v.outer, v.channels,
                                         v.inner, scale.data(), zero_point.data(), quant_min, quant_max);
  return detail::fq::record_ste(x, std::move(y), std::move(mask), ste);
}

template <typename Scalar>
Var<Scalar> fake_quantize(Var<Scalar> x, const QuantParams& qp, SteMode ste = SteMode::Clipped) {
  return detail::fq::with_qparams<Scalar>(
      qp, [&](Scalar s, std::int32_t z) { return fake_quantize_per_tensor_affine(x, s, z, qp.quant_min, qp.quant_max, ste); },
      [&](const std::vector<Scalar>& s) {
        return fake_quantize_per_channel_affine(x, s, qp.zero_point, qp.axis, qp.quant_min, qp.quant_max, ste);
      });
}

}  // namespace qaware
