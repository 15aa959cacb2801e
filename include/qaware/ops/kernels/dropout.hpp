#pragma once
// The forward and backward kernels of dropout (ops/dropout.hpp describes the
// op), on raw pointers and without the tape.
//
// The mask is derived from one 64-bit `seed` (the op draws it from its Rng)
// with a counter-based generator, the splitmix64 sequence started at seed:
// pair j (elements 2j and 2j + 1) uses r_j = mix(seed + (j + 1) * 0x9e3779b97f4a7c15),
// where mix is splitmix64's finalizer (detail::splitmix64_mix in core/rng.hpp:
// z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27; z *= 0x94d049bb133111eb;
// z ^= z >> 31). Element 2j is kept
// when the low 32 bits of r_j are >= round(p * 2^32), element 2j + 1 when
// the high 32 bits are. Each element is a function of (seed, its index) only,
// so the mask depends only on the Rng state and N, never on the thread count
// or the code path. The forward draws the mask and applies it in one pass,
// four pairs at a time with AVX2 where the CPU has it (chosen at run time),
// and keeps it as bits (bit i % 8 of byte i / 8) for the backward.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "qaware/core/cpu.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "qaware/core/intrinsics.hpp"
#define QAWARE_DROPOUT_X86 1
#else
#define QAWARE_DROPOUT_X86 0
#endif

namespace qaware {
namespace ops {
namespace dropout_detail {

using detail::kSplitmixGamma;
using detail::kSplitmixMul1;
using detail::kSplitmixMul2;
using detail::splitmix64_mix;

// Drop threshold: keep when a 32-bit draw >= it (2^32 only for p within
// 2^-33 of 1: nothing kept).
inline std::uint64_t threshold(double p) { return static_cast<std::uint64_t>(std::llround(p * 4294967296.0)); }

// The definition: whether element i is kept.
inline bool kept(std::uint64_t seed, std::uint64_t thr, Index i) {
  const std::uint64_t r = splitmix64_mix(seed + (static_cast<std::uint64_t>(i / 2) + 1) * kSplitmixGamma);
  return ((i & 1) ? r >> 32 : r & 0xffffffffULL) >= thr;
}

// Elements [e0, e1), e0 a multiple of 8: bits of bytes e0 / 8 .. and
// y = kept ? x * s : 0.
template <typename Scalar>
void forward_scalar(std::uint64_t seed, std::uint64_t thr, const Scalar* x, Scalar* y, std::uint8_t* bits, Index e0,
                    Index e1, Scalar s) {
  std::uint64_t r = 0;
  for (Index e = e0; e < e1; e += 8) {
    unsigned byte = 0;
    for (Index i = e; i < std::min(e + 8, e1); ++i) {
      // kept(), one mix a pair.
      if ((i & 1) == 0) r = splitmix64_mix(seed + (static_cast<std::uint64_t>(i / 2) + 1) * kSplitmixGamma);
      const bool k = ((i & 1) ? r >> 32 : r & 0xffffffffULL) >= thr;
      byte |= static_cast<unsigned>(k) << (i - e);
      y[i] = k ? x[i] * s : Scalar(0);
    }
    bits[e / 8] = static_cast<std::uint8_t>(byte);
  }
}

#if QAWARE_DROPOUT_X86
// z * m on four 64-bit lanes (AVX2 has no 64-bit multiply): lo*lo plus the
// two cross products shifted up; the hi*hi term falls out of 64 bits.
__attribute__((target("avx2"))) inline __m256i mul64(__m256i z, std::uint64_t m) {
  const __m256i mlo = _mm256_set1_epi64x(static_cast<long long>(m & 0xffffffffULL));
  const __m256i mhi = _mm256_set1_epi64x(static_cast<long long>(m >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), mlo), _mm256_mul_epu32(z, mhi));
  return _mm256_add_epi64(_mm256_mul_epu32(z, mlo), _mm256_slli_epi64(cross, 32));
}

// forward_scalar for float, 8 elements (4 pairs) a step; the 32-bit lanes of
// the four r_j are elements 2j (low half) and 2j + 1 (high half) in order.
// Needs thr < 2^32.
__attribute__((target("avx2"))) inline void forward_avx2(std::uint64_t seed, std::uint64_t thr, const float* x,
                                                          float* y, std::uint8_t* bits, Index e0, Index e1, float s) {
  const std::uint64_t j0 = static_cast<std::uint64_t>(e0 / 2);
  __m256i z = _mm256_setr_epi64x(static_cast<long long>(seed + (j0 + 1) * kSplitmixGamma),
                                 static_cast<long long>(seed + (j0 + 2) * kSplitmixGamma),
                                 static_cast<long long>(seed + (j0 + 3) * kSplitmixGamma),
                                 static_cast<long long>(seed + (j0 + 4) * kSplitmixGamma));
  const __m256i step = _mm256_set1_epi64x(static_cast<long long>(4 * kSplitmixGamma));
  const __m256i t = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(thr)));
  const __m256 sv = _mm256_set1_ps(s);
  Index e = e0;
  for (; e + 8 <= e1; e += 8, z = _mm256_add_epi64(z, step)) {
    __m256i r = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), kSplitmixMul1);
    r = mul64(_mm256_xor_si256(r, _mm256_srli_epi64(r, 27)), kSplitmixMul2);
    r = _mm256_xor_si256(r, _mm256_srli_epi64(r, 31));
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(r, t), r));  // r >= thr
    bits[e / 8] = static_cast<std::uint8_t>(_mm256_movemask_ps(keep));
    _mm256_storeu_ps(y + e, _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(x + e), sv), keep));
  }
  forward_scalar(seed, thr, x, y, bits, e, e1, s);
}
#endif

// dx[i] = / += kept(i) ? dy[i] * s : 0 for i in [e0, e1) (detail::put).
template <typename Scalar>
void backward_scalar(const Scalar* dy, const std::uint8_t* bits, Scalar* dx, Index e0, Index e1, Scalar s,
                     bool overwrite) {
  detail::for_mode(overwrite, [&](auto mode) {
    for (Index i = e0; i < e1; ++i) detail::put(mode, dx[i], ((bits[i >> 3] >> (i & 7)) & 1u) ? dy[i] * s : Scalar(0));
  });
}

#if QAWARE_DROPOUT_X86
// dx = / += kept ? dy * s : 0 for 8 elements a step (the mask byte spread
// to lanes; the + 0 of an overwrite as in detail::put), the rest as
// backward_scalar.
__attribute__((target("avx2"))) inline void backward_avx2(const float* dy, const std::uint8_t* bits, float* dx,
                                                           Index n, float s, bool overwrite) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 sv = _mm256_set1_ps(s);
  Index i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i spread = _mm256_and_si256(_mm256_set1_epi32(bits[i >> 3]), lane_bits);
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(spread, lane_bits));
    const __m256 g = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(dy + i), sv), keep);
    _mm256_storeu_ps(dx + i, _mm256_add_ps(overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(dx + i), g));
  }
  backward_scalar(dy, bits, dx, i, n, s, overwrite);
}
#endif

inline bool use_avx2() { return QAWARE_DROPOUT_X86 && isa_enabled(Isa::kAvx2); }

}  // namespace dropout_detail

// x (N) -> y (N) = kept ? x / (1 - p) : 0, and the mask as bits (N + 7) / 8
// bytes, drawn from `seed` as described above.
template <typename Scalar>
void dropout_forward(std::uint64_t seed, double p, const Scalar* x, Scalar* y, std::uint8_t* bits, Index N) {
  namespace dd = dropout_detail;
  const Scalar s = Scalar(1) / (Scalar(1) - static_cast<Scalar>(p));
  const std::uint64_t thr = dd::threshold(p);
  const bool simd = std::is_same_v<Scalar, float> && thr <= 0xffffffffULL && dd::use_avx2();
  parallel_for(0, (N + 7) / 8, detail::kElementGrain / 8, [&](Index b0, Index b1) {
    const Index e0 = b0 * 8, e1 = std::min(N, b1 * 8);
#if QAWARE_DROPOUT_X86
    if constexpr (std::is_same_v<Scalar, float>) {
      if (simd) return dd::forward_avx2(seed, thr, x, y, bits, e0, e1, s);
    }
#endif
    (void)simd;
    dd::forward_scalar(seed, thr, x, y, bits, e0, e1, s);
  });
}

// dx (N) += kept ? dy / (1 - p) : 0 (= when overwrite), kept read from the
// forward's bits.
template <typename Scalar>
void dropout_backward(const Scalar* dy, const std::uint8_t* bits, Scalar* dx, Index N, Scalar p,
                      bool overwrite = false) {
  namespace dd = dropout_detail;
  const Scalar s = Scalar(1) / (Scalar(1) - p);
  const bool simd = std::is_same_v<Scalar, float> && dd::use_avx2();
  parallel_for(0, (N + 7) / 8, detail::kElementGrain / 8, [&](Index b0, Index b1) {
    const Index e0 = b0 * 8, e1 = std::min(N, b1 * 8);
#if QAWARE_DROPOUT_X86
    if constexpr (std::is_same_v<Scalar, float>) {
      if (simd) return dd::backward_avx2(dy + e0, bits + b0, dx + e0, e1 - e0, s, overwrite);
    }
#endif
    (void)simd;
    dd::backward_scalar(dy, bits, dx, e0, e1, s, overwrite);
  });
}

}  // namespace ops
}  // namespace qaware
