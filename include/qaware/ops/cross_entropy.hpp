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
//
// With class probabilities as targets (probs with logits' shape), as
// torch.nn.functional.cross_entropy(logits.view(-1, C), probs.view(-1, C))
// (PyTorch >= 1.10, reduction 'mean'): the soft-target loss of knowledge
// distillation.
//   loss = (1 / R) * sum over all R rows of sum_c probs[r, c] *
//          (logsumexp(row) - row[c]),
// so a row of zeros contributes nothing but still counts in R (as in
// PyTorch). Rows need not sum to 1; every entry must be finite and >= 0
// (qaware::Error naming the first bad one). The gradient is
// (1 / R) * (softmax(row) * sum_c probs[r, c] - probs[r, :]). No rows
// (R = 0) give a loss of 0 (PyTorch: NaN), as all-ignored targets do above.

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

// Mean cross-entropy of logits (..., C) against class probabilities probs
// (..., C): a constant, as the soft targets of a teacher are.
template <typename Scalar>
Var<Scalar> cross_entropy(Var<Scalar> logits, const DynTensor<Scalar>& probs) {
  const Shape& ls = logits.shape();
  QAWARE_CHECK(ls.rank() >= 1, "cross_entropy: logits must have rank >= 1 (..., C), got ", ls.str());
  QAWARE_CHECK(probs.shape() == ls, "cross_entropy: target probabilities ", probs.shape().str(),
               " must have the logits' shape ", ls.str());
  const Index C = ls.dim(-1), R = ls.rows();
  QAWARE_CHECK(C > 0, "cross_entropy: logits ", ls.str(), " have no classes");
  for (Index i = 0; i < probs.numel(); ++i) {
    const Scalar p = probs[i];
    QAWARE_CHECK(std::isfinite(p) && p >= Scalar(0), "cross_entropy: target probability ", p, " (row ", i / C,
                 ", class ", i % C, " of ", ls.str(), ") is not finite and >= 0");
  }
  DynTensor<Scalar> loss{Shape{}}, row_max{Shape{R}}, log_sum{Shape{R}};
  ops::soft_cross_entropy_forward(logits.value().data(), probs.data(), loss.data(), row_max.data(), log_sum.data(), R,
                                  C);
  return logits.tape().record(std::move(loss), {logits},
                              [logits, probs, row_max = std::move(row_max), log_sum = std::move(log_sum), R, C](
                                  Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                                ops::soft_cross_entropy_backward(dy.data(), t.value(logits).data(), probs.data(),
                                                                 row_max.data(), log_sum.data(),
                                                                 t.grad(logits).data(), R, C);
                              });
}

}  // namespace qaware
