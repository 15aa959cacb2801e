#pragma once
// permute / transpose: reorder dimensions (as torch.permute followed by
// .contiguous()): y.shape[i] = x.shape[perm[i]]. Attention moves heads with
// it: [B,T,NH,HS] -> [B,NH,T,HS] (perm {0, 2, 1, 3}) and back.
//
// The copy first drops size-1 dimensions and merges dimensions that stay
// adjacent and in order, so [B,T,NH,HS] -> [B,NH,T,HS] becomes B*NH*T
// contiguous runs of HS elements. When the last dimension moves (a true
// transpose), 32 x 32 tiles keep reads and writes within cache lines.

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/permute.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

// y.shape[i] = x.shape[perm[i]], elements moved accordingly.
template <typename Scalar>
Var<Scalar> permute(Var<Scalar> x, std::vector<int> perm) {
  const Shape& xs = x.shape();
  detail::check_perm("permute", xs, perm);
  std::vector<Index> ys(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) ys[i] = xs[perm[i]];
  DynTensor<Scalar> y{Shape(ys)};
  detail::PermutePlan plan = detail::make_permute_plan(xs, perm);
  ops::permute_forward(plan, x.value().data(), y.data());
  detail::PermutePlan inverse = detail::make_permute_plan(y.shape(), detail::inverse_perm(perm));
  return x.tape().record(std::move(y), {x},
                         [x, inverse = std::move(inverse)](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
                           const auto dx = t.grad_slot(x);
                           ops::permute_backward(inverse, dy.data(), dx.data, dx.fresh);
                         });
}

// Swaps dimensions d0 and d1 (negative counts from the end).
template <typename Scalar>
Var<Scalar> transpose(Var<Scalar> x, int d0, int d1) {
  const int r = x.rank();
  const int a = detail::normalize_axis("transpose", d0, r), b = detail::normalize_axis("transpose", d1, r);
  std::vector<int> perm(static_cast<std::size_t>(r));
  for (int i = 0; i < r; ++i) perm[static_cast<std::size_t>(i)] = i;
  std::swap(perm[static_cast<std::size_t>(a)], perm[static_cast<std::size_t>(b)]);
  return permute(x, std::move(perm));
}

}  // namespace qaware
