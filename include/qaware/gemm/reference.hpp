#pragma once
// The oracle: a plain triple loop, no packing, no blocking, no SIMD (ruy's
// reference_mul idea). Every path is tested against it.
//
//   acc[m][n] = sum_k (A[m][k] - za) * (B[k][n] - zb)        (int64, then checked to fit int32)
// and the output stages written out one element at a time with the same shared
// routines (numerics::dequantize_accumulator, numerics::quantize) the kernels use.

#include <cstdint>
#include <limits>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/gemm/output.hpp"
#include "qaware/gemm/packed_matrix.hpp"
#include "qaware/core/numerics.hpp"

namespace qaware {
namespace gemm {

// C (M x N, ldc) = exact int32 accumulators. B is read in `layout` with ldb.
template <class TA>
void reference_gemm_s32(const TA* a, Index M, Index K, Index lda, std::int32_t za, const std::int8_t* b, Index N,
                        Index ldb, BLayout layout, std::int32_t zb, std::int32_t* c, Index ldc) {
  for (Index m = 0; m < M; ++m) {
    for (Index n = 0; n < N; ++n) {
      std::int64_t acc = 0;
      for (Index k = 0; k < K; ++k) {
        const std::int64_t av = static_cast<std::int64_t>(a[m * lda + k]) - za;
        const std::int64_t bv =
            static_cast<std::int64_t>(layout == BLayout::kKxN ? b[k * ldb + n] : b[n * ldb + k]) - zb;
        acc += av * bv;
      }
      QAWARE_CHECK(acc >= std::numeric_limits<std::int32_t>::min() && acc <= std::numeric_limits<std::int32_t>::max(),
                   "reference_gemm_s32: accumulator ", acc, " at (", m, ", ", n, ") overflows int32");
      c[m * ldc + n] = static_cast<std::int32_t>(acc);
    }
  }
}

// The dequantize stage on one accumulator: act(fma(float(acc), a_scale * b_scale[n], bias[n])).
inline float reference_dequantize(std::int32_t acc, Index n, const Dequantize& dq) {
  const float scale = dq.a_scale * dq.b_scales[dq.b_scale_count == 1 ? 0 : n];
  const float y = numerics::dequantize_accumulator(acc, scale, dq.bias ? dq.bias[n] : 0.0f);
  return apply_activation(dq.activation, y);
}

// The requantize stage on one accumulator.
inline std::int32_t reference_requantize(std::int32_t acc, Index n, const Dequantize& dq, float out_scale,
                                         std::int32_t out_zero_point, std::int32_t qmin, std::int32_t qmax) {
  return numerics::quantize(reference_dequantize(acc, n, dq), 1.0f / out_scale, out_zero_point, qmin, qmax);
}

}  // namespace gemm
}  // namespace qaware
