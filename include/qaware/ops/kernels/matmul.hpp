#pragma once
// The forward and backward kernels of matmul (ops/matmul.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"
#include "qaware/gemm/sgemm.hpp"

namespace qaware {
namespace ops {
namespace matmul_detail {

// c (M, N) = op(x) op(y), or += when accumulate. x is stored (M, K), or
// (K, M) when tx; y is stored (K, N), or (N, K) when ty; all row-major with
// row strides ldx, ldy and ldc (a matrix may be a block of a wider one, as
// an attention head is of its (B, T, C) tensor).
template <typename Scalar>
void gemm(const Scalar* x, Index ldx, bool tx, const Scalar* y, Index ldy, bool ty, Scalar* c, Index ldc, Index M,
          Index K, Index N, bool accumulate) {
  using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Stride = Eigen::OuterStride<>;
  if (M == 0 || N == 0) return;
  Eigen::Map<Mat, 0, Stride> C(c, M, N, Stride(ldc));
  if (K == 0) {
    if (!accumulate) C.setZero();
    return;
  }
  if (gemm::try_sgemm(M, N, K, x, ldx, tx, y, ldy, ty, c, ldc, accumulate)) return;
  Eigen::Map<const Mat, 0, Stride> X(x, tx ? K : M, tx ? M : K, Stride(ldx)), Y(y, ty ? N : K, ty ? K : N, Stride(ldy));
  // Only `+=` products: `=` would instantiate a second set of Eigen's
  // product kernels (compile time, especially under sanitizers) for the
  // price of one memset.
  if (!accumulate) C.setZero();
  auto run = [&](const auto& lhs, const auto& rhs) { C.noalias() += lhs * rhs; };
  if (!tx && !ty)
    run(X, Y);
  else if (!tx)
    run(X, Y.transpose());
  else if (!ty)
    run(X.transpose(), Y);
  else
    run(X.transpose(), Y.transpose());
}
// The same for contiguous matrices.
template <typename Scalar>
void gemm(const Scalar* x, bool tx, const Scalar* y, bool ty, Scalar* c, Index M, Index K, Index N, bool accumulate) {
  gemm(x, tx ? M : K, tx, y, ty ? K : N, ty, c, N, M, K, N, accumulate);
}

// Runs f(i) for i in [0, batch), where each call is one product of
// `macs` multiply-adds: across threads when there are enough products to
// keep every thread busy with whole GEMMs (each then runs on one thread:
// both GEMMs detect the parallel region) and enough work (2^18 MACs, tens
// of microseconds) to pay for waking the threads; else serially, so that
// the GEMM threads each product when it is large.
template <typename F>
void for_each_batch(Index batch, Index macs, F&& f) {
  const Index threads = num_threads();
  if (threads > 1 && batch >= threads && (batch % threads == 0 || batch >= 4 * threads) &&
      batch * macs >= (Index(1) << 18)) {
    parallel_for(0, batch, 1, [&](Index lo, Index hi) {
      for (Index i = lo; i < hi; ++i) f(i);
    });
  } else {
    for (Index i = 0; i < batch; ++i) f(i);
  }
}

}  // namespace matmul_detail

// a (BATCH, M, K) [(BATCH, K, M) if trans_a], b (BATCH, K, N) [(BATCH, N, K)
// if trans_b], or b (K, N) [(N, K)] shared by all batches when b_shared;
// y (BATCH, M, N) is overwritten.
template <typename Scalar>
void matmul_forward(const Scalar* a, const Scalar* b, Scalar* y, Index BATCH, Index M, Index K, Index N, bool trans_a,
                    bool trans_b, bool b_shared) {
  using matmul_detail::gemm;
  if (b_shared && !trans_a) {
    // One GEMM with BATCH * M rows.
    gemm(a, false, b, trans_b, y, BATCH * M, K, N, false);
    return;
  }
  matmul_detail::for_each_batch(BATCH, M * K * N, [&](Index i) {
    gemm(a + i * M * K, trans_a, b_shared ? b : b + i * K * N, trans_b, y + i * M * N, M, K, N, false);
  });
}

// Accumulates da += d/da and db += d/db of sum(dy * y), shapes as in
// matmul_forward (da like a, db like b); each is overwritten (=) instead
// when its flag is set (bitwise 0 + the product: see linear_backward). A
// null output is not computed. Batch i writes da's slice i before db's.
//   da = dy op(b)^T, or its transpose (op(b) dy^T) when trans_a;
//   db = op(a)^T dy, or its transpose (dy^T op(a)) when trans_b; summed over
//   batches when b is shared.
template <typename Scalar>
void matmul_backward(const Scalar* dy, const Scalar* a, const Scalar* b, Scalar* da, Scalar* db, Index BATCH, Index M,
                     Index K, Index N, bool trans_a, bool trans_b, bool b_shared, bool overwrite_da = false,
                     bool overwrite_db = false) {
  using matmul_detail::gemm;
  const Index sa = M * K, sb = b_shared ? 0 : K * N, sy = M * N;
  auto grad_a = [&](Index i, Index rows) {  // rows of op(a) (and dy) in this product
    const Scalar* bi = b + i * sb;
    if (!trans_a)
      gemm(dy + i * sy, false, bi, !trans_b, da + i * sa, rows, N, K, !overwrite_da);
    else
      gemm(bi, trans_b, dy + i * sy, true, da + i * sa, K, N, rows, !overwrite_da);
  };
  // A shared db is overwritten by batch 0 only; later batches add to it.
  auto grad_b = [&](Index i, Index rows) {  // rows of op(a) (and dy) in this product
    const Scalar* ai = a + i * sa;
    const bool acc = !overwrite_db || (b_shared && i > 0);
    if (!trans_b)
      gemm(ai, !trans_a, dy + i * sy, false, db + i * sb, K, rows, N, acc);
    else
      gemm(dy + i * sy, true, ai, trans_a, db + i * sb, N, rows, K, acc);
  };
  if (b_shared) {
    if (!trans_a) {
      // a and dy stacked as (BATCH * M) rows: one GEMM each.
      if (da) grad_a(0, BATCH * M);
      if (db) grad_b(0, BATCH * M);
    } else {
      if (da) matmul_detail::for_each_batch(BATCH, M * K * N, [&](Index i) { grad_a(i, M); });
      // Every batch adds into the one db: in order, each GEMM threaded by Eigen.
      if (db)
        for (Index i = 0; i < BATCH; ++i) grad_b(i, M);
    }
    return;
  }
  matmul_detail::for_each_batch(BATCH, M * K * N, [&](Index i) {
    if (da) grad_a(i, M);
    if (db) grad_b(i, M);
  });
}

}  // namespace ops
}  // namespace qaware
