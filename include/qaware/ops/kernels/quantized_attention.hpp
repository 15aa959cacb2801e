#pragma once
// Attention's two products on the INT8 GEMM, for quantized operands (a QAT
// attention with quantize_matmul_inputs), on raw pointers and without the
// tape; ops/quantized_attention.hpp records them.
//
// Each operand x (q, k, v: (B, T, C); p: (B, NH, T, T)) holds per-tensor
// codes, x = (c - zero_point) * scale with c in [qmin, qmax] within uint8 or
// int8 (a fake-quantized tensor, or any tensor: the codes are recovered with
// core/numerics.hpp's quantize, which returns the fake quantizer's codes
// either way). Per batch and head:
//   scores[b, h] = fma(float(sum_d (cq - zq)(ck - zk)), (sq * sk) * alpha, 0)
//   ctx_h        = fma(float(sum_j (cp - zp)(cv - zv)), sp * sv, 0)
// -- exact int32 sums and the GEMM's dequantizing stage. They differ from
// attention_scores / attention_context on the fake-quantized values by
// float rounding only. The QAT forward (QATAttention) and the exported
// model (deploy::Attention) both run these. uint8 codes of the B operands
// (k, v) are stored as int8 c - 128 with zero point z - 128, which leaves
// every difference c - z, and so the sums, unchanged (as_int8_operand).
// The *_codes forms take the operands' codes directly (the exported model
// has its projections requantize straight to them); the *_forward forms
// take floats and quantize them first.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "qaware/core/error.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/gemm.hpp"
#include "qaware/ops/kernels/quantized_linear.hpp"
#include "qaware/quant/qparams.hpp"

namespace qaware {

// The per-tensor quantization of one matmul operand.
struct OperandQuant {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
  std::int32_t qmin = 0;
  std::int32_t qmax = 255;

  // A per-tensor point's parameters (one scale and zero point).
  static OperandQuant of(const QuantParams& p) {
    return {p.scale[0], p.zero_point[0], static_cast<std::int32_t>(p.quant_min), static_cast<std::int32_t>(p.quant_max)};
  }

  bool is_unsigned() const { return qmin >= 0 && qmax <= 255; }
  // Why the GEMM cannot take these codes, or an empty string.
  std::string problem() const {
    const bool fits_signed = qmin >= -128 && qmax <= 127;
    if (qmin > qmax || !(is_unsigned() || fits_signed))
      return detail::concat("range [", qmin, ", ", qmax, "] fits neither uint8 nor int8");
    if (!(std::isfinite(scale) && scale > 0.0f)) return detail::concat("scale ", scale, " must be finite and positive");
    if (zero_point < qmin || zero_point > qmax)
      return detail::concat("zero point ", zero_point, " outside [", qmin, ", ", qmax, "]");
    return {};
  }
};

// The operands of an attention's two integer products.
struct IntegerAttentionParams {
  OperandQuant q, k, v, p;

  std::string problem() const {
    const std::pair<const char*, const OperandQuant*> ops[] = {{"q", &q}, {"k", &k}, {"v", &v}, {"probabilities", &p}};
    for (const auto& [name, o] : ops) {
      const std::string e = o->problem();
      if (!e.empty()) return detail::concat(name, ": ", e);
    }
    // Each product's output stage multiplies its operands' scales.
    const std::pair<const char*, float> products[] = {{"q and k", q.scale * k.scale},
                                                      {"probabilities and v", p.scale * v.scale}};
    for (const auto& [name, product] : products)
      if (!(std::isfinite(product) && product > 0.0f))
        return detail::concat("the ", name, " scales multiply to ", product,
                              " (must be finite and positive as a float)");
    return {};
  }
  void check(const char* who) const {
    const std::string e = problem();
    QAWARE_CHECK(e.empty(), who, ": ", e);
  }
};

namespace ops {

// The codes of one operand: uint8 or int8 bytes, and their zero point.
struct OperandCodes {
  std::unique_ptr<std::uint8_t[]> bytes;
  bool is_unsigned = true;
  std::int32_t zero_point = 0;
};

// A B operand's (k, v) quantization as int8 codes: uint8 codes c become
// c - 128 with zero point and range shifted alike, which leaves every
// difference c - z unchanged; int8 codes stay.
inline OperandQuant as_int8_operand(const OperandQuant& o) {
  if (!o.is_unsigned()) return o;
  return OperandQuant{o.scale, o.zero_point - 128, o.qmin - 128, o.qmax - 128};
}

// The codes of n values under `o` (core/numerics.hpp's quantize).
inline OperandCodes operand_codes(const float* x, Index n, const OperandQuant& o) {
  OperandCodes c;
  c.is_unsigned = o.is_unsigned();
  c.zero_point = o.zero_point;
  c.bytes.reset(new std::uint8_t[static_cast<std::size_t>(n)]);
  parallel_for(0, n, 16384, [&](Index b, Index e) {
    if (c.is_unsigned)
      recover_codes(x + b, c.bytes.get() + b, e - b, o.scale, o.zero_point, o.qmin, o.qmax);
    else
      recover_codes(x + b, reinterpret_cast<std::int8_t*>(c.bytes.get()) + b, e - b, o.scale, o.zero_point, o.qmin,
                    o.qmax);
  });
  return c;
}

namespace attention_detail {

inline void gemm_a(const OperandCodes& a, Index offset, Index M, Index K, Index lda, const gemm::PackedMatrix& b,
                   const gemm::Output& out) {
  if (a.is_unsigned)
    gemm::gemm(a.bytes.get() + offset, M, K, lda, a.zero_point, b, out);
  else
    gemm::gemm(reinterpret_cast<const std::int8_t*>(a.bytes.get()) + offset, M, K, lda, a.zero_point, b, out);
}

inline const std::int8_t* int8_bytes(const OperandCodes& b, const char* who) {
  QAWARE_CHECK(!b.is_unsigned, who, ": the B operand's codes must be int8 (ops::as_int8_operand)");
  return reinterpret_cast<const std::int8_t*>(b.bytes.get());
}

}  // namespace attention_detail

// s (B, NH, T, T) from the codes of q (A operand) and k (int8, B operand),
// each (B, T, C), as the file comment says.
inline void quantized_attention_scores_codes(const OperandCodes& q, const OperandCodes& k, float* s, Index B, Index T,
                                             Index C, Index NH, float alpha, const IntegerAttentionParams& p) {
  p.check("quantized_attention_scores");
  if (B * T == 0) return;
  const Index HS = C / NH;
  const std::int8_t* kc = attention_detail::int8_bytes(k, "quantized_attention_scores");
  gemm::Dequantize dq;
  dq.a_scale = p.q.scale * p.k.scale;
  dq.b_scales = &alpha;
  dq.b_scale_count = 1;
  for (Index i = 0; i < B * NH; ++i) {
    const Index b = i / NH, h = i % NH, off = b * T * C + h * HS;
    const gemm::PackedMatrix kp = gemm::pack_b(kc + off, HS, T, C, gemm::BLayout::kNxK, k.zero_point);
    attention_detail::gemm_a(q, off, T, HS, C, kp, gemm::Output::dequantize(s + i * T * T, T, dq));
  }
}

// ctx (B, T, C) from the codes of the probabilities (A operand, (B, NH, T, T))
// and of v (int8, B operand, (B, T, C)).
inline void quantized_attention_context_codes(const OperandCodes& probs, const OperandCodes& v, float* ctx, Index B,
                                              Index T, Index C, Index NH, const IntegerAttentionParams& p) {
  p.check("quantized_attention_context");
  if (B * T == 0) return;
  const Index HS = C / NH;
  const std::int8_t* vc = attention_detail::int8_bytes(v, "quantized_attention_context");
  gemm::Dequantize dq;
  dq.a_scale = p.p.scale;
  dq.b_scales = &p.v.scale;
  dq.b_scale_count = 1;
  for (Index i = 0; i < B * NH; ++i) {
    const Index b = i / NH, h = i % NH, off = b * T * C + h * HS;
    const gemm::PackedMatrix vp = gemm::pack_b(vc + off, T, HS, C, gemm::BLayout::kKxN, v.zero_point);
    attention_detail::gemm_a(probs, i * T * T, T, T, T, vp, gemm::Output::dequantize(ctx + off, C, dq));
  }
}

// s (B, NH, T, T) from q, k (B, T, C) as floats: their codes, then as above.
inline void quantized_attention_scores_forward(const float* q, const float* k, float* s, Index B, Index T, Index C,
                                               Index NH, float alpha, const IntegerAttentionParams& p) {
  p.check("quantized_attention_scores");
  quantized_attention_scores_codes(operand_codes(q, B * T * C, p.q), operand_codes(k, B * T * C, as_int8_operand(p.k)),
                                   s, B, T, C, NH, alpha, p);
}

// ctx (B, T, C) from probabilities (B, NH, T, T) and v (B, T, C) as floats.
inline void quantized_attention_context_forward(const float* probs, const float* v, float* ctx, Index B, Index T,
                                                Index C, Index NH, const IntegerAttentionParams& p) {
  p.check("quantized_attention_context");
  quantized_attention_context_codes(operand_codes(probs, B * NH * T * T, p.p),
                                    operand_codes(v, B * T * C, as_int8_operand(p.v)), ctx, B, T, C, NH, p);
}

}  // namespace ops
}  // namespace qaware
