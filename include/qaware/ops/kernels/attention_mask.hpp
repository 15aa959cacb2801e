#pragma once
// The additive attention mask the attention layers (QATAttention and the
// exported model's deploy::Attention) build from a padding mask, without the
// tape.

#include <limits>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"

namespace qaware {

// The additive attention mask [B, 1, 1, T] of a padding mask [B, T] (1 =
// attend, 0 = padding): 0 where attended, the lowest finite Scalar where
// padded (as transformers' (1 - mask) * finfo.min). Adding it to a score
// leaves the lowest finite value (finite, so no inf - inf), whose
// exponential after the softmax's max subtraction is exactly 0. A row whose
// keys are all padding gets uniform weights, as in transformers.
template <typename Scalar>
DynTensor<Scalar> additive_attention_mask(const DynTensor<Scalar>& padding_mask, Index B, Index T) {
  QAWARE_CHECK(padding_mask.shape() == Shape({B, T}), "attention: the padding mask must be [B, T] = [", B, ", ", T,
               "] (1 = attend, 0 = padding), got ", padding_mask.shape().str());
  DynTensor<Scalar> m(Shape{B, 1, 1, T});
  for (Index i = 0; i < B * T; ++i) {
    const Scalar v = padding_mask[i];
    QAWARE_CHECK(v == Scalar(0) || v == Scalar(1), "attention: padding mask entries must be 0 or 1, got ", v,
                 " at flat index ", i);
    m[i] = v == Scalar(1) ? Scalar(0) : std::numeric_limits<Scalar>::lowest();
  }
  return m;
}

}  // namespace qaware
