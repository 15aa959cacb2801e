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

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/cross_entropy.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

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
