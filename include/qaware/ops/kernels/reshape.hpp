#pragma once
// The forward and backward kernels of reshape (ops/reshape.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <cstring>

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
}  // namespace qaware
