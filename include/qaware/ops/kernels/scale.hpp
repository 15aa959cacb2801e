#pragma once
// The forward and backward kernels of scale (ops/scale.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

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
}  // namespace qaware
