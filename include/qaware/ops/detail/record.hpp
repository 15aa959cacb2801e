#pragma once
// Internal helpers of the ops' tape wrappers (their kernels do without):
// the Var that the next record() returns, and where a broadcast input's
// gradient goes.

#include <cstdint>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/error.hpp"
#include "qaware/ops/detail/broadcast.hpp"

namespace qaware {
namespace detail {

// The Var that the next record() on `tape` returns: record() appends exactly
// one node. Ops whose backward reads their own output (softmax) capture it
// before recording instead of copying the output; check_next_var confirms.
template <typename Scalar>
Var<Scalar> next_var(Tape<Scalar>& tape) {
  return Var<Scalar>(&tape, static_cast<std::int32_t>(tape.size()));
}
template <typename Scalar>
void check_next_var(const Var<Scalar>& predicted, const Var<Scalar>& recorded, const char* op) {
  QAWARE_CHECK(predicted.id() == recorded.id(), op, ": internal error: recorded node ", recorded.id(),
               " but expected ", predicted.id());
}

// Where input k's gradient goes: a Tape::grad_slot when the backward writes
// every element of it (k has the output's size), else the zero-filled
// Tape::grad, never fresh; {nullptr, false} when v needs no gradient.
template <typename Scalar>
typename Tape<Scalar>::GradSlot broadcast_grad_slot(Tape<Scalar>& t, const Var<Scalar>& v, const BroadcastPlan& p,
                                                     int k) {
  if (!t.requires_grad(v)) return {nullptr, false};
  if (p.input_numel[static_cast<std::size_t>(k)] == p.numel) return t.grad_slot(v);
  return {t.grad(v).data(), false};
}

}  // namespace detail
}  // namespace qaware
