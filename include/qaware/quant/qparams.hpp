#pragma once
// Quantization ranges and quantization parameters (scale, zero point).
//
// A QuantSpec describes how a tensor is quantized (bits, signed, symmetric,
// narrow range, reduce_range, per tensor or per channel along an axis);
// QuantSpec::range() turns it into the integer range [quant_min, quant_max].
// choose_qparams(min, max, ...) turns an observed float range into
// (scale, zero_point) exactly as PyTorch 1.13 does:
//
//  * QParamsAlgorithm::Observer (default) mirrors
//    torch.ao.quantization.observer.UniformQuantizationObserverBase._calculate_qparams,
//    float32 arithmetic throughout:
//      min_neg = min(min, 0), max_pos = max(max, 0)
//      symmetric: scale = max(max(-min_neg, max_pos) / ((qmax - qmin) / 2), eps)
//                 zero_point = 0 for signed ranges; for unsigned ranges 128 when
//                 the range is PyTorch's default (not customised) quint8 range
//                 [0, 255], else floor((qmin + qmax) / 2) (PyTorch's rule for
//                 customised ranges; PyTorch refuses symmetric uint8 with
//                 reduce_range, which this rule gives zero point 63)
//      affine:    scale = max((max_pos - min_neg) / (qmax - qmin), eps)
//                 zero_point = clamp(qmin - round_half_even(min_neg / scale), qmin, qmax)
//    with eps = torch.finfo(torch.float32).eps = 2^-23 by default. An
//    uninitialised range (min = +inf, max = -inf) gives scale 1, zero point 0.
//  * QParamsAlgorithm::Fused mirrors quant_utils::ChooseQuantizationParams
//    (aten/src/ATen/native/quantized/cpu/QuantUtils.h), the algorithm of
//    torch.fused_moving_avg_obs_fake_quant: double arithmetic, scale 0.1 when
//    the range is empty, scales below 6.1e-5 raised to 6.1e-5, and for
//    symmetric ranges ("preserve_sparsity") a widened signed range.
//
// Ranges (QuantSpec::range()):
//   signed, b bits:    [-2^(b-1), 2^(b-1) - 1]      narrow: [-(2^(b-1) - 1), 2^(b-1) - 1]
//   unsigned, b bits:  [0, 2^b - 1]                 narrow: [0, 2^b - 2]
//   reduce_range halves both ends, rounding down (PyTorch's quant_min // 2,
//   quant_max // 2): int8 -> [-64, 63], uint8 -> [0, 127].
// The unsigned narrow range keeps 0 (PyTorch requires quant_min <= 0 <=
// quant_max) and drops the top level, so a symmetric unsigned range is
// centred on its zero point (127 for 8 bits).
// A range is "customised" in PyTorch's sense (observer built with explicit
// quant_min/quant_max) unless it is an 8-bit, non-narrow range; this only
// changes the unsigned symmetric zero point (see above). QuantSpec::custom()
// sets any range explicitly.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"

namespace qaware {

// torch.finfo(torch.float32).eps
inline constexpr float kQuantEps = 1.1920928955078125e-07f;  // 2^-23

// The largest |quant_min|, |quant_max| accepted: every integer up to 2^24 is
// exactly representable in float, which keeps the float kernels exact.
inline constexpr std::int64_t kMaxQuantMagnitude = std::int64_t(1) << 24;

// An integer quantization range.
struct QRange {
  std::int64_t quant_min = -128;
  std::int64_t quant_max = 127;
  // PyTorch's has_customized_qrange (see the file comment).
  bool customized = false;
};

enum class QParamsAlgorithm {
  Observer,  // PyTorch observers' _calculate_qparams (float32)
  Fused,     // ChooseQuantizationParams of the fused observer + fake-quant op
};

// How a tensor is quantized.
struct QuantSpec {
  int bits = 8;               // 2..8
  bool is_signed = true;      // qint8-like (true) or quint8-like (false)
  bool symmetric = false;     // symmetric (scale from max |x|) or affine
  bool narrow_range = false;  // drop the most negative (signed) / top (unsigned) level
  bool reduce_range = false;  // PyTorch's reduce_range: halve the range
  bool per_channel = false;   // one (scale, zero point) per slice along `axis`
  int axis = 0;               // channel axis when per_channel (negative counts from the end)
  // An explicit [quant_min, quant_max] (a "customised" range); bits,
  // is_signed and narrow_range are then ignored, reduce_range still applies.
  bool has_custom_range = false;
  std::int64_t custom_min = 0;
  std::int64_t custom_max = 0;

  static QuantSpec int8(bool symmetric = true) {
    QuantSpec s;
    s.symmetric = symmetric;
    return s;
  }
  static QuantSpec uint8(bool symmetric = false) {
    QuantSpec s;
    s.is_signed = false;
    s.symmetric = symmetric;
    return s;
  }
  static QuantSpec signed_bits(int bits, bool symmetric = true) {
    QuantSpec s;
    s.bits = bits;
    s.symmetric = symmetric;
    return s;
  }
  static QuantSpec unsigned_bits(int bits, bool symmetric = false) {
    QuantSpec s = signed_bits(bits, symmetric);
    s.is_signed = false;
    return s;
  }
  // [quant_min, quant_max] given explicitly; is_signed selects the symmetric
  // zero-point convention (0 for signed, the midpoint for unsigned).
  static QuantSpec custom(std::int64_t quant_min, std::int64_t quant_max, bool is_signed, bool symmetric) {
    QuantSpec s;
    s.has_custom_range = true;
    s.custom_min = quant_min;
    s.custom_max = quant_max;
    s.is_signed = is_signed;
    s.symmetric = symmetric;
    return s;
  }
  QuantSpec& with_per_channel(int channel_axis) {
    per_channel = true;
    axis = channel_axis;
    return *this;
  }
  QuantSpec& with_narrow_range(bool on = true) {
    narrow_range = on;
    return *this;
  }
  QuantSpec& with_reduce_range(bool on = true) {
    reduce_range = on;
    return *this;
  }

  std::string str() const {
    std::string s;
    if (has_custom_range) {
      s = "custom[" + std::to_string(custom_min) + ", " + std::to_string(custom_max) + "]";
    } else {
      s = (is_signed ? "int" : "uint") + std::to_string(bits);
      if (narrow_range) s += " narrow";
    }
    s += symmetric ? " symmetric" : " affine";
    if (reduce_range) s += " reduce_range";
    if (per_channel) s += " per_channel(axis " + std::to_string(axis) + ")";
    return s;
  }

  // The integer range this spec quantizes to (validated).
  QRange range() const {
    std::int64_t lo = 0, hi = 0;
    bool customized = true;
    if (has_custom_range) {
      lo = custom_min;
      hi = custom_max;
      QAWARE_CHECK(lo <= 0 && 0 <= hi, "QuantSpec: a custom range must include 0, got [", lo, ", ", hi, "]");
      QAWARE_CHECK(lo < hi, "QuantSpec: custom quant_min (", lo, ") must be below quant_max (", hi, ")");
      QAWARE_CHECK(-lo <= kMaxQuantMagnitude && hi <= kMaxQuantMagnitude, "QuantSpec: custom range [", lo, ", ",
                   hi, "] exceeds +-2^24");
    } else {
      QAWARE_CHECK(bits >= 2 && bits <= 8, "QuantSpec: bits must be in [2, 8], got ", bits);
      if (is_signed) {
        hi = (std::int64_t(1) << (bits - 1)) - 1;
        lo = narrow_range ? -hi : -hi - 1;
      } else {
        lo = 0;
        hi = (std::int64_t(1) << bits) - 1 - (narrow_range ? 1 : 0);
      }
      customized = !(bits == 8 && !narrow_range);
    }
    if (reduce_range) {
      // Python's floor division: -127 // 2 == -64.
      auto floor_half = [](std::int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
      lo = floor_half(lo);
      hi = floor_half(hi);
      QAWARE_CHECK(lo < hi, "QuantSpec: reduce_range leaves an empty range [", lo, ", ", hi, "] for ", str());
    }
    return {lo, hi, customized};
  }
};

// The scale and zero point of one tensor or one channel (what choose_qparams
// returns); QuantParams below holds a whole point's set with its range.
struct ScaleZeroPoint {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
};

// Everything a fake-quant op needs: one (scale, zero point) per tensor or per
// channel along `axis`, and the integer range.
struct QuantParams {
  std::vector<float> scale{1.0f};
  std::vector<std::int32_t> zero_point{0};
  bool per_channel = false;
  int axis = 0;
  std::int64_t quant_min = -128;
  std::int64_t quant_max = 127;

  std::size_t channels() const { return scale.size(); }
};

namespace detail {

// Hides a floating-point value from the optimiser so that a product feeding
// an addition is rounded on its own instead of being contracted into a fused
// multiply-add (GCC contracts across statements under its default
// -ffp-contract=fast). PyTorch evaluates these expressions as separate tensor
// ops, so every step must round separately for bit-exact results.
template <typename T>
inline T opaque(T v) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#else
  volatile T t = v;
  v = t;
#endif
  return v;
}

// double -> float rounding that the optimiser must keep. GCC 12.2's SLP
// vectorizer was seen to drop the round trip (double)(float)d -> d when two
// such conversions sit side by side (tests/quant caught it); opaque() pins
// the float.
inline float to_float(double v) { return opaque(static_cast<float>(v)); }

// Python's floor division of integers.
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

inline void check_range(const char* fn, std::int64_t quant_min, std::int64_t quant_max) {
  QAWARE_CHECK(quant_min <= quant_max, fn, ": quant_min (", quant_min, ") must not exceed quant_max (", quant_max,
               ")");
  QAWARE_CHECK(quant_min >= -kMaxQuantMagnitude && quant_max <= kMaxQuantMagnitude, fn, ": range [", quant_min,
               ", ", quant_max, "] exceeds +-2^24 (the float kernels are exact only up to 2^24)");
}

inline void check_scale(const char* fn, double scale, long channel = -1) {
  if (!(std::isfinite(scale) && scale > 0)) {
    if (channel >= 0)
      detail::fail(concat(fn, ": scale must be positive and finite, got ", scale, " for channel ", channel));
    detail::fail(concat(fn, ": scale must be positive and finite, got ", scale));
  }
}

inline void check_zero_point(const char* fn, std::int64_t zero_point, std::int64_t quant_min, std::int64_t quant_max,
                             long channel = -1) {
  if (zero_point < quant_min || zero_point > quant_max) {
    if (channel >= 0)
      detail::fail(concat(fn, ": zero_point ", zero_point, " of channel ", channel, " is outside [quant_min, quant_max] = [",
                          quant_min, ", ", quant_max, "]"));
    detail::fail(concat(fn, ": zero_point ", zero_point, " is outside [quant_min, quant_max] = [", quant_min, ", ",
                        quant_max, "]"));
  }
}

// _calculate_qparams for one channel (see the file comment). float32 math.
inline ScaleZeroPoint observer_qparams(float min_val, float max_val, const QRange& r, bool symmetric, bool is_signed,
                                float eps) {
  if (min_val == std::numeric_limits<float>::infinity() && max_val == -std::numeric_limits<float>::infinity())
    return {1.0f, 0};
  QAWARE_CHECK(min_val <= max_val, "choose_qparams: min (", min_val, ") must not exceed max (", max_val, ")");
  QAWARE_CHECK(std::isfinite(min_val) && std::isfinite(max_val), "choose_qparams: the range [", min_val, ", ", max_val,
               "] is not finite (did the observed tensor hold inf?)");
  const float min_neg = std::min(min_val, 0.0f);
  const float max_pos = std::max(max_val, 0.0f);
  ScaleZeroPoint q;
  if (symmetric) {
    const float amax = std::max(-min_neg, max_pos);
    const float half_levels = static_cast<float>(static_cast<double>(r.quant_max - r.quant_min) / 2.0);
    q.scale = std::max(amax / half_levels, eps);
    if (is_signed) {
      q.zero_point = 0;
    } else {
      const bool default_quint8 = !r.customized && r.quant_min == 0 && r.quant_max == 255;
      q.zero_point = default_quint8 ? 128 : static_cast<std::int32_t>(floor_div(r.quant_min + r.quant_max, 2));
    }
  } else {
    const float levels = static_cast<float>(r.quant_max - r.quant_min);
    q.scale = std::max((max_pos - min_neg) / levels, eps);
    const float shifted = std::nearbyint(min_neg / q.scale);
    const std::int64_t zp = r.quant_min - static_cast<std::int64_t>(shifted);
    q.zero_point = static_cast<std::int32_t>(std::clamp(zp, r.quant_min, r.quant_max));
  }
  return q;
}
// Checked by choose_qparams after either algorithm: a range near the float
// limit (e.g. +-3e38) overflows the scale.
inline void check_scale(float scale, float min_val, float max_val) {
  QAWARE_CHECK(std::isfinite(scale), "choose_qparams: the range [", min_val, ", ", max_val,
               "] is too wide: its scale overflows a float (", scale, ")");
}

// quant_utils::ChooseQuantizationParams with force_scale_power_of_two = false
// and reduce_range = false (the range passed in is already reduced).
inline ScaleZeroPoint fused_qparams(float min, float max, std::int64_t qmin64, std::int64_t qmax64, bool preserve_sparsity) {
  if (min == std::numeric_limits<float>::infinity() && max == -std::numeric_limits<float>::infinity())
    return {1.0f, 0};
  QAWARE_CHECK(min <= max, "choose_qparams (fused): min (", min, ") must not exceed max (", max, ")");
  QAWARE_CHECK(std::isfinite(min) && std::isfinite(max), "choose_qparams (fused): the range [", min, ", ", max,
               "] is not finite (did the observed tensor hold inf?)");
  const auto qmin = static_cast<std::int32_t>(qmin64);
  const auto qmax = static_cast<std::int32_t>(qmax64);
  if (min < 0 && max > 0 && preserve_sparsity) {
    const int symmetric_qmin = -((qmax - qmin) / 2 + 1);
    const int symmetric_qmax = (qmax - qmin) / 2;
    const double max_scale = std::max(std::fabs(min / symmetric_qmin), std::fabs(max / symmetric_qmax));
    min = to_float(max_scale * symmetric_qmin);
    max = to_float(max_scale * symmetric_qmax);
  }
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  QAWARE_CHECK(qmin < qmax, "choose_qparams (fused): quant_min (", qmin, ") must be below quant_max (", qmax, ")");
  double scale = (static_cast<double>(max) - min) / (qmax - qmin);
  if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale))) scale = 0.1;
  constexpr float kSmallScale = 6.1e-5f;
  if (scale < kSmallScale) {
    const float org_scale = static_cast<float>(scale);
    scale = kSmallScale;
    if (min == 0.0f) {
      max = kSmallScale * static_cast<float>(qmax - qmin);
    } else if (max == 0.0f) {
      min = -kSmallScale * static_cast<float>(qmax - qmin);
    } else {
      const float amplifier = kSmallScale / org_scale;
      min *= amplifier;
      max *= amplifier;
    }
  }
  const double zp_from_min = qmin - min / scale;
  const double zp_from_max = qmax - max / scale;
  const double zp_from_min_error = std::abs(qmin) - std::abs(min / scale);
  const double zp_from_max_error = std::abs(qmax) - std::abs(max / scale);
  double initial_zp = zp_from_min_error < zp_from_max_error ? zp_from_min : zp_from_max;
  if (min < 0 && max > 0 && preserve_sparsity) initial_zp = static_cast<double>(qmin + qmax) / 2;
  std::int32_t nudged = 0;
  if (initial_zp < qmin) {
    nudged = qmin;
  } else if (initial_zp > qmax) {
    nudged = qmax;
  } else {
    nudged = static_cast<std::int32_t>(std::nearbyint(initial_zp));
  }
  return {to_float(scale), nudged};
}

}  // namespace detail

// (scale, zero_point) for the float range [min_val, max_val] (see the file
// comment). min_val = +inf and max_val = -inf (nothing observed) give (1, 0).
// Any other infinite bound, NaN, or a range whose scale overflows a float
// (about +-3e38 and wider) is an Error.
inline ScaleZeroPoint choose_qparams(float min_val, float max_val, const QuantSpec& spec,
                              QParamsAlgorithm algorithm = QParamsAlgorithm::Observer, float eps = kQuantEps) {
  QAWARE_CHECK(!std::isnan(min_val) && !std::isnan(max_val), "choose_qparams: min/max must not be NaN, got [",
               min_val, ", ", max_val, "]");
  const QRange r = spec.range();
  const ScaleZeroPoint q = algorithm == QParamsAlgorithm::Fused
                               ? detail::fused_qparams(min_val, max_val, r.quant_min, r.quant_max, spec.symmetric)
                               : detail::observer_qparams(min_val, max_val, r, spec.symmetric, spec.is_signed, eps);
  detail::check_scale(q.scale, min_val, max_val);
  return q;
}

// Per-channel: one (scale, zero point) per (min, max) pair. The result's
// per_channel/axis/range come from the spec.
inline QuantParams choose_qparams(const std::vector<float>& min_val, const std::vector<float>& max_val,
                                  const QuantSpec& spec, QParamsAlgorithm algorithm = QParamsAlgorithm::Observer,
                                  float eps = kQuantEps) {
  QAWARE_CHECK(min_val.size() == max_val.size(), "choose_qparams: ", min_val.size(), " minima but ", max_val.size(),
               " maxima");
  const QRange r = spec.range();
  QuantParams out;
  out.per_channel = spec.per_channel;
  out.axis = spec.axis;
  out.quant_min = r.quant_min;
  out.quant_max = r.quant_max;
  out.scale.resize(min_val.size());
  out.zero_point.resize(min_val.size());
  for (std::size_t c = 0; c < min_val.size(); ++c) {
    const ScaleZeroPoint q = choose_qparams(min_val[c], max_val[c], spec, algorithm, eps);
    out.scale[c] = q.scale;
    out.zero_point[c] = q.zero_point;
  }
  return out;
}

}  // namespace qaware
