#pragma once
// Fake-quant kernels: a portable scalar version and AVX2 / AVX-512 versions
// chosen at run time. The SIMD kernels carry function-level target
// attributes, so a translation unit that includes this header needs no
// -march flag; the CPU (and the OS, via XGETBV) is checked before one runs.
//
// Every kernel computes, per element, exactly what PyTorch 1.13's CPU kernel
// (_fake_quantize_tensor_helper in quantized/cpu/kernels/QuantizedOpKernels.cpp)
// computes in float:
//
//   t  = x * inv_scale                      (inv_scale = 1 / scale, once per tensor/channel)
//   qf = zp + nearbyint(t)                  (float add; round half to even)
//   q  = (int64)qf                          (PyTorch converts to int64 here)
//   y  = (clamp(q, quant_min, quant_max) - zp) * scale
//   in_range = quant_min <= q <= quant_max  (the STE mask)
//
// PyTorch's conversion to int64 is undefined behaviour in C++ when qf is NaN
// or |qf| >= 2^63; on x86 it yields INT64_MIN, which the clamp sends to
// quant_min. We reproduce that result on every ISA and platform: if qf is
// NaN (x is NaN) or qf >= 2^63 (x = +inf, or x / scale huge and positive),
// then y = (quant_min - zp) * scale and in_range is false; qf <= -2^63
// (x = -inf, or hugely negative) clamps to quant_min anyway. So NaN, +inf, -inf and |x / scale| >= 2^63 all give the
// lowest level with a zero STE mask (verified against torch 1.13 in the
// goldens: x = +inf gives quant_min there too, not quant_max). The clamp
// and the subtraction are exact in float for ranges within +-2^24, and
// (q - zp) * scale rounded once to float equals PyTorch's double product
// rounded to float.
//
// The double instantiation applies the same formulas in double (PyTorch's
// own double kernel rounds the scale to float and saturates +inf to
// quant_max; we do not mirror that).
//
// Masks are bit-packed (see bitmask.hpp). A kernel call covers elements
// [0, n) of x / y and writes mask bits [bitpos, bitpos + n) by OR-ing into
// zeroed words.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "qaware/core/cpu.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/autograd/grad_write.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/core/numerics.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define QAWARE_FQ_X86 1
#include "qaware/core/intrinsics.hpp"
#else
#define QAWARE_FQ_X86 0
#endif

namespace qaware {
namespace detail {
namespace fq {

// ---------------------------------------------------------------------------
// Instruction-set selection.

// The kernel family for this call: AVX-512F, AVX2 + FMA or scalar, the best
// the library-wide cap (qaware/core/cpu.hpp) admits on this CPU.
inline Isa active_isa() {
  if (isa_enabled(Isa::kAvx512)) return Isa::kAvx512;
  return isa_enabled(Isa::kAvx2) ? Isa::kAvx2 : Isa::kScalar;
}

// Outputs at least this large (bytes, per call) are written with
// non-temporal stores, which skip the read-for-ownership of the destination;
// smaller outputs stay in cache for the op that consumes them.
inline std::atomic<std::size_t>& stream_threshold() {
  static std::atomic<std::size_t> bytes{std::size_t(16) << 20};
  return bytes;
}

// ---------------------------------------------------------------------------
// Bits.

// ORs the low nbits (1..64) of value into the bit string at bitpos.
inline void put_bits(std::uint64_t* words, Index bitpos, std::uint64_t value, int nbits) {
  if (nbits < 64) value &= (std::uint64_t(1) << nbits) - 1;
  const Index w = bitpos >> 6;
  const int s = static_cast<int>(bitpos & 63);
  words[w] |= value << s;
  if (s != 0 && s + nbits > 64) words[w + 1] |= value >> (64 - s);
}

// ---------------------------------------------------------------------------
// Scalar reference.

template <typename S>
struct Affine {
  S scale, inv_scale, zp, qmin, qmax;
};

template <typename S>
inline Affine<S> make_affine(S scale, std::int64_t zero_point, std::int64_t quant_min, std::int64_t quant_max) {
  return {scale, S(1) / scale, static_cast<S>(zero_point), static_cast<S>(quant_min), static_cast<S>(quant_max)};
}

// Packs the first n (<= 64) 0/1 bytes into a word, bit k = in[k].
inline std::uint64_t pack_bits(const unsigned char (&in)[64], int n) {
  std::uint64_t bits = 0;
  for (int k = 0; k < 64; ++k) bits |= std::uint64_t(k < n ? in[k] : 0u) << k;
  return bits;
}

// Every kernel below comes in two forms, chosen by kPerElement: element j
// uses (scale[j], inv_scale[j], zp[j]) (true), or every element uses
// (scale[0], inv_scale[0], zp[0]) (false, a per-tensor run).
template <bool kPerElement, typename S>
inline void affine_scalar(const S* x, S* y, Index n, const S* scale, const S* inv_scale, const S* zp, S qmin, S qmax,
                          std::uint64_t* words, Index bitpos) {
  unsigned char in[64] = {};
  Index i = 0;
  while (i < n) {
    const int chunk = static_cast<int>(std::min<Index>(64, n - i));
    // Branch-free body (the compiler can vectorize it), then the bit packing.
    for (int k = 0; k < chunk; ++k) {
      const Index j = i + k, c = kPerElement ? j : 0;
      bool b;
      y[j] = numerics::fake_quantize(x[j], scale[c], inv_scale[c], zp[c], qmin, qmax, b);
      in[k] = static_cast<unsigned char>(b);
    }
    if (words) put_bits(words, bitpos + i, pack_bits(in, chunk), chunk);
    i += chunk;
  }
}

#if QAWARE_FQ_X86
// ---------------------------------------------------------------------------
// AVX2 + FMA (8 floats per vector, 64 elements per mask word).

__attribute__((target("avx2,fma"))) inline __m256 fq8_avx2(__m256 v, __m256 sc, __m256 inv, __m256 zp, __m256 lo,
                                                            __m256 hi, __m256 big, __m256& inr) {
  const __m256 q = _mm256_add_ps(_mm256_round_ps(_mm256_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  inr = _mm256_and_ps(_mm256_cmp_ps(q, lo, _CMP_GE_OQ), _mm256_cmp_ps(q, hi, _CMP_LE_OQ));
  const __m256 bad = _mm256_cmp_ps(q, big, _CMP_NLT_UQ);  // NaN or >= 2^63
  __m256 c = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
  c = _mm256_blendv_ps(c, lo, bad);
  return _mm256_mul_ps(_mm256_sub_ps(c, zp), sc);
}

// The vectors an AVX2 affine kernel keeps in registers; sc, inv and zp are
// the per-tensor parameters (unused per element).
struct Fq8Consts {
  __m256 sc, inv, zp, lo, hi, big;
};

// Elements [j, j + 8): stores y (streaming when `stream`) and returns the 8
// mask bits.
template <bool kPerElement>
__attribute__((target("avx2,fma"))) inline unsigned fq8_store_avx2(const float* x, float* y, Index j,
                                                                    const float* scale, const float* inv_scale,
                                                                    const float* zpv, const Fq8Consts& c, bool stream) {
  __m256 inr;
  const __m256 out =
      kPerElement ? fq8_avx2(_mm256_loadu_ps(x + j), _mm256_loadu_ps(scale + j), _mm256_loadu_ps(inv_scale + j),
                             _mm256_loadu_ps(zpv + j), c.lo, c.hi, c.big, inr)
                  : fq8_avx2(_mm256_loadu_ps(x + j), c.sc, c.inv, c.zp, c.lo, c.hi, c.big, inr);
  if (stream)
    _mm256_stream_ps(y + j, out);
  else
    _mm256_storeu_ps(y + j, out);
  return static_cast<unsigned>(_mm256_movemask_ps(inr));
}

template <bool kPerElement>
__attribute__((target("avx2,fma"))) inline void affine_avx2(const float* x, float* y, Index n, const float* scale,
                                                             const float* inv_scale, const float* zpv, float qmin,
                                                             float qmax, std::uint64_t* words, Index bitpos,
                                                             bool stream) {
  if (n <= 0) return;
  const Fq8Consts c{_mm256_set1_ps(scale[0]), _mm256_set1_ps(inv_scale[0]), _mm256_set1_ps(zpv[0]),
                    _mm256_set1_ps(qmin),     _mm256_set1_ps(qmax),         _mm256_set1_ps(numerics::kInt64Limit<float>)};
  // Streaming stores need 32-byte aligned destinations.
  stream = stream && (reinterpret_cast<std::uintptr_t>(y) % 32 == 0);
  Index i = 0;
  for (; i + 64 <= n; i += 64) {
    std::uint64_t bits = 0;
    for (int k = 0; k < 8; ++k)
      bits |= std::uint64_t(fq8_store_avx2<kPerElement>(x, y, i + 8 * k, scale, inv_scale, zpv, c, stream)) << (8 * k);
    if (words) put_bits(words, bitpos + i, bits, 64);
  }
  if (stream) _mm_sfence();
  if (i < n) {
    std::uint64_t bits = 0;
    int k = 0;
    for (; i + 8 * k + 8 <= n; ++k)
      bits |= std::uint64_t(fq8_store_avx2<kPerElement>(x, y, i + 8 * k, scale, inv_scale, zpv, c, false)) << (8 * k);
    for (Index j = i + 8 * k; j < n; ++j) {
      const Index pc = kPerElement ? j : 0;
      bool in;
      y[j] = numerics::fake_quantize(x[j], scale[pc], inv_scale[pc], zpv[pc], qmin, qmax, in);
      bits |= std::uint64_t(in) << (j - i);
    }
    if (words) put_bits(words, bitpos + i, bits, static_cast<int>(n - i));
  }
}

// ---------------------------------------------------------------------------
// AVX-512F (16 floats per vector).

__attribute__((target("avx512f"))) inline __m512 fq16_avx512(__m512 v, __m512 sc, __m512 inv, __m512 zp, __m512 lo,
                                                             __m512 hi, __m512 big, __mmask16& inr) {
  // The all-lanes masked forms (instead of _mm512_roundscale_ps / _max_ps /
  // _min_ps) avoid GCC 12's false -Wmaybe-uninitialized on _mm512_undefined_ps.
  const __mmask16 all = 0xFFFF;
  const __m512 t = _mm512_mul_ps(v, inv);
  const __m512 q = _mm512_add_ps(_mm512_mask_roundscale_ps(t, all, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  inr = static_cast<__mmask16>(_mm512_cmp_ps_mask(q, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(q, hi, _CMP_LE_OQ));
  const __mmask16 bad = _mm512_cmp_ps_mask(q, big, _CMP_NLT_UQ);
  const __m512 m = _mm512_mask_max_ps(lo, all, q, lo);
  __m512 c = _mm512_mask_min_ps(hi, all, m, hi);
  c = _mm512_mask_mov_ps(c, bad, lo);
  return _mm512_mul_ps(_mm512_sub_ps(c, zp), sc);
}

struct Fq16Consts {
  __m512 sc, inv, zp, lo, hi, big;
};

// Elements [j, j + 16), as fq8_store_avx2.
template <bool kPerElement>
__attribute__((target("avx512f"))) inline unsigned fq16_store_avx512(const float* x, float* y, Index j,
                                                                      const float* scale, const float* inv_scale,
                                                                      const float* zpv, const Fq16Consts& c,
                                                                      bool stream) {
  __mmask16 inr;
  const __m512 out = kPerElement ? fq16_avx512(_mm512_loadu_ps(x + j), _mm512_loadu_ps(scale + j),
                                               _mm512_loadu_ps(inv_scale + j), _mm512_loadu_ps(zpv + j), c.lo, c.hi,
                                               c.big, inr)
                                 : fq16_avx512(_mm512_loadu_ps(x + j), c.sc, c.inv, c.zp, c.lo, c.hi, c.big, inr);
  if (stream)
    _mm512_stream_ps(y + j, out);
  else
    _mm512_storeu_ps(y + j, out);
  return inr;
}

template <bool kPerElement>
__attribute__((target("avx512f"))) inline void affine_avx512(const float* x, float* y, Index n, const float* scale,
                                                              const float* inv_scale, const float* zpv, float qmin,
                                                              float qmax, std::uint64_t* words, Index bitpos,
                                                              bool stream) {
  if (n <= 0) return;
  const Fq16Consts c{_mm512_set1_ps(scale[0]), _mm512_set1_ps(inv_scale[0]), _mm512_set1_ps(zpv[0]),
                     _mm512_set1_ps(qmin),     _mm512_set1_ps(qmax),         _mm512_set1_ps(numerics::kInt64Limit<float>)};
  stream = stream && (reinterpret_cast<std::uintptr_t>(y) % 64 == 0);
  Index i = 0;
  for (; i + 64 <= n; i += 64) {
    std::uint64_t bits = 0;
    for (int k = 0; k < 4; ++k)
      bits |= std::uint64_t(fq16_store_avx512<kPerElement>(x, y, i + 16 * k, scale, inv_scale, zpv, c, stream))
              << (16 * k);
    if (words) put_bits(words, bitpos + i, bits, 64);
  }
  if (stream) _mm_sfence();
  if (i < n) {
    std::uint64_t bits = 0;
    int k = 0;
    for (; i + 16 * k + 16 <= n; ++k)
      bits |= std::uint64_t(fq16_store_avx512<kPerElement>(x, y, i + 16 * k, scale, inv_scale, zpv, c, false))
              << (16 * k);
    for (Index j = i + 16 * k; j < n; ++j) {
      const Index pc = kPerElement ? j : 0;
      bool in;
      y[j] = numerics::fake_quantize(x[j], scale[pc], inv_scale[pc], zpv[pc], qmin, qmax, in);
      bits |= std::uint64_t(in) << (j - i);
    }
    if (words) put_bits(words, bitpos + i, bits, static_cast<int>(n - i));
  }
}

// ---------------------------------------------------------------------------
// STE backward, scalar: dx[i] += dy[i] * (bit b0 + i of words), or = when
// overwrite (detail::put).

template <typename S>
inline void masked_accumulate_scalar(const S* dy, const std::uint64_t* words, Index b0, S* dx, Index n,
                                     bool overwrite) {
  for_mode(overwrite, [&](auto mode) {
    for (Index i = 0; i < n; ++i) {
      const Index b = b0 + i;
      put(mode, dx[i], dy[i] * static_cast<S>((words[b >> 6] >> (b & 63)) & 1u));
    }
  });
}

// ---------------------------------------------------------------------------
// STE backward, AVX2: dx += dy * bit (a multiply, as PyTorch's dY * mask, so
// a masked NaN/inf gradient still gives NaN); dx = 0 + dy * bit when
// overwrite (the + 0 keeps the result bitwise that of a zeroed dx).

__attribute__((target("avx2,fma"))) inline void masked_accumulate_avx2(const float* dy, const std::uint64_t* words,
                                                                        float* dx, Index n, bool overwrite) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 one = _mm256_set1_ps(1.0f);
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const unsigned byte = static_cast<unsigned>((words[i >> 6] >> (i & 63)) & 0xffu);
    const __m256i sel = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(byte)), lane_bits), lane_bits);
    const __m256 m = _mm256_and_ps(_mm256_castsi256_ps(sel), one);
    const __m256 base = overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(dx + i);
    _mm256_storeu_ps(dx + i, _mm256_add_ps(base, _mm256_mul_ps(_mm256_loadu_ps(dy + i), m)));
  }
  masked_accumulate_scalar(dy + i, words, i, dx + i, n - i, overwrite);
}

// ---------------------------------------------------------------------------
// Integer codes, AVX2: out[i] = numerics::quantize(x[i], inv_scale, zp,
// qmin, qmax) for a range within uint8 (Code = uint8_t) or int8 (int8_t),
// with the same float steps (multiply, round half to even, add the zero
// point, NaN and values >= 2^63 -> qmin, clamp), 32 values per step. Returns how many it did
// (n rounded down to 32); quantize_codes does the rest.

// Eight codes as int32 lanes. A helper function, not a lambda: a lambda in
// a target-attributed function does not inherit the attribute, and without
// -march its intrinsics would not compile.
__attribute__((target("avx2,fma"))) inline __m256i codes8_avx2(const float* p, __m256 inv, __m256 zp, __m256 lo,
                                                               __m256 hi) {
  const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(p), inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 qf = _mm256_add_ps(r, zp);
  // max_ps returns its second operand when either is NaN: NaN -> qmin.
  const __m256 q = _mm256_min_ps(_mm256_max_ps(qf, lo), hi);
  const __m256 huge = _mm256_cmp_ps(qf, _mm256_set1_ps(numerics::kInt64Limit<float>), _CMP_GE_OQ);
  return _mm256_cvttps_epi32(_mm256_blendv_ps(q, lo, huge));
}

template <typename Code>
__attribute__((target("avx2,fma"))) inline Index quantize_codes_avx2(const float* x, Code* out, Index n,
                                                                     float inv_scale, std::int32_t zero_point,
                                                                     std::int32_t qmin, std::int32_t qmax) {
  const __m256 inv = _mm256_set1_ps(inv_scale), zp = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 lo = _mm256_set1_ps(static_cast<float>(qmin)), hi = _mm256_set1_ps(static_cast<float>(qmax));
  // The two packs interleave 4-value groups across the 128-bit lanes; this
  // puts them back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  Index i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i w01 = _mm256_packs_epi32(codes8_avx2(x + i, inv, zp, lo, hi), codes8_avx2(x + i + 8, inv, zp, lo, hi));
    const __m256i w23 =
        _mm256_packs_epi32(codes8_avx2(x + i + 16, inv, zp, lo, hi), codes8_avx2(x + i + 24, inv, zp, lo, hi));
    const __m256i b = std::is_same<Code, std::uint8_t>::value ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permutevar8x32_epi32(b, order));
  }
  return i;
}
#endif  // QAWARE_FQ_X86

// ---------------------------------------------------------------------------
// Dispatchers.

// Fake quantization of x[0, n) into y with mask bits [bitpos, bitpos + n)
// (words may be null), on the best kernel family; kPerElement as for the
// kernels above.
template <bool kPerElement, typename S>
inline void affine(const S* x, S* y, Index n, const S* scale, const S* inv_scale, const S* zp, S qmin, S qmax,
                   std::uint64_t* words, Index bitpos, bool stream) {
#if QAWARE_FQ_X86
  if constexpr (std::is_same_v<S, float>) {
    const Isa isa = active_isa();
    if (isa == Isa::kAvx512)
      return affine_avx512<kPerElement>(x, y, n, scale, inv_scale, zp, qmin, qmax, words, bitpos, stream);
    if (isa == Isa::kAvx2)
      return affine_avx2<kPerElement>(x, y, n, scale, inv_scale, zp, qmin, qmax, words, bitpos, stream);
  }
#endif
  (void)stream;
  affine_scalar<kPerElement>(x, y, n, scale, inv_scale, zp, qmin, qmax, words, bitpos);
}

// One (scale, zero point) for all n elements.
template <typename S>
inline void affine_run(const S* x, S* y, Index n, const Affine<S>& p, std::uint64_t* words, Index bitpos,
                       bool stream) {
  affine<false>(x, y, n, &p.scale, &p.inv_scale, &p.zp, p.qmin, p.qmax, words, bitpos, stream);
}

// Element j uses (scale[j], inv_scale[j], zp[j]).
template <typename S>
inline void affine_vec(const S* x, S* y, Index n, const S* scale, const S* inv_scale, const S* zp, S qmin, S qmax,
                       std::uint64_t* words, Index bitpos, bool stream) {
  affine<true>(x, y, n, scale, inv_scale, zp, qmin, qmax, words, bitpos, stream);
}

// dx (n) += dy (n) * mask bit (= when overwrite).
template <typename S>
inline void masked_accumulate(const S* dy, const std::uint64_t* words, S* dx, Index n, bool overwrite = false) {
#if QAWARE_FQ_X86
  if constexpr (std::is_same_v<S, float>) {
    if (active_isa() != Isa::kScalar) return masked_accumulate_avx2(dy, words, dx, n, overwrite);
  }
#endif
  masked_accumulate_scalar(dy, words, 0, dx, n, overwrite);
}

// out[i] = numerics::quantize(x[i], inv_scale, zero_point, qmin, qmax)
// for i < n: the integer codes of a range within Code (uint8_t or int8_t).
template <typename Code>
inline void quantize_codes(const float* x, Code* out, Index n, float inv_scale, std::int32_t zero_point,
                           std::int32_t qmin, std::int32_t qmax) {
  static_assert(std::is_same_v<Code, std::uint8_t> || std::is_same_v<Code, std::int8_t>,
                "quantize_codes: Code must be uint8_t or int8_t");
  Index i = 0;
#if QAWARE_FQ_X86
  if (active_isa() != Isa::kScalar) i = quantize_codes_avx2(x, out, n, inv_scale, zero_point, qmin, qmax);
#endif
  for (; i < n; ++i) out[i] = static_cast<Code>(numerics::quantize(x[i], inv_scale, zero_point, qmin, qmax));
}

}  // namespace fq
}  // namespace detail
}  // namespace qaware
