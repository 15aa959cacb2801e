#pragma once
// scale: y = alpha * x for a constant alpha (attention's 1/sqrt(HS), a loss
// weight). x and y have N elements.

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// x (N) -> y (N) = alpha * x.
template <typename Scalar>
void scale_forward(const Scalar* x, Scalar* y, Index N, Scalar alpha) {
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) y[i] = alpha * x[i];
  });
}

// dx (N) += alpha * dy (= when overwrite).
template <typename Scalar>
void scale_backward(const Scalar* dy, Scalar* dx, Index N, Scalar alpha, bool overwrite = false) {
  detail::for_mode(overwrite, [&](auto mode) {
    parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
      for (Index i = lo; i < hi; ++i) detail::put(mode, dx[i], alpha * dy[i]);
    });
  });
}

}  // namespace ops

// y = alpha * x.
template <typename Scalar>
Var<Scalar> scale(Var<Scalar> x, detail::identity_t<Scalar> alpha) {
  DynTensor<Scalar> y(x.shape());
  const Index N = y.numel();
  ops::scale_forward(x.value().data(), y.data(), N, alpha);
  return x.tape().record(std::move(y), {x}, [x, N, alpha](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    const auto dx = t.grad_slot(x);
    ops::scale_backward(dy.data(), dx.data, N, alpha, dx.fresh);
  });
}

}  // namespace qaware
