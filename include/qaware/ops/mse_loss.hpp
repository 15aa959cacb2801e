#pragma once
// mse_loss: mean squared error, as torch.nn.functional.mse_loss(a, b)
// (reduction 'mean'): loss = (1 / N) * sum (a - b)^2, shape []. a and b
// have the same shape (N elements, N > 0); there is no broadcasting.

#include <algorithm>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/mse_loss.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

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
