#pragma once
// AVX-VNNI path: the VEX-encoded, 256-bit vpdpbusd (Alder Lake and later,
// Zen 5 client parts): 4 unsigned bytes of A times 4 signed bytes of B added
// into int32 with no int16 intermediate, so nothing saturates. int8 A is
// stored as A + 128 and corrected with B's column sums, as in the AVX-512 VNNI
// path.
//
// Layout: A panels [Kp/4][6][4] bytes; B panels [Kp/4][16][4]. Micro-kernel:
// 6 rows x 16 columns = 12 ymm accumulators, 2 ymm of B, one broadcast A
// quad; K blocks of 512 keep the 8 KiB B sub-panel in L1.

#include <cstdint>
#include <cstring>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include "qaware/core/intrinsics.hpp"

#define QAWARE_GEMM_TARGET_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))

namespace qaware {
namespace gemm {
namespace detail {

struct AvxVnniKernel {
  static constexpr Path kPath = Path::kAvxVnni;
  static constexpr Format kFormat = Format::kAvxVnni;
  static constexpr Fixup kFixup = Fixup::kNone;
  static constexpr Index MR = 6, NR = 16, G = 4, KC = 512;
  static constexpr std::int32_t kShiftSigned = 128;
  using AElem = std::uint8_t;
  using BElem = std::int8_t;

  template <class TA>
  static AElem convert(TA v) {
    return std::is_same<TA, std::int8_t>::value ? static_cast<AElem>(static_cast<std::uint8_t>(v) ^ 0x80u)
                                                 : static_cast<AElem>(v);
  }

  template <int R>
  QAWARE_GEMM_TARGET_AVXVNNI static inline void micro_rows(const std::uint8_t* a, const std::int8_t* b, Index kc,
                                                           bool accumulate, std::int32_t* tile) {
    __m256i acc[R][2];
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      if (accumulate) {
        acc[r][0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + r * NR));
        acc[r][1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + r * NR + 8));
      } else {
        acc[r][0] = _mm256_setzero_si256();
        acc[r][1] = _mm256_setzero_si256();
      }
    }
    const Index quads = kc / 4;
    for (Index q = 0; q < quads; ++q) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 64));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * 64 + 32));
      QAWARE_GEMM_UNROLL
      for (int r = 0; r < R; ++r) {
        std::int32_t quad;
        std::memcpy(&quad, a + q * (MR * 4) + r * 4, 4);
        const __m256i x = _mm256_set1_epi32(quad);
        acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], x, b0);
        acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], x, b1);
      }
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * NR), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * NR + 8), acc[r][1]);
    }
  }

  QAWARE_GEMM_TARGET_AVXVNNI static void micro(const AElem* a, const void* bsub, Index kc, int rows,
                                               bool /*a_signed*/, bool accumulate, std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    // Row counts round up to 1, 2, 4 or 6 (packed rows past M are zero and the
    // strip has room), which keeps the number of unrolled variants small.
    switch (rows) {
      case 1: micro_rows<1>(a, b, kc, accumulate, tile); break;
      case 2: micro_rows<2>(a, b, kc, accumulate, tile); break;
      case 3:
      case 4: micro_rows<4>(a, b, kc, accumulate, tile); break;
      default: micro_rows<6>(a, b, kc, accumulate, tile); break;
    }
  }

  QAWARE_GEMM_TARGET_AVXVNNI QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                     unsigned char* shared, unsigned char* scratch,
                                                                     Index t0, Index t1) {
    drive<AvxVnniKernel>(p, pl, shared, scratch, t0, t1);
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
