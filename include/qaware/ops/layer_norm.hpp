#pragma once
// layer_norm over the last dimension, as torch.nn.functional.layer_norm(x,
// (C,), weight, bias, eps):
//   x and y are (..., C), viewed as R rows of C; weight and bias are (C).
//   y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps), with
//   the biased variance (divide by C).
// The forward saves mean (R) and rstd (R) for the backward (as llm.c does);
// the backward recomputes xhat = (x - mean) * rstd from x.

#include <algorithm>
#include <cmath>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/layer_norm.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

// y = layer_norm(x) * weight + bias over the last dimension.
template <typename Scalar>
Var<Scalar> layer_norm(Var<Scalar> x, Var<Scalar> weight, Var<Scalar> bias, detail::identity_t<Scalar> eps = Scalar(1e-5)) {
  const Shape& xs = x.shape();
  QAWARE_CHECK(xs.rank() >= 1, "layer_norm: x must have rank >= 1, got ", xs.str());
  const Index C = xs.dim(-1), R = xs.rows();
  QAWARE_CHECK(weight.shape() == Shape({C}), "layer_norm: weight ", weight.shape().str(),
               " does not match the last dimension of x ", xs.str());
  QAWARE_CHECK(bias.shape() == Shape({C}), "layer_norm: bias ", bias.shape().str(),
               " does not match the last dimension of x ", xs.str());
  QAWARE_CHECK(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);
  DynTensor<Scalar> y(xs), mean{Shape{R}}, rstd{Shape{R}};
  ops::layer_norm_forward(x.value().data(), weight.value().data(), bias.value().data(), y.data(), mean.data(),
                          rstd.data(), R, C, static_cast<Scalar>(eps));
  return x.tape().record(
      std::move(y), {x, weight, bias},
      [x, weight, bias, R, C, mean = std::move(mean), rstd = std::move(rstd)](Tape<Scalar>& t,
                                                                              const DynTensor<Scalar>& dy) {
        // dx is written first (weight and bias are normally Params: they add).
        const auto dx = t.grad_slot_if_needed(x);
        ops::layer_norm_backward(dy.data(), t.value(x).data(), t.value(weight).data(), mean.data(), rstd.data(),
                                 dx.data, t.requires_grad(weight) ? t.grad(weight).data() : nullptr,
                                 t.requires_grad(bias) ? t.grad(bias).data() : nullptr, R, C, dx.fresh);
      });
}

}  // namespace qaware
