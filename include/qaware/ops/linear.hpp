#pragma once
// linear: y = x W^T + b, as torch.nn.functional.linear.
//   x is (..., IN), W is (OUT, IN) (PyTorch's weight layout), b is (OUT) or
//   absent; y is (..., OUT). R below is the product of x's leading dims.

#include <array>
#include <vector>

#include "qaware/autograd/tape.hpp"
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

namespace detail {
// Checks x (..., IN), w (OUT, IN) and b (OUT) and returns {R, IN, OUT}.
template <typename Scalar>
std::array<Index, 3> linear_dims(const Var<Scalar>& x, const Var<Scalar>& w, const Var<Scalar>* b, const char* op) {
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  QAWARE_CHECK(ws.rank() == 2, op, ": weight must be (OUT, IN), got ", ws.str());
  QAWARE_CHECK(xs.rank() >= 1 && xs.dim(-1) == ws[1], op, ": x ", xs.str(), " has ", xs.rank() ? xs.dim(-1) : 0,
               " input features but weight ", ws.str(), " expects ", ws[1]);
  if (b) QAWARE_CHECK(b->shape() == Shape({ws[0]}), op, ": bias ", b->shape().str(), " does not match weight ", ws.str());
  return {xs.rows(), ws[1], ws[0]};
}

// The output shape of linear: x's with the last dimension OUT.
inline Shape linear_output_shape(const Shape& xs, Index OUT) {
  std::vector<Index> ys(xs.begin(), xs.end());
  ys.back() = OUT;
  return Shape(ys);
}

// Records y = linear(x, w, b), however y was computed, with linear's backward.
template <typename Scalar>
Var<Scalar> record_linear(DynTensor<Scalar> y, Var<Scalar> x, Var<Scalar> w, const Var<Scalar>* b, Index R, Index IN,
                          Index OUT) {
  std::vector<Var<Scalar>> inputs{x, w};
  if (b) inputs.push_back(*b);
  const Var<Scalar> bias = b ? *b : Var<Scalar>();
  return x.tape().record(std::move(y), inputs, [x, w, bias, R, IN, OUT](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    // The slots in the order linear_backward writes them (x and w may be one node).
    const auto dx = t.grad_slot_if_needed(x);
    const auto dw = t.grad_slot_if_needed(w);
    Scalar* db = bias.valid() && t.requires_grad(bias) ? t.grad(bias).data() : nullptr;
    ops::linear_backward(dy.data(), t.value(x).data(), t.value(w).data(), dx.data, dw.data, db, R, IN, OUT, dx.fresh,
                         dw.fresh);
  });
}

template <typename Scalar>
Var<Scalar> linear_impl(Var<Scalar> x, Var<Scalar> w, const Var<Scalar>* b) {
  const auto [R, IN, OUT] = linear_dims(x, w, b, "linear");
  DynTensor<Scalar> y{linear_output_shape(x.shape(), OUT)};
  ops::linear_forward(x.value().data(), w.value().data(), b ? b->value().data() : nullptr, y.data(), R, IN, OUT);
  return record_linear(std::move(y), x, w, b, R, IN, OUT);
}
}  // namespace detail

// y = x W^T.
template <typename Scalar>
Var<Scalar> linear(Var<Scalar> x, Var<Scalar> w) {
  return detail::linear_impl(x, w, static_cast<const Var<Scalar>*>(nullptr));
}
// y = x W^T + b.
template <typename Scalar>
Var<Scalar> linear(Var<Scalar> x, Var<Scalar> w, Var<Scalar> b) {
  return detail::linear_impl(x, w, &b);
}

}  // namespace qaware
