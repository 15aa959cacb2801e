#pragma once
// mean: the mean of all elements (one element, shape []), or along one axis
// (that axis removed), as torch.mean(x) and torch.mean(x, dim). The mean of
// nothing is an error rather than NaN.

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/mean.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/sum.hpp"

namespace qaware {

// The mean of every element of x, shape [].
template <typename Scalar>
Var<Scalar> mean(Var<Scalar> x) {
  const Index N = x.numel();
  QAWARE_CHECK(N > 0, "mean: x ", x.shape().str(), " has no elements");
  DynTensor<Scalar> y{Shape{}};
  ops::mean_forward(x.value().data(), y.data(), N);
  return x.tape().record(std::move(y), {x}, [x, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    ops::mean_backward(dy.data(), t.grad(x).data(), N);
  });
}

// The mean along `axis` (negative counts from the end); that axis is removed.
template <typename Scalar>
Var<Scalar> mean(Var<Scalar> x, int axis) {
  const detail::AxisSplit s = detail::split_axis("mean", x.shape(), axis);
  QAWARE_CHECK(s.A > 0, "mean: axis ", axis, " of x ", x.shape().str(), " is empty");
  DynTensor<Scalar> y(s.reduced);
  ops::mean_axis_forward(x.value().data(), y.data(), s.P, s.A, s.Q);
  return x.tape().record(std::move(y), {x}, [x, s](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    ops::mean_axis_backward(dy.data(), t.grad(x).data(), s.P, s.A, s.Q);
  });
}

}  // namespace qaware
