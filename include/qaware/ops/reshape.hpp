#pragma once
// reshape: the same elements in row-major order under a new shape with the
// same number of elements (as torch.reshape on a contiguous tensor). Every
// dimension is given explicitly; there is no -1 placeholder.

#include <cstring>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/reshape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

// x viewed with `shape` (same number of elements).
template <typename Scalar>
Var<Scalar> reshape(Var<Scalar> x, Shape shape) {
  QAWARE_CHECK(shape.numel() == x.numel(), "reshape: cannot reshape ", x.shape().str(), " (", x.numel(),
               " elements) to ", shape.str(), " (", shape.numel(), " elements)");
  DynTensor<Scalar> y(std::move(shape));
  const Index N = y.numel();
  ops::reshape_forward(x.value().data(), y.data(), N);
  return x.tape().record(std::move(y), {x}, [x, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    const auto dx = t.grad_slot(x);
    ops::reshape_backward(dy.data(), dx.data, N, dx.fresh);
  });
}

}  // namespace qaware
