#pragma once
// Elementwise update loops of the optimizers, written to round exactly as
// PyTorch 1.13's CPU kernels do (checked bit for bit against its goldens):
//   tensor.add_(other, alpha=a)        -> fma(other, a, tensor)   (vectorised fmadd)
//   tensor.addcmul_(t1, t2, value=c)   -> fma(c * t1, t2, tensor)
//   tensor.addcdiv_(t1, t2, value=c)   -> tensor + (c * t1) / t2
// The fused multiply-adds are written out with std::fma, so the result does
// not depend on whether the compiler contracts a * b + c.
//
// std::fma is one instruction only where the compiler may use FMA. A user's
// translation unit built without -mfma would call libm's fma per element, so
// on x86 the loops are also compiled for AVX2+FMA with a function target
// attribute and chosen at run time (users need no -march flag; docs/architecture.md).
// AdamW's float loop is written with AVX2 intrinsics there, because sqrt
// (which may set errno) keeps compilers from vectorising it; every
// intrinsic rounds exactly like the scalar operation it replaces.

#include <cmath>
#include <type_traits>

#include "qaware/core/cpu.hpp"
#include "qaware/core/shape.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define QAWARE_OPTIM_FMA_DISPATCH 1
#include "qaware/core/intrinsics.hpp"
#else
#define QAWARE_OPTIM_FMA_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define QAWARE_OPTIM_INLINE inline __attribute__((always_inline))
#define QAWARE_RESTRICT __restrict__
#else
#define QAWARE_OPTIM_INLINE inline
#define QAWARE_RESTRICT
#endif

namespace qaware {
namespace detail {

// Keeps the compiler from fusing the product that produced `v` into a later
// addition: PyTorch stores that product, rounded, before adding. GCC
// contracts a * b + c into an FMA across statements by default (intrinsics
// included), so it gets an empty asm that forces `v` into a register; Clang
// fuses only within one source expression (its default -ffp-contract=on),
// which these loops never ask it to do.
template <typename T>
QAWARE_OPTIM_INLINE void keep_rounded(T& v) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && !defined(__clang__)
  __asm__("" : "+m"(v));
#else
  (void)v;
#endif
}

template <typename Scalar>
struct AdamWCoeffs {
  Scalar decay;         // 1 - lr * weight_decay
  bool do_decay;        // decay != 1
  Scalar beta1, one_minus_beta1, beta2, one_minus_beta2;
  Scalar bc2_sqrt;      // sqrt(1 - beta2^step)
  Scalar eps;
  Scalar neg_step_size; // -lr / (1 - beta1^step)
  Scalar grad_sign;     // -1 when maximizing
};

// The flags are template parameters so that each loop is branch-free and
// vectorises; the pointers never alias (distinct tensors).
template <bool kDecay, bool kAmsgrad, typename Scalar>
QAWARE_OPTIM_INLINE void adamw_body_t(const AdamWCoeffs<Scalar>& c, Scalar* QAWARE_RESTRICT x,
                                      const Scalar* QAWARE_RESTRICT gr, Scalar* QAWARE_RESTRICT m,
                                      Scalar* QAWARE_RESTRICT v, Scalar* QAWARE_RESTRICT vmax, Index lo, Index hi) {
  const Scalar decay = c.decay, b1 = c.beta1, omb1 = c.one_minus_beta1, b2 = c.beta2, omb2 = c.one_minus_beta2;
  const Scalar bc2 = c.bc2_sqrt, eps = c.eps, nss = c.neg_step_size, sign = c.grad_sign;
  for (Index k = lo; k < hi; ++k) {
    const Scalar g = sign * gr[k];
    Scalar xk = x[k];
    if (kDecay) {
      xk = xk * decay;
      keep_rounded(xk);
    }
    const Scalar mk = std::fma(g, omb1, m[k] * b1);
    const Scalar vk = std::fma(omb2 * g, g, v[k] * b2);
    m[k] = mk;
    v[k] = vk;
    Scalar vd = vk;
    if (kAmsgrad) {
      // torch.maximum: NaN propagates.
      const Scalar old = vmax[k];
      vd = (vk != vk || vk > old) ? vk : old;
      vmax[k] = vd;
    }
    const Scalar denom = std::sqrt(vd) / bc2 + eps;
    x[k] = xk + (nss * mk) / denom;
  }
}

template <typename Scalar>
QAWARE_OPTIM_INLINE void adamw_body(const AdamWCoeffs<Scalar>& c, Scalar* x, const Scalar* gr, Scalar* m, Scalar* v,
                                    Scalar* vmax, Index lo, Index hi) {
  if (c.do_decay) {
    if (vmax) adamw_body_t<true, true>(c, x, gr, m, v, vmax, lo, hi);
    else adamw_body_t<true, false>(c, x, gr, m, v, vmax, lo, hi);
  } else {
    if (vmax) adamw_body_t<false, true>(c, x, gr, m, v, vmax, lo, hi);
    else adamw_body_t<false, false>(c, x, gr, m, v, vmax, lo, hi);
  }
}

template <typename Scalar>
struct SGDCoeffs {
  Scalar weight_decay;
  bool has_weight_decay;
  Scalar momentum, one_minus_dampening;
  bool first;  // the momentum buffer is initialised to d
  bool nesterov;
  Scalar neg_lr;
  Scalar grad_sign;
};

template <bool kDecay, int kMomentum, bool kNesterov, typename Scalar>  // kMomentum: 0 none, 1 first step, 2 later
QAWARE_OPTIM_INLINE void sgd_body_t(const SGDCoeffs<Scalar>& c, Scalar* QAWARE_RESTRICT x,
                                    const Scalar* QAWARE_RESTRICT gr, Scalar* QAWARE_RESTRICT buf, Index lo, Index hi) {
  const Scalar wd = c.weight_decay, mom = c.momentum, omd = c.one_minus_dampening, nlr = c.neg_lr, sign = c.grad_sign;
  for (Index k = lo; k < hi; ++k) {
    Scalar d = sign * gr[k];
    if (kDecay) d = std::fma(x[k], wd, d);
    if (kMomentum != 0) {
      const Scalar b = kMomentum == 1 ? d : std::fma(d, omd, buf[k] * mom);
      buf[k] = b;
      d = kNesterov ? std::fma(b, mom, d) : b;
    }
    x[k] = std::fma(d, nlr, x[k]);
  }
}

template <bool kDecay, typename Scalar>
QAWARE_OPTIM_INLINE void sgd_body_m(const SGDCoeffs<Scalar>& c, Scalar* x, const Scalar* gr, Scalar* buf, Index lo,
                                    Index hi) {
  if (!buf) return sgd_body_t<kDecay, 0, false>(c, x, gr, buf, lo, hi);
  if (c.first) {
    if (c.nesterov) return sgd_body_t<kDecay, 1, true>(c, x, gr, buf, lo, hi);
    return sgd_body_t<kDecay, 1, false>(c, x, gr, buf, lo, hi);
  }
  if (c.nesterov) return sgd_body_t<kDecay, 2, true>(c, x, gr, buf, lo, hi);
  sgd_body_t<kDecay, 2, false>(c, x, gr, buf, lo, hi);
}

template <typename Scalar>
QAWARE_OPTIM_INLINE void sgd_body(const SGDCoeffs<Scalar>& c, Scalar* x, const Scalar* gr, Scalar* buf, Index lo,
                                  Index hi) {
  if (c.has_weight_decay) return sgd_body_m<true>(c, x, gr, buf, lo, hi);
  sgd_body_m<false>(c, x, gr, buf, lo, hi);
}

#if QAWARE_OPTIM_FMA_DISPATCH
// The FMA loops run where the library-wide cap admits Isa::kAvx2.
inline bool optim_cpu_has_fma() { return isa_enabled(Isa::kAvx2); }

template <bool kDecay, bool kAmsgrad>
__attribute__((target("avx2,fma"))) void adamw_avx2_t(const AdamWCoeffs<float>& c, float* QAWARE_RESTRICT x,
                                                      const float* QAWARE_RESTRICT gr, float* QAWARE_RESTRICT m,
                                                      float* QAWARE_RESTRICT v, float* QAWARE_RESTRICT vmax, Index lo,
                                                      Index hi) {
  const __m256 decay = _mm256_set1_ps(c.decay), b1 = _mm256_set1_ps(c.beta1), omb1 = _mm256_set1_ps(c.one_minus_beta1);
  const __m256 b2 = _mm256_set1_ps(c.beta2), omb2 = _mm256_set1_ps(c.one_minus_beta2);
  const __m256 bc2 = _mm256_set1_ps(c.bc2_sqrt), eps = _mm256_set1_ps(c.eps);
  const __m256 nss = _mm256_set1_ps(c.neg_step_size), sign = _mm256_set1_ps(c.grad_sign);
  Index k = lo;
  for (; k + 8 <= hi; k += 8) {
    const __m256 g = _mm256_mul_ps(sign, _mm256_loadu_ps(gr + k));
    __m256 xk = _mm256_loadu_ps(x + k);
    if (kDecay) {
      xk = _mm256_mul_ps(xk, decay);
      keep_rounded(xk);
    }
    const __m256 mk = _mm256_fmadd_ps(g, omb1, _mm256_mul_ps(_mm256_loadu_ps(m + k), b1));
    const __m256 vk = _mm256_fmadd_ps(_mm256_mul_ps(omb2, g), g, _mm256_mul_ps(_mm256_loadu_ps(v + k), b2));
    _mm256_storeu_ps(m + k, mk);
    _mm256_storeu_ps(v + k, vk);
    __m256 vd = vk;
    if (kAmsgrad) {
      const __m256 old = _mm256_loadu_ps(vmax + k);
      const __m256 take = _mm256_or_ps(_mm256_cmp_ps(vk, vk, _CMP_UNORD_Q), _mm256_cmp_ps(vk, old, _CMP_GT_OQ));
      vd = _mm256_blendv_ps(old, vk, take);
      _mm256_storeu_ps(vmax + k, vd);
    }
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vd), bc2), eps);
    _mm256_storeu_ps(x + k, _mm256_add_ps(xk, _mm256_div_ps(_mm256_mul_ps(nss, mk), denom)));
  }
  adamw_body_t<kDecay, kAmsgrad>(c, x, gr, m, v, vmax, k, hi);
}

template <typename Scalar>
__attribute__((target("avx2,fma"))) void adamw_loop_fma(const AdamWCoeffs<Scalar>& c, Scalar* x, const Scalar* gr,
                                                         Scalar* m, Scalar* v, Scalar* vmax, Index lo, Index hi) {
  if constexpr (std::is_same_v<Scalar, float>) {
    if (c.do_decay) {
      if (vmax) adamw_avx2_t<true, true>(c, x, gr, m, v, vmax, lo, hi);
      else adamw_avx2_t<true, false>(c, x, gr, m, v, vmax, lo, hi);
    } else {
      if (vmax) adamw_avx2_t<false, true>(c, x, gr, m, v, vmax, lo, hi);
      else adamw_avx2_t<false, false>(c, x, gr, m, v, vmax, lo, hi);
    }
  } else {
    adamw_body(c, x, gr, m, v, vmax, lo, hi);
  }
}
template <typename Scalar>
__attribute__((target("avx2,fma"))) void sgd_loop_fma(const SGDCoeffs<Scalar>& c, Scalar* x, const Scalar* gr,
                                                       Scalar* buf, Index lo, Index hi) {
  sgd_body(c, x, gr, buf, lo, hi);
}
#endif

template <typename Scalar>
void adamw_loop(const AdamWCoeffs<Scalar>& c, Scalar* x, const Scalar* gr, Scalar* m, Scalar* v, Scalar* vmax,
                Index lo, Index hi) {
#if QAWARE_OPTIM_FMA_DISPATCH
  if (optim_cpu_has_fma()) return adamw_loop_fma(c, x, gr, m, v, vmax, lo, hi);
#endif
  adamw_body(c, x, gr, m, v, vmax, lo, hi);
}

template <typename Scalar>
void sgd_loop(const SGDCoeffs<Scalar>& c, Scalar* x, const Scalar* gr, Scalar* buf, Index lo, Index hi) {
#if QAWARE_OPTIM_FMA_DISPATCH
  if (optim_cpu_has_fma()) return sgd_loop_fma(c, x, gr, buf, lo, hi);
#endif
  sgd_body(c, x, gr, buf, lo, hi);
}

}  // namespace detail
}  // namespace qaware
