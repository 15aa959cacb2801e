#pragma once
// The forward and backward kernels of select_position (ops/select_position.hpp
// describes the op), on raw pointers and without the tape.

#include <cstring>

#include "qaware/core/shape.hpp"

namespace qaware {
namespace ops {

// x (B, T, C) -> y (B, C) = x[:, t, :].
template <typename Scalar>
void select_position_forward(const Scalar* x, Scalar* y, Index B, Index T, Index C, Index t) {
  for (Index b = 0; b < B; ++b) std::memcpy(y + b * C, x + (b * T + t) * C, static_cast<std::size_t>(C) * sizeof(Scalar));
}

// dx[:, t, :] (B, T, C) += dy (B, C).
template <typename Scalar>
void select_position_backward(const Scalar* dy, Scalar* dx, Index B, Index T, Index C, Index t) {
  for (Index b = 0; b < B; ++b)
    for (Index c = 0; c < C; ++c) dx[(b * T + t) * C + c] += dy[b * C + c];
}

}  // namespace ops
}  // namespace qaware
