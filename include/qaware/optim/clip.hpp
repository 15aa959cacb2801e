#pragma once
// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_ (L2):
//   total = || (||g_1||, ..., ||g_n||) ||_2     over the Params' gradients
//   coef  = max_norm / (total + 1e-6)           (in Scalar: (1 / (total + 1e-6)) * max_norm,
//                                                the way PyTorch evaluates a number divided by a tensor)
//   every g *= coef, only when coef < 1.
// Returns the total norm (before clipping).
//
// The norm is accumulated in double (sum of squares per tensor, the tensors
// summed in order) and rounded once to Scalar, so it is exact to within an ulp
// and does not depend on the thread count. PyTorch accumulates in float, so
// the two may differ by a few ulps; the clipped gradients then differ by as
// much.
//
// Non-finite total norm (a NaN or inf gradient): the `nonfinite` argument
// decides.
//   NonFinite::Scale (the default, PyTorch's error_if_nonfinite=False): scale
//     anyway, as PyTorch does: coef is NaN for a NaN norm (every gradient
//     becomes NaN) and 0 for an infinite one (finite entries become 0, infinite
//     ones NaN).
//   NonFinite::Error (PyTorch's error_if_nonfinite=True): throw qaware::Error,
//     gradients untouched.
//   NonFinite::Skip: leave the gradients untouched and return the norm, so the
//     caller can skip the step (what mixed-precision loss scalers do).
// Params that do not require a gradient are ignored.

#include <cmath>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/optim/optimizer.hpp"

namespace qaware {

enum class NonFinite { Scale, Error, Skip };

// Squared L2 norm of p's gradient, accumulated in double in a fixed order
// (16 interleaved partial sums, then a fixed tree), so the result does not
// depend on the thread count. For float gradients each square is exact in
// double, so a compiler fusing the multiply-add changes nothing.
template <typename Scalar>
double grad_sq_norm(const Param<Scalar>& p) {
  const Scalar* g = p.grad().data();
  const Index n = p.grad().numel();
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  Index k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const double v = static_cast<double>(g[k + j]);
      acc[j] += v * v;
    }
  for (int j = 0; k < n; ++k, ++j) {
    const double v = static_cast<double>(g[k]);
    acc[j] += v * v;
  }
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0];
}

template <typename Scalar>
Scalar clip_grad_norm(const std::vector<Param<Scalar>*>& params, double max_norm,
                      NonFinite nonfinite = NonFinite::Scale) {
  QAWARE_CHECK(!std::isnan(max_norm) && max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, got ", max_norm);
  std::vector<Param<Scalar>*> ps;
  for (Param<Scalar>* p : params) {
    QAWARE_CHECK(p != nullptr, "clip_grad_norm: null parameter");
    if (p->requires_grad()) ps.push_back(p);
  }
  if (ps.empty()) return Scalar(0);
  std::vector<double> sq(ps.size());
  // One tensor per task; the sum below runs in a fixed order.
  parallel_for(0, static_cast<Index>(ps.size()), 1, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) sq[static_cast<std::size_t>(i)] = grad_sq_norm(*ps[static_cast<std::size_t>(i)]);
  });
  double total_sq = 0;
  for (double s : sq) total_sq += s;
  const Scalar total = static_cast<Scalar>(std::sqrt(total_sq));
  if (!std::isfinite(total)) {
    QAWARE_CHECK(nonfinite != NonFinite::Error, "clip_grad_norm: the total gradient norm is ", total, " over ",
                 ps.size(), " parameters; it cannot be clipped");
    if (nonfinite == NonFinite::Skip) return total;
  }
  const Scalar coef = (Scalar(1) / (total + static_cast<Scalar>(1e-6))) * static_cast<Scalar>(max_norm);
  // PyTorch clamps coef to 1 and always multiplies; multiplying by 1 changes
  // nothing, so skip it. A NaN coef fails `coef < 1` but must still scale.
  if (!(coef < Scalar(1)) && !std::isnan(coef)) return total;
  for (Param<Scalar>* p : ps) {
    Scalar* g = p->grad().data();
    parallel_for(0, p->grad().numel(), detail::kOptimGrain, [&](Index b, Index e) {
      for (Index k = b; k < e; ++k) g[k] = g[k] * coef;
    });
  }
  return total;
}

// All Params of an optimizer.
template <typename Scalar>
Scalar clip_grad_norm(const Optimizer<Scalar>& opt, double max_norm, NonFinite nonfinite = NonFinite::Scale) {
  std::vector<Param<Scalar>*> ps;
  for (const auto& g : opt.groups()) ps.insert(ps.end(), g.params.begin(), g.params.end());
  return clip_grad_norm(ps, max_norm, nonfinite);
}

}  // namespace qaware
