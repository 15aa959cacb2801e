#pragma once
// linear: y = x W^T + b, as torch.nn.functional.linear.
//   x is (..., IN), W is (OUT, IN) (PyTorch's weight layout), b is (OUT) or
//   absent; y is (..., OUT). R below is the product of x's leading dims.

#include <array>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/linear.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/gemm/sgemm.hpp"

namespace qaware {

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
