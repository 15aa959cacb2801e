#pragma once
// tanh: y = tanh(x), elementwise (the BERT pooler's activation), as
// torch.tanh. The backward reads the forward's output: dx += dy (1 - y^2).

#include "qaware/autograd/tape.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/ops/detail/record.hpp"
#include "qaware/ops/kernels/tanh.hpp"

namespace qaware {

// y = tanh(x), elementwise.
template <typename Scalar>
Var<Scalar> tanh(Var<Scalar> x) {
  DynTensor<Scalar> y(x.shape());
  const Index N = y.numel();
  ops::tanh_forward(x.value().data(), y.data(), N);
  const Var<Scalar> out = detail::next_var(x.tape());
  Var<Scalar> rec = x.tape().record(std::move(y), {x}, [x, out, N](Tape<Scalar>& t, const DynTensor<Scalar>& dy) {
    ops::tanh_backward(dy.data(), t.value(out).data(), t.grad(x).data(), N);
  });
  detail::check_next_var(out, rec, "tanh");
  return rec;
}

}  // namespace qaware
