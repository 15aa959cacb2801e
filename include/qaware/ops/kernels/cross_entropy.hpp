#pragma once
// The forward and backward kernels of cross_entropy (ops/cross_entropy.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <cmath>
#include <cstdint>
#include <vector>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// logits (R, C), targets (R) -> loss (1), row max (R) and log-sum (R) (both
// 0 on ignored rows). Returns n, the number of rows whose target is not
// ignore_index.
template <typename Scalar>
Index cross_entropy_forward(const Scalar* logits, const std::int64_t* targets, Scalar* loss, Scalar* row_max,
                            Scalar* log_sum, Index R, Index C, std::int64_t ignore_index) {
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  std::vector<Scalar> row_loss(static_cast<std::size_t>(R), Scalar(0));
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      row_max[r] = log_sum[r] = Scalar(0);
      if (targets[r] == ignore_index) continue;
      ConstArr X(logits + r * C, C);
      const Scalar m = X.maxCoeff();
      const Scalar s = std::log((X - m).exp().sum());
      row_max[r] = m;
      log_sum[r] = s;
      // -log softmax(row)[t] = s - (row[t] - m)
      row_loss[static_cast<std::size_t>(r)] = s - (X[static_cast<Index>(targets[r])] - m);
    }
  });
  Index n = 0;
  double total = 0.0;
  for (Index r = 0; r < R; ++r) {
    if (targets[r] == ignore_index) continue;
    ++n;
    total += static_cast<double>(row_loss[static_cast<std::size_t>(r)]);
  }
  loss[0] = n ? static_cast<Scalar>(total / static_cast<double>(n)) : Scalar(0);
  return n;
}

// dlogits (R, C) += (dloss / n) * (softmax(row) - onehot(target)) on rows
// whose target is not ignore_index; softmax(row) = exp((row - max) - log_sum).
template <typename Scalar>
void cross_entropy_backward(const Scalar* dloss, const Scalar* logits, const std::int64_t* targets,
                            const Scalar* row_max, const Scalar* log_sum, Scalar* dlogits, Index R, Index C,
                            std::int64_t ignore_index, Index n) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (n == 0) return;
  const Scalar g = dloss[0] / static_cast<Scalar>(n);
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      if (targets[r] == ignore_index) continue;
      Arr D(dlogits + r * C, C);
      D += g * ((ConstArr(logits + r * C, C) - row_max[r]) - log_sum[r]).exp();
      D[static_cast<Index>(targets[r])] -= g;
    }
  });
}

// Soft targets: logits (R, C), target probabilities p (R, C) -> loss (1) =
// (1 / R) * sum over rows of sum_c p[r, c] * (logsumexp(row) - row[c]), and
// the row max (R) and log-sum (R) as above. A row of zeros in p adds nothing.
template <typename Scalar>
void soft_cross_entropy_forward(const Scalar* logits, const Scalar* probs, Scalar* loss, Scalar* row_max,
                                Scalar* log_sum, Index R, Index C) {
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  std::vector<double> row_loss(static_cast<std::size_t>(R), 0.0);
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      ConstArr X(logits + r * C, C), P(probs + r * C, C);
      const Scalar m = X.maxCoeff();
      const Scalar s = std::log((X - m).exp().sum());
      row_max[r] = m;
      log_sum[r] = s;
      // -sum_c p_c log softmax(row)_c = sum_c p_c (s - (row_c - m))
      row_loss[static_cast<std::size_t>(r)] = static_cast<double>((P * (s - (X - m))).sum());
    }
  });
  double total = 0.0;
  for (const double l : row_loss) total += l;
  loss[0] = R ? static_cast<Scalar>(total / static_cast<double>(R)) : Scalar(0);
}

// dlogits (R, C) += (dloss / R) * (softmax(row) * sum_c p[r, c] - p[r, :]).
template <typename Scalar>
void soft_cross_entropy_backward(const Scalar* dloss, const Scalar* logits, const Scalar* probs,
                                 const Scalar* row_max, const Scalar* log_sum, Scalar* dlogits, Index R, Index C) {
  using Arr = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  using ConstArr = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;
  if (R == 0) return;
  const Scalar g = dloss[0] / static_cast<Scalar>(R);
  parallel_for(0, R, detail::row_grain(C), [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      ConstArr P(probs + r * C, C);
      const Scalar mass = P.sum();
      if (mass == Scalar(0)) continue;
      Arr D(dlogits + r * C, C);
      D += g * (mass * ((ConstArr(logits + r * C, C) - row_max[r]) - log_sum[r]).exp() - P);
    }
  });
}

}  // namespace ops
}  // namespace qaware
