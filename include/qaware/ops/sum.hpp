#pragma once
// sum: the sum of all elements (one element, shape []), or along one axis
// (that axis removed), as torch.sum(x) and torch.sum(x, dim).
// mean.hpp reuses the kernels here with a factor 1/count.

#include <algorithm>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/ops/kernels/sum.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {

// The sum of every element of x, shape [].
template <typename Scalar>
Var<Scalar> sum(Var<Scalar> x) {
  DynTensor<Scalar> y{Shape{}};
  const Index N = x.numel();
  ops::sum_forward(x.value().data(), y.data(), N);
  return x.tape().record(std::move(y), {x}, [x, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    ops::sum_backward(dy.data(), t.grad(x).data(), N);
  });
}

// The sum along `axis` (negative counts from the end); that axis is removed.
template <typename Scalar>
Var<Scalar> sum(Var<Scalar> x, int axis) {
  const detail::AxisSplit s = detail::split_axis("sum", x.shape(), axis);
  DynTensor<Scalar> y(s.reduced);
  ops::sum_axis_forward(x.value().data(), y.data(), s.P, s.A, s.Q);
  return x.tape().record(std::move(y), {x}, [x, s](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    ops::sum_axis_backward(dy.data(), t.grad(x).data(), s.P, s.A, s.Q);
  });
}

}  // namespace qaware
