#pragma once
// gelu: the Gaussian error linear unit, elementwise.
//   GeluApprox::Erf  (default): y = x/2 (1 + erf(x / sqrt 2)),
//                    as torch.nn.functional.gelu(x);
//   GeluApprox::Tanh: y = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
//                    as torch.nn.functional.gelu(x, approximate='tanh').
// Vectorised through Eigen arrays (float erf/tanh are Eigen's rational
// approximations, accurate to a few ulp; double uses the C library); the erf
// form is core/numerics.hpp's gelu_erf. The
// backward recomputes from x, so nothing is saved.

#include <algorithm>
#include <cmath>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/gelu.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

// y = gelu(x), erf form by default.
template <typename Scalar>
Var<Scalar> gelu(Var<Scalar> x, GeluApprox approx = GeluApprox::Erf) {
  DynTensor<Scalar> y(x.shape());
  const Index N = y.numel();
  ops::gelu_forward(x.value().data(), y.data(), N, approx);
  return x.tape().record(std::move(y), {x}, [x, N, approx](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    const auto dx = t.grad_slot(x);
    ops::gelu_backward(dy.data(), t.value(x).data(), dx.data, N, approx, dx.fresh);
  });
}

}  // namespace qaware
