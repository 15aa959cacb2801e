#pragma once
// Internal helpers shared by the ops (not part of the public API), without
// the tape (the ops' kernels use them): axis normalisation and a cursor over
// strided multi-indices. The non-deduced parameter type identity_t is in
// core/type_identity.hpp, the parallel grains in core/threading.hpp, the gradient-write modes in
// autograd/grad_write.hpp (the quantization kernels use them too).

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "qaware/autograd/grad_write.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/core/type_identity.hpp"

namespace qaware {
namespace detail {

// Axis i of a rank-r tensor, negative counting from the end (-1 = last).
inline int normalize_axis(const char* op, int axis, int rank) {
  QAWARE_CHECK(axis >= -rank && axis < rank, op, ": axis ", axis, " is out of range for a rank-", rank, " tensor");
  return axis < 0 ? axis + rank : axis;
}

// Contiguous (row-major) strides of `dims`.
inline std::vector<Index> contiguous_strides(const std::vector<Index>& dims) {
  std::vector<Index> s(dims.size());
  Index acc = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

// Walks the multi-indices of `dims` in row-major order from a linear start
// position, keeping K element offsets (one per stride set) up to date.
template <int K>
class StridedCursor {
 public:
  StridedCursor(const std::vector<Index>& dims, const std::array<const std::vector<Index>*, K>& strides, Index start)
      : dims_(dims), strides_(strides), idx_(dims.size(), 0) {
    offset_.fill(0);
    for (std::size_t d = dims.size(); d-- > 0;) {
      const Index i = dims[d] ? start % dims[d] : 0;
      start = dims[d] ? start / dims[d] : 0;
      idx_[d] = i;
      for (int k = 0; k < K; ++k) offset_[static_cast<std::size_t>(k)] += i * (*strides_[static_cast<std::size_t>(k)])[d];
    }
  }
  Index offset(int k) const { return offset_[static_cast<std::size_t>(k)]; }
  void next() {
    for (std::size_t d = dims_.size(); d-- > 0;) {
      for (int k = 0; k < K; ++k) offset_[static_cast<std::size_t>(k)] += (*strides_[static_cast<std::size_t>(k)])[d];
      if (++idx_[d] < dims_[d]) return;
      for (int k = 0; k < K; ++k)
        offset_[static_cast<std::size_t>(k)] -= dims_[d] * (*strides_[static_cast<std::size_t>(k)])[d];
      idx_[d] = 0;
    }
  }

 private:
  const std::vector<Index>& dims_;
  std::array<const std::vector<Index>*, K> strides_;
  std::vector<Index> idx_;
  std::array<Index, static_cast<std::size_t>(K)> offset_{};
};

}  // namespace detail
}  // namespace qaware
