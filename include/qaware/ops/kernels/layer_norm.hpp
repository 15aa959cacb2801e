#pragma once
// The forward and backward kernels of layer_norm (ops/layer_norm.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <cmath>
#include <vector>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// x (R, C), w (C), b (C) -> y (R, C), mean (R), rstd (R).
template <typename Scalar>
void layer_norm_forward(const Scalar* x, const Scalar* w, const Scalar* b, Scalar* y, Scalar* mean, Scalar* rstd,
                        Index R, Index C, Scalar eps) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (C == 0) return;
  ConstArr W(w, C), Bias(b, C);
  const Scalar inv_c = Scalar(1) / static_cast<Scalar>(C);
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      ConstArr X(x + r * C, C);
      const Scalar m = X.sum() * inv_c;
      const Scalar var = (X - m).square().sum() * inv_c;  // two passes: no cancellation
      const Scalar rs = Scalar(1) / std::sqrt(var + eps);
      Arr(y + r * C, C) = (X - m) * rs * W + Bias;
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

// Accumulates, with xhat = (x - mean) * rstd and dn = dy * w:
//   dx (R, C) += rstd * (dn - mean_C(dn) - xhat * mean_C(dn * xhat)) (= when
//   overwrite_dx),
//   dw (C) += sum over rows of dy * xhat,   db (C) += sum over rows of dy.
// A null output is not computed. dw and db are reduced over fixed blocks of
// rows, so the result does not depend on the thread count.
template <typename Scalar>
void layer_norm_backward(const Scalar* dy, const Scalar* x, const Scalar* w, const Scalar* mean, const Scalar* rstd,
                         Scalar* dx, Scalar* dw, Scalar* db, Index R, Index C, bool overwrite_dx = false) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Arr = Eigen::Map<Array>;
  using ConstArr = Eigen::Map<const Array>;
  if (C == 0 || R == 0) return;
  const bool params = dw || db;
  const Index block = std::max<Index>(8, detail::row_grain(C));
  const Index blocks = (R + block - 1) / block;
  // Per-block partial sums of dw (first C) and db (next C).
  std::vector<Scalar> partial(params ? static_cast<std::size_t>(blocks * 2 * C) : 0, Scalar(0));
  ConstArr W(w, C);
  const Scalar inv_c = Scalar(1) / static_cast<Scalar>(C);
  detail::for_mode(overwrite_dx, [&](auto mode) {
    parallel_for(0, blocks, 1, [&](Index b0, Index b1) {
      Array xhat(C), dn(C);
      for (Index blk = b0; blk < b1; ++blk) {
        Scalar* pw = params ? partial.data() + blk * 2 * C : nullptr;
        for (Index r = blk * block; r < std::min(R, (blk + 1) * block); ++r) {
          ConstArr G(dy + r * C, C);
          const Scalar rs = rstd[r];
          xhat = (ConstArr(x + r * C, C) - mean[r]) * rs;
          if (dx) {
            dn = G * W;
            const Scalar mean_dn = dn.sum() * inv_c;
            const Scalar mean_dnx = (dn * xhat).sum() * inv_c;
            detail::put(mode, Arr(dx + r * C, C), rs * (dn - mean_dn - xhat * mean_dnx));
          }
          if (params) {
            Arr(pw, C) += G * xhat;
            Arr(pw + C, C) += G;
          }
        }
      }
    });
  });
  for (Index blk = 0; blk < blocks && params; ++blk) {
    const Scalar* pw = partial.data() + blk * 2 * C;
    if (dw) Arr(dw, C) += ConstArr(pw, C);
    if (db) Arr(db, C) += ConstArr(pw + C, C);
  }
}

}  // namespace ops
}  // namespace qaware
