#pragma once
// embedding: rows of a table looked up by integer ids, as
// torch.nn.functional.embedding(ids, table).
//   table is (V, C); ids has any shape S (N elements); y is S + [C].
// Ids outside [0, V) raise qaware::Error naming the id and V. The backward
// scatter-adds dy's rows into the table's gradient (repeated ids add up).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qaware/autograd/tape.hpp"
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

// y[..., :] = table[ids[...], :].
template <typename Scalar>
Var<Scalar> embedding(Var<Scalar> table, const DynTensor<std::int64_t>& ids) {
  const Shape& ts = table.shape();
  QAWARE_CHECK(ts.rank() == 2, "embedding: table must be (V, C), got ", ts.str());
  const Index V = ts[0], C = ts[1], N = ids.numel();
  for (Index n = 0; n < N; ++n) {
    QAWARE_CHECK(ids[n] >= 0 && ids[n] < V, "embedding: id ", ids[n], " (element ", n, " of ids ", ids.shape().str(),
                 ") is out of range for a table of V = ", V, " rows ", ts.str());
  }
  std::vector<Index> ys(ids.shape().begin(), ids.shape().end());
  ys.push_back(C);
  DynTensor<Scalar> y{Shape(ys)};
  ops::embedding_forward(table.value().data(), ids.data(), y.data(), N, C);
  return table.tape().record(std::move(y), {table},
                             [table, ids, N, C](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                               ops::embedding_backward(dy.data(), ids.data(), t.grad(table).data(), N, C);
                             });
}

}  // namespace qaware
