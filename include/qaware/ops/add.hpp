#pragma once
// add: y = a + b with NumPy broadcasting (as torch.add): equal shapes, a row
// or bias (a trailing suffix of the other shape), a one-element operand, or
// size-1 dimensions on either side (masks such as [B,1,1,T]). y has the
// broadcast shape; the gradient of a broadcast operand is summed over the
// dimensions it was broadcast along.

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/detail/broadcast.hpp"

namespace qaware {
namespace ops {

// a, b -> y, laid out as `plan` (detail::make_broadcast_plan(a's shape,
// b's shape)) says; y has plan.out's shape.
template <typename Scalar>
void add_forward(const detail::BroadcastPlan& plan, const Scalar* a, const Scalar* b, Scalar* y) {
  detail::broadcast_binary(plan, a, b, y, [](Scalar u, Scalar v) { return u + v; });
}

// da += dy and db += dy, each summed over its broadcast dimensions (= when
// its overwrite flag is set: only for an input of the output's size). A
// null output is not computed.
template <typename Scalar>
void add_backward(const detail::BroadcastPlan& plan, const Scalar* dy, Scalar* da, Scalar* db,
                  bool overwrite_da = false, bool overwrite_db = false) {
  auto pass = [](Scalar g, Scalar) { return g; };
  if (da) detail::broadcast_accumulate(plan, 0, da, dy, static_cast<const Scalar*>(nullptr), pass, overwrite_da);
  if (db) detail::broadcast_accumulate(plan, 1, db, dy, static_cast<const Scalar*>(nullptr), pass, overwrite_db);
}

}  // namespace ops

// y = a + b (broadcasting).
template <typename Scalar>
Var<Scalar> add(Var<Scalar> a, Var<Scalar> b) {
  detail::BroadcastPlan plan = detail::make_broadcast_plan("add", a.shape(), b.shape());
  DynTensor<Scalar> y(plan.out);
  ops::add_forward(plan, a.value().data(), b.value().data(), y.data());
  return a.tape().record(std::move(y), {a, b}, [a, b, plan = std::move(plan)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    // The slots in the order the backward writes them (a and b may be one node).
    const auto da = detail::broadcast_grad_slot(t, a, plan, 0);
    const auto db = detail::broadcast_grad_slot(t, b, plan, 1);
    ops::add_backward(plan, dy.data(), da.data, db.data, da.fresh, db.fresh);
  });
}

template <typename Scalar>
Var<Scalar> operator+(Var<Scalar> a, Var<Scalar> b) {
  return add(a, b);
}

}  // namespace qaware
