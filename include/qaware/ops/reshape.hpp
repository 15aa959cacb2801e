#pragma once
// reshape: the same elements in row-major order under a new shape with the
// same number of elements (as torch.reshape on a contiguous tensor). Every
// dimension is given explicitly; there is no -1 placeholder.

#include <cstring>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// x (N) -> y (N): a copy (the tape owns each node's value).
template <typename Scalar>
void reshape_forward(const Scalar* x, Scalar* y, Index N) {
  if (N) std::memcpy(y, x, static_cast<std::size_t>(N) * sizeof(Scalar));
}

// dx (N) += dy (N) (= when overwrite).
template <typename Scalar>
void reshape_backward(const Scalar* dy, Scalar* dx, Index N, bool overwrite = false) {
  detail::for_mode(overwrite, [&](auto mode) {
    parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
      for (Index i = lo; i < hi; ++i) detail::put(mode, dx[i], dy[i]);
    });
  });
}

}  // namespace ops

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
