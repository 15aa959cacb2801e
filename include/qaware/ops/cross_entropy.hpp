#pragma once
// cross_entropy: softmax cross-entropy over the last dimension with integer
// targets, as torch.nn.functional.cross_entropy(logits.view(-1, C),
// targets.view(-1), ignore_index=ignore_index) (reduction 'mean').
//   logits are (..., C), viewed as R rows of C; targets have logits' shape
//   without the last dimension (R elements); the loss has shape [].
//   loss = (1 / n) * sum over rows whose target != ignore_index of
//          (logsumexp(row) - row[target]), n = the number of such rows.
// When every target is ignored, PyTorch returns NaN (0 / 0); qaware returns
// a loss of 0 with zero gradients, so a batch without labels contributes
// nothing instead of turning the parameters into NaN.
// Targets other than ignore_index must lie in [0, C) (qaware::Error).
// The forward saves each row's max m (R) and log-sum s = log sum exp(row - m)
// (R); the backward recomputes the softmax as exp((row - m) - s), so no
// (R, C) probability tensor is kept. Keeping m and s apart (rather than
// logsumexp = m + s) avoids rounding a large m + s in float: with logits
// near 1000 the float ulp is 6e-5.

#include <cmath>
#include <cstdint>
#include <vector>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>

#include "qaware/autograd/tape.hpp"
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

}  // namespace ops

// Mean cross-entropy of logits (..., C) against targets (...).
template <typename Scalar>
Var<Scalar> cross_entropy(Var<Scalar> logits, const DynTensor<std::int64_t>& targets, std::int64_t ignore_index = -100) {
  const Shape& ls = logits.shape();
  QAWARE_CHECK(ls.rank() >= 1, "cross_entropy: logits must have rank >= 1 (..., C), got ", ls.str());
  const Index C = ls.dim(-1), R = ls.rows();
  const Shape expected(std::vector<Index>(ls.begin(), ls.end() - 1));
  QAWARE_CHECK(targets.shape() == expected, "cross_entropy: targets ", targets.shape().str(), " must have shape ",
               expected.str(), " (logits ", ls.str(), " without the class dimension)");
  for (Index r = 0; r < R; ++r) {
    const std::int64_t tr = targets[r];
    QAWARE_CHECK(tr == ignore_index || (tr >= 0 && tr < C), "cross_entropy: target ", tr, " (element ", r,
                 " of targets ", targets.shape().str(), ") is out of range for C = ", C,
                 " classes (ignore_index = ", ignore_index, ")");
  }
  DynTensor<Scalar> loss{Shape{}}, row_max{Shape{R}}, log_sum{Shape{R}};
  const Index n = ops::cross_entropy_forward(logits.value().data(), targets.data(), loss.data(), row_max.data(),
                                             log_sum.data(), R, C, ignore_index);
  return logits.tape().record(std::move(loss), {logits},
                              [logits, targets, row_max = std::move(row_max), log_sum = std::move(log_sum), R, C,
                               ignore_index, n](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                                ops::cross_entropy_backward(dy.data(), t.value(logits).data(), targets.data(),
                                                            row_max.data(), log_sum.data(), t.grad(logits).data(), R,
                                                            C, ignore_index, n);
                              });
}

}  // namespace qaware
