#pragma once
// The integer form of a linear layer and its forward on the INT8 GEMM, on
// raw pointers and without the tape (ops/quantized_linear.hpp records it).
//
//   x (R, IN) holds x = (qx - zx) * sx: per-tensor affine codes qx in
//   [input_min, input_max] within [0, 255] (uint8) or [-128, 127] (int8);
//   W (OUT, IN) holds W[o][i] = qw[o][i] * sw[o]: symmetric codes in
//   [weight_min, weight_max] within [-128, 127], one scale per output row or
//   one for the whole matrix;
//   b (OUT) or absent.
//
// quantized_linear_forward recovers the integer codes (q = zx + round(x / sx)
// returns the code exactly: x is (q - zx) * sx rounded once, far less than
// half a step away), packs W for the best GEMM path and runs
//   y[r][o] = fma(float(sum_i (qx[r][i] - zx) * qw[o][i]), sx * sw[o], b[o])
// -- the exact int32 product and the dequantizing output stage an exported
// INT8 model runs. It differs from linear_forward's float product of the same
// values only by float rounding (the integer sum is exact where float
// accumulation is not).

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/gemm.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"

namespace qaware {

// The integer parameters of y = x W^T + b: what the QAT forward's INT8
// product uses and what an exported layer stores (nn::integer_linear_params
// derives them from a QATLinear).
struct IntegerLinearParams {
  // The input, per tensor and affine.
  float input_scale = 1.0f;
  std::int32_t input_zero_point = 0;
  std::int32_t input_min = 0;
  std::int32_t input_max = 255;
  // The weight, symmetric (zero point 0): 1 scale, or one per output row.
  std::vector<float> weight_scales{1.0f};
  std::int32_t weight_min = -128;
  std::int32_t weight_max = 127;

  // Whether the input codes are uint8 (else int8).
  bool input_unsigned() const { return input_min >= 0 && input_max <= 255; }

  // Why the INT8 GEMM cannot run these parameters for a weight of `out`
  // rows, or an empty string when it can: problem() is range_problem()
  // (ranges the GEMM has no codes for: an input range that fits neither
  // uint8 nor int8, a weight range that does not fit int8) or, failing that,
  // value_problem() (a scale count other than 1 or `out`, a scale that is not
  // finite and positive, a zero point outside the input range).
  std::string problem(Index out) const {
    std::string p = range_problem();
    return p.empty() ? value_problem(out) : p;
  }
  std::string range_problem() const {
    const bool fits_signed = input_min >= -128 && input_max <= 127;
    if (input_min > input_max || !(input_unsigned() || fits_signed))
      return detail::concat("input range [", input_min, ", ", input_max, "] fits neither uint8 nor int8");
    if (weight_min > weight_max || weight_min < -128 || weight_max > 127)
      return detail::concat("weight range [", weight_min, ", ", weight_max, "] does not fit int8");
    return {};
  }
  std::string value_problem(Index out) const {
    const auto S = static_cast<Index>(weight_scales.size());
    if (S != 1 && S != out)
      return detail::concat(S, " weight scales for a weight of ", out, " rows (need 1 or ", out, ")");
    if (!(std::isfinite(input_scale) && input_scale > 0.0f))
      return detail::concat("input scale ", input_scale, " must be finite and positive");
    for (Index o = 0; o < S; ++o) {
      const float s = weight_scales[static_cast<std::size_t>(o)];
      if (!(std::isfinite(s) && s > 0.0f))
        return detail::concat("weight scale ", s, " of row ", o, " must be finite and positive");
      // The output stage multiplies the two: each finite is not enough.
      const float product = input_scale * s;
      if (!(std::isfinite(product) && product > 0.0f))
        return detail::concat("input scale ", input_scale, " times the weight scale ", s, " of row ", o, " is ",
                              product, " (must be finite and positive as a float)");
    }
    if (input_zero_point < input_min || input_zero_point > input_max)
      return detail::concat("input zero point ", input_zero_point, " outside [", input_min, ", ", input_max, "]");
    return {};
  }
  // Raises qaware::Error naming `who` and the problem, if there is one.
  void check(Index out, const char* who) const {
    const std::string p = problem(out);
    QAWARE_CHECK(p.empty(), who, ": ", p);
  }

  // The GEMM's dequantizing stage for these parameters (a view: it points
  // into weight_scales, so it must not outlive them).
  gemm::Dequantize dequantize(const float* bias, gemm::Activation activation = gemm::Activation::kNone) const {
    gemm::Dequantize dq;
    dq.a_scale = input_scale;
    dq.b_scales = weight_scales.data();
    dq.b_scale_count = static_cast<Index>(weight_scales.size());
    dq.bias = bias;
    dq.activation = activation;
    return dq;
  }
};

namespace ops {

// Recovers the codes of n fake-quantized values: out[i] = clamp(zp +
// round_half_even(x[i] * (1 / scale)), qmin, qmax), core/numerics.hpp's
// quantize (vectorised where the CPU allows; the same codes either way).
template <typename Code>
void recover_codes(const float* x, Code* out, Index n, float scale, std::int32_t zero_point, std::int32_t qmin,
                   std::int32_t qmax) {
  detail::fq::quantize_codes(x, out, n, 1.0f / scale, zero_point, qmin, qmax);
}

// The input codes of n activations, in parallel (every element is written,
// so the buffer starts uninitialised).
template <typename Code>
std::unique_ptr<Code[]> input_codes(const float* x, Index n, const IntegerLinearParams& p) {
  std::unique_ptr<Code[]> c(new Code[static_cast<std::size_t>(n)]);
  parallel_for(0, n, 16384, [&](Index b, Index e) {
    recover_codes(x + b, c.get() + b, e - b, p.input_scale, p.input_zero_point, p.input_min, p.input_max);
  });
  return c;
}

// The weight codes of w (OUT, IN), row by row with each row's own scale.
inline std::unique_ptr<std::int8_t[]> weight_codes(const float* w, Index OUT, Index IN, const IntegerLinearParams& p) {
  const auto S = static_cast<Index>(p.weight_scales.size());
  std::unique_ptr<std::int8_t[]> wc(new std::int8_t[static_cast<std::size_t>(OUT * IN)]);
  parallel_for(0, OUT, 64, [&](Index o0, Index o1) {
    for (Index o = o0; o < o1; ++o) {
      const float s = p.weight_scales[static_cast<std::size_t>(S == 1 ? 0 : o)];
      recover_codes(w + o * IN, wc.get() + o * IN, IN, s, 0, p.weight_min, p.weight_max);
    }
  });
  return wc;
}

// Calls f(codes) with the input codes of x (R x IN values): uint8 or int8,
// as p.input_unsigned() says.
template <class F>
void with_input_codes(const float* x, Index R, Index IN, const IntegerLinearParams& p, F&& f) {
  if (p.input_unsigned())
    f(input_codes<std::uint8_t>(x, R * IN, p).get());
  else
    f(input_codes<std::int8_t>(x, R * IN, p).get());
}

// The product of R rows of input codes (Code = uint8_t or int8_t, as
// p.input_unsigned() says) with W packed (its int8 codes, OUT columns of IN):
// the exact int32 product into the output stage `out`.
template <typename Code>
void quantized_linear_codes_gemm(const Code* codes, const gemm::PackedMatrix& w, Index R, Index IN, Index OUT,
                                 const IntegerLinearParams& p, const gemm::Output& out) {
  QAWARE_CHECK(w.depth() == IN && w.cols() == OUT, "quantized_linear: the packed weight is ", w.cols(), " x ",
               w.depth(), " but the product needs ", OUT, " x ", IN);
  if (R == 0) return;
  gemm::gemm(codes, R, IN, IN, p.input_zero_point, w, out);
}

// The same into y (R, OUT) with b (OUT) or nullptr: the dequantizing output
// stage, with `activation` applied after the bias.
template <typename Code>
void quantized_linear_codes_forward(const Code* codes, const gemm::PackedMatrix& w, const float* b, float* y, Index R,
                                    Index IN, Index OUT, const IntegerLinearParams& p,
                                    gemm::Activation activation = gemm::Activation::kNone) {
  quantized_linear_codes_gemm(codes, w, R, IN, OUT, p, gemm::Output::dequantize(y, OUT, p.dequantize(b, activation)));
}

// x (R, IN) float -> y (R, OUT) with W already packed: the input codes of
// x, then quantized_linear_codes_forward. The exported INT8 model
// (deploy::Linear) runs this; parameters with a problem() raise qaware::Error.
inline void quantized_linear_forward_packed(const float* x, const gemm::PackedMatrix& w, const float* b, float* y,
                                            Index R, Index IN, Index OUT, const IntegerLinearParams& p,
                                            gemm::Activation activation = gemm::Activation::kNone) {
  p.check(OUT, "quantized_linear");
  with_input_codes(x, R, IN, p,
                   [&](const auto* c) { quantized_linear_codes_forward(c, w, b, y, R, IN, OUT, p, activation); });
}

// x (R, IN) float -> the codes (TO = uint8_t or int8_t) of y (R, OUT) under
// the output quantization (out_scale, out_zero_point, [qmin, qmax]):
// numerics::quantize of what quantized_linear_forward_packed computes, in
// the GEMM's requantizing stage, so y never exists in float. The codes equal
// those of the fake-quantized float output.
template <typename TO>
void quantized_linear_forward_requantized(const float* x, const gemm::PackedMatrix& w, const float* b, TO* codes,
                                          Index R, Index IN, Index OUT, const IntegerLinearParams& p, float out_scale,
                                          std::int32_t out_zero_point, std::int32_t qmin, std::int32_t qmax) {
  p.check(OUT, "quantized_linear");
  const gemm::Output out =
      gemm::Output::requantize(codes, OUT, p.dequantize(b), out_scale, out_zero_point, qmin, qmax);
  with_input_codes(x, R, IN, p, [&](const auto* c) { quantized_linear_codes_gemm(c, w, R, IN, OUT, p, out); });
}

// x (R, IN), w (OUT, IN), b (OUT) or nullptr -> y (R, OUT), as described
// above: the weight codes are recovered and packed on every call (in QAT the
// weights change every step), then quantized_linear_codes_forward runs, as
// in the exported model.
inline void quantized_linear_forward(const float* x, const float* w, const float* b, float* y, Index R, Index IN,
                                     Index OUT, const IntegerLinearParams& p) {
  p.check(OUT, "quantized_linear");
  if (R == 0) return;
  const std::unique_ptr<std::int8_t[]> wc = weight_codes(w, OUT, IN, p);
  // The weight is packed with the input codes in view, so that the AVX2 path
  // can keep its fast format for freshly initialised weights
  // (packed_matrix.hpp); the format never changes the result.
  with_input_codes(x, R, IN, p, [&](const auto* codes) {
    const gemm::PackedMatrix packed = gemm::pack_b_for_a(codes, R, IN, p.input_zero_point, wc.get(), IN, OUT, IN,
                                                         gemm::BLayout::kNxK, 0, gemm::best_path());
    quantized_linear_codes_forward(codes, packed, b, y, R, IN, OUT, p);
  });
}

}  // namespace ops
}  // namespace qaware
