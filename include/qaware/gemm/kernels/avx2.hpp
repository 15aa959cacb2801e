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
// broadcasts per multiply, which bound this kernel's rate). K blocks keep the B
// sub-panel (8 / 12 KiB) in L1.

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include "qaware/core/intrinsics.hpp"

#define QAWARE_GEMM_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace qaware {
namespace gemm {
namespace detail {

// The R x NV ymm accumulators of an R x (8 NV) int32 tile (row stride NR):
// loaded from the tile, or zero when not accumulating; and stored back.
template <int R, int NV, Index NR>
QAWARE_GEMM_TARGET_AVX2 inline void tile_load(__m256i (&acc)[R][NV], const std::int32_t* tile, bool accumulate) {
  QAWARE_GEMM_UNROLL
  for (int r = 0; r < R; ++r) {
    QAWARE_GEMM_UNROLL
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + r * NR + 8 * v))
                             : _mm256_setzero_si256();
  }
}
template <int R, int NV, Index NR>
QAWARE_GEMM_TARGET_AVX2 inline void tile_store(const __m256i (&acc)[R][NV], std::int32_t* tile) {
  QAWARE_GEMM_UNROLL
  for (int r = 0; r < R; ++r) {
    QAWARE_GEMM_UNROLL
    for (int v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * NR + 8 * v), acc[r][v]);
  }
}

// The broadcast loop both AVX2 micro-kernels share: per K group of G values
// (4 bytes of A), each of R rows broadcasts its group and adds
// Madd()(group, B vector v) to acc[r][v], over kc / G groups.
template <int R, int NV, Index MR, Index NR, Index G, class Madd, class AT, class BT>
QAWARE_GEMM_TARGET_AVX2 inline void broadcast_loop(const AT* a, const BT* b, Index kc, __m256i (&acc)[R][NV],
                                                   const Madd& madd) {
  static_assert(G * sizeof(AT) == 4, "an A group is one 32-bit broadcast");
  constexpr Index kVec = 32 / static_cast<Index>(sizeof(BT));  // B elements per ymm
  const Index groups = kc / G;
  for (Index t = 0; t < groups; ++t) {
    const BT* bt = b + t * (NR * G);
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      std::int32_t group;
      std::memcpy(&group, a + t * (MR * G) + r * G, 4);
      const __m256i x = _mm256_set1_epi32(group);
      QAWARE_GEMM_UNROLL
      for (int v = 0; v < NV; ++v) {
        const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bt + kVec * v));
        acc[r][v] = _mm256_add_epi32(acc[r][v], madd(x, bv));
      }
    }
  }
}

// int16 pairs: vpmaddwd adds each pair's products in int32.
struct MaddPairs {
  QAWARE_GEMM_TARGET_AVX2 __m256i operator()(__m256i x, __m256i b) const { return _mm256_madd_epi16(x, b); }
};
// u8 x s8 quads: vpmaddubsw's int16 pair sums, then vpmaddwd by ones into int32.
struct MaddQuads {
  QAWARE_GEMM_TARGET_AVX2 __m256i operator()(__m256i x, __m256i b) const {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(x, b), _mm256_set1_epi16(1));
  }
};

struct Avx2Kernel {
  static constexpr Path kPath = Path::kAvx2;
  static constexpr Format kFormat = Format::kAvx2Pairs;
  static constexpr Fixup kFixup = Fixup::kNone;
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
    tile_load<R, NV, NR>(acc, tile, accumulate);
    broadcast_loop<R, NV, MR, NR, G>(a, b, kc, acc, MaddPairs());
    tile_store<R, NV, NR>(acc, tile);
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

// R rows (1..4) x 24 columns of 4-deep K quads on vpmaddubsw (u8 A x s8 B):
// int16 pair sums (exact: the formats bound every pair to 255 * 128), then
// int32 quad sums.
template <int R, class AT, class BT>
QAWARE_GEMM_TARGET_AVX2 inline void quads_micro_rows(const AT* a, const BT* b, Index kc, bool accumulate,
                                                     std::int32_t* tile) {
  constexpr Index MR = 4, NR = 24;
  constexpr int NV = static_cast<int>(NR / 8);
  __m256i acc[R][NV];
  tile_load<R, NV, NR>(acc, tile, accumulate);
  broadcast_loop<R, NV, MR, NR, 4>(a, b, kc, acc, MaddQuads());
  tile_store<R, NV, NR>(acc, tile);
}

// The row-count dispatch of the quads kernels (3 rounds up to 4, as in Avx2Kernel).
template <class AT, class BT>
QAWARE_GEMM_TARGET_AVX2 inline void quads_micro(const AT* a, const BT* b, Index kc, int rows, bool accumulate,
                                                std::int32_t* tile) {
  switch (rows) {
    case 1: quads_micro_rows<1>(a, b, kc, accumulate, tile); break;
    case 2: quads_micro_rows<2>(a, b, kc, accumulate, tile); break;
    default: quads_micro_rows<4>(a, b, kc, accumulate, tile); break;
  }
}

// What the two u8 x s8 quads kernels share: blocking, element types, micro-kernel.
struct Avx2QuadsBase {
  static constexpr Path kPath = Path::kAvx2;
  static constexpr Index MR = 4, NR = 24, G = 4, KC = kAvx2QuadsKC;
  using AElem = std::uint8_t;
  using BElem = std::int8_t;

  QAWARE_GEMM_TARGET_AVX2 static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool /*a_signed*/,
                                            bool accumulate, std::int32_t* tile) {
    quads_micro(a, static_cast<const std::int8_t*>(bsub), kc, rows, accumulate, tile);
  }
};

struct Avx2QuadsKernel : Avx2QuadsBase {
  static constexpr Format kFormat = Format::kAvx2Quads;
  static constexpr Fixup kFixup = Fixup::kB;
  static constexpr std::int32_t kShiftSigned = 128;

  template <class TA>
  static AElem convert(TA v) {
    return std::is_same<TA, std::int8_t>::value ? static_cast<AElem>(static_cast<std::uint8_t>(v) ^ 0x80u)
                                                 : static_cast<AElem>(v);
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

// The A-fixed quads (packed_matrix.hpp): B as given, no corrections on its
// side; each call's packing of A stores A' = A - za + a_shift as uint8 with
// adjacent values bounded (fix_a_pair) and records the few it changed, whose
// residuals r = A' - e add r * B[k][n] to their whole row. To the rest of the
// machinery A' is an uint8 A with zero point a_shift: sum_k (A' - a_shift)
// (B - zb) = sum_k (A - za)(B - zb).
struct Avx2FixAKernel : Avx2QuadsBase {
  static constexpr Format kFormat = Format::kAvx2FixA;
  static constexpr Fixup kFixup = Fixup::kA;
  static constexpr std::int32_t kShiftSigned = 0;

  // Packs rows [m0, m0 + rows) of A in pack_a_block's layout, as A' bounded
  // pair by pair, and records the changed values as RowCorrections grouped by
  // (MR-row panel, K block): group g = panel * ceil(kp / KC) + block spans
  // fixes[starts[g] .. starts[g + 1]). row_off[r] = -zb sum_k A'[r][k].
  // Four full rows x 16 K values at a time take a vector path when none of
  // their values needs a change (the common case), else the pair loop.
  template <class TA>
  QAWARE_GEMM_TARGET_AVX2 static void pack_a(const Problem& p, Index m0, Index rows, Index kp, AElem* dst,
                                             std::int32_t* row_off, RowCorrection* fixes, std::int32_t* starts) {
    const TA* a = static_cast<const TA*>(p.a);
    const Index K = p.K, kblocks = ceil_div(kp, KC);
    const int off = p.b->a_shift() - p.a_zp;
    const Index panels = ceil_div(rows, MR);
    std::int32_t count = 0;
    // The pair loop over K [ka, kz) of row r of panel pdst (row `row` of the block).
    auto pairs = [&](AElem* pdst, Index r, const TA* src, Index ka, Index kz, std::int32_t& sum) {
      AElem* out = pdst + r * 4;
      for (Index k = ka; k < kz; k += 2) {
        const int x0 = k < K ? src[k] + off : 0, x1 = k + 1 < K ? src[k + 1] + off : 0;  // 0 past K
        int e0, e1;
        fix_a_pair(x0, x1, e0, e1);
        out[(k / 4) * (MR * 4) + (k % 4)] = static_cast<AElem>(e0);
        out[(k / 4) * (MR * 4) + (k % 4) + 1] = static_cast<AElem>(e1);
        if (e0 != x0) fixes[count++] = {static_cast<std::int32_t>(k), static_cast<std::int16_t>(r),
                                        static_cast<std::int16_t>(x0 - e0)};
        if (e1 != x1) fixes[count++] = {static_cast<std::int32_t>(k + 1), static_cast<std::int16_t>(r),
                                        static_cast<std::int16_t>(x1 - e1)};
        sum += x0 + x1;
      }
    };
    const __m256i offv = _mm256_set1_epi16(static_cast<std::int16_t>(off)), ones = _mm256_set1_epi16(1);
    const __m256i limit = _mm256_set1_epi32(255);
    for (Index pi = 0; pi < panels; ++pi) {
      AElem* pdst = dst + pi * (kp * MR);
      const bool full = (pi + 1) * MR <= rows;
      for (Index kb = 0; kb < kblocks; ++kb) {
        starts[pi * kblocks + kb] = count;
        const Index k0 = kb * KC, k1 = std::min(kp, k0 + KC);
        Index kv = k0;  // K [k0, kv) done by the vector path
        if (full) {
          const TA* src[MR];
          __m256i sums[MR];
          std::int32_t fixed_sums[MR] = {0, 0, 0, 0};  // of the chunks the pair loop took
          for (Index r = 0; r < MR; ++r) {
            src[r] = a + (m0 + pi * MR + r) * p.lda;
            sums[r] = _mm256_setzero_si256();
          }
          for (; kv + 16 <= std::min(k1, K); kv += 16) {
            __m128i bytes[MR];
            __m256i pair_sums[MR];
            __m256i bad = _mm256_setzero_si256();
            for (Index r = 0; r < MR; ++r) {
              const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[r] + kv));
              const __m256i wide = std::is_same<TA, std::int8_t>::value ? _mm256_cvtepi8_epi16(raw) : _mm256_cvtepu8_epi16(raw);
              const __m256i x = _mm256_add_epi16(wide, offv);
              pair_sums[r] = _mm256_madd_epi16(x, ones);  // x0 + x1 per pair
              // A change is needed where a value is negative or a pair sums past 255.
              bad = _mm256_or_si256(bad, _mm256_or_si256(_mm256_cmpgt_epi16(_mm256_setzero_si256(), x),
                                                         _mm256_cmpgt_epi32(pair_sums[r], limit)));
              const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(x, x), 0x08);
              bytes[r] = _mm256_castsi256_si128(packed);
            }
            if (!_mm256_testz_si256(bad, bad)) {
              // The pair loop takes this chunk, with its repairs.
              for (Index r = 0; r < MR; ++r) pairs(pdst, r, src[r], kv, kv + 16, fixed_sums[r]);
              continue;
            }
            for (Index r = 0; r < MR; ++r) sums[r] = _mm256_add_epi32(sums[r], pair_sums[r]);
            // Rows side by side per quad: a 4 x 4 transpose of 32-bit quads.
            const __m128i t0 = _mm_unpacklo_epi32(bytes[0], bytes[1]), t1 = _mm_unpacklo_epi32(bytes[2], bytes[3]);
            const __m128i t2 = _mm_unpackhi_epi32(bytes[0], bytes[1]), t3 = _mm_unpackhi_epi32(bytes[2], bytes[3]);
            __m128i* o = reinterpret_cast<__m128i*>(pdst + (kv / 4) * (MR * 4));
            _mm_storeu_si128(o, _mm_unpacklo_epi64(t0, t1));
            _mm_storeu_si128(o + 1, _mm_unpackhi_epi64(t0, t1));
            _mm_storeu_si128(o + 2, _mm_unpacklo_epi64(t2, t3));
            _mm_storeu_si128(o + 3, _mm_unpackhi_epi64(t2, t3));
          }
          for (Index r = 0; r < MR; ++r) {
            const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(sums[r]), _mm256_extracti128_si256(sums[r], 1));
            const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
            const std::int32_t v = _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1)));
            std::int32_t& acc = row_off[pi * MR + r];
            acc = (kb == 0 ? 0 : acc) + v + fixed_sums[r];
          }
        }
        for (Index r = 0; r < MR; ++r) {
          const Index row = pi * MR + r;
          if (row >= rows) {
            for (Index k = k0; k < k1; ++k) pdst[r * 4 + (k / 4) * (MR * 4) + (k % 4)] = AElem(0);
            continue;
          }
          std::int32_t sum = (kb == 0 && !full) ? 0 : row_off[row];
          pairs(pdst, r, a + (m0 + row) * p.lda, kv, k1, sum);
          row_off[row] = sum;
        }
      }
    }
    starts[panels * kblocks] = count;
    const std::int32_t zb = p.b->zero_point();
    for (Index r = 0; r < rows; ++r) row_off[r] = wrap_mul(-zb, row_off[r]);
  }

  // tile[row][j] += value * B[k][j] for j < NR, for each correction in
  // [e, end) (all of one MR-row panel and K block; panel = the B panel).
  QAWARE_GEMM_TARGET_AVX2 static void fixup_a(const unsigned char* panel, const RowCorrection* e,
                                              const RowCorrection* end, std::int32_t* tile) {
    const __m128i down = _mm_cvtsi32_si128(24);
    for (; e != end; ++e) {
      // Row k of the panel: NR dwords, byte (k % 4) of each is B[k][j].
      const __m256i* q = reinterpret_cast<const __m256i*>(panel + (e->k / 4) * (NR * 4));
      const __m128i up = _mm_cvtsi32_si128(24 - 8 * (e->k % 4));
      const __m256i value = _mm256_set1_epi32(e->value);
      std::int32_t* t = tile + e->row * NR;
      for (int v = 0; v < 3; ++v) {
        const __m256i bk = _mm256_sra_epi32(_mm256_sll_epi32(_mm256_loadu_si256(q + v), up), down);
        __m256i* tv = reinterpret_cast<__m256i*>(t + 8 * v);
        _mm256_storeu_si256(tv, _mm256_add_epi32(_mm256_loadu_si256(tv), _mm256_mullo_epi32(value, bk)));
      }
    }
  }

  QAWARE_GEMM_TARGET_AVX2 QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                  unsigned char* shared, unsigned char* scratch,
                                                                  Index t0, Index t1) {
    drive<Avx2FixAKernel>(p, pl, shared, scratch, t0, t1);
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
