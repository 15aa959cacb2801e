#pragma once
// quantized_linear: y = x W^T + b for fake-quantized x and W, with the
// product on the INT8 GEMM.
//
//   x (..., IN) holds x = (qx - zx) * sx: per-tensor affine codes qx in
//   [qmin, qmax] within [0, 255] (uint8) or [-128, 127] (int8);
//   W (OUT, IN) holds W[o][i] = qw[o][i] * sw[o]: symmetric codes in
//   [-128, 127], one scale per output row or one for the whole matrix;
//   b (OUT) or absent.
//
// The forward recovers the integer codes (q = zx + nearbyint(x / sx) returns
// the code exactly: x is (q - zx) * sx rounded once, far less than half a
// step away), packs W for the best GEMM path and runs
//   y[r][o] = fma(float(sum_i (qx[r][i] - zx) * qw[o][i]), sx * sw[o], b[o])
// -- the exact int32 product and the dequantizing output stage an exported
// INT8 model runs. It differs from linear()'s float product of the same
// values only by float rounding (the integer sum is exact where float
// accumulation is not). The backward is linear()'s: dx = dy W, dW = dy^T x,
// db = column sums of dy, on the fake-quantized values (the STE of the
// fake-quantize ops that produced x and W takes it from there).
//
// float only; the caller vouches that x and W hold such values (QATLinear
// checks its quantization points). Codes outside the stated range, a scale
// that is not finite and positive, or a scale count other than 1 or OUT
// raise qaware::Error.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/gemm.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"

namespace qaware {

// The quantization of x: per tensor, affine.
struct LinearInputQuant {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
  std::int32_t quant_min = 0;
  std::int32_t quant_max = 255;
};

// The quantization of W: symmetric (zero point 0), 1 scale or OUT scales.
struct LinearWeightQuant {
  std::vector<float> scales{1.0f};
  std::int32_t quant_min = -128;
  std::int32_t quant_max = 127;
};

namespace ops {

// Recovers the codes of n fake-quantized values: out[i] = clamp(zp +
// nearbyint(x[i] * (1 / scale)), qmin, qmax), the shared quantize routine
// (vectorised where the CPU allows; the same codes either way).
template <typename Code>
void recover_codes(const float* x, Code* out, Index n, float scale, std::int32_t zero_point, std::int32_t qmin,
                   std::int32_t qmax) {
  detail::fq::quantize_codes(x, out, n, 1.0f / scale, zero_point, qmin, qmax);
}

// The codes of n activations, in parallel (every element is written, so
// the buffer starts uninitialised).
template <typename Code>
std::unique_ptr<Code[]> input_codes(const float* x, Index n, const LinearInputQuant& q) {
  std::unique_ptr<Code[]> c(new Code[static_cast<std::size_t>(n)]);
  parallel_for(0, n, 16384, [&](Index b, Index e) {
    recover_codes(x + b, c.get() + b, e - b, q.scale, q.zero_point, q.quant_min, q.quant_max);
  });
  return c;
}

// x (R, IN), w (OUT, IN), b (OUT) or nullptr -> y (R, OUT), as described above.
inline void quantized_linear_forward(const float* x, const float* w, const float* b, float* y, Index R, Index IN,
                                     Index OUT, const LinearInputQuant& xq, const LinearWeightQuant& wq) {
  const auto S = static_cast<Index>(wq.scales.size());
  QAWARE_CHECK(S == 1 || S == OUT, "quantized_linear: ", S, " weight scales for a weight of ", OUT,
               " rows (need 1 or ", OUT, ")");
  QAWARE_CHECK(std::isfinite(xq.scale) && xq.scale > 0.0f, "quantized_linear: input scale ", xq.scale,
               " must be finite and positive");
  for (Index o = 0; o < S; ++o) {
    const float s = wq.scales[static_cast<std::size_t>(o)];
    QAWARE_CHECK(std::isfinite(s) && s > 0.0f, "quantized_linear: weight scale ", s, " of row ", o,
                 " must be finite and positive");
  }
  const bool a_unsigned = xq.quant_min >= 0 && xq.quant_max <= 255;
  const bool a_signed = xq.quant_min >= -128 && xq.quant_max <= 127;
  QAWARE_CHECK(xq.quant_min <= xq.quant_max && (a_unsigned || a_signed), "quantized_linear: input range [",
               xq.quant_min, ", ", xq.quant_max, "] fits neither uint8 nor int8");
  QAWARE_CHECK(xq.zero_point >= xq.quant_min && xq.zero_point <= xq.quant_max, "quantized_linear: input zero point ",
               xq.zero_point, " outside [", xq.quant_min, ", ", xq.quant_max, "]");
  QAWARE_CHECK(wq.quant_min <= wq.quant_max && wq.quant_min >= -128 && wq.quant_max <= 127,
               "quantized_linear: weight range [", wq.quant_min, ", ", wq.quant_max, "] does not fit int8");

  // Weight codes, row by row (each row's own scale).
  std::unique_ptr<std::int8_t[]> wc(new std::int8_t[static_cast<std::size_t>(OUT * IN)]);
  parallel_for(0, OUT, 64, [&](Index o0, Index o1) {
    for (Index o = o0; o < o1; ++o) {
      const float s = wq.scales[static_cast<std::size_t>(S == 1 ? 0 : o)];
      recover_codes(w + o * IN, wc.get() + o * IN, IN, s, 0, wq.quant_min, wq.quant_max);
    }
  });
  gemm::Dequantize dq;
  dq.a_scale = xq.scale;
  dq.b_scales = wq.scales.data();
  dq.b_scale_count = S;
  dq.bias = b;
  const gemm::Output out = gemm::Output::dequantize(y, OUT, dq);
  // The weight is packed with the input codes in view, so that the AVX2 path
  // can keep its fast format for freshly initialised weights (packed_matrix.hpp).
  auto run = [&](const auto& codes) {
    const gemm::PackedMatrix packed = gemm::pack_b_for_a(codes.get(), R, IN, xq.zero_point, wc.get(), IN, OUT, IN,
                                                         gemm::BLayout::kNxK, 0, gemm::best_path());
    gemm::gemm(codes.get(), R, IN, IN, xq.zero_point, packed, out);
  };
  if (a_unsigned) {
    run(input_codes<std::uint8_t>(x, R * IN, xq));
  } else {
    run(input_codes<std::int8_t>(x, R * IN, xq));
  }
}

}  // namespace ops

namespace detail {
inline Var<float> quantized_linear_impl(Var<float> x, Var<float> w, const Var<float>* b, const LinearInputQuant& xq,
                                        const LinearWeightQuant& wq) {
  const auto [R, IN, OUT] = linear_dims(x, w, b, "quantized_linear");
  DynTensor<float> y{linear_output_shape(x.shape(), OUT)};
  ops::quantized_linear_forward(x.value().data(), w.value().data(), b ? b->value().data() : nullptr, y.data(), R, IN,
                                OUT, xq, wq);
  return record_linear(std::move(y), x, w, b, R, IN, OUT);
}
}  // namespace detail

// y = x W^T on the INT8 GEMM (x, W fake-quantized as described above).
inline Var<float> quantized_linear(Var<float> x, Var<float> w, const LinearInputQuant& xq, const LinearWeightQuant& wq) {
  return detail::quantized_linear_impl(x, w, nullptr, xq, wq);
}
// y = x W^T + b on the INT8 GEMM.
inline Var<float> quantized_linear(Var<float> x, Var<float> w, Var<float> b, const LinearInputQuant& xq,
                                   const LinearWeightQuant& wq) {
  return detail::quantized_linear_impl(x, w, &b, xq, wq);
}

}  // namespace qaware
