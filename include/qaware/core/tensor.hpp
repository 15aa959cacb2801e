#pragma once
// Tensor aliases and views.
//
// Public tensors are Eigen::Tensor<Scalar, Rank, Eigen::RowMajor> so that
// their memory layout matches PyTorch, NumPy and safetensors. Large products
// go through row-major Eigen::Matrix maps (as_matrix) so Eigen's GEMM does the
// work.
//
// DynTensor<Scalar> is the run-time-rank tensor the autograd tape, Params and
// file IO store: a Shape plus 64-byte aligned contiguous row-major data. It
// converts to and from the fixed-rank Eigen types with view<R>() / from().

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "qaware/core/intrinsics.hpp"  // before Eigen: see there
#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>

#include "qaware/core/buffer_cache.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {

template <typename Scalar, int Rank>
using Tensor = Eigen::Tensor<Scalar, Rank, Eigen::RowMajor>;
template <typename Scalar, int Rank>
using TensorMap = Eigen::TensorMap<Tensor<Scalar, Rank>>;
template <typename Scalar, int Rank>
using ConstTensorMap = Eigen::TensorMap<const Tensor<Scalar, Rank>>;

template <typename Scalar>
using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename Scalar>
using MatrixMap = Eigen::Map<Matrix<Scalar>>;
template <typename Scalar>
using ConstMatrixMap = Eigen::Map<const Matrix<Scalar>>;
template <typename Scalar>
using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
template <typename Scalar>
using VectorMap = Eigen::Map<Vector<Scalar>>;
template <typename Scalar>
using ConstVectorMap = Eigen::Map<const Vector<Scalar>>;

// ---------------------------------------------------------------------------
// Shapes of fixed-rank Eigen tensors.

template <typename Derived>
Shape shape_of(const Eigen::TensorBase<Derived, Eigen::ReadOnlyAccessors>& t) {
  const auto& d = static_cast<const Derived&>(t).dimensions();
  return Shape(d.begin(), d.end());
}

template <typename Scalar, int Rank>
Shape shape_of(const Tensor<Scalar, Rank>& t) {
  const auto& d = t.dimensions();
  return Shape(d.begin(), d.end());
}

template <int Rank>
Eigen::DSizes<Eigen::Index, Rank> to_dsizes(const Shape& s, const char* caller = "to_dsizes") {
  QAWARE_CHECK(s.rank() == Rank, caller, ": expected a rank-", Rank, " shape, got ", s.str());
  Eigen::DSizes<Eigen::Index, Rank> d;
  for (int i = 0; i < Rank; ++i) d[i] = s[i];
  return d;
}

namespace detail {
// Product of all dimensions but the last: the rows of the matrix view (the
// same as Shape::rows(), also when the last dimension is 0).
template <typename Scalar, int Rank>
Index leading_rows(const Tensor<Scalar, Rank>& t) {
  Index rows = 1;
  for (int i = 0; i + 1 < Rank; ++i) rows *= t.dimension(i);
  return rows;
}
template <typename Scalar, int Rank>
void check_matrix_view(const Tensor<Scalar, Rank>& t, Index rows, Index cols) {
  QAWARE_CHECK(rows >= 0 && cols >= 0 && rows * cols == t.size(), "as_matrix: cannot view a tensor of shape ",
               shape_of(t).str(), " as a ", rows, " x ", cols, " matrix");
}
}  // namespace detail

// View a row-major tensor as a matrix: rows = product of all leading dims,
// cols = last dim. The map aliases the tensor's memory.
template <typename Scalar, int Rank>
MatrixMap<Scalar> as_matrix(Tensor<Scalar, Rank>& t) {
  static_assert(Rank >= 1, "as_matrix needs rank >= 1");
  return MatrixMap<Scalar>(t.data(), detail::leading_rows(t), t.dimension(Rank - 1));
}
template <typename Scalar, int Rank>
ConstMatrixMap<Scalar> as_matrix(const Tensor<Scalar, Rank>& t) {
  static_assert(Rank >= 1, "as_matrix needs rank >= 1");
  return ConstMatrixMap<Scalar>(t.data(), detail::leading_rows(t), t.dimension(Rank - 1));
}
// View with explicit rows x cols; rows * cols must equal the tensor's size.
template <typename Scalar, int Rank>
MatrixMap<Scalar> as_matrix(Tensor<Scalar, Rank>& t, Index rows, Index cols) {
  detail::check_matrix_view(t, rows, cols);
  return MatrixMap<Scalar>(t.data(), rows, cols);
}
template <typename Scalar, int Rank>
ConstMatrixMap<Scalar> as_matrix(const Tensor<Scalar, Rank>& t, Index rows, Index cols) {
  detail::check_matrix_view(t, rows, cols);
  return ConstMatrixMap<Scalar>(t.data(), rows, cols);
}

// ---------------------------------------------------------------------------
// DynTensor: run-time rank, row-major, 64-byte aligned.

template <typename Scalar>
class DynTensor {
  static_assert(std::is_trivially_copyable_v<Scalar>, "DynTensor holds plain numbers");

 public:
  using value_type = Scalar;

  // An empty tensor of shape [0] (no storage). A moved-from DynTensor is
  // left in this state too.
  DynTensor() = default;
  // Uninitialised storage of the given shape (use zeros() for zero-filled).
  explicit DynTensor(Shape shape) : shape_(std::move(shape)) { allocate(); }
  DynTensor(Shape shape, Scalar fill) : DynTensor(std::move(shape)) { this->fill(fill); }

  static DynTensor zeros(Shape shape) { return DynTensor(std::move(shape), Scalar(0)); }
  static DynTensor empty_like(const DynTensor& other) { return DynTensor(other.shape()); }
  static DynTensor zeros_like(const DynTensor& other) { return zeros(other.shape()); }

  template <int Rank>
  static DynTensor from(const Tensor<Scalar, Rank>& t) {
    DynTensor out(shape_of(t));
    if (out.numel()) std::memcpy(out.data(), t.data(), static_cast<std::size_t>(out.numel()) * sizeof(Scalar));
    return out;
  }
  static DynTensor from(Shape shape, const Scalar* data) {
    QAWARE_CHECK(data != nullptr || shape.numel() == 0, "DynTensor::from: null data for shape ", shape.str());
    DynTensor out(std::move(shape));
    if (out.numel()) std::memcpy(out.data(), data, static_cast<std::size_t>(out.numel()) * sizeof(Scalar));
    return out;
  }

  DynTensor(const DynTensor& o) : shape_(o.shape_) {
    allocate();
    if (numel()) std::memcpy(data(), o.data(), bytes());
  }
  DynTensor& operator=(const DynTensor& o) {
    if (this != &o) {
      if (o.numel() != numel()) {
        shape_ = o.shape_;
        allocate();
      } else {
        shape_ = o.shape_;
      }
      if (numel()) std::memcpy(data(), o.data(), bytes());
    }
    return *this;
  }
  // Moves leave the source empty, shape [0], so its numel() matches its
  // (absent) storage.
  DynTensor(DynTensor&& o) noexcept : shape_(std::exchange(o.shape_, Shape{0})), ptr_(std::move(o.ptr_)) {}
  DynTensor& operator=(DynTensor&& o) noexcept {
    if (this != &o) {
      shape_ = std::exchange(o.shape_, Shape{0});
      ptr_ = std::move(o.ptr_);
    }
    return *this;
  }

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  Index numel() const { return shape_.numel(); }
  Index dim(int i) const { return shape_.dim(i); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(Scalar); }
  bool empty() const { return numel() == 0; }

  Scalar* data() { return ptr_.get(); }
  const Scalar* data() const { return ptr_.get(); }
  Scalar& operator[](Index i) { return ptr_.get()[i]; }
  const Scalar& operator[](Index i) const { return ptr_.get()[i]; }
  Scalar* begin() { return data(); }
  Scalar* end() { return data() + numel(); }
  const Scalar* begin() const { return data(); }
  const Scalar* end() const { return data() + numel(); }

  void fill(Scalar v) { std::fill(begin(), end(), v); }
  void set_zero() {
    if (numel()) std::memset(data(), 0, bytes());
  }

  // Same data, new shape with the same number of elements.
  void reshape(Shape s) {
    QAWARE_CHECK(s.numel() == numel(), "reshape: cannot reshape ", shape_.str(), " (", numel(),
                 " elements) to ", s.str(), " (", s.numel(), " elements)");
    shape_ = std::move(s);
  }

  // Fixed-rank Eigen views; the rank must match.
  template <int Rank>
  TensorMap<Scalar, Rank> view() {
    return TensorMap<Scalar, Rank>(data(), to_dsizes<Rank>(shape_, "DynTensor::view"));
  }
  template <int Rank>
  ConstTensorMap<Scalar, Rank> view() const {
    return ConstTensorMap<Scalar, Rank>(data(), to_dsizes<Rank>(shape_, "DynTensor::view"));
  }
  // A copy as a fixed-rank Eigen tensor.
  template <int Rank>
  Tensor<Scalar, Rank> to_tensor() const {
    Tensor<Scalar, Rank> t(to_dsizes<Rank>(shape_, "DynTensor::to_tensor"));
    if (numel()) std::memcpy(t.data(), data(), bytes());
    return t;
  }

  // Matrix view: rows = product of leading dims, cols = last dim.
  MatrixMap<Scalar> matrix() { return MatrixMap<Scalar>(data(), shape_.rows(), shape_.cols()); }
  ConstMatrixMap<Scalar> matrix() const { return ConstMatrixMap<Scalar>(data(), shape_.rows(), shape_.cols()); }
  MatrixMap<Scalar> matrix(Index rows, Index cols) {
    check_matrix(rows, cols);
    return MatrixMap<Scalar>(data(), rows, cols);
  }
  ConstMatrixMap<Scalar> matrix(Index rows, Index cols) const {
    check_matrix(rows, cols);
    return ConstMatrixMap<Scalar>(data(), rows, cols);
  }
  VectorMap<Scalar> flat() { return VectorMap<Scalar>(data(), numel()); }
  ConstVectorMap<Scalar> flat() const { return ConstVectorMap<Scalar>(data(), numel()); }

  // Elementwise conversion to another scalar type (e.g. double -> float).
  template <typename Other>
  DynTensor<Other> cast() const {
    DynTensor<Other> out(shape_);
    for (Index i = 0; i < numel(); ++i) out[i] = static_cast<Other>((*this)[i]);
    return out;
  }

 private:
  void allocate() {
    // Shape bounds numel by Index, not numel * sizeof(Scalar) by size_t: a
    // shape whose byte count (rounded up to 64) would wrap is refused here
    // rather than given a wrapped, tiny buffer.
    constexpr std::uint64_t kMaxElements = (std::numeric_limits<std::size_t>::max() - 64) / sizeof(Scalar);
    QAWARE_CHECK(static_cast<std::uint64_t>(shape_.numel()) <= kMaxElements, "DynTensor: ", shape_.str(), " (",
                 shape_.numel(), " elements of ", sizeof(Scalar), " bytes) does not fit in memory");
    // Storage comes from and goes back to the BufferCache (large buffers are
    // recycled; see core/buffer_cache.hpp), in whole 64-byte units.
    const std::size_t n = detail::BufferCache::round_up(bytes());
    void* p = nullptr;
    try {
      p = detail::BufferCache::instance().allocate(n);
    } catch (const std::bad_alloc&) {
      throw Error(detail::concat("DynTensor: cannot allocate ", n, " bytes for ", shape_.str()));
    }
    ptr_ = std::unique_ptr<Scalar[], detail::BufferRelease>(static_cast<Scalar*>(p), detail::BufferRelease{n});
  }
  void check_matrix(Index rows, Index cols) const {
    QAWARE_CHECK(rows * cols == numel(), "matrix: cannot view ", shape_.str(), " as ", rows, " x ", cols);
  }

  Shape shape_{0};
  std::unique_ptr<Scalar[], detail::BufferRelease> ptr_;
};

}  // namespace qaware
