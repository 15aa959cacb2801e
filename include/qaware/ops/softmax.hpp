#pragma once
// softmax over the last dimension, optionally of x + mask (as
// torch.softmax(x + mask, dim=-1)).
//   x and y are (..., C), viewed as R rows of C; mask is additive and
//   broadcasts to x (e.g. [B,1,1,T] key padding for scores [B,NH,T,T], with
//   0 for keep and -inf or a large negative number for drop).
// Each row subtracts its maximum before exponentiating, so large logits do
// not overflow. A row whose entries (after the mask) are all -inf has no
// softmax (PyTorch returns NaN there); qaware defines its output as all zeros
// and its gradient as zero, so a fully masked row drops out instead of
// spreading NaN. NaN inputs still give NaN.
// Probabilities below the smallest normal number (exp of anything under
// about -87 in float) are stored as exactly 0: Eigen's vectorised exp
// returns a denormal there instead of 0 (so a masked key would otherwise
// get ~1e-39), and denormals slow every later product that touches them.
// The backward reads the output y (the op's own value), not a copy.

#include <cmath>
#include <limits>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/softmax.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/broadcast.hpp"
#include "qaware/ops/detail/common.hpp"
#include "qaware/ops/detail/record.hpp"

namespace qaware {

namespace detail {
template <typename Scalar>
Var<Scalar> softmax_impl(Var<Scalar> x, const Var<Scalar>* mask) {
  const Shape& xs = x.shape();
  QAWARE_CHECK(xs.rank() >= 1, "softmax: x must have rank >= 1, got ", xs.str());
  const Index C = xs.dim(-1), R = xs.rows();
  DynTensor<Scalar> y(xs);
  RowBroadcast rows;
  if (mask) rows = make_row_broadcast("softmax", "mask", xs, mask->shape());
  ops::softmax_forward(x.value().data(), mask ? mask->value().data() : nullptr, rows, y.data(), R, C);

  const Var<Scalar> out = next_var(x.tape());
  const Var<Scalar> m = mask ? *mask : Var<Scalar>();
  std::vector<Var<Scalar>> inputs{x};
  if (mask) inputs.push_back(*mask);
  Var<Scalar> rec = x.tape().record(std::move(y), inputs, [x, m, out, R, C](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    const Scalar* yv = t.value(out).data();
    if (!m.valid() || !t.requires_grad(m)) {
      const auto dx = t.grad_slot(x);
      ops::softmax_backward(dy.data(), yv, dx.data, R, C, dx.fresh);
      return;
    }
    // The mask needs a gradient: form dz = d(x + mask) once, then hand it to both.
    DynTensor<Scalar> dz(t.value(x).shape());
    ops::softmax_backward(dy.data(), yv, dz.data(), R, C, true);
    if (t.requires_grad(x)) accumulate(t.grad(x), dz);
    const BroadcastPlan plan = make_broadcast_plan("softmax", t.value(x).shape(), t.value(m).shape());
    broadcast_accumulate(plan, 1, t.grad(m).data(), dz.data(), static_cast<const Scalar*>(nullptr),
                         [](Scalar g, Scalar) { return g; });
  });
  check_next_var(out, rec, "softmax");
  return rec;
}
}  // namespace detail

// Softmax over the last dimension.
template <typename Scalar>
Var<Scalar> softmax(Var<Scalar> x) {
  return detail::softmax_impl(x, static_cast<const Var<Scalar>*>(nullptr));
}
// Softmax over the last dimension of x + mask (mask broadcasts to x).
template <typename Scalar>
Var<Scalar> softmax(Var<Scalar> x, Var<Scalar> mask) {
  return detail::softmax_impl(x, &mask);
}

}  // namespace qaware
