#pragma once
// The forward and backward kernels of attention's products (ops/attention_products.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <cmath>
#include <memory>

#include "qaware/core/tensor.hpp"
#include "qaware/ops/kernels/matmul.hpp"
#include "qaware/ops/kernels/scale.hpp"

namespace qaware {
namespace ops {

// s (B, NH, T, T) = alpha * q_h k_h^T per batch and head; q, k (B, T, C).
template <typename Scalar>
void attention_scores_forward(const Scalar* q, const Scalar* k, Scalar* s, Index B, Index T, Index C, Index NH,
                              Scalar alpha) {
  const Index HS = C / NH;
  matmul_detail::for_each_batch(B * NH, T * T * HS, [&](Index i) {
    const Index b = i / NH, h = i % NH;
    Scalar* si = s + i * T * T;
    matmul_detail::gemm(q + b * T * C + h * HS, C, false, k + b * T * C + h * HS, C, true, si, T, T, HS, T, false);
    scale_forward(si, si, T * T, alpha);
  });
}

// dq += alpha * ds_h k_h and dk += alpha * ds_h^T q_h per batch and head
// (= instead when the flag is set; a null output is not computed). Batch
// and head i writes dq's block before dk's (q and k may be one node).
template <typename Scalar>
void attention_scores_backward(const Scalar* ds, const Scalar* q, const Scalar* k, Scalar* dq, Scalar* dk, Index B,
                               Index T, Index C, Index NH, Scalar alpha, bool overwrite_dq = false,
                               bool overwrite_dk = false) {
  const Index HS = C / NH;
  matmul_detail::for_each_batch(B * NH, T * T * HS, [&](Index i) {
    const Index b = i / NH, h = i % NH, off = b * T * C + h * HS;
    // scale()'s backward first, into a fresh buffer: g = alpha * ds.
    const std::unique_ptr<Scalar[]> g(new Scalar[static_cast<std::size_t>(T * T)]);
    scale_backward(ds + i * T * T, g.get(), T * T, alpha, true);
    if (dq) matmul_detail::gemm(g.get(), T, false, k + off, C, false, dq + off, C, T, T, HS, !overwrite_dq);
    if (dk) matmul_detail::gemm(g.get(), T, true, q + off, C, false, dk + off, C, T, T, HS, !overwrite_dk);
  });
}

// ctx (B, T, C): ctx_h = p[b, h] v_h per batch and head; p (B, NH, T, T), v (B, T, C).
template <typename Scalar>
void attention_context_forward(const Scalar* p, const Scalar* v, Scalar* ctx, Index B, Index T, Index C, Index NH) {
  const Index HS = C / NH;
  matmul_detail::for_each_batch(B * NH, T * T * HS, [&](Index i) {
    const Index b = i / NH, h = i % NH, off = b * T * C + h * HS;
    matmul_detail::gemm(p + i * T * T, T, false, v + off, C, false, ctx + off, C, T, T, HS, false);
  });
}

// dp[b, h] += dctx_h v_h^T and dv_h += p[b, h]^T dctx_h (= when the flag is set).
template <typename Scalar>
void attention_context_backward(const Scalar* dctx, const Scalar* p, const Scalar* v, Scalar* dp, Scalar* dv, Index B,
                                Index T, Index C, Index NH, bool overwrite_dp = false, bool overwrite_dv = false) {
  const Index HS = C / NH;
  matmul_detail::for_each_batch(B * NH, T * T * HS, [&](Index i) {
    const Index b = i / NH, h = i % NH, off = b * T * C + h * HS;
    if (dp) matmul_detail::gemm(dctx + off, C, false, v + off, C, true, dp + i * T * T, T, T, HS, T, !overwrite_dp);
    if (dv) matmul_detail::gemm(p + i * T * T, T, true, dctx + off, C, false, dv + off, C, T, T, HS, !overwrite_dv);
  });
}

}  // namespace ops
}  // namespace qaware
