#pragma once
// The forward and backward kernels of mean (ops/mean.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include "qaware/core/tensor.hpp"
#include "qaware/ops/kernels/sum.hpp"

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
}  // namespace qaware
