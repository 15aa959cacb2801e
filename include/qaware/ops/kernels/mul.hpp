#pragma once
// The forward and backward kernels of mul (ops/mul.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

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
}  // namespace qaware
