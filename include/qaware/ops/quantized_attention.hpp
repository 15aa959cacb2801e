#pragma once
// quantized_attention_scores / quantized_attention_context: attention's two
// products (ops/attention_products.hpp) on the INT8 GEMM for quantized
// operands (ops/kernels/quantized_attention.hpp: the parameters and what is
// computed exactly), recorded on the tape. The backward is that of
// attention_scores / attention_context on the fake-quantized values (the
// STE of the fake-quantize ops that produced them takes it from there).
// float only; the caller vouches that the operands hold values of the stated
// codes (QATAttention derives the parameters from its quantization points).

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/attention_products.hpp"
#include "qaware/ops/kernels/quantized_attention.hpp"

namespace qaware {

// s (B, NH, T, T) = alpha * q_h k_h^T per batch and head, in integers.
inline Var<float> quantized_attention_scores(Var<float> q, Var<float> k, Index heads, float alpha,
                                             const IntegerAttentionParams& p) {
  const Shape& qs = q.shape();
  QAWARE_CHECK(qs.rank() == 3 && k.shape() == qs, "quantized_attention_scores: q ", qs.str(), " and k ",
               k.shape().str(), " must both be (B, T, C)");
  QAWARE_CHECK(heads > 0 && qs[2] % heads == 0, "quantized_attention_scores: C = ", qs[2],
               " is not a multiple of heads = ", heads);
  QAWARE_CHECK(std::isfinite(alpha) && alpha > 0, "quantized_attention_scores: alpha ", alpha,
               " must be finite and positive");
  const Index B = qs[0], T = qs[1], C = qs[2], NH = heads;
  DynTensor<float> s(Shape{B, NH, T, T});
  ops::quantized_attention_scores_forward(q.value().data(), k.value().data(), s.data(), B, T, C, NH, alpha, p);
  return q.tape().record(std::move(s), {q, k}, [q, k, B, T, C, NH, alpha](Tape<float>& t, const DynTensor<float>& ds) {
    const auto dq = t.grad_slot_if_needed(q);
    const auto dk = t.grad_slot_if_needed(k);
    ops::attention_scores_backward(ds.data(), t.value(q).data(), t.value(k).data(), dq.data, dk.data, B, T, C, NH,
                                   alpha, dq.fresh, dk.fresh);
  });
}

// ctx (B, T, C), head h = p[b, h] v_h, in integers.
inline Var<float> quantized_attention_context(Var<float> probs, Var<float> v, const IntegerAttentionParams& p) {
  const Shape &ps = probs.shape(), &vs = v.shape();
  QAWARE_CHECK(ps.rank() == 4 && vs.rank() == 3 && ps[0] == vs[0] && ps[2] == vs[1] && ps[3] == vs[1] && ps[1] > 0 &&
                   vs[2] % ps[1] == 0,
               "quantized_attention_context: p ", ps.str(), " must be (B, NH, T, T) and v ", vs.str(),
               " (B, T, C) with C a multiple of NH");
  const Index B = vs[0], T = vs[1], C = vs[2], NH = ps[1];
  DynTensor<float> ctx(Shape{B, T, C});
  ops::quantized_attention_context_forward(probs.value().data(), v.value().data(), ctx.data(), B, T, C, NH, p);
  return probs.tape().record(std::move(ctx), {probs, v}, [probs, v, B, T, C, NH](Tape<float>& t, const DynTensor<float>& dctx) {
    const auto dp = t.grad_slot_if_needed(probs);
    const auto dv = t.grad_slot_if_needed(v);
    ops::attention_context_backward(dctx.data(), t.value(probs).data(), t.value(v).data(), dp.data, dv.data, B, T, C,
                                    NH, dp.fresh, dv.fresh);
  });
}

}  // namespace qaware
