#pragma once
// The forward and backward kernels of tanh (ops/tanh.hpp describes the op),
// on raw pointers and without the tape.

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/shape.hpp"
#include "qaware/core/threading.hpp"

namespace qaware {
namespace ops {

// x (N) -> y (N) = tanh(x) (Eigen's vectorised tanh for float; the C library's for double).
template <typename Scalar>
void tanh_forward(const Scalar* x, Scalar* y, Index N) {
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
    Eigen::Map<Arr>(y + lo, hi - lo) = Eigen::Map<const Arr>(x + lo, hi - lo).tanh();
  });
}

// dx (N) += dy * (1 - y^2), from the forward output y.
template <typename Scalar>
void tanh_backward(const Scalar* dy, const Scalar* y, Scalar* dx, Index N) {
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) dx[i] += dy[i] * (Scalar(1) - y[i] * y[i]);
  });
}

}  // namespace ops
}  // namespace qaware
