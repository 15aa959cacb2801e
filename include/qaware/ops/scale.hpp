#pragma once
// scale: y = alpha * x for a constant alpha (attention's 1/sqrt(HS), a loss
// weight). x and y have N elements.

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/scale.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

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
