#pragma once
// The float GEMM: qaware's own kernels for the linear layers' and attention's
// products (AVX2 + FMA, or AVX-512F, chosen at run time; Eigen's GEMM where
// the CPU or the cap (core/cpu.hpp) admits neither):
//
//   C (M x N, row stride ldc)  =  or  +=  op(A) op(B)
//   op(A) is M x K: A[i*lda + k], or A[k*lda + i] when transposed;
//   op(B) is K x N: B[k*ldb + j], or B[j*ldb + k] when transposed.
//
// The classic blocked layout (Goto / BLIS): K in blocks of KC, op(B)'s K x NC
// block packed into column slivers of NR, op(A)'s MC x KC block into row
// slivers of MR, and a 6 x 16 register micro-kernel (12 ymm accumulators,
// two FMAs per broadcast A value). Zero padding in the packed slivers lets
// the kernel run full tiles; edges are written through a small buffer.
// Where the CPU and OS have AVX-512F, a 6 x 32 micro-kernel on zmm registers
// runs instead (B slivers of 32 columns, masked edges): twice the FMA width
// with the same blocking, and the same sums (below), so the two kernels give
// bit-identical results.
//
// Each C element is summed in the same order (k ascending within a KC block,
// blocks added in order) whatever the thread count or the split, so results
// do not depend on qaware::num_threads(). With two or more threads the larger
// of M and N is split into contiguous chunks, one per thread, each packing
// its own blocks into its share of the calling thread's workspace
// (gemm/workspace.hpp, reserved before the parallel region).
//
// Public: sgemm() (any float product, on the kernels or Eigen), try_sgemm()
// (the kernels only, for callers templated on Scalar) and sgemm_kernel().

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "qaware/core/cpu.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/workspace.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "qaware/core/intrinsics.hpp"
#define QAWARE_SGEMM_X86 1
#else
#define QAWARE_SGEMM_X86 0
#endif

namespace qaware {
namespace gemm {
namespace detail {
namespace sgemm {

// A packed B block (KC x NC floats, 768 KiB) must stay near L2 for the
// micro-kernel's B loads to hit it. The blocking of M and N changes no sum
// (only KC orders them).
constexpr Index MR = 6, NR = 16, KC = 256, MC = 120, NC = 768;

// The B sliver width of the AVX-512 micro-kernel (two zmm registers).
constexpr Index NR512 = 32;

// Whether the AVX2 + FMA kernel runs: the CPU has it and the library-wide
// cap (qaware/core/cpu.hpp) admits Isa::kAvx2; Eigen's GEMM otherwise.
inline bool enabled() { return QAWARE_SGEMM_X86 && isa_enabled(Isa::kAvx2); }
// Whether the AVX-512F kernel runs instead (the cap admits Isa::kAvx512).
inline bool avx512_enabled() { return QAWARE_SGEMM_X86 && isa_enabled(Isa::kAvx512); }

// op(A) rows [i0, i0 + mc) x K [k0, k0 + kc) -> slivers [mc / MR][kc][MR], zero padded.
inline void pack_a(const float* A, Index lda, bool ta, Index i0, Index mc, Index k0, Index kc, float* out) {
  for (Index ib = 0; ib < mc; ib += MR) {
    const Index mr = std::min(MR, mc - ib);
    if (!ta) {
      const float* rows[MR];
      for (Index r = 0; r < MR; ++r) rows[r] = A + (i0 + ib + std::min(r, mr - 1)) * lda + k0;
      for (Index k = 0; k < kc; ++k, out += MR)
        for (Index r = 0; r < MR; ++r) out[r] = r < mr ? rows[r][k] : 0.0f;
    } else {
      for (Index k = 0; k < kc; ++k, out += MR) {
        const float* src = A + (k0 + k) * lda + i0 + ib;
        for (Index r = 0; r < MR; ++r) out[r] = r < mr ? src[r] : 0.0f;
      }
    }
  }
}

// op(B) K [k0, k0 + kc) x columns [j0, j0 + nc) -> slivers [nc / W][kc][W], zero
// padded (W = NR for the AVX2 kernel, NR512 for the AVX-512 one).
template <Index W = NR>
void pack_b(const float* B, Index ldb, bool tb, Index k0, Index kc, Index j0, Index nc, float* out) {
  for (Index jb = 0; jb < nc; jb += W) {
    const Index nr = std::min(W, nc - jb);
    if (!tb) {
      for (Index k = 0; k < kc; ++k, out += W) {
        const float* src = B + (k0 + k) * ldb + j0 + jb;
        for (Index c = 0; c < W; ++c) out[c] = c < nr ? src[c] : 0.0f;
      }
    } else {
      const float* cols[W];
      for (Index c = 0; c < W; ++c) cols[c] = B + (j0 + jb + std::min(c, nr - 1)) * ldb + k0;
      for (Index k = 0; k < kc; ++k, out += W)
        for (Index c = 0; c < W; ++c) out[c] = c < nr ? cols[c][k] : 0.0f;
    }
  }
}

#if QAWARE_SGEMM_X86
// How many stored rows ahead the transposed A packing prefetches.
constexpr Index kPrefetchRows = 4;

// pack_a and pack_b with vector moves for the whole slivers (the same
// layout; a last partial sliver goes through the scalar code). Packing is
// about a tenth of the GEMM's time on BERT's shapes when done a float at a
// time.
__attribute__((target("avx2,fma"))) inline void pack_a_avx2(const float* A, Index lda, bool ta, Index i0, Index mc,
                                                             Index k0, Index kc, float* out) {
  static_assert(MR == 6, "pack_a_avx2 moves slivers of 6 rows");
  Index ib = 0;
  if (ta) {
    // op(A)'s rows are consecutive floats of each stored row k: read each
    // stored row once, front to back (prefetch-friendly), handing 6 floats
    // to each whole sliver.
    const Index whole = mc / MR;
    for (Index k = 0; k < kc; ++k) {
      const float* src = A + (k0 + k) * lda + i0;
      // Stored rows lie lda floats apart, often a page or more: ask for the
      // row kPrefetchRows ahead, which the hardware prefetchers would not.
      if (k + kPrefetchRows < kc)
        for (Index c = 0; c < mc; c += 16)
          _mm_prefetch(reinterpret_cast<const char*>(src + kPrefetchRows * lda + c), _MM_HINT_T0);
      float* o = out + k * MR;
      for (Index s = 0; s < whole; ++s, src += MR, o += MR * kc) {
        _mm_storeu_ps(o, _mm_loadu_ps(src));
        // Floats 4 and 5 as one 8-byte load (an unaligned-typed load: src + 4
        // need not be 8-byte aligned).
        _mm_storel_pi(reinterpret_cast<__m64*>(o + 4),
                      _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 4))));
      }
    }
    ib = whole * MR;  // only a partial sliver (if any) is left for the scalar code
    out += whole * MR * kc;
  }
  for (; ib + MR <= mc; ib += MR, out += MR * kc) {
    // 6 rows x 8 k at a time, transposed in registers into 8 groups of 6.
    const float* r0 = A + (i0 + ib) * lda + k0;
    Index k = 0;
    for (; k + 8 <= kc; k += 8) {
      const __m256 a0 = _mm256_loadu_ps(r0 + k), a1 = _mm256_loadu_ps(r0 + lda + k);
      const __m256 a2 = _mm256_loadu_ps(r0 + 2 * lda + k), a3 = _mm256_loadu_ps(r0 + 3 * lda + k);
      const __m256 a4 = _mm256_loadu_ps(r0 + 4 * lda + k), a5 = _mm256_loadu_ps(r0 + 5 * lda + k);
      // t01 = (a0[0] a1[0] a0[1] a1[1] | the same for k + 4, k + 5), and so on.
      const __m256 t01 = _mm256_unpacklo_ps(a0, a1), t23 = _mm256_unpackhi_ps(a0, a1);
      const __m256 s01 = _mm256_unpacklo_ps(a2, a3), s23 = _mm256_unpackhi_ps(a2, a3);
      const __m256 v01 = _mm256_unpacklo_ps(a4, a5), v23 = _mm256_unpackhi_ps(a4, a5);
      // Rows 0..3 of k + 0..3 (low lanes) and k + 4..7 (high lanes).
      const __m256 u0 = _mm256_shuffle_ps(t01, s01, 0x44), u1 = _mm256_shuffle_ps(t01, s01, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t23, s23, 0x44), u3 = _mm256_shuffle_ps(t23, s23, 0xEE);
      float* o = out + k * MR;
      auto put = [&](float* dst, __m128 rows03, __m128 rows45, bool high_pair) {
        _mm_storeu_ps(dst, rows03);
        if (high_pair)
          _mm_storeh_pi(reinterpret_cast<__m64*>(dst + 4), rows45);
        else
          _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), rows45);
      };
      const __m128 v01l = _mm256_castps256_ps128(v01), v23l = _mm256_castps256_ps128(v23);
      const __m128 v01h = _mm256_extractf128_ps(v01, 1), v23h = _mm256_extractf128_ps(v23, 1);
      put(o, _mm256_castps256_ps128(u0), v01l, false);
      put(o + 6, _mm256_castps256_ps128(u1), v01l, true);
      put(o + 12, _mm256_castps256_ps128(u2), v23l, false);
      put(o + 18, _mm256_castps256_ps128(u3), v23l, true);
      put(o + 24, _mm256_extractf128_ps(u0, 1), v01h, false);
      put(o + 30, _mm256_extractf128_ps(u1, 1), v01h, true);
      put(o + 36, _mm256_extractf128_ps(u2, 1), v23h, false);
      put(o + 42, _mm256_extractf128_ps(u3, 1), v23h, true);
    }
    for (; k < kc; ++k)
      for (Index r = 0; r < MR; ++r) out[k * MR + r] = r0[r * lda + k];
  }
  if (ib < mc) pack_a(A, lda, ta, i0 + ib, mc - ib, k0, kc, out);
}

// The layout of pack_b<W> (W a multiple of 8), with the whole slivers moved
// by vector loads and stores; `out` is 32-byte aligned.
template <Index W = NR>
__attribute__((target("avx2,fma"))) void pack_b_avx2(const float* B, Index ldb, bool tb, Index k0, Index kc, Index j0,
                                                     Index nc, float* out) {
  static_assert(W % 8 == 0, "pack_b_avx2 moves slivers of whole ymm registers");
  const Index whole = nc / W;
  if (!tb) {
    // Each stored row k read once, front to back, W floats to each sliver.
    for (Index k = 0; k < kc; ++k) {
      const float* src = B + (k0 + k) * ldb + j0;
      float* o = out + k * W;
      for (Index s = 0; s < whole; ++s, src += W, o += W * kc)
        for (Index c = 0; c < W; c += 8) _mm256_store_ps(o + c, _mm256_loadu_ps(src + c));
    }
  } else {
    // op(B)'s columns are stored rows: 8 of them x 8 k at a time, transposed
    // in registers into 8 k-rows of 8 columns.
    for (Index s = 0; s < whole; ++s) {
      float* o = out + s * W * kc;
      for (Index half = 0; half < W; half += 8) {
        const float* src = B + (j0 + s * W + half) * ldb + k0;
        Index k = 0;
        for (; k + 8 <= kc; k += 8) {
          __m256 r[8];
          for (int c = 0; c < 8; ++c) r[c] = _mm256_loadu_ps(src + c * ldb + k);
          const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
          const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
          const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
          const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
          // u0: columns 0..3 at k+0 (low lane) and k+4 (high lane), and so on.
          const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
          const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
          const __m256 v0 = _mm256_shuffle_ps(t4, t6, 0x44), v1 = _mm256_shuffle_ps(t4, t6, 0xEE);
          const __m256 v2 = _mm256_shuffle_ps(t5, t7, 0x44), v3 = _mm256_shuffle_ps(t5, t7, 0xEE);
          float* d = o + k * W + half;
          _mm256_store_ps(d + 0 * W, _mm256_permute2f128_ps(u0, v0, 0x20));
          _mm256_store_ps(d + 1 * W, _mm256_permute2f128_ps(u1, v1, 0x20));
          _mm256_store_ps(d + 2 * W, _mm256_permute2f128_ps(u2, v2, 0x20));
          _mm256_store_ps(d + 3 * W, _mm256_permute2f128_ps(u3, v3, 0x20));
          _mm256_store_ps(d + 4 * W, _mm256_permute2f128_ps(u0, v0, 0x31));
          _mm256_store_ps(d + 5 * W, _mm256_permute2f128_ps(u1, v1, 0x31));
          _mm256_store_ps(d + 6 * W, _mm256_permute2f128_ps(u2, v2, 0x31));
          _mm256_store_ps(d + 7 * W, _mm256_permute2f128_ps(u3, v3, 0x31));
        }
        for (; k < kc; ++k)
          for (Index c = 0; c < 8; ++c) o[k * W + half + c] = src[c * ldb + k];
      }
    }
  }
  if (whole * W < nc) pack_b<W>(B, ldb, tb, k0, kc, j0 + whole * W, nc - whole * W, out + whole * W * kc);
}

// C[0..mr) x [0..nr) (=|+=) a-sliver (kc x MR) times b-sliver (kc x NR).
__attribute__((target("avx2,fma"))) inline void kernel_6x16(Index kc, const float* a, const float* b, float* c,
                                                             Index ldc, Index mr, Index nr, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  // The C rows this tile ends in, fetched while the k loop runs, so the
  // epilogue's read of C does not wait on memory.
  for (Index r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (Index k = 0; k < kc; ++k, a += MR, b += NR) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a), y = _mm256_broadcast_ss(a + 1);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    c10 = _mm256_fmadd_ps(y, b0, c10);
    c11 = _mm256_fmadd_ps(y, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    y = _mm256_broadcast_ss(a + 3);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    c30 = _mm256_fmadd_ps(y, b0, c30);
    c31 = _mm256_fmadd_ps(y, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    y = _mm256_broadcast_ss(a + 5);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    c50 = _mm256_fmadd_ps(y, b0, c50);
    c51 = _mm256_fmadd_ps(y, b1, c51);
  }
  alignas(32) float t[MR][NR];
  _mm256_store_ps(t[0], c00);
  _mm256_store_ps(t[0] + 8, c01);
  _mm256_store_ps(t[1], c10);
  _mm256_store_ps(t[1] + 8, c11);
  _mm256_store_ps(t[2], c20);
  _mm256_store_ps(t[2] + 8, c21);
  _mm256_store_ps(t[3], c30);
  _mm256_store_ps(t[3] + 8, c31);
  _mm256_store_ps(t[4], c40);
  _mm256_store_ps(t[4] + 8, c41);
  _mm256_store_ps(t[5], c50);
  _mm256_store_ps(t[5] + 8, c51);
  for (Index r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    if (nr == NR) {
      __m256 lo = _mm256_load_ps(t[r]), hi = _mm256_load_ps(t[r] + 8);
      if (accumulate) {
        lo = _mm256_add_ps(_mm256_loadu_ps(cr), lo);
        hi = _mm256_add_ps(_mm256_loadu_ps(cr + 8), hi);
      }
      _mm256_storeu_ps(cr, lo);
      _mm256_storeu_ps(cr + 8, hi);
    } else {
      for (Index j = 0; j < nr; ++j) cr[j] = accumulate ? cr[j] + t[r][j] : t[r][j];
    }
  }
}

// kernel_6x16 on zmm registers: C[0..mr) x [0..nr) (=|+=) a-sliver (kc x MR)
// times b-sliver (kc x NR512, 64-byte aligned). Each C element gets the same
// operations in the same order as in kernel_6x16 (an FMA chain over k from 0,
// then one add into C), so the results are the same bits.
__attribute__((target("avx512f"))) inline void kernel_6x32(Index kc, const float* a, const float* b, float* c,
                                                            Index ldc, Index mr, Index nr, bool accumulate) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (Index r = 0; r < mr; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (Index k = 0; k < kc; ++k, a += MR, b += NR512) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    __m512 x = _mm512_set1_ps(a[0]), y = _mm512_set1_ps(a[1]);
    c00 = _mm512_fmadd_ps(x, b0, c00);
    c01 = _mm512_fmadd_ps(x, b1, c01);
    c10 = _mm512_fmadd_ps(y, b0, c10);
    c11 = _mm512_fmadd_ps(y, b1, c11);
    x = _mm512_set1_ps(a[2]);
    y = _mm512_set1_ps(a[3]);
    c20 = _mm512_fmadd_ps(x, b0, c20);
    c21 = _mm512_fmadd_ps(x, b1, c21);
    c30 = _mm512_fmadd_ps(y, b0, c30);
    c31 = _mm512_fmadd_ps(y, b1, c31);
    x = _mm512_set1_ps(a[4]);
    y = _mm512_set1_ps(a[5]);
    c40 = _mm512_fmadd_ps(x, b0, c40);
    c41 = _mm512_fmadd_ps(x, b1, c41);
    c50 = _mm512_fmadd_ps(y, b0, c50);
    c51 = _mm512_fmadd_ps(y, b1, c51);
  }
  // Columns [0, 16) and [16, 32) of the tile that exist in C.
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1u) : __mmask16(0);
  const __m512 t[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (Index r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    __m512 lo = t[r][0], hi = t[r][1];
    if (accumulate) {
      lo = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), lo);
      hi = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), hi);
    }
    _mm512_mask_storeu_ps(cr, m0, lo);
    _mm512_mask_storeu_ps(cr + 16, m1, hi);
  }
}
#endif

#if QAWARE_SGEMM_X86
// block() for the micro-kernel `kernel` on B slivers of W columns.
// pa and pb: packing buffers of a_floats(m1 - m0, K) and b_floats<W>(n1 -
// n0, K) floats, 64-byte aligned (the kernels' aligned loads of B: W floats
// per k).
template <Index W, typename Kernel>
void block_with(Kernel kernel, Index m0, Index m1, Index n0, Index n1, Index K, const float* A, Index lda, bool ta,
                const float* B, Index ldb, bool tb, float* C, Index ldc, bool accumulate, float* pa, float* pb) {
  static_assert(NC % W == 0, "NC must hold whole slivers");
  for (Index jc = n0; jc < n1; jc += NC) {
    const Index nc = std::min(NC, n1 - jc);
    for (Index pc = 0; pc < K; pc += KC) {
      const Index kc = std::min(KC, K - pc);
      const bool acc = accumulate || pc > 0;
      pack_b_avx2<W>(B, ldb, tb, pc, kc, jc, nc, pb);
      for (Index ic = m0; ic < m1; ic += MC) {
        const Index mc = std::min(MC, m1 - ic);
        pack_a_avx2(A, lda, ta, ic, mc, pc, kc, pa);
        for (Index jr = 0; jr < nc; jr += W)
          for (Index ir = 0; ir < mc; ir += MR)
            kernel(kc, pa + ir * kc, pb + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, std::min(MR, mc - ir),
                   std::min(W, nc - jr), acc);
      }
    }
  }
}
#endif

// Floats of a share's packed A block (rows rounded up to whole slivers)
// and packed B block (columns rounded up to whole slivers of W), each
// rounded up to 64 bytes.
inline Index a_floats(Index rows, Index K) {
  const Index mcm = (std::min(MC, rows) + MR - 1) / MR * MR;
  return (mcm * std::min(KC, K) + 15) / 16 * 16;
}
template <Index W>
Index b_floats(Index cols, Index K) {
  const Index ncm = (std::min(NC, cols) + W - 1) / W * W;
  return (ncm * std::min(KC, K) + 15) / 16 * 16;
}

// One thread's share: rows [m0, m1) and columns [n0, n1) of C, on the
// AVX-512 kernel when `wide`, else on the AVX2 one.
inline void block(bool wide, Index m0, Index m1, Index n0, Index n1, Index K, const float* A, Index lda, bool ta,
                  const float* B, Index ldb, bool tb, float* C, Index ldc, bool accumulate, float* pa, float* pb) {
#if QAWARE_SGEMM_X86
  if (wide)
    block_with<NR512>(kernel_6x32, m0, m1, n0, n1, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate, pa, pb);
  else
    block_with<NR>(kernel_6x16, m0, m1, n0, n1, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate, pa, pb);
#else
  (void)wide, (void)m0, (void)m1, (void)n0, (void)n1, (void)K, (void)A, (void)lda, (void)ta, (void)B, (void)ldb;
  (void)tb, (void)C, (void)ldc, (void)accumulate, (void)pa, (void)pb;
  QAWARE_CHECK(false, "sgemm: the AVX2 GEMM is not compiled on this architecture");
#endif
}

// C = / += op(A) op(B) on the AVX2 kernel; callers check enabled() first.
// K == 0 leaves C as it is (accumulate) or sets it to 0.
inline void gemm(Index M, Index N, Index K, const float* A, Index lda, bool ta, const float* B, Index ldb, bool tb,
                 float* C, Index ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (Index i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    return;
  }
  // Split the larger dimension into one contiguous chunk per thread, in
  // whole micro-tiles; small products stay on one thread.
  // The kernel is chosen once per call: every thread's share runs on it, and
  // N is split in whole slivers of its width.
  const bool wide = avx512_enabled();
  const bool split_m = M >= N;
  const Index tile = split_m ? MR : wide ? NR512 : NR;
  const Index tiles = ((split_m ? M : N) + tile - 1) / tile;
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const Index grain = flops < 4e6 ? tiles : std::max<Index>(1, tiles / 64);
  // parallel_for makes at most this many chunks; each takes one share of the
  // workspace, sized for the whole of the undivided dimension.
  const Index shares = std::min<Index>(num_threads(), std::max<Index>(1, tiles / grain));
  const Index af = a_floats(M, K), bf = wide ? b_floats<NR512>(N, K) : b_floats<NR>(N, K);
  AlignedBuffer& ws = workspace();
  ws.reserve(static_cast<std::size_t>(shares * (af + bf)) * sizeof(float));
  float* const base = reinterpret_cast<float*>(ws.data());
  std::atomic<Index> next_share{0};
  parallel_for(0, tiles, grain, [&](Index t0, Index t1) {
    const Index share = next_share.fetch_add(1, std::memory_order_relaxed);
    float* const pa = base + share * (af + bf);
    const Index lo = t0 * tile, hi = std::min(t1 * tile, split_m ? M : N);
    if (split_m)
      block(wide, lo, hi, 0, N, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate, pa, pa + af);
    else
      block(wide, 0, M, lo, hi, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate, pa, pa + af);
  });
}

}  // namespace sgemm
}  // namespace detail

// For callers templated on Scalar: runs C = / += op(A) op(B) on qaware's
// kernels and returns true when Scalar is float and a kernel is enabled;
// otherwise returns false and the caller computes the product itself (ops
// keep Eigen's product for double and for float without the kernels).
// Sizes and strides as sgemm(), unchecked.
template <typename Scalar>
bool try_sgemm(Index M, Index N, Index K, const Scalar* A, Index lda, bool ta, const Scalar* B, Index ldb, bool tb,
              Scalar* C, Index ldc, bool accumulate) {
  if constexpr (std::is_same_v<Scalar, float>) {
    if (detail::sgemm::enabled()) {
      detail::sgemm::gemm(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate);
      return true;
    }
  }
  return false;
}

// C (M x N, row stride ldc) = op(A) op(B), or += when `accumulate`, for any
// float operands (layout as in the file comment): on the AVX-512F or AVX2
// kernel where enabled, otherwise on Eigen's GEMM. K == 0 leaves C as it is
// (accumulate) or sets it to 0. Negative sizes or strides shorter than a row
// raise qaware::Error.
inline void sgemm(Index M, Index N, Index K, const float* A, Index lda, bool ta, const float* B, Index ldb, bool tb,
                  float* C, Index ldc, bool accumulate) {
  QAWARE_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=", M, " N=", N, " K=", K);
  QAWARE_CHECK(lda >= (ta ? M : K) && ldb >= (tb ? K : N) && ldc >= N, "sgemm: strides lda=", lda, " ldb=", ldb,
               " ldc=", ldc, " too short for M=", M, " N=", N, " K=", K, ta ? " (A transposed)" : "",
               tb ? " (B transposed)" : "");
  if (try_sgemm(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, accumulate)) return;
  if (M == 0 || N == 0) return;
  using Stride = Eigen::OuterStride<>;
  using CMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Stride>;
  using CMapT = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, 0, Stride>;
  Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Stride> c(C, M, N, Stride(ldc));
  if (!accumulate) c.setZero();
  if (K == 0) return;
  // op(A) is M x K: row-major with stride lda, or its transpose (the stored
  // K x M row-major matrix read as column-major M x K).
  if (!ta && !tb)
    c.noalias() += CMap(A, M, K, Stride(lda)) * CMap(B, K, N, Stride(ldb));
  else if (!ta && tb)
    c.noalias() += CMap(A, M, K, Stride(lda)) * CMapT(B, K, N, Stride(ldb));
  else if (ta && !tb)
    c.noalias() += CMapT(A, M, K, Stride(lda)) * CMap(B, K, N, Stride(ldb));
  else
    c.noalias() += CMapT(A, M, K, Stride(lda)) * CMapT(B, K, N, Stride(ldb));
}

// The kernel sgemm() runs on this CPU under the current cap: "avx512",
// "avx2" or "eigen".
inline const char* sgemm_kernel() {
  if (detail::sgemm::avx512_enabled()) return "avx512";
  if (detail::sgemm::enabled()) return "avx2";
  return "eigen";
}

}  // namespace gemm
}  // namespace qaware
