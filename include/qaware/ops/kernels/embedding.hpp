#pragma once
// The forward and backward kernels of embedding (ops/embedding.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace ops {

// table (V, C), ids (N) with every id in [0, V) -> y (N, C).
template <typename Scalar>
void embedding_forward(const Scalar* table, const std::int64_t* ids, Scalar* y, Index N, Index C) {
  parallel_for(0, N, detail::row_grain(C), [&](Index n0, Index n1) {
    for (Index n = n0; n < n1; ++n)
      std::memcpy(y + n * C, table + static_cast<Index>(ids[n]) * C, static_cast<std::size_t>(C) * sizeof(Scalar));
  });
}

// dtable (V, C) row ids[n] += dy (N, C) row n. Threads split the columns,
// so repeated ids never race and the sum order is fixed.
template <typename Scalar>
void embedding_backward(const Scalar* dy, const std::int64_t* ids, Scalar* dtable, Index N, Index C) {
  parallel_for(0, C, std::max<Index>(16, detail::kElementGrain / std::max<Index>(N, 1)), [&](Index c0, Index c1) {
    for (Index n = 0; n < N; ++n) {
      const Scalar* g = dy + n * C;
      Scalar* d = dtable + static_cast<Index>(ids[n]) * C;
      for (Index c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

}  // namespace ops
}  // namespace qaware
