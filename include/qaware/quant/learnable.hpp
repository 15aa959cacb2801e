#pragma once
// Learnable fake quantization (LSQ, Esser et al. 2020; PyTorch's
// _fake_quantize_learnable_per_tensor_affine / _per_channel_affine): the
// scale and zero point are trainable tensors that receive gradients.
//
// Forward (as PyTorch 1.13):
//   per tensor:  zp_f = (int64) clamp(nearbyint(zero_point), quant_min, quant_max)
//   per channel: zp_f = clamp(round_half_even(zero_point[c]), quant_min, quant_max)
//   y = fake_quantize_per_{tensor,channel}_affine(x, scale, zp_f, ...)
//
// Backward, per element (PyTorch's CPU kernels fake_quantize_learnable_*_grad_kernel_cpu,
// with its AVX2 build's fused multiply-adds, which we reproduce with std::fma):
//   zero point used: per tensor  zp_b = (int64) clamp(zero_point + 0.5, quant_min, quant_max)
//                                  (truncation: not the forward's rounding!)
//                    per channel zp_b = zp_f
//   inv = 1 / scale
//   q   = (int64) nearbyint(fma(x, inv, zp_b))      (NaN/inf/>= 2^63 count as below quant_min)
//   in range (quant_min <= q <= quant_max):
//     dx = dy,  dscale = dy * fma(q - zp_b, scale, -x) * inv * g,  dzp = 0
//   q < quant_min:  dx = 0,  dscale = dy * (quant_min - zp_b) * g,  dzp = -dy * scale * g
//   q > quant_max:  dx = 0,  dscale = dy * (quant_max - zp_b) * g,  dzp = -dy * scale * g
// (left to right, each step rounded in Scalar), and the scale and zero-point
// gradients are summed over the tensor (per tensor) or over all but the
// channel axis (per channel). PyTorch sums those float vectors with its own
// reduction; we accumulate them in double, so the sums agree to rounding,
// not bit for bit (every per-element term does agree bit for bit).
//
// g is the grad factor: LearnableOptions::grad_factor, by default LSQ's
// 1 / sqrt(numel(x) * quant_max) (what _LearnableFakeQuantize uses with
// use_grad_scaling; PyTorch's raw op defaults to 1).
//
// SteMode (ste.hpp): Clipped is the above; PassThrough sets dx = dy for every
// element; LearnableClip drops the in-range scale term (PACT-style).
//
// The scale stays positive: with ScaleDomain::Linear the Var holds the
// scale itself and the op uses max(scale, eps) (the clamp PyTorch's module
// applies to scale.data; the gradient goes straight to the Var); with
// ScaleDomain::Log the Var holds log(scale), the op uses
// max(exp(log_scale), eps), and the gradient is dL/dlog_scale = dL/dscale * scale.
// The learnable ops need quant_min <= 0 <= quant_max (as PyTorch's backward).

#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "qaware/quant/fake_quantize.hpp"

namespace qaware {

enum class ScaleDomain { Linear, Log };

struct LearnableOptions {
  // nullopt: 1 / sqrt(numel(x) * quant_max) (LSQ).
  std::optional<double> grad_factor;
  SteMode ste = SteMode::Clipped;
  ScaleDomain scale_domain = ScaleDomain::Linear;
  float eps = kQuantEps;  // lower bound of the scale
};

namespace ops {

// The zero point PyTorch's learnable forward uses (per tensor and per
// channel): round half to even, then clamp.
template <typename Scalar>
std::int64_t learnable_zero_point_forward(Scalar zero_point, std::int64_t quant_min, std::int64_t quant_max) {
  const Scalar r = std::nearbyint(zero_point);
  const Scalar c = std::min(std::max(r, static_cast<Scalar>(quant_min)), static_cast<Scalar>(quant_max));
  return static_cast<std::int64_t>(c);
}

// The zero point PyTorch's per-tensor learnable backward uses:
// (int64) clamp(zero_point + 0.5, quant_min, quant_max), truncating.
template <typename Scalar>
std::int64_t learnable_zero_point_backward_per_tensor(Scalar zero_point, std::int64_t quant_min,
                                                      std::int64_t quant_max) {
  const Scalar r = zero_point + Scalar(0.5);
  const Scalar c = std::min(std::max(r, static_cast<Scalar>(quant_min)), static_cast<Scalar>(quant_max));
  return static_cast<std::int64_t>(c);
}

// LSQ backward over a run of n elements sharing (scale, zp). dx (may be
// null) += the x gradient (= when overwrite, detail::put); the scale and
// zero-point gradient terms are added to dscale / dzp (double accumulators).
template <typename Scalar>
void fake_quantize_learnable_backward_run(const Scalar* x, const Scalar* dy, Scalar* dx, Index n, Scalar scale,
                                          Scalar zp, Scalar qmin, Scalar qmax, Scalar grad_factor, SteMode ste,
                                          double& dscale, double& dzp, bool overwrite = false) {
  const Scalar inv = Scalar(1) / scale;
  const Scalar small = qmin - zp, big = qmax - zp;
  double ds = 0.0, dz = 0.0;
  detail::for_mode(overwrite, [&](auto mode) {
    for (Index i = 0; i < n; ++i) {
      const Scalar xi = x[i], g = dy[i];
      const Scalar q = numerics::round_half_even(std::fma(xi, inv, zp));
      const bool below = !(q < numerics::kInt64Limit<Scalar>) || q < qmin;  // NaN / overflow -> INT64_MIN
      const bool above = !below && q > qmax;
      if (dx) {
        if (ste == SteMode::PassThrough)
          detail::put(mode, dx[i], g);
        else
          detail::put(mode, dx[i], g * static_cast<Scalar>(!below && !above));
      }
      if (below || above) {
        dz += static_cast<double>(((g * Scalar(-1)) * scale) * grad_factor);
        ds += static_cast<double>((below ? g * small : g * big) * grad_factor);
      } else if (ste != SteMode::LearnableClip) {
        ds += static_cast<double>(((g * std::fma(q - zp, scale, -xi)) * inv) * grad_factor);
      }
    }
  });
  dscale += ds;
  dzp += dz;
}

// Per tensor: x, dy (N); dx (N, may be null) += (= when overwrite_dx); returns the scale and
// zero-point gradient sums. zp is zp_b (see the file comment). Blocks of a
// fixed size are summed in parallel and then in order, so the result does
// not depend on the thread count.
template <typename Scalar>
std::pair<double, double> fake_quantize_learnable_per_tensor_backward(const Scalar* x, const Scalar* dy, Scalar* dx,
                                                                      Index N, Scalar scale, std::int64_t zp,
                                                                      std::int64_t quant_min, std::int64_t quant_max,
                                                                      Scalar grad_factor, SteMode ste,
                                                                      bool overwrite_dx = false) {
  constexpr Index kBlock = 16384;
  const Index blocks = (N + kBlock - 1) / kBlock;
  std::vector<double> ds(static_cast<std::size_t>(blocks), 0.0), dz(static_cast<std::size_t>(blocks), 0.0);
  parallel_for(0, blocks, 1, [&](Index b0, Index b1) {
    for (Index b = b0; b < b1; ++b) {
      const Index s = b * kBlock, e = std::min(N, s + kBlock);
      fake_quantize_learnable_backward_run(x + s, dy + s, dx ? dx + s : nullptr, e - s, scale,
                                           static_cast<Scalar>(zp), static_cast<Scalar>(quant_min),
                                           static_cast<Scalar>(quant_max), grad_factor, ste,
                                           ds[static_cast<std::size_t>(b)], dz[static_cast<std::size_t>(b)], overwrite_dx);
    }
  });
  double s = 0.0, z = 0.0;
  for (Index b = 0; b < blocks; ++b) {
    s += ds[static_cast<std::size_t>(b)];
    z += dz[static_cast<std::size_t>(b)];
  }
  return {s, z};
}

// Per channel: x, dy (OUTER, C, INNER); dx may be null (+=, or = when
// overwrite_dx); zp[c] is the rounded
// zero point of channel c. dscale[c], dzp[c] (double) receive the sums.
template <typename Scalar>
void fake_quantize_learnable_per_channel_backward(const Scalar* x, const Scalar* dy, Scalar* dx, Index OUTER, Index C,
                                                  Index INNER, const Scalar* scale, const std::int32_t* zp,
                                                  std::int64_t quant_min, std::int64_t quant_max, Scalar grad_factor,
                                                  SteMode ste, double* dscale, double* dzp, bool overwrite_dx = false) {
  // Work items: (block of outer rows) x (chunk of channels); each writes its
  // own partial sums, reduced in a fixed order afterwards.
  const Index ob_count = std::max<Index>(1, std::min<Index>(OUTER, 64));
  const Index cb_count = std::max<Index>(1, std::min<Index>(C, 64 / ob_count));
  const Index items = ob_count * cb_count;
  std::vector<double> ps(static_cast<std::size_t>(ob_count * C), 0.0), pz(static_cast<std::size_t>(ob_count * C), 0.0);
  const Scalar qmin = static_cast<Scalar>(quant_min), qmax = static_cast<Scalar>(quant_max);
  parallel_for(0, items, 1, [&](Index i0, Index i1) {
    for (Index item = i0; item < i1; ++item) {
      const Index ob = item / cb_count, cb = item % cb_count;
      const Index o0 = OUTER * ob / ob_count, o1 = OUTER * (ob + 1) / ob_count;
      const Index c0 = C * cb / cb_count, c1 = C * (cb + 1) / cb_count;
      for (Index o = o0; o < o1; ++o)
        for (Index c = c0; c < c1; ++c) {
          const Index off = (o * C + c) * INNER;
          fake_quantize_learnable_backward_run(x + off, dy + off, dx ? dx + off : nullptr, INNER, scale[c],
                                               static_cast<Scalar>(zp[c]), qmin, qmax, grad_factor, ste,
                                               ps[static_cast<std::size_t>(ob * C + c)],
                                               pz[static_cast<std::size_t>(ob * C + c)], overwrite_dx);
        }
    }
  });
  for (Index c = 0; c < C; ++c) {
    double s = 0.0, z = 0.0;
    for (Index ob = 0; ob < ob_count; ++ob) {
      s += ps[static_cast<std::size_t>(ob * C + c)];
      z += pz[static_cast<std::size_t>(ob * C + c)];
    }
    dscale[c] += s;
    dzp[c] += z;
  }
}

}  // namespace ops

namespace detail {
namespace fq {

inline void validate_learnable_range(const char* fn, std::int64_t quant_min, std::int64_t quant_max) {
  check_range(fn, quant_min, quant_max);
  QAWARE_CHECK(quant_min <= 0 && quant_max >= 0, fn, ": learnable fake quantization needs quant_min <= 0 <= quant_max, "
               "got [", quant_min, ", ", quant_max, "]");
}

inline double resolve_grad_factor(const char* fn, const std::optional<double>& grad_factor, Index numel,
                                  std::int64_t quant_max) {
  if (grad_factor) {
    QAWARE_CHECK(std::isfinite(*grad_factor), fn, ": grad_factor must be finite, got ", *grad_factor);
    return *grad_factor;
  }
  QAWARE_CHECK(quant_max > 0, fn, ": the default grad factor 1/sqrt(numel * quant_max) needs quant_max > 0, got ",
               quant_max, "; pass LearnableOptions::grad_factor");
  QAWARE_CHECK(numel > 0, fn, ": the default grad factor needs a non-empty x");
  return 1.0 / std::sqrt(static_cast<double>(numel) * static_cast<double>(quant_max));
}

template <typename Scalar>
Scalar effective_scale(const char* fn, Scalar v, ScaleDomain domain, float eps, long channel = -1) {
  QAWARE_CHECK(std::isfinite(v), fn, ": the scale ", domain == ScaleDomain::Log ? "(log domain) " : "", "is ", v,
               channel >= 0 ? concat(" for channel ", channel) : std::string());
  Scalar s = domain == ScaleDomain::Log ? std::exp(v) : v;
  QAWARE_CHECK(std::isfinite(s), fn, ": exp(log_scale) overflows for log_scale ", v);
  return std::max(s, static_cast<Scalar>(eps));
}

template <typename Scalar>
void check_zero_point_finite(const char* fn, Scalar zp, long channel = -1) {
  QAWARE_CHECK(std::isfinite(zp), fn, ": zero_point must be finite, got ", zp,
               channel >= 0 ? concat(" for channel ", channel) : std::string());
}

}  // namespace fq
}  // namespace detail

// ---------------------------------------------------------------------------
// Plain tensor functions (the scale is used as given; it must be positive).

template <typename Scalar>
struct LearnableGrads {
  DynTensor<Scalar> dx;
  std::vector<Scalar> dscale;      // 1 entry per tensor, C per channel
  std::vector<Scalar> dzero_point;
};

template <typename Scalar>
DynTensor<Scalar> fake_quantize_learnable_per_tensor_affine(const DynTensor<Scalar>& x,
                                                            detail::identity_t<Scalar> scale,
                                                            detail::identity_t<Scalar> zero_point,
                                                            std::int64_t quant_min, std::int64_t quant_max) {
  const char* fn = "fake_quantize_learnable_per_tensor_affine";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  detail::check_scale(fn, static_cast<double>(scale));
  detail::fq::check_zero_point_finite(fn, zero_point);
  return fake_quantize_per_tensor_affine(x, scale, ops::learnable_zero_point_forward(zero_point, quant_min, quant_max),
                                         quant_min, quant_max);
}

template <typename Scalar>
LearnableGrads<Scalar> fake_quantize_learnable_per_tensor_affine_backward(
    const DynTensor<Scalar>& dy, const DynTensor<Scalar>& x, detail::identity_t<Scalar> scale,
    detail::identity_t<Scalar> zero_point, std::int64_t quant_min, std::int64_t quant_max, double grad_factor,
    SteMode ste = SteMode::Clipped) {
  const char* fn = "fake_quantize_learnable_per_tensor_affine_backward";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  detail::check_scale(fn, static_cast<double>(scale));
  detail::fq::check_zero_point_finite(fn, zero_point);
  QAWARE_CHECK(dy.shape() == x.shape(), fn, ": dy ", dy.shape().str(), " and x ", x.shape().str(), " differ");
  LearnableGrads<Scalar> g{DynTensor<Scalar>::zeros(x.shape()), {Scalar(0)}, {Scalar(0)}};
  const auto zp = ops::learnable_zero_point_backward_per_tensor(zero_point, quant_min, quant_max);
  const auto sums = ops::fake_quantize_learnable_per_tensor_backward(
      x.data(), dy.data(), g.dx.data(), x.numel(), scale, zp, quant_min, quant_max, static_cast<Scalar>(grad_factor), ste);
  g.dscale[0] = static_cast<Scalar>(sums.first);
  g.dzero_point[0] = static_cast<Scalar>(sums.second);
  return g;
}

namespace detail {
namespace fq {
template <typename Scalar>
std::vector<std::int32_t> rounded_channel_zero_points(const Scalar* zp, Index C, std::int64_t quant_min,
                                                      std::int64_t quant_max) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(C));
  for (Index c = 0; c < C; ++c)
    out[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(ops::learnable_zero_point_forward(zp[c], quant_min, quant_max));
  return out;
}
}  // namespace fq
}  // namespace detail

template <typename Scalar>
DynTensor<Scalar> fake_quantize_learnable_per_channel_affine(const DynTensor<Scalar>& x,
                                                             const std::vector<Scalar>& scale,
                                                             const std::vector<Scalar>& zero_point, int axis,
                                                             std::int64_t quant_min, std::int64_t quant_max) {
  const char* fn = "fake_quantize_learnable_per_channel_affine";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  QAWARE_CHECK(zero_point.size() == scale.size(), fn, ": ", scale.size(), " scales but ", zero_point.size(),
               " zero points");
  for (std::size_t c = 0; c < zero_point.size(); ++c)
    detail::fq::check_zero_point_finite(fn, zero_point[c], static_cast<long>(c));
  const auto zp = detail::fq::rounded_channel_zero_points(zero_point.data(), static_cast<Index>(zero_point.size()),
                                                          quant_min, quant_max);
  return fake_quantize_per_channel_affine(x, scale, zp, axis, quant_min, quant_max);
}

template <typename Scalar>
LearnableGrads<Scalar> fake_quantize_learnable_per_channel_affine_backward(
    const DynTensor<Scalar>& dy, const DynTensor<Scalar>& x, const std::vector<Scalar>& scale,
    const std::vector<Scalar>& zero_point, int axis, std::int64_t quant_min, std::int64_t quant_max,
    double grad_factor, SteMode ste = SteMode::Clipped) {
  const char* fn = "fake_quantize_learnable_per_channel_affine_backward";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  QAWARE_CHECK(dy.shape() == x.shape(), fn, ": dy ", dy.shape().str(), " and x ", x.shape().str(), " differ");
  QAWARE_CHECK(zero_point.size() == scale.size(), fn, ": ", scale.size(), " scales but ", zero_point.size(),
               " zero points");
  for (std::size_t c = 0; c < zero_point.size(); ++c)
    detail::fq::check_zero_point_finite(fn, zero_point[c], static_cast<long>(c));
  const Index C = static_cast<Index>(scale.size());
  const auto zp = detail::fq::rounded_channel_zero_points(zero_point.data(), C, quant_min, quant_max);
  const auto v = detail::fq::validate_per_channel(fn, x.shape(), scale.data(), C, zp.data(), C, axis, quant_min,
                                                  quant_max);
  LearnableGrads<Scalar> g{DynTensor<Scalar>::zeros(x.shape()), {}, {}};
  std::vector<double> ds(static_cast<std::size_t>(C), 0.0), dz(static_cast<std::size_t>(C), 0.0);
  ops::fake_quantize_learnable_per_channel_backward(x.data(), dy.data(), g.dx.data(), v.outer, v.channels, v.inner,
                                                    scale.data(), zp.data(), quant_min, quant_max,
                                                    static_cast<Scalar>(grad_factor), ste, ds.data(), dz.data());
  g.dscale.assign(ds.begin(), ds.end());
  g.dzero_point.assign(dz.begin(), dz.end());
  return g;
}

// ---------------------------------------------------------------------------
// Tape ops. scale and zero_point are Vars (typically tape.param(p)); per
// tensor they hold one element, per channel C elements (any shape with C
// elements; PyTorch uses rank 1).

template <typename Scalar>
Var<Scalar> fake_quantize_learnable_per_tensor_affine(Var<Scalar> x, Var<Scalar> scale, Var<Scalar> zero_point,
                                                      std::int64_t quant_min, std::int64_t quant_max,
                                                      const LearnableOptions& opt = {}) {
  const char* fn = "fake_quantize_learnable_per_tensor_affine";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  QAWARE_CHECK(scale.numel() == 1, fn, ": scale must have one element, got shape ", scale.shape().str());
  QAWARE_CHECK(zero_point.numel() == 1, fn, ": zero_point must have one element, got shape ",
               zero_point.shape().str());
  const Scalar s = detail::fq::effective_scale(fn, scale.value()[0], opt.scale_domain, opt.eps);
  const Scalar zpv = zero_point.value()[0];
  detail::fq::check_zero_point_finite(fn, zpv);
  const DynTensor<Scalar>& xv = x.value();
  const Scalar g = static_cast<Scalar>(detail::fq::resolve_grad_factor(fn, opt.grad_factor, xv.numel(), quant_max));
  DynTensor<Scalar> y(xv.shape());
  ops::fake_quantize_per_tensor_forward(xv.data(), y.data(), static_cast<std::uint64_t*>(nullptr), xv.numel(), s,
                                        ops::learnable_zero_point_forward(zpv, quant_min, quant_max), quant_min,
                                        quant_max);
  const std::int64_t zp_b = ops::learnable_zero_point_backward_per_tensor(zpv, quant_min, quant_max);
  const ScaleDomain domain = opt.scale_domain;
  const SteMode ste = opt.ste;
  return x.tape().record(
      std::move(y), {x, scale, zero_point},
      [x, scale, zero_point, s, zp_b, quant_min, quant_max, g, domain, ste](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
        const bool want_s = t.requires_grad(scale), want_z = t.requires_grad(zero_point);
        if (!t.requires_grad(x) && !want_s && !want_z) return;
        const auto dx = t.grad_slot_if_needed(x);
        const auto sums = ops::fake_quantize_learnable_per_tensor_backward(
            t.value(x).data(), dy.data(), dx.data, dy.numel(), s, zp_b, quant_min, quant_max, g, ste, dx.fresh);
        if (want_s) {
          const double ds = domain == ScaleDomain::Log ? sums.first * static_cast<double>(s) : sums.first;
          t.grad(scale)[0] += static_cast<Scalar>(ds);
        }
        if (want_z) t.grad(zero_point)[0] += static_cast<Scalar>(sums.second);
      });
}

template <typename Scalar>
Var<Scalar> fake_quantize_learnable_per_channel_affine(Var<Scalar> x, Var<Scalar> scale, Var<Scalar> zero_point,
                                                       int axis, std::int64_t quant_min, std::int64_t quant_max,
                                                       const LearnableOptions& opt = {}) {
  const char* fn = "fake_quantize_learnable_per_channel_affine";
  detail::fq::validate_learnable_range(fn, quant_min, quant_max);
  const DynTensor<Scalar>& xv = x.value();
  const auto view = detail::fq::channel_view(fn, xv.shape(), axis);
  const Index C = view.channels;
  QAWARE_CHECK(scale.numel() == C && zero_point.numel() == C, fn, ": x ", xv.shape().str(), " has ", C,
               " channels on axis ", view.axis, " but scale has ", scale.numel(), " and zero_point ",
               zero_point.numel(), " elements");
  std::vector<Scalar> s(static_cast<std::size_t>(C));
  for (Index c = 0; c < C; ++c) {
    s[static_cast<std::size_t>(c)] = detail::fq::effective_scale(fn, scale.value()[c], opt.scale_domain, opt.eps, static_cast<long>(c));
    detail::fq::check_zero_point_finite(fn, zero_point.value()[c], static_cast<long>(c));
  }
  const auto zp = detail::fq::rounded_channel_zero_points(zero_point.value().data(), C, quant_min, quant_max);
  const Scalar g = static_cast<Scalar>(detail::fq::resolve_grad_factor(fn, opt.grad_factor, xv.numel(), quant_max));
  DynTensor<Scalar> y(xv.shape());
  ops::fake_quantize_per_channel_forward(xv.data(), y.data(), static_cast<std::uint64_t*>(nullptr), view.outer, C,
                                         view.inner, s.data(), zp.data(), quant_min, quant_max);
  const ScaleDomain domain = opt.scale_domain;
  const SteMode ste = opt.ste;
  return x.tape().record(
      std::move(y), {x, scale, zero_point},
      [x, scale, zero_point, s, zp, view, quant_min, quant_max, g, domain, ste](Tape<Scalar>& t,
                                                                                const DynTensor<Scalar>& dy) {
        const bool want_s = t.requires_grad(scale), want_z = t.requires_grad(zero_point);
        if (!t.requires_grad(x) && !want_s && !want_z) return;
        const auto dx = t.grad_slot_if_needed(x);
        const Index C = view.channels;
        std::vector<double> ds(static_cast<std::size_t>(C), 0.0), dz(static_cast<std::size_t>(C), 0.0);
        ops::fake_quantize_learnable_per_channel_backward(t.value(x).data(), dy.data(), dx.data, view.outer, C,
                                                          view.inner, s.data(), zp.data(), quant_min, quant_max, g,
                                                          ste, ds.data(), dz.data(), dx.fresh);
        if (want_s) {
          DynTensor<Scalar>& gs = t.grad(scale);
          for (Index c = 0; c < C; ++c) {
            const double v = ds[static_cast<std::size_t>(c)];
            gs[c] += static_cast<Scalar>(domain == ScaleDomain::Log ? v * static_cast<double>(s[static_cast<std::size_t>(c)]) : v);
          }
        }
        if (want_z) {
          DynTensor<Scalar>& gz = t.grad(zero_point);
          for (Index c = 0; c < C; ++c) gz[c] += static_cast<Scalar>(dz[static_cast<std::size_t>(c)]);
        }
      });
}

}  // namespace qaware
