#pragma once
// select_position: y = x[:, t, :] for x (B, T, C), as PyTorch's x[:, t]
// (the BERT pooler takes the first token). The gradient goes to position t
// only.

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/kernels/select_position.hpp"

namespace qaware {

// y = x[:, t, :] for x (B, T, C).
template <typename Scalar>
Var<Scalar> select_position(Var<Scalar> x, Index t) {
  const Shape& xs = x.shape();
  QAWARE_CHECK(xs.rank() == 3, "select_position: x must be (B, T, C), got ", xs.str());
  const Index B = xs[0], T = xs[1], C = xs[2];
  QAWARE_CHECK(t >= 0 && t < T, "select_position: position ", t, " is out of range for x ", xs.str());
  DynTensor<Scalar> y(Shape{B, C});
  ops::select_position_forward(x.value().data(), y.data(), B, T, C, t);
  return x.tape().record(std::move(y), {x}, [x, B, T, C, t](Tape<Scalar>& tp, const DynTensor<Scalar>& dy) {
    ops::select_position_backward(dy.data(), tp.grad(x).data(), B, T, C, t);
  });
}

}  // namespace qaware
