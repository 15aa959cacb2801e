#pragma once
// quantized_linear: y = x W^T + b for fake-quantized x and W, with the
// product on the INT8 GEMM (ops/kernels/quantized_linear.hpp: the integer
// parameters, the forward and what it computes exactly), recorded on the
// tape. The backward is linear()'s: dx = dy W, dW = dy^T x, db = column sums
// of dy, on the fake-quantized values (the STE of the fake-quantize ops that
// produced x and W takes it from there).
//
// float only; the caller vouches that x and W hold values of the stated
// codes (QATLinear derives the parameters from its quantization points,
// nn::integer_linear_params). Parameters with a problem() raise
// qaware::Error.

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/quantized_linear.hpp"
#include "qaware/ops/linear.hpp"

namespace qaware {

namespace detail {
inline Var<float> quantized_linear_impl(Var<float> x, Var<float> w, const Var<float>* b,
                                        const IntegerLinearParams& p) {
  const auto [R, IN, OUT] = linear_dims(x, w, b, "quantized_linear");
  DynTensor<float> y{linear_output_shape(x.shape(), OUT)};
  ops::quantized_linear_forward(x.value().data(), w.value().data(), b ? b->value().data() : nullptr, y.data(), R, IN,
                                OUT, p);
  return record_linear(std::move(y), x, w, b, R, IN, OUT);
}
}  // namespace detail

// y = x W^T on the INT8 GEMM (x, W fake-quantized as described above).
inline Var<float> quantized_linear(Var<float> x, Var<float> w, const IntegerLinearParams& p) {
  return detail::quantized_linear_impl(x, w, nullptr, p);
}
// y = x W^T + b on the INT8 GEMM.
inline Var<float> quantized_linear(Var<float> x, Var<float> w, Var<float> b, const IntegerLinearParams& p) {
  return detail::quantized_linear_impl(x, w, &b, p);
}

}  // namespace qaware
