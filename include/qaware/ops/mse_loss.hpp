#pragma once
// mse_loss: mean squared error, as torch.nn.functional.mse_loss(a, b)
// (reduction 'mean'): loss = (1 / N) * sum (a - b)^2, shape []. a and b
// have the same shape (N elements, N > 0); there is no broadcasting.

#include <algorithm>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// a (N), b (N) -> loss (1). The differences are formed in Scalar, squared
// and summed in double (blocks of 4096, then the block sums in a fixed order).
template <typename Scalar>
void mse_loss_forward(const Scalar* a, const Scalar* b, Scalar* loss, Index N) {
  constexpr Index kBlock = 4096;
  const Index blocks = (N + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks));
  parallel_for(0, blocks, std::max<Index>(1, detail::kElementGrain / kBlock), [&](Index b0, Index b1) {
    for (Index blk = b0; blk < b1; ++blk) {
      const Index lo = blk * kBlock, n = std::min(kBlock, N - lo);
      partial[static_cast<std::size_t>(blk)] =
          (ConstVectorMap<Scalar>(a + lo, n) - ConstVectorMap<Scalar>(b + lo, n)).template cast<double>().squaredNorm();
    }
  });
  double s = 0.0;
  for (double v : partial) s += v;
  loss[0] = static_cast<Scalar>(s / static_cast<double>(N));
}

// da (N) += dloss * 2 (a - b) / N and db (N) -= the same (each = / = -
// when its overwrite flag is set). A null output is not computed.
template <typename Scalar>
void mse_loss_backward(const Scalar* dloss, const Scalar* a, const Scalar* b, Scalar* da, Scalar* db, Index N,
                       bool overwrite_da = false, bool overwrite_db = false) {
  const Scalar g = dloss[0] * Scalar(2) / static_cast<Scalar>(N);
  // d += sign * v is d -= v exactly for sign = -1.
  auto side = [&](Scalar* d, Scalar sign, bool overwrite) {
    detail::for_mode(overwrite, [&](auto mode) {
      parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
        for (Index i = lo; i < hi; ++i) detail::put(mode, d[i], sign * (g * (a[i] - b[i])));
      });
    });
  };
  if (da) side(da, Scalar(1), overwrite_da);
  if (db) side(db, Scalar(-1), overwrite_db);
}

}  // namespace ops

// Mean of (a - b)^2 over all elements.
template <typename Scalar>
Var<Scalar> mse_loss(Var<Scalar> a, Var<Scalar> b) {
  QAWARE_CHECK(a.shape() == b.shape(), "mse_loss: a ", a.shape().str(), " and b ", b.shape().str(),
               " must have the same shape");
  const Index N = a.numel();
  QAWARE_CHECK(N > 0, "mse_loss: a and b ", a.shape().str(), " have no elements");
  DynTensor<Scalar> loss{Shape{}};
  ops::mse_loss_forward(a.value().data(), b.value().data(), loss.data(), N);
  return a.tape().record(std::move(loss), {a, b}, [a, b, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    // The slots in the order the backward writes them (a and b may be one node).
    const auto da = t.grad_slot_if_needed(a);
    const auto db = t.grad_slot_if_needed(b);
    ops::mse_loss_backward(dy.data(), t.value(a).data(), t.value(b).data(), da.data, db.data, N, da.fresh, db.fresh);
  });
}

}  // namespace qaware
