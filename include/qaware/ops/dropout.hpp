#pragma once
// dropout: during training each element is kept with probability 1 - p and
// scaled by 1 / (1 - p) (inverted dropout, as torch.nn.functional.dropout),
// otherwise zeroed; the backward applies the same mask and scale.
//   x, y and the mask have N elements; p is in [0, 1).
// When !training or p == 0 the op is the identity and returns x itself (no
// node, no random numbers drawn).
//
// The mask is a function of one 64-bit draw from `rng` and the element index
// only (ops/kernels/dropout.hpp defines it), so it never depends on the thread
// count or the code path.

#include <cstdint>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/detail/common.hpp"
#include "qaware/ops/kernels/dropout.hpp"

namespace qaware {

// Inverted dropout with drop probability p; the identity (x itself) when
// !training or p == 0.
template <typename Scalar>
Var<Scalar> dropout(Var<Scalar> x, detail::identity_t<Scalar> p, Rng& rng, bool training) {
  QAWARE_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  const Index N = x.numel();
  std::vector<std::uint8_t> bits(static_cast<std::size_t>((N + 7) / 8));
  DynTensor<Scalar> y(x.shape());
  ops::dropout_forward(rng.next_u64(), static_cast<double>(p), x.value().data(), y.data(), bits.data(), N);
  return x.tape().record(std::move(y), {x},
                         [x, N, p, bits = std::move(bits)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                           const auto dx = t.grad_slot(x);
                           ops::dropout_backward(dy.data(), bits.data(), dx.data, N, static_cast<Scalar>(p), dx.fresh);
                         });
}

}  // namespace qaware
