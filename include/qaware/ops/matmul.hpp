#pragma once
// matmul: batched matrix product with optional transposes, as torch.matmul
// on op(a) and op(b), where op transposes the last two dimensions when its
// flag is set.
//   a is (..., M, K), or (..., K, M) when trans_a; b is (..., K, N), or
//   (..., N, K) when trans_b; y is (..., M, N). The batch dimensions "..."
//   of a and b are equal, or b has rank 2 and is shared by every batch
//   (a linear layer without bias, or attention's K^T via trans_b).
// Each float product runs on gemm/sgemm.hpp's kernels where the CPU
// has them, otherwise (and for double) on Eigen's GEMM on row-major maps. Many
// small products (the B*NH attention heads) run in parallel across the
// batch, each GEMM on one thread; a few large ones run one after another,
// each threaded by the GEMM.

#include <vector>

#include "qaware/autograd/tape.hpp"
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

// y = op(a) op(b); see the top of this file for the shapes.
template <typename Scalar>
Var<Scalar> matmul(Var<Scalar> a, Var<Scalar> b, bool trans_a = false, bool trans_b = false) {
  const Shape as = a.shape(), bs = b.shape();
  QAWARE_CHECK(as.rank() >= 2 && bs.rank() >= 2, "matmul: a ", as.str(), " and b ", bs.str(),
               " must both have rank >= 2");
  const bool b_shared = bs.rank() == 2;
  QAWARE_CHECK(b_shared || bs.rank() == as.rank(), "matmul: b ", bs.str(),
               " must have rank 2 or the rank of a ", as.str());
  const Index M = trans_a ? as.dim(-1) : as.dim(-2), K = trans_a ? as.dim(-2) : as.dim(-1);
  const Index Kb = trans_b ? bs.dim(-1) : bs.dim(-2), N = trans_b ? bs.dim(-2) : bs.dim(-1);
  QAWARE_CHECK(K == Kb, "matmul: inner dimensions differ: a ", as.str(), (trans_a ? " (transposed)" : ""),
               " gives K = ", K, " but b ", bs.str(), (trans_b ? " (transposed)" : ""), " gives K = ", Kb);
  std::vector<Index> ys(as.begin(), as.end());
  for (int i = 0; i + 2 < as.rank() && !b_shared; ++i) {
    QAWARE_CHECK(as[i] == bs[i], "matmul: batch dimensions differ: a ", as.str(), " vs b ", bs.str());
  }
  ys[ys.size() - 2] = M;
  ys[ys.size() - 1] = N;
  Index BATCH = 1;
  for (int i = 0; i + 2 < as.rank(); ++i) BATCH *= as[i];
  DynTensor<Scalar> y{Shape(ys)};
  ops::matmul_forward(a.value().data(), b.value().data(), y.data(), BATCH, M, K, N, trans_a, trans_b, b_shared);
  return a.tape().record(std::move(y), {a, b},
                         [a, b, BATCH, M, K, N, trans_a, trans_b, b_shared](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                           // The slots in the order the backward writes them (a and b may be one node).
                           const auto da = t.grad_slot_if_needed(a);
                           const auto db = t.grad_slot_if_needed(b);
                           ops::matmul_backward(dy.data(), t.value(a).data(), t.value(b).data(), da.data, db.data,
                                                BATCH, M, K, N, trans_a, trans_b, b_shared, da.fresh, db.fresh);
                         });
}

}  // namespace qaware
