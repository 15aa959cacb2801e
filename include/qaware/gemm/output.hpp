#pragma once
// Output stages of the INT8 GEMM.
//
// Every stage starts from the exact int32 accumulator
//   acc[m][n] = sum_k (A[m][k] - a_zero_point) * (B[k][n] - b_zero_point)
// and then either
//   int32        C[m*ldc + n] = acc
//   dequantize   y = fma(float(acc), a_scale * b_scale[n], bias[n]);  C = act(y)   (float)
//   requantize   C = numerics::quantize(act(y), 1 / out_scale, out_zero_point, qmin, qmax)
//                with [qmin, qmax] = [0, 255] for uint8 and [-128, 127] for int8, or a
//                narrower range within those (a sub-8-bit activation's codes)
// where b_scale is per tensor (one value) or per output channel (N values),
// bias is optional (N values) and act is none, ReLU or GELU (erf form,
// 0.5 y (1 + erf(y / sqrt 2)), as torch.nn.GELU()). The fma, the GELU and the
// quantization are qaware/core/numerics.hpp's, the definitions QAT shares, so
// a fused stage gives what the QAT forward's separate ops give.

#include <cmath>
#include <cstdint>

#include "qaware/core/error.hpp"
#include "qaware/core/numerics.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {
namespace gemm {

enum class Activation { kNone, kRelu, kGelu };

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kNone: return "none";
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
  }
  return "invalid";
}

inline float apply_activation(Activation a, float y) {
  switch (a) {
    case Activation::kRelu: return y > 0.0f ? y : 0.0f;
    case Activation::kGelu: numerics::gelu_erf(&y, &y, 1); return y;
    case Activation::kNone: break;
  }
  return y;
}

// Scales, bias and activation shared by the float and requantized stages.
struct Dequantize {
  float a_scale = 1.0f;               // activation scale
  const float* b_scales = nullptr;    // weight scales: b_scale_count values
  Index b_scale_count = 0;            // 1 (per tensor) or N (per output channel)
  const float* bias = nullptr;        // N values, or nullptr for none
  Activation activation = Activation::kNone;
};

class Output {
 public:
  enum class Kind { kInt32, kFloat, kUint8, kInt8 };

  // Raw accumulators.
  static Output int32(std::int32_t* c, Index ldc) { return Output(Kind::kInt32, c, ldc); }
  // Dequantized float.
  static Output dequantize(float* c, Index ldc, const Dequantize& dq) {
    Output o(Kind::kFloat, c, ldc);
    o.dq_ = dq;
    return o;
  }
  // Requantized uint8 / int8 with the output's scale and zero point.
  static Output requantize(std::uint8_t* c, Index ldc, const Dequantize& dq, float out_scale,
                           std::int32_t out_zero_point) {
    return requant(Kind::kUint8, c, ldc, dq, out_scale, out_zero_point, 0, 255);
  }
  static Output requantize(std::int8_t* c, Index ldc, const Dequantize& dq, float out_scale,
                           std::int32_t out_zero_point) {
    return requant(Kind::kInt8, c, ldc, dq, out_scale, out_zero_point, -128, 127);
  }
  // The same with the codes clamped to [qmin, qmax] (within the type's range).
  static Output requantize(std::uint8_t* c, Index ldc, const Dequantize& dq, float out_scale,
                           std::int32_t out_zero_point, std::int32_t qmin, std::int32_t qmax) {
    return requant(Kind::kUint8, c, ldc, dq, out_scale, out_zero_point, qmin, qmax);
  }
  static Output requantize(std::int8_t* c, Index ldc, const Dequantize& dq, float out_scale,
                           std::int32_t out_zero_point, std::int32_t qmin, std::int32_t qmax) {
    return requant(Kind::kInt8, c, ldc, dq, out_scale, out_zero_point, qmin, qmax);
  }

  Kind kind() const { return kind_; }
  void* data() const { return c_; }
  Index ldc() const { return ldc_; }
  const Dequantize& dequant() const { return dq_; }
  float out_scale() const { return out_scale_; }
  std::int32_t out_zero_point() const { return out_zp_; }
  std::int32_t qmin() const { return qmin_; }
  std::int32_t qmax() const { return qmax_; }

 private:
  Output(Kind k, void* c, Index ldc) : kind_(k), c_(c), ldc_(ldc) {}
  static Output requant(Kind k, void* c, Index ldc, const Dequantize& dq, float out_scale, std::int32_t zp,
                        std::int32_t qmin, std::int32_t qmax) {
    Output o(k, c, ldc);
    o.dq_ = dq;
    o.out_scale_ = out_scale;
    o.out_zp_ = zp;
    o.qmin_ = qmin;
    o.qmax_ = qmax;
    return o;
  }

  Kind kind_;
  void* c_;
  Index ldc_;
  Dequantize dq_{};
  float out_scale_ = 1.0f;
  std::int32_t out_zp_ = 0;
  std::int32_t qmin_ = 0, qmax_ = 0;
};

inline const char* output_kind_name(Output::Kind k) {
  switch (k) {
    case Output::Kind::kInt32: return "int32";
    case Output::Kind::kFloat: return "float";
    case Output::Kind::kUint8: return "uint8";
    case Output::Kind::kInt8: return "int8";
  }
  return "invalid";
}

namespace detail {

inline bool finite_positive(float x) { return std::isfinite(x) && x > 0.0f; }

// Throws unless `dq` (host pointers) is a valid dequantize stage for N columns; `who` names the caller.
inline void check_dequantize(const char* who, const Dequantize& dq, Index N) {
  QAWARE_CHECK(finite_positive(dq.a_scale), who, ": A scale must be finite and > 0, got ", dq.a_scale);
  QAWARE_CHECK(dq.b_scales != nullptr, who, ": B scales are null");
  QAWARE_CHECK(dq.b_scale_count == 1 || dq.b_scale_count == N, who, ": ", dq.b_scale_count,
               " B scales given; need 1 (per tensor) or N = ", N, " (per output channel)");
  for (Index n = 0; n < dq.b_scale_count; ++n)
    QAWARE_CHECK(finite_positive(dq.b_scales[n]), who, ": B scale [", n, "] must be finite and > 0, got ",
                 dq.b_scales[n]);
  QAWARE_CHECK(dq.activation == Activation::kNone || dq.activation == Activation::kRelu ||
                   dq.activation == Activation::kGelu,
               who, ": invalid activation ", static_cast<int>(dq.activation));
}

// Throws unless the requantized stage's scale, range and zero point are valid for `kind` (kUint8 or kInt8).
inline void check_requantize(const char* who, Output::Kind kind, float out_scale, std::int32_t out_zero_point,
                             std::int32_t qmin, std::int32_t qmax) {
  QAWARE_CHECK(finite_positive(out_scale), who, ": output scale must be finite and > 0, got ", out_scale);
  QAWARE_CHECK(std::isfinite(1.0f / out_scale), who, ": output scale ", out_scale,
               " is too small (1/scale overflows float)");
  const std::int32_t tmin = kind == Output::Kind::kUint8 ? 0 : -128, tmax = kind == Output::Kind::kUint8 ? 255 : 127;
  QAWARE_CHECK(qmin >= tmin && qmin <= qmax && qmax <= tmax, who, ": output range [", qmin, ", ", qmax,
               "] is not within the ", output_kind_name(kind), " range [", tmin, ", ", tmax, "]");
  QAWARE_CHECK(out_zero_point >= qmin && out_zero_point <= qmax, who, ": output zero point ", out_zero_point,
               " is outside the output range [", qmin, ", ", qmax, "]");
}

}  // namespace detail
}  // namespace gemm
}  // namespace qaware
