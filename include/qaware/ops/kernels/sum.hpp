#pragma once
// The forward and backward kernels of sum (ops/sum.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace detail {

// factor * sum of x (N), accumulated in double: blocks of 4096 elements are
// summed by Eigen after conversion to double, the block sums in a fixed
// order, so the result does not depend on the thread count and a float
// total is within one rounding of the exact sum for any reasonable N.
template <typename Scalar>
Scalar reduce_all(const Scalar* x, Index N, double factor) {
  constexpr Index kBlock = 4096;
  const Index blocks = (N + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks));
  parallel_for(0, blocks, std::max<Index>(1, kElementGrain / kBlock), [&](Index b0, Index b1) {
    for (Index b = b0; b < b1; ++b) {
      const Index lo = b * kBlock, n = std::min(kBlock, N - lo);
      partial[static_cast<std::size_t>(b)] = ConstVectorMap<Scalar>(x + lo, n).template cast<double>().sum();
    }
  });
  double s = 0.0;
  for (double v : partial) s += v;
  return static_cast<Scalar>(s * factor);
}

// dx (N) += g.
template <typename Scalar>
void expand_all(Scalar g, Scalar* dx, Index N) {
  parallel_for(0, N, kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) dx[i] += g;
  });
}

// x (P, A, Q) -> y (P, Q) = factor * sum over A.
template <typename Scalar>
void reduce_axis(const Scalar* x, Scalar* y, Index P, Index A, Index Q, Scalar factor) {
  if (Q == 1) {
    parallel_for(0, P, row_grain(A), [&](Index p0, Index p1) {
      for (Index p = p0; p < p1; ++p) y[p] = factor * ConstVectorMap<Scalar>(x + p * A, A).sum();
    });
    return;
  }
  // Work items are (p, block of q); with few p the blocks split Q across threads.
  const Index threads = num_threads();
  const Index QB = P >= 2 * threads ? Q : std::max<Index>(64, (Q + threads - 1) / threads);
  const Index qblocks = (Q + QB - 1) / QB;
  parallel_for(0, P * qblocks, std::max<Index>(1, kElementGrain / std::max<Index>(A * std::min(Q, QB), 1)),
               [&](Index i0, Index i1) {
                 for (Index i = i0; i < i1; ++i) {
                   const Index p = i / qblocks, q0 = (i % qblocks) * QB, n = std::min(Q, q0 + QB) - q0;
                   Scalar* yr = y + p * Q + q0;
                   const Scalar* xr = x + p * A * Q + q0;
                   std::fill(yr, yr + n, Scalar(0));
                   for (Index a = 0; a < A; ++a, xr += Q)
                     for (Index j = 0; j < n; ++j) yr[j] += xr[j];
                   for (Index j = 0; j < n; ++j) yr[j] *= factor;
                 }
               });
}

// dx (P, A, Q) += factor * dy (P, Q), broadcast over A.
template <typename Scalar>
void expand_axis(const Scalar* dy, Scalar* dx, Index P, Index A, Index Q, Scalar factor) {
  parallel_for(0, P * A, row_grain(Q), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      const Scalar* g = dy + (r / A) * Q;
      Scalar* d = dx + r * Q;
      for (Index j = 0; j < Q; ++j) d[j] += factor * g[j];
    }
  });
}

// x's shape split around `axis` into (P, A, Q), and the shape without it.
struct AxisSplit {
  Index P = 1, A = 1, Q = 1;
  Shape reduced;
};
inline AxisSplit split_axis(const char* op, const Shape& xs, int axis) {
  const int ax = normalize_axis(op, axis, xs.rank());
  AxisSplit s;
  std::vector<Index> out;
  for (int i = 0; i < xs.rank(); ++i) {
    if (i < ax) s.P *= xs[i];
    if (i > ax) s.Q *= xs[i];
    if (i != ax) out.push_back(xs[i]);
  }
  s.A = xs[ax];
  s.reduced = Shape(std::move(out));
  return s;
}

}  // namespace detail

namespace ops {

// x (N) -> y (1) = sum of x.
template <typename Scalar>
void sum_forward(const Scalar* x, Scalar* y, Index N) {
  y[0] = detail::reduce_all(x, N, 1.0);
}
// dx (N) += dy[0].
template <typename Scalar>
void sum_backward(const Scalar* dy, Scalar* dx, Index N) {
  detail::expand_all(dy[0], dx, N);
}

// x (P, A, Q) -> y (P, Q) = sum over A.
template <typename Scalar>
void sum_axis_forward(const Scalar* x, Scalar* y, Index P, Index A, Index Q) {
  detail::reduce_axis(x, y, P, A, Q, Scalar(1));
}
// dx (P, A, Q) += dy (P, Q), broadcast over A.
template <typename Scalar>
void sum_axis_backward(const Scalar* dy, Scalar* dx, Index P, Index A, Index Q) {
  detail::expand_axis(dy, dx, P, A, Q, Scalar(1));
}

}  // namespace ops
}  // namespace qaware
