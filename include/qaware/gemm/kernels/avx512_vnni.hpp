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
// quad; K blocks of 256 keep the 12 KiB B sub-panel in L1. On the last K
// block the micro-kernel finishes int32 and float outputs itself (micro_out:
// compensation, scale, bias, ReLU and masked stores into C from the
// accumulators), and A is packed by an 8 x 16 dword transpose per 64 K values
// (pack_rows), so neither depends on the compiler vectorising the generic
// packing and epilogue loops (at -O2 it does not). The loops over the fixed register
// arrays carry QAWARE_GEMM_UNROLL: a loop left rolled at -O2 indexes them at
// run time and puts all 24 accumulators on the stack.

#include <cstdint>
#include <cstring>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include "qaware/core/intrinsics.hpp"

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

  // R rows of the tile; with `out` (the last K block) written to C as TileOut
  // says, else stored to the tile.
  template <int R>
  QAWARE_GEMM_TARGET_AVX512VNNI static inline void micro_rows(const std::uint8_t* a, const std::int8_t* b, Index kc,
                                                              bool accumulate, std::int32_t* tile,
                                                              const TileOut* out = nullptr) {
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
    if (out != nullptr) {
      write_out<R>(acc, *out);
      return;
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      _mm512_storeu_si512(tile + r * NR, acc[r][0]);
      _mm512_storeu_si512(tile + r * NR + 16, acc[r][1]);
      _mm512_storeu_si512(tile + r * NR + 32, acc[r][2]);
    }
  }

  // The output stage on the accumulators: the first o.rows rows and o.cols
  // columns (masked loads and stores at the right edge), epilogue()'s
  // arithmetic: wrapping int32 adds, then fma(float(x), scale, bias) and
  // max(y, 0) (ReLU; NaN and -0 give +0 as `y > 0 ? y : 0` does).
  template <int R>
  QAWARE_GEMM_TARGET_AVX512VNNI QAWARE_GEMM_INLINE static void write_out(const __m512i (&acc)[R][3], const TileOut& o) {
    __mmask16 m[3];
    __m512i co[3];
    QAWARE_GEMM_UNROLL
    for (int v = 0; v < 3; ++v) {
      const Index left = o.cols - 16 * v;
      m[v] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << left) - 1u);
      co[v] = _mm512_maskz_loadu_epi32(m[v], o.col_off + 16 * v);
    }
    if (!o.to_float) {
      std::int32_t* c = static_cast<std::int32_t*>(o.c);
      QAWARE_GEMM_UNROLL
      for (int r = 0; r < R; ++r) {
        if (r < o.rows) {  // (not `break`: clang does not unroll a loop with an early exit)
          const __m512i ro = _mm512_set1_epi32(o.row_off[r]);
          QAWARE_GEMM_UNROLL
          for (int v = 0; v < 3; ++v)
            _mm512_mask_storeu_epi32(c + r * o.ldc + 16 * v, m[v],
                                     _mm512_add_epi32(_mm512_add_epi32(acc[r][v], co[v]), ro));
        }
      }
      return;
    }
    float* c = static_cast<float*>(o.c);
    const __mmask16 kAll16 = 0xffff;
    __m512 sc[3], bi[3];
    QAWARE_GEMM_UNROLL
    for (int v = 0; v < 3; ++v) {
      sc[v] = _mm512_maskz_loadu_ps(m[v], o.scale + 16 * v);
      bi[v] = o.bias ? _mm512_maskz_loadu_ps(m[v], o.bias + 16 * v) : _mm512_setzero_ps();
    }
    QAWARE_GEMM_UNROLL
    for (int r = 0; r < R; ++r) {
      if (r < o.rows) {
        const __m512i ro = _mm512_set1_epi32(o.row_off[r]);
        QAWARE_GEMM_UNROLL
        for (int v = 0; v < 3; ++v) {
          const __m512i x = _mm512_add_epi32(_mm512_add_epi32(acc[r][v], co[v]), ro);
          // (All-ones masked forms, as in pack_rows.)
          __m512 y = _mm512_fmadd_ps(_mm512_mask_cvtepi32_ps(_mm512_setzero_ps(), kAll16, x), sc[v], bi[v]);
          if (o.relu) y = _mm512_mask_max_ps(y, kAll16, y, _mm512_setzero_ps());
          _mm512_mask_storeu_ps(c + r * o.ldc + 16 * v, m[v], y);
        }
      }
    }
  }

  // micro_rows for `rows` rows, to the tile or (out) into C. Row counts round
  // up to 1, 2, 4 or 8 (packed rows past M are zero and the strip has room),
  // which keeps the number of unrolled variants small.
  QAWARE_GEMM_TARGET_AVX512VNNI QAWARE_GEMM_INLINE static void micro_any(const AElem* a, const void* bsub, Index kc,
                                                                         int rows, bool accumulate, std::int32_t* tile,
                                                                         const TileOut* out) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    switch (rows) {
      case 1: micro_rows<1>(a, b, kc, accumulate, tile, out); break;
      case 2: micro_rows<2>(a, b, kc, accumulate, tile, out); break;
      case 3:
      case 4: micro_rows<4>(a, b, kc, accumulate, tile, out); break;
      default: micro_rows<8>(a, b, kc, accumulate, tile, out); break;
    }
  }

  QAWARE_GEMM_TARGET_AVX512VNNI static void micro(const AElem* a, const void* bsub, Index kc, int rows,
                                                  bool /*a_signed*/, bool accumulate, std::int32_t* tile) {
    micro_any(a, bsub, kc, rows, accumulate, tile, nullptr);
  }

  // Packs rows [m0, m0 + rows) of A as pack_a_block does (same bytes, same
  // row_off), full 8-row panels 64 K values at a time: 8 rows of 16 quads
  // become 16 columns of 8 quads (a dword transpose), with the row sums from
  // vpsadbw when B has a zero point. The partial panel and the K tail take
  // the scalar loop.
  template <class TA>
  QAWARE_GEMM_TARGET_AVX512VNNI static void pack_rows(const Problem& p, Index m0, Index rows, Index kp, AElem* dst,
                                                     std::int32_t* row_off) {
    constexpr bool kSigned = std::is_same<TA, std::int8_t>::value;
    const TA* a = static_cast<const TA*>(p.a);
    const Index K = p.K, full = rows / MR * MR;
    const std::int32_t zb = p.b->zero_point();
    const __m512i flip = _mm512_set1_epi8(kSigned ? static_cast<char>(0x80) : 0);
    const __m512i lo_pair = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i hi_pair = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    const __mmask16 kAll16 = 0xffff;
    const __mmask8 kAll8 = 0xff;
    for (Index r0 = 0; r0 < full; r0 += MR) {
      const TA* src[MR];
      QAWARE_GEMM_UNROLL
      for (Index r = 0; r < MR; ++r) src[r] = a + (m0 + r0 + r) * p.lda;
      std::uint8_t* out = dst + (r0 / MR) * (kp * MR);
      __m512i sums[MR];
      QAWARE_GEMM_UNROLL
      for (Index r = 0; r < MR; ++r) sums[r] = _mm512_setzero_si512();
      Index k = 0;
      for (; k + 64 <= K; k += 64) {
        __m512i x[MR];
        QAWARE_GEMM_UNROLL
        for (Index r = 0; r < MR; ++r) {
          x[r] = _mm512_xor_si512(_mm512_loadu_si512(src[r] + k), flip);
          if (zb != 0) sums[r] = _mm512_add_epi64(sums[r], _mm512_sad_epu8(x[r], _mm512_setzero_si512()));
        }
        // Rows 0-3 and 4-7 of each K quad, 4 quads per 128-bit lane.
        __m512i u[8];
        QAWARE_GEMM_UNROLL
        for (int h = 0; h < 2; ++h) {
          // (The all-ones masked forms: GCC 12's unmasked ones trip its false
          // -Wmaybe-uninitialized on _mm512_undefined_epi32.)
          const __m512i t0 = _mm512_mask_unpacklo_epi32(x[4 * h], kAll16, x[4 * h], x[4 * h + 1]);
          const __m512i t1 = _mm512_mask_unpackhi_epi32(x[4 * h], kAll16, x[4 * h], x[4 * h + 1]);
          const __m512i t2 = _mm512_mask_unpacklo_epi32(x[4 * h + 2], kAll16, x[4 * h + 2], x[4 * h + 3]);
          const __m512i t3 = _mm512_mask_unpackhi_epi32(x[4 * h + 2], kAll16, x[4 * h + 2], x[4 * h + 3]);
          u[4 * h + 0] = _mm512_mask_unpacklo_epi64(t0, kAll8, t0, t2);  // quad 4l of lane l
          u[4 * h + 1] = _mm512_mask_unpackhi_epi64(t0, kAll8, t0, t2);  // quad 4l + 1
          u[4 * h + 2] = _mm512_mask_unpacklo_epi64(t1, kAll8, t1, t3);  // quad 4l + 2
          u[4 * h + 3] = _mm512_mask_unpackhi_epi64(t1, kAll8, t1, t3);  // quad 4l + 3
        }
        // Quad 4l + j: rows 0-3 from u[j], rows 4-7 from u[4 + j], lane l.
        std::uint8_t* o = out + k * MR;
        QAWARE_GEMM_UNROLL
        for (int j = 0; j < 4; ++j) {
          const __m512i q01 = _mm512_permutex2var_epi64(u[j], lo_pair, u[4 + j]);  // lanes 0, 1
          const __m512i q23 = _mm512_permutex2var_epi64(u[j], hi_pair, u[4 + j]);  // lanes 2, 3
          // Each 256-bit half to its quad's 32 bytes (masked stores: the high
          // half is stored from 32 bytes before its place).
          _mm512_mask_storeu_epi64(o + (0 + j) * 32, 0x0f, q01);
          _mm512_mask_storeu_epi64(o + (4 + j) * 32 - 32, 0xf0, q01);
          _mm512_mask_storeu_epi64(o + (8 + j) * 32, 0x0f, q23);
          _mm512_mask_storeu_epi64(o + (12 + j) * 32 - 32, 0xf0, q23);
        }
      }
      for (Index r = 0; r < MR; ++r) {
        alignas(64) std::int64_t part[8];
        _mm512_store_si512(part, sums[r]);
        std::int64_t sum = -(kSigned ? 128 * k : 0);  // of the values, not the stored codes
        QAWARE_GEMM_UNROLL
        for (int e = 0; e < 8; ++e) sum += part[e];
        for (Index kk = k; kk < kp; ++kk) {
          out[(kk / 4) * (MR * 4) + r * 4 + (kk % 4)] = kk < K ? convert<TA>(src[r][kk]) : AElem(0);
          if (kk < K) sum += src[r][kk];
        }
        row_off[r0 + r] = zb != 0 ? wrap_mul(-zb, static_cast<std::int32_t>(sum)) : 0;
      }
    }
    if (full < rows)
      pack_a_block<Avx512VnniKernel, TA>(p, m0 + full, rows - full, kp, dst + (full / MR) * (kp * MR), row_off + full);
  }

  // micro() on the last K block, finishing the tile into C (common.hpp's TileOut).
  QAWARE_GEMM_TARGET_AVX512VNNI static void micro_out(const AElem* a, const void* bsub, Index kc, int rows,
                                                      bool accumulate, std::int32_t* tile, const TileOut& out) {
    micro_any(a, bsub, kc, rows, accumulate, tile, &out);
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
