#pragma once
// Small tape ops the layers need beyond ops/: tanh (the BERT pooler), taking
// one position of a sequence (the pooler's first token), and the additive
// attention mask.

#include <cmath>
#include <cstring>
#include <limits>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace nn {
namespace kernels {

// x (N) -> y (N) = tanh(x) (Eigen's vectorised tanh for float; the C library's for double).
template <typename Scalar>
void tanh_forward(const Scalar* x, Scalar* y, Index N) {
  parallel_for(0, N, qaware::detail::kElementGrain, [&](Index lo, Index hi) {
    using Arr = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
    Eigen::Map<Arr>(y + lo, hi - lo) = Eigen::Map<const Arr>(x + lo, hi - lo).tanh();
  });
}

// dx (N) += dy * (1 - y^2), from the forward output y.
template <typename Scalar>
void tanh_backward(const Scalar* dy, const Scalar* y, Scalar* dx, Index N) {
  parallel_for(0, N, qaware::detail::kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) dx[i] += dy[i] * (Scalar(1) - y[i] * y[i]);
  });
}

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

}  // namespace kernels

// y = tanh(x), elementwise.
template <typename Scalar>
Var<Scalar> tanh(Var<Scalar> x) {
  DynTensor<Scalar> y(x.shape());
  const Index N = y.numel();
  kernels::tanh_forward(x.value().data(), y.data(), N);
  const Var<Scalar> out = qaware::detail::next_var(x.tape());
  Var<Scalar> rec = x.tape().record(std::move(y), {x}, [x, out, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    kernels::tanh_backward(dy.data(), t.value(out).data(), t.grad(x).data(), N);
  });
  qaware::detail::check_next_var(out, rec, "tanh");
  return rec;
}

// y = x[:, t, :] for x (B, T, C).
template <typename Scalar>
Var<Scalar> select_position(Var<Scalar> x, Index t) {
  const Shape& xs = x.shape();
  QAWARE_CHECK(xs.rank() == 3, "select_position: x must be (B, T, C), got ", xs.str());
  const Index B = xs[0], T = xs[1], C = xs[2];
  QAWARE_CHECK(t >= 0 && t < T, "select_position: position ", t, " is out of range for x ", xs.str());
  DynTensor<Scalar> y(Shape{B, C});
  kernels::select_position_forward(x.value().data(), y.data(), B, T, C, t);
  return x.tape().record(std::move(y), {x}, [x, B, T, C, t](Tape<Scalar>& tp, const DynTensor<Scalar>& dy) {
    kernels::select_position_backward(dy.data(), tp.grad(x).data(), B, T, C, t);
  });
}

// The additive attention mask [B, 1, 1, T] of a padding mask [B, T] (1 =
// attend, 0 = padding): 0 where attended, the lowest finite Scalar where
// padded (as transformers' (1 - mask) * finfo.min). Adding it to a score
// leaves the lowest finite value (finite, so no inf - inf), whose
// exponential after the softmax's max subtraction is exactly 0. A row whose
// keys are all padding gets uniform weights, as in transformers.
template <typename Scalar>
DynTensor<Scalar> additive_attention_mask(const DynTensor<Scalar>& padding_mask, Index B, Index T) {
  QAWARE_CHECK(padding_mask.shape() == Shape({B, T}), "attention: the padding mask must be [B, T] = [", B, ", ", T,
               "] (1 = attend, 0 = padding), got ", padding_mask.shape().str());
  DynTensor<Scalar> m(Shape{B, 1, 1, T});
  for (Index i = 0; i < B * T; ++i) {
    const Scalar v = padding_mask[i];
    QAWARE_CHECK(v == Scalar(0) || v == Scalar(1), "attention: padding mask entries must be 0 or 1, got ", v,
                 " at flat index ", i);
    m[i] = v == Scalar(1) ? Scalar(0) : std::numeric_limits<Scalar>::lowest();
  }
  return m;
}

}  // namespace nn
}  // namespace qaware
