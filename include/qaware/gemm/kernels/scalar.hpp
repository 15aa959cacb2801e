#pragma once
// Scalar path: portable C++, no ISA requirement. A is packed as int16
// ([Kp][4] per panel), B as int8 panels [Kp][8]; a 4 x 8 block of int32
// accumulators per call. Sums wrap modulo 2^32 (unsigned arithmetic), exactly
// as the SIMD paths' vpaddd does, so no signed overflow is ever evaluated.

#include <cstdint>

#include "qaware/gemm/kernels/common.hpp"

namespace qaware {
namespace gemm {
namespace detail {

struct ScalarKernel {
  static constexpr Path kPath = Path::kScalar;
  static constexpr Format kFormat = Format::kScalar;
  static constexpr Fixup kFixup = Fixup::kNone;
  static constexpr Index MR = 4, NR = 8, G = 1, KC = 256;
  static constexpr std::int32_t kShiftSigned = 0;
  using AElem = std::int16_t;
  using BElem = std::int8_t;

  template <class TA>
  static AElem convert(TA v) {
    return static_cast<AElem>(v);
  }

  static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool /*a_signed*/, bool accumulate,
                    std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    std::uint32_t acc[MR][NR] = {};
    if (accumulate) {
      for (int r = 0; r < rows; ++r)
        for (Index j = 0; j < NR; ++j) acc[r][j] = static_cast<std::uint32_t>(tile[r * NR + j]);
    }
    for (Index k = 0; k < kc; ++k) {
      const std::int8_t* bk = b + k * NR;
      for (int r = 0; r < rows; ++r) {
        const std::int32_t av = a[k * MR + r];
        for (Index j = 0; j < NR; ++j) acc[r][j] += static_cast<std::uint32_t>(av * bk[j]);
      }
    }
    for (int r = 0; r < rows; ++r)
      for (Index j = 0; j < NR; ++j) tile[r * NR + j] = static_cast<std::int32_t>(acc[r][j]);
  }

  static void worker(const Problem& p, const Plan& pl, unsigned char* shared, unsigned char* scratch, Index t0,
                     Index t1) {
    drive<ScalarKernel>(p, pl, shared, scratch, t0, t1);
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware
