#pragma once
// sub: y = a - b with NumPy broadcasting (as torch.sub); the broadcasting
// rules are add's (see add.hpp).

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/sub.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/detail/broadcast.hpp"
#include "qaware/ops/detail/record.hpp"

namespace qaware {

// y = a - b (broadcasting).
template <typename Scalar>
Var<Scalar> sub(Var<Scalar> a, Var<Scalar> b) {
  detail::BroadcastPlan plan = detail::make_broadcast_plan("sub", a.shape(), b.shape());
  DynTensor<Scalar> y(plan.out);
  ops::sub_forward(plan, a.value().data(), b.value().data(), y.data());
  return a.tape().record(std::move(y), {a, b}, [a, b, plan = std::move(plan)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    // The slots in the order the backward writes them (a and b may be one node).
    const auto da = detail::broadcast_grad_slot(t, a, plan, 0);
    const auto db = detail::broadcast_grad_slot(t, b, plan, 1);
    ops::sub_backward(plan, dy.data(), da.data, db.data, da.fresh, db.fresh);
  });
}

template <typename Scalar>
Var<Scalar> operator-(Var<Scalar> a, Var<Scalar> b) {
  return sub(a, b);
}

}  // namespace qaware
