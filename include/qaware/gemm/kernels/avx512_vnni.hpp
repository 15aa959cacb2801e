#pragma once
// AVX-512 VNNI path: vpdpbusd zmm multiplies 4 unsigned bytes of A by 4 signed
// bytes of B and adds the four products and the int32 accumulator in int32 --
// no int16 intermediate, so nothing saturates (the non-"s" form wraps modulo
// 2^32 like every path). The instruction wants A unsigned, so int8 A is stored
// as A + 128 (xor 0x80) and the extra 128 * sum_k B[k][n] is subtracted in the
// output stage from B's column sums (kShiftSigned).
//
// Layout: A panels [Kp/4][8][4] bytes; B panels [Kp/4][48][4]. Micro-kernel:
// 8 rows x 48 columns = 24 zmm accumulators, 3 zmm of B and one broadcast A
// quad; K blocks of 256 keep the 12 KiB B sub-panel in L1.

#include <cstdint>
#include <cstring>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include <immintrin.h>

#define QAWARE_GEMM_TARGET_AVX512VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")))

namespace qaware {
namespace gemm {
namespace detail {

struct Avx512VnniKernel {
  static constexpr Path kPath = Path::kAvx512Vnni;
  static constexpr Format kFormat = Format::kAvx512Vnni;
  static constexpr Fixup kFixup = Fixup::kNone;
  static constexpr Index MR = 8, NR = 48, G = 4, KC = 256;
  static constexpr std::int32_t kShiftSigned = 128;
  using AElem = std::uint8_t;
  using BElem = std::int8_t;

  template <class TA>
  static AElem convert(TA v) {
    // uint8 stays; int8 v becomes v + 128 (its bit pattern with the top bit flipped).
    return std::is_same<TA, std::int8_t>::value ? static_cast<AElem>(static_cast<std::uint8_t>(v) ^ 0x80u)
                                                 : static_cast<AElem>(v);
  }

  template <int R>
  QAWARE_GEMM_TARGET_AVX512VNNI static inline void micro_rows(const std::uint8_t* a, const std::int8_t* b, Index kc,
                                                              bool accumulate, std::int32_t* tile) {
    __m512i acc[R][3];
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      if (accumulate) {
        acc[r][0] = _mm512_loadu_si512(tile + r * NR);
        acc[r][1] = _mm512_loadu_si512(tile + r * NR + 16);
        acc[r][2] = _mm512_loadu_si512(tile + r * NR + 32);
      } else {
        acc[r][0] = _mm512_setzero_si512();
        acc[r][1] = _mm512_setzero_si512();
        acc[r][2] = _mm512_setzero_si512();
      }
    }
    const Index quads = kc / 4;
    for (Index q = 0; q < quads; ++q) {
      const std::int8_t* bq = b + q * (NR * 4);
      const __m512i b0 = _mm512_loadu_si512(bq);
      const __m512i b1 = _mm512_loadu_si512(bq + 64);
      const __m512i b2 = _mm512_loadu_si512(bq + 128);
      QAWARE_GEMM_UNROLL
      for (int r = 0; r < R; ++r) {
        std::int32_t quad;
        std::memcpy(&quad, a + q * (MR * 4) + r * 4, 4);
        const __m512i x = _mm512_set1_epi32(quad);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, b0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, b1);
        acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], x, b2);
      }
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_si512(tile + r * NR, acc[r][0]);
      _mm512_storeu_si512(tile + r * NR + 16, acc[r][1]);
      _mm512_storeu_si512(tile + r * NR + 32, acc[r][2]);
    }
  }

  QAWARE_GEMM_TARGET_AVX512VNNI static void micro(const AElem* a, const void* bsub, Index kc, int rows,
                                                  bool /*a_signed*/, bool accumulate, std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    // Row counts round up to 1, 2, 4 or 8 (packed rows past M are zero and the
    // strip has room), which keeps the number of unrolled variants small.
    switch (rows) {
      case 1: micro_rows<1>(a, b, kc, accumulate, tile); break;
      case 2: micro_rows<2>(a, b, kc, accumulate, tile); break;
      case 3:
      case 4: micro_rows<4>(a, b, kc, accumulate, tile); break;
      default: micro_rows<8>(a, b, kc, accumulate, tile); break;
    }
  }

  QAWARE_GEMM_TARGET_AVX512VNNI QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                        unsigned char* shared, unsigned char* scratch,
                                                                        Index t0, Index t1) {
    drive<Avx512VnniKernel>(p, pl, shared, scratch, t0, t1);
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
