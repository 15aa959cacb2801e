#pragma once
// mul: y = a * b elementwise with NumPy broadcasting (as torch.mul); the
// broadcasting rules are add's (see add.hpp).

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/detail/broadcast.hpp"

namespace qaware {
namespace ops {

// a, b -> y, laid out as `plan` (detail::make_broadcast_plan(a's shape,
// b's shape)) says; y has plan.out's shape.
template <typename Scalar>
void mul_forward(const detail::BroadcastPlan& plan, const Scalar* a, const Scalar* b, Scalar* y) {
  detail::broadcast_binary(plan, a, b, y, [](Scalar u, Scalar v) { return u * v; });
}

// da += dy * b and db += dy * a, each summed over its broadcast dimensions
// (= when its overwrite flag is set: only for an input of the output's
// size). A null output is not computed.
template <typename Scalar>
void mul_backward(const detail::BroadcastPlan& plan, const Scalar* dy, const Scalar* a, const Scalar* b, Scalar* da,
                  Scalar* db, bool overwrite_da = false, bool overwrite_db = false) {
  auto times = [](Scalar g, Scalar other) { return g * other; };
  if (da) detail::broadcast_accumulate(plan, 0, da, dy, b, times, overwrite_da);
  if (db) detail::broadcast_accumulate(plan, 1, db, dy, a, times, overwrite_db);
}

}  // namespace ops

// y = a * b (elementwise, broadcasting).
template <typename Scalar>
Var<Scalar> mul(Var<Scalar> a, Var<Scalar> b) {
  detail::BroadcastPlan plan = detail::make_broadcast_plan("mul", a.shape(), b.shape());
  DynTensor<Scalar> y(plan.out);
  ops::mul_forward(plan, a.value().data(), b.value().data(), y.data());
  return a.tape().record(std::move(y), {a, b}, [a, b, plan = std::move(plan)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    // The slots in the order the backward writes them (a and b may be one node).
    const auto da = detail::broadcast_grad_slot(t, a, plan, 0);
    const auto db = detail::broadcast_grad_slot(t, b, plan, 1);
    ops::mul_backward(plan, dy.data(), t.value(a).data(), t.value(b).data(), da.data, db.data, da.fresh, db.fresh);
  });
}

template <typename Scalar>
Var<Scalar> operator*(Var<Scalar> a, Var<Scalar> b) {
  return mul(a, b);
}

}  // namespace qaware
