#pragma once
// The forward and backward kernels of gelu (ops/gelu.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <cmath>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "qaware/core/numerics.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

enum class GeluApprox { Erf, Tanh };

namespace ops {
namespace gelu_detail {
template <typename Scalar>
using ArrayMap = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
template <typename Scalar>
using ConstArrayMap = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

constexpr double kInvSqrt2 = 0.70710678118654752440;     // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
constexpr double kKappa = 0.044715;
}  // namespace gelu_detail

// x (N) -> y (N) = gelu(x).
template <typename Scalar>
void gelu_forward(const Scalar* x, Scalar* y, Index N, GeluApprox approx) {
  using namespace gelu_detail;
  const Scalar half(0.5), one(1), beta(kSqrt2OverPi), kappa(kKappa);
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    // Erf: the definition the INT8 GEMM's fused GELU stage shares.
    if (approx == GeluApprox::Erf) return numerics::gelu_erf(x + lo, y + lo, hi - lo);
    ConstArrayMap<Scalar> X(x + lo, hi - lo);
    ArrayMap<Scalar> Y(y + lo, hi - lo);
    Y = half * X * (one + (beta * (X + kappa * X.cube())).tanh());
  });
}

// dx (N) += dy * gelu'(x) (= when overwrite):
//   Erf:  gelu'(x) = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2 / 2) / sqrt(2 pi);
//   Tanh: with u = sqrt(2/pi) (x + k x^3) and t = tanh(u),
//         gelu'(x) = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 k x^2) / 2,
//         where 1 - t^2 = sech^2(u) = 4 e / (1 + e)^2 with e = exp(-2 |u|)
//         (1 - t * t cancels in float once t is near 1: 3.5e-6 error at x ~ 5).
template <typename Scalar>
void gelu_backward(const Scalar* dy, const Scalar* x, Scalar* dx, Index N, GeluApprox approx, bool overwrite = false) {
  using namespace gelu_detail;
  const Scalar half(0.5), one(1), c_erf(kInvSqrt2), c_pdf(kInvSqrt2Pi), beta(kSqrt2OverPi), kappa(kKappa);
  detail::for_mode(overwrite, [&](auto mode) {
    parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
      ConstArrayMap<Scalar> X(x + lo, hi - lo), G(dy + lo, hi - lo);
      ArrayMap<Scalar> D(dx + lo, hi - lo);
      if (approx == GeluApprox::Erf) {
        detail::put(mode, D, G * (half * (one + (X * c_erf).erf()) + X * c_pdf * (-half * X.square()).exp()));
        return;
      }
      // Tiles with stack temporaries: a chunk-sized heap temporary (128 KB)
      // would be an mmap and munmap per chunk.
      constexpr Index kTile = 256;
      using Tile = Eigen::Array<Scalar, Eigen::Dynamic, 1, 0, kTile, 1>;
      for (Index t0 = 0; t0 < hi - lo; t0 += kTile) {
        const Index n = std::min(kTile, hi - lo - t0);
        const auto Xt = X.segment(t0, n);
        const Tile u = beta * (Xt + kappa * Xt.cube());
        const Tile e = (Scalar(-2) * u.abs()).exp();
        const auto sech2 = Scalar(4) * e / (one + e).square();
        detail::put(mode, D.segment(t0, n),
                    G.segment(t0, n) * (half * (one + u.tanh()) +
                                        half * Xt * sech2 * beta * (one + Scalar(3) * kappa * Xt.square())));
      }
    });
  });
}

}  // namespace ops
}  // namespace qaware
