#pragma once
// AVX2 path (exact), two kernels; pack_b picks the format (packed_matrix.hpp).
//
// vpmaddubsw multiplies u8 x s8 and adds adjacent pairs into int16, but a pair
// sum reaches 2 * 255 * 127 = 64770 (or 2 * 255 * -128 = -65280), past int16,
// and the instruction saturates. (oneDNN's AVX2 int8 GEMM accepts that; its
// results differ from the exact ones on random data.) Two exact ways out:
//
// Avx2Kernel -- int16 pairs, exact for every input. A is widened to int16
// (zero-extended for uint8, sign-extended for int8) when packed, B to int16
// ([Kp/2][16][2]), and vpmaddwd multiplies int16 x int16 into int32 and adds
// each pair in int32: |a0*b0 + a1*b1| <= 2 * 255 * 128 = 65280, far inside
// int32, so no step saturates. Accumulation is vpaddd (wraps modulo 2^32, like
// every path). Cost: 4 vector ops per 32 multiply-adds (vpmaddwd + vpaddd per
// 16), against vpmaddubsw's 3 (vpmaddubsw + vpmaddwd-by-ones + vpaddd).
//
// Avx2QuadsKernel -- vpmaddubsw on B whose adjacent K pairs cannot saturate
// (opposite signs or |b0| + |b1| <= 128, so |pair| <= 255 * 128 = 32640), with
// the few pairs pack_b had to shrink repaired exactly after each K block by
// the recorded corrections C[m][j] += A[m][k] * (b - b'). int8 A is stored as
// A + 128 (kShiftSigned), as for vpdpbusd.
//
// Micro-kernels: int16 pairs 6 rows x 16 columns (12 ymm accumulators, 2 ymm of
// B, one broadcast A pair per row per step); maddubs 4 rows x 24 columns (12
// accumulators, B read as memory operands, 4 broadcasts per K quad: fewer
// broadcasts per multiply, measured faster on Zen 3). K blocks keep the B
// sub-panel (8 / 12 KiB) in L1.

#include <cstdint>
#include <cstring>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include <immintrin.h>

#define QAWARE_GEMM_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace qaware {
namespace gemm {
namespace detail {

struct Avx2Kernel {
  static constexpr Path kPath = Path::kAvx2;
  static constexpr Format kFormat = Format::kAvx2Pairs;
  static constexpr bool kFixup = false;
  static constexpr Index MR = 6, NR = 16, G = 2, KC = 256;
  static constexpr std::int32_t kShiftSigned = 0;
  using AElem = std::int16_t;
  using BElem = std::int16_t;

  template <class TA>
  static AElem convert(TA v) {
    return static_cast<AElem>(v);
  }

  // R rows (1..MR) of an A sub-panel times a B sub-panel, kc deep.
  template <int R>
  QAWARE_GEMM_TARGET_AVX2 static inline void micro_rows(const std::int16_t* a, const std::int16_t* b, Index kc,
                                                        bool accumulate, std::int32_t* tile) {
    constexpr int NV = static_cast<int>(NR / 8);
    __m256i acc[R][NV];
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      QAWARE_GEMM_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[r][v] = accumulate ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + r * NR + 8 * v))
                               : _mm256_setzero_si256();
    }
    const Index pairs = kc / 2;
    for (Index t = 0; t < pairs; ++t) {
      const std::int16_t* bt = b + t * (NR * 2);
      QAWARE_GEMM_UNROLL
      for (int r = 0; r < R; ++r) {
        std::int32_t pair;
        std::memcpy(&pair, a + t * (MR * 2) + r * 2, 4);
        const __m256i x = _mm256_set1_epi32(pair);
        QAWARE_GEMM_UNROLL
        for (int v = 0; v < NV; ++v) {
          const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bt + 16 * v));
          acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(x, bv));
        }
      }
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      QAWARE_GEMM_UNROLL
      for (int v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * NR + 8 * v), acc[r][v]);
    }
  }

  QAWARE_GEMM_TARGET_AVX2 static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool /*a_signed*/,
                                            bool accumulate, std::int32_t* tile) {
    const std::int16_t* b = static_cast<const std::int16_t*>(bsub);
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

  QAWARE_GEMM_TARGET_AVX2 QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                  unsigned char* shared, unsigned char* scratch,
                                                                  Index t0, Index t1) {
    drive<Avx2Kernel>(p, pl, shared, scratch, t0, t1);
  }
};

struct Avx2QuadsKernel {
  static constexpr Path kPath = Path::kAvx2;
  static constexpr Format kFormat = Format::kAvx2Quads;
  static constexpr bool kFixup = true;
  static constexpr Index MR = 4, NR = 24, G = 4, KC = kAvx2QuadsKC;
  static constexpr std::int32_t kShiftSigned = 128;
  using AElem = std::uint8_t;
  using BElem = std::int8_t;

  template <class TA>
  static AElem convert(TA v) {
    return std::is_same<TA, std::int8_t>::value ? static_cast<AElem>(static_cast<std::uint8_t>(v) ^ 0x80u)
                                                 : static_cast<AElem>(v);
  }

  template <int R>
  QAWARE_GEMM_TARGET_AVX2 static inline void micro_rows(const std::uint8_t* a, const std::int8_t* b, Index kc,
                                                        bool accumulate, std::int32_t* tile) {
    constexpr int NV = static_cast<int>(NR / 8);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[R][NV];
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      QAWARE_GEMM_UNROLL
      for (int v = 0; v < NV; ++v)
        acc[r][v] = accumulate ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + r * NR + 8 * v))
                               : _mm256_setzero_si256();
    }
    const Index quads = kc / 4;
    for (Index q = 0; q < quads; ++q) {
      const std::int8_t* bq = b + q * (NR * 4);
      QAWARE_GEMM_UNROLL
      for (int r = 0; r < R; ++r) {
        std::int32_t quad;
        std::memcpy(&quad, a + q * (MR * 4) + r * 4, 4);
        const __m256i x = _mm256_set1_epi32(quad);
        // int16 pair sums (exact: pack_b bounded every pair), then int32 quad sums.
        QAWARE_GEMM_UNROLL
        for (int v = 0; v < NV; ++v) {
          const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bq + 32 * v));
          acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(_mm256_maddubs_epi16(x, bv), ones));
        }
      }
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      QAWARE_GEMM_UNROLL
      for (int v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * NR + 8 * v), acc[r][v]);
    }
  }

  QAWARE_GEMM_TARGET_AVX2 static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool /*a_signed*/,
                                            bool accumulate, std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    switch (rows) {  // 3 rounds up to 4, as in Avx2Kernel
      case 1: micro_rows<1>(a, b, kc, accumulate, tile); break;
      case 2: micro_rows<2>(a, b, kc, accumulate, tile); break;
      default: micro_rows<4>(a, b, kc, accumulate, tile); break;
    }
  }

  // tile[r][j] += A[r][k] * value for the corrections of panel j, K block k0 / KC.
  static void fixup(const PackedMatrix& b, Index panel, Index k0, const AElem* a, int rows, std::int32_t* tile) {
    const Correction* e = b.corrections_begin(panel, k0 / KC);
    const Correction* end = b.corrections_end(panel, k0 / KC);
    for (; e != end; ++e) {
      const Index k = e->k - k0;
      const AElem* ak = a + (k / 4) * (MR * 4) + (k % 4);
      std::int32_t* t = tile + e->j;
      for (int r = 0; r < rows; ++r) t[r * NR] = wrap_add(t[r * NR], static_cast<std::int32_t>(ak[r * 4]) * e->value);
    }
  }

  QAWARE_GEMM_TARGET_AVX2 QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                  unsigned char* shared, unsigned char* scratch,
                                                                  Index t0, Index t1) {
    drive<Avx2QuadsKernel>(p, pl, shared, scratch, t0, t1);
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
