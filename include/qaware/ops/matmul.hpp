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
#include "qaware/ops/kernels/matmul.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"
#include "qaware/gemm/sgemm.hpp"

namespace qaware {

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
