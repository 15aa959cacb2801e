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

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/broadcast.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// x (R, C) -> y (R, C) = softmax of each row of x + mask, where the mask row
// for row r starts at mask + (offset from `mask_rows` for r) and steps by
// mask_rows.inner_stride. Pass mask == nullptr for no mask.
template <typename Scalar>
void softmax_forward(const Scalar* x, const Scalar* mask, const detail::RowBroadcast& mask_rows, Scalar* y, Index R,
                     Index C) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (C == 0) return;
  const Scalar neg_inf = -std::numeric_limits<Scalar>::infinity();
  const Scalar tiny = std::numeric_limits<Scalar>::min();
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    detail::StridedCursor<1> cur(mask_rows.dims, {&mask_rows.strides}, mask ? r0 : 0);
    for (Index r = r0; r < r1; ++r) {
      Arr Y(y + r * C, C);
      Scalar mx;
      if (mask) {
        const Scalar* mr = mask + cur.offset(0);
        ConstArr X(x + r * C, C);
        if (mask_rows.inner_stride)
          Y = X + ConstArr(mr, C);
        else
          Y = X + mr[0];
        cur.next();
        mx = Y.maxCoeff();
      } else {
        mx = ConstArr(x + r * C, C).maxCoeff();
      }
      if (mx == neg_inf) {  // every entry masked: defined as zeros
        Y.setZero();
        continue;
      }
      if (mask)
        Y = (Y - mx).exp();
      else
        Y = (ConstArr(x + r * C, C) - mx).exp();
      Y *= Scalar(1) / Y.sum();
      for (Index j = 0; j < C; ++j) Y[j] = Y[j] < tiny ? Scalar(0) : Y[j];  // flush denormals
    }
  });
}

// x (R, C) -> y (R, C), no mask.
template <typename Scalar>
void softmax_forward(const Scalar* x, Scalar* y, Index R, Index C) {
  softmax_forward(x, static_cast<const Scalar*>(nullptr), detail::RowBroadcast{}, y, R, C);
}

// dx (R, C) += y * (dy - sum(dy * y)) row by row (= when overwrite), where
// y is the forward output. (The gradient with respect to the mask is the same, summed over
// the mask's broadcast dimensions; the Var wrapper does that.)
template <typename Scalar>
void softmax_backward(const Scalar* dy, const Scalar* y, Scalar* dx, Index R, Index C, bool overwrite = false) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (C == 0) return;
  detail::for_mode(overwrite, [&](auto mode) {
    parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
      for (Index r = r0; r < r1; ++r) {
        ConstArr G(dy + r * C, C), Y(y + r * C, C);
        const Scalar dot = (G * Y).sum();
        detail::put(mode, Arr(dx + r * C, C), Y * (G - dot));
      }
    });
  });
}

}  // namespace ops

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
