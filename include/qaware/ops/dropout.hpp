#pragma once
// dropout: during training each element is kept with probability 1 - p and
// scaled by 1 / (1 - p) (inverted dropout, as torch.nn.functional.dropout),
// otherwise zeroed; the backward applies the same mask and scale.
//   x, y and the mask have N elements; p is in [0, 1).
// When !training or p == 0 the op is the identity and returns x itself (no
// node, no random numbers drawn).
//
// Determinism: a training call draws exactly one 64-bit number from `rng`
// and derives the whole mask from it: block b of 4096 elements uses its own
// generator seeded with (that number + b * golden ratio), two 32-bit draws
// per 64-bit output, element kept when its draw >= round(p * 2^32). The mask
// depends only on the Rng state and N, never on the thread count.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// keep (N): 1 = kept, 0 = dropped, from `seed` as described above.
inline void dropout_mask(std::uint64_t seed, double p, std::uint8_t* keep, Index N) {
  constexpr Index kBlock = 4096;
  const std::uint64_t threshold = static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
  const Index blocks = (N + kBlock - 1) / kBlock;
  parallel_for(0, blocks, 4, [&](Index b0, Index b1) {
    for (Index b = b0; b < b1; ++b) {
      Rng gen(seed + static_cast<std::uint64_t>(b) * 0x9e3779b97f4a7c15ULL);
      const Index lo = b * kBlock, hi = std::min(N, lo + kBlock);
      for (Index i = lo; i < hi; i += 2) {
        const std::uint64_t r = gen.next_u64();
        keep[i] = (r >> 32) >= threshold;
        if (i + 1 < hi) keep[i + 1] = (r & 0xffffffffULL) >= threshold;
      }
    }
  });
}

// x (N), keep (N) -> y (N) = keep ? x / (1 - p) : 0.
template <typename Scalar>
void dropout_forward(const Scalar* x, const std::uint8_t* keep, Scalar* y, Index N, Scalar p) {
  const Scalar s = Scalar(1) / (Scalar(1) - p);
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) y[i] = keep[i] ? x[i] * s : Scalar(0);
  });
}

// dx (N) += keep ? dy / (1 - p) : 0.
template <typename Scalar>
void dropout_backward(const Scalar* dy, const std::uint8_t* keep, Scalar* dx, Index N, Scalar p) {
  const Scalar s = Scalar(1) / (Scalar(1) - p);
  parallel_for(0, N, detail::kElementGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) dx[i] += keep[i] ? dy[i] * s : Scalar(0);
  });
}

}  // namespace ops

// Inverted dropout with drop probability p; the identity (x itself) when
// !training or p == 0.
template <typename Scalar>
Var<Scalar> dropout(Var<Scalar> x, detail::identity_t<Scalar> p, Rng& rng, bool training) {
  QAWARE_CHECK(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  const Index N = x.numel();
  DynTensor<std::uint8_t> keep(x.shape());
  ops::dropout_mask(rng.next_u64(), static_cast<double>(p), keep.data(), N);
  DynTensor<Scalar> y(x.shape());
  ops::dropout_forward(x.value().data(), keep.data(), y.data(), N, static_cast<Scalar>(p));
  return x.tape().record(std::move(y), {x},
                         [x, N, p, keep = std::move(keep)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                           ops::dropout_backward(dy.data(), keep.data(), t.grad(x).data(), N, static_cast<Scalar>(p));
                         });
}

}  // namespace qaware
