#pragma once
// The forward and backward kernels of mse_loss (ops/mse_loss.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// a (N), b (N) -> loss (1). The differences are formed in Scalar, squared
// and summed in double (blocks of 4096, then the block sums in a fixed order).
template <typename Scalar>
void mse_loss_forward(const Scalar* a, const Scalar* b, Scalar* loss, Index N) {
  constexpr Index kBlock = 4096;
  const Index blocks = (N + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks));
  parallel_for(0, blocks, std::max<Index>(1, detail::kElementGrain / kBlock), [&](Index b0, Index b1) {
    for (Index blk = b0; blk < b1; ++blk) {
      const Index lo = blk * kBlock, n = std::min(kBlock, N - lo);
      partial[static_cast<std::size_t>(blk)] =
          (ConstVectorMap<Scalar>(a + lo, n) - ConstVectorMap<Scalar>(b + lo, n)).template cast<double>().squaredNorm();
    }
  });
  double s = 0.0;
  for (double v : partial) s += v;
  loss[0] = static_cast<Scalar>(s / static_cast<double>(N));
}

// da (N) += dloss * 2 (a - b) / N and db (N) -= the same (each = / = -
// when its overwrite flag is set). A null output is not computed.
template <typename Scalar>
void mse_loss_backward(const Scalar* dloss, const Scalar* a, const Scalar* b, Scalar* da, Scalar* db, Index N,
                       bool overwrite_da = false, bool overwrite_db = false) {
  const Scalar g = dloss[0] * Scalar(2) / static_cast<Scalar>(N);
  // d += sign * v is d -= v exactly for sign = -1.
  auto side = [&](Scalar* d, Scalar sign, bool overwrite) {
    detail::for_mode(overwrite, [&](auto mode) {
      parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
        for (Index i = lo; i < hi; ++i) detail::put(mode, d[i], sign * (g * (a[i] - b[i])));
      });
    });
  };
  if (da) side(da, Scalar(1), overwrite_da);
  if (db) side(db, Scalar(-1), overwrite_db);
}

}  // namespace ops
}  // namespace qaware
