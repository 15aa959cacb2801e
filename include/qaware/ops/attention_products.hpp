#pragma once
// Attention's two batched products, read from and written to the (B, T, C)
// layout of the projections, where head h owns the features [h * HS,
// (h + 1) * HS) of each row (C = NH * HS):
//
//   attention_scores(q, k, NH, alpha)   q, k (B, T, C) -> s (B, NH, T, T),
//                                       s[b, h] = alpha * (q_h k_h^T)
//   attention_context(p, v)             p (B, NH, T, T), v (B, T, C) -> ctx (B, T, C),
//                                       ctx_h = p[b, h] v_h
//
// q_h is the T x HS matrix of head h in batch b, read in place (row stride
// C). In float they give the bits of the composed ops
//   scale(matmul(split(q), split(k), false, true), alpha)
//   reshape(permute(matmul(p, split(v)), {0, 2, 1, 3}), {B, T, C})
// with split(x) = permute(reshape(x, {B, T, NH, HS}), {0, 2, 1, 3}), forward
// and backward: the same GEMMs over the same values (the product is rounded,
// then multiplied by alpha, as scale() does). One exception: a gradient added
// into one that is already there (an input used twice) may round otherwise
// once T or HS exceeds the float GEMM's K block (256), which then adds
// partial sums one block at a time. What they save is the permuted copies of
// q, k, v and the context and the separate scaling pass, each in both
// directions. The B * NH products run across threads, one GEMM each
// (matmul's for_each_batch and its strided gemm).

#include <cmath>
#include <memory>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/attention_products.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/matmul.hpp"
#include "qaware/ops/scale.hpp"

namespace qaware {

// s (B, NH, T, T) = alpha * q_h k_h^T for q, k (B, T, C) split into NH heads.
template <typename Scalar>
Var<Scalar> attention_scores(Var<Scalar> q, Var<Scalar> k, Index heads, detail::identity_t<Scalar> alpha) {
  const Shape& qs = q.shape();
  QAWARE_CHECK(qs.rank() == 3 && k.shape() == qs, "attention_scores: q ", qs.str(), " and k ", k.shape().str(),
               " must both be (B, T, C)");
  QAWARE_CHECK(heads > 0 && qs[2] % heads == 0, "attention_scores: C = ", qs[2], " is not a multiple of heads = ",
               heads);
  QAWARE_CHECK(std::isfinite(static_cast<double>(alpha)), "attention_scores: alpha ", alpha, " must be finite");
  const Index B = qs[0], T = qs[1], C = qs[2], NH = heads;
  DynTensor<Scalar> s(Shape{B, NH, T, T});
  ops::attention_scores_forward(q.value().data(), k.value().data(), s.data(), B, T, C, NH, static_cast<Scalar>(alpha));
  return q.tape().record(std::move(s), {q, k}, [q, k, B, T, C, NH, alpha](Tape<Scalar>& t, const DynTensor<Scalar>& ds) {
    const auto dq = t.grad_slot_if_needed(q);
    const auto dk = t.grad_slot_if_needed(k);
    ops::attention_scores_backward(ds.data(), t.value(q).data(), t.value(k).data(), dq.data, dk.data, B, T, C, NH,
                                   static_cast<Scalar>(alpha), dq.fresh, dk.fresh);
  });
}

// ctx (B, T, C), head h = p[b, h] v_h, for p (B, NH, T, T) and v (B, T, C).
template <typename Scalar>
Var<Scalar> attention_context(Var<Scalar> p, Var<Scalar> v) {
  const Shape &ps = p.shape(), &vs = v.shape();
  QAWARE_CHECK(ps.rank() == 4 && vs.rank() == 3 && ps[0] == vs[0] && ps[2] == vs[1] && ps[3] == vs[1] && ps[1] > 0 &&
                   vs[2] % ps[1] == 0,
               "attention_context: p ", ps.str(), " must be (B, NH, T, T) and v ", vs.str(),
               " (B, T, C) with C a multiple of NH");
  const Index B = vs[0], T = vs[1], C = vs[2], NH = ps[1];
  DynTensor<Scalar> ctx(Shape{B, T, C});
  ops::attention_context_forward(p.value().data(), v.value().data(), ctx.data(), B, T, C, NH);
  return p.tape().record(std::move(ctx), {p, v}, [p, v, B, T, C, NH](Tape<Scalar>& t, const DynTensor<Scalar>& dctx) {
    const auto dp = t.grad_slot_if_needed(p);
    const auto dv = t.grad_slot_if_needed(v);
    ops::attention_context_backward(dctx.data(), t.value(p).data(), t.value(v).data(), dp.data, dv.data, B, T, C, NH,
                                    dp.fresh, dv.fresh);
  });
}

}  // namespace qaware
