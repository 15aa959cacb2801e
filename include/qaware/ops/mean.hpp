#pragma once
// mean: the mean of all elements (one element, shape []), or along one axis
// (that axis removed), as torch.mean(x) and torch.mean(x, dim). The mean of
// nothing is an error rather than NaN.

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/sum.hpp"

namespace qaware {
namespace ops {

// x (N) -> y (1) = mean of x; N > 0.
template <typename Scalar>
void mean_forward(const Scalar* x, Scalar* y, Index N) {
  y[0] = detail::reduce_all(x, N, 1.0 / static_cast<double>(N));
}
// dx (N) += dy[0] / N.
template <typename Scalar>
void mean_backward(const Scalar* dy, Scalar* dx, Index N) {
  detail::expand_all(static_cast<Scalar>(dy[0] / static_cast<Scalar>(N)), dx, N);
}

// x (P, A, Q) -> y (P, Q) = mean over A; A > 0.
template <typename Scalar>
void mean_axis_forward(const Scalar* x, Scalar* y, Index P, Index A, Index Q) {
  detail::reduce_axis(x, y, P, A, Q, Scalar(1) / static_cast<Scalar>(A));
}
// dx (P, A, Q) += dy (P, Q) / A, broadcast over A.
template <typename Scalar>
void mean_axis_backward(const Scalar* dy, Scalar* dx, Index P, Index A, Index Q) {
  detail::expand_axis(dy, dx, P, A, Q, Scalar(1) / static_cast<Scalar>(A));
}

}  // namespace ops

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
