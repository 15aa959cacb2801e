#pragma once
// The forward and backward kernels of linear (ops/linear.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <array>
#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/gemm/sgemm.hpp"

namespace qaware {
namespace ops {

// x (R, IN), w (OUT, IN), b (OUT) or nullptr -> y (R, OUT).
// Float products run on gemm/sgemm.hpp's kernels where the CPU has them,
// otherwise (and for double) on Eigen's GEMM.
template <typename Scalar>
void linear_forward(const Scalar* x, const Scalar* w, const Scalar* b, Scalar* y, Index R, Index IN, Index OUT) {
  ConstMatrixMap<Scalar> X(x, R, IN), W(w, OUT, IN);
  MatrixMap<Scalar> Y(y, R, OUT);
  if (!gemm::try_sgemm(R, OUT, IN, x, IN, false, w, IN, true, y, OUT, false)) Y.noalias() = X * W.transpose();
  if (b) Y.rowwise() += ConstVectorMap<Scalar>(b, OUT).transpose();
}

// Accumulates dx (R, IN) += dy W, dw (OUT, IN) += dy^T x and db (OUT) +=
// column sums of dy, in that order; dx and dw are overwritten (=) instead
// when their flag is set. A null output is not computed.
// An overwritten product equals the old 0 + product bitwise: the AVX2 GEMM's
// sums start at +0 and never give -0.0, and the Eigen path zeroes first.
template <typename Scalar>
void linear_backward(const Scalar* dy, const Scalar* x, const Scalar* w, Scalar* dx, Scalar* dw, Scalar* db, Index R,
                     Index IN, Index OUT, bool overwrite_dx = false, bool overwrite_dw = false) {
  ConstMatrixMap<Scalar> dY(dy, R, OUT);
  // C = / += op(A) op(B), Eigen's `+=` product after a zero fill otherwise
  // (one set of Eigen product kernels, as matmul_detail::gemm).
  auto product = [](auto&& C, const auto& A, const auto& B, bool overwrite) {
    if (overwrite) C.setZero();
    C.noalias() += A * B;
  };
  if (dx && !gemm::try_sgemm(R, IN, OUT, dy, OUT, false, w, IN, false, dx, IN, !overwrite_dx))
    product(MatrixMap<Scalar>(dx, R, IN), dY, ConstMatrixMap<Scalar>(w, OUT, IN), overwrite_dx);
  if (dw && !gemm::try_sgemm(OUT, IN, R, dy, OUT, true, x, IN, false, dw, IN, !overwrite_dw))
    product(MatrixMap<Scalar>(dw, OUT, IN), dY.transpose(), ConstMatrixMap<Scalar>(x, R, IN), overwrite_dw);
  if (db) {
    // Column sums row by row (contiguous reads; Eigen's colwise() walks the
    // row-major dy a column group at a time, with stride OUT).
    std::vector<Scalar> sums(static_cast<std::size_t>(OUT), Scalar(0));
    for (Index r = 0; r < R; ++r) {
      const Scalar* row = dy + r * OUT;
      for (Index o = 0; o < OUT; ++o) sums[static_cast<std::size_t>(o)] += row[o];
    }
    for (Index o = 0; o < OUT; ++o) db[o] += sums[static_cast<std::size_t>(o)];
  }
}

}  // namespace ops
}  // namespace qaware
