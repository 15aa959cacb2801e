#pragma once
// detail::identity_t<T>: T as a parameter type that takes no part in template
// argument deduction (C++20's std::type_identity_t), so scale(Var<float>, 0.5)
// and fake_quantize_per_tensor_affine(x_float, 0.1, ...) deduce Scalar from
// the tensor alone and convert the number.

namespace qaware {
namespace detail {

template <typename T>
struct type_identity {
  using type = T;
};
template <typename T>
using identity_t = typename type_identity<T>::type;

}  // namespace detail
}  // namespace qaware
