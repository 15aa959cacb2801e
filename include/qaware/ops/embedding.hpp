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
#include "qaware/ops/kernels/embedding.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

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
