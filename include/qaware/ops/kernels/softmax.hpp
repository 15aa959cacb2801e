#pragma once
// The forward and backward kernels of softmax (ops/softmax.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <cmath>
#include <limits>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/broadcast.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// x (R, C) -> y (R, C) = softmax of each row of x + mask, where the mask row
// for row r starts at mask + (offset from `mask_rows` for r) and steps by
// mask_rows.inner_stride. Pass mask == nullptr for no mask.
template <typename Scalar>
void softmax_forward(const Scalar* x, const Scalar* mask, const detail::RowBroadcast& mask_rows, Scalar* y, Index R,
                     Index C) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (C == 0) return;
  const Scalar neg_inf = -std::numeric_limits<Scalar>::infinity();
  const Scalar tiny = std::numeric_limits<Scalar>::min();
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    detail::StridedCursor<1> cur(mask_rows.dims, {&mask_rows.strides}, mask ? r0 : 0);
    for (Index r = r0; r < r1; ++r) {
      Arr Y(y + r * C, C);
      Scalar mx;
      if (mask) {
        const Scalar* mr = mask + cur.offset(0);
        ConstArr X(x + r * C, C);
        if (mask_rows.inner_stride)
          Y = X + ConstArr(mr, C);
        else
          Y = X + mr[0];
        cur.next();
        mx = Y.maxCoeff();
      } else {
        mx = ConstArr(x + r * C, C).maxCoeff();
      }
      if (mx == neg_inf) {  // every entry masked: defined as zeros
        Y.setZero();
        continue;
      }
      if (mask)
        Y = (Y - mx).exp();
      else
        Y = (ConstArr(x + r * C, C) - mx).exp();
      Y *= Scalar(1) / Y.sum();
      for (Index j = 0; j < C; ++j) Y[j] = Y[j] < tiny ? Scalar(0) : Y[j];  // flush denormals
    }
  });
}

// x (R, C) -> y (R, C), no mask.
template <typename Scalar>
void softmax_forward(const Scalar* x, Scalar* y, Index R, Index C) {
  softmax_forward(x, static_cast<const Scalar*>(nullptr), detail::RowBroadcast{}, y, R, C);
}

// dx (R, C) += y * (dy - sum(dy * y)) row by row (= when overwrite), where
// y is the forward output. (The gradient with respect to the mask is the same, summed over
// the mask's broadcast dimensions; the Var wrapper does that.)
template <typename Scalar>
void softmax_backward(const Scalar* dy, const Scalar* y, Scalar* dx, Index R, Index C, bool overwrite = false) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (C == 0) return;
  detail::for_mode(overwrite, [&](auto mode) {
    parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
      for (Index r = r0; r < r1; ++r) {
        ConstArr G(dy + r * C, C), Y(y + r * C, C);
        const Scalar dot = (G * Y).sum();
        detail::put(mode, Arr(dx + r * C, C), Y * (G - dot));
      }
    });
  });
}

}  // namespace ops
}  // namespace qaware
