#pragma once
// qaware::Shape: the dimensions of a row-major tensor whose rank is known at
// run time (the tape, Params, file IO). Formatting follows PyTorch: [2, 8, 64].

#include <cstddef>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "qaware/core/error.hpp"

namespace qaware {

using Index = std::ptrdiff_t;  // the same type as Eigen::Index

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<Index> dims) : dims_(dims) { validate(); }
  explicit Shape(std::vector<Index> dims) : dims_(std::move(dims)) { validate(); }
  template <typename It>
  Shape(It first, It last) : dims_(first, last) { validate(); }

  int rank() const { return static_cast<int>(dims_.size()); }
  Index operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  Index& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  // Dimension i counted from the end when negative (dim(-1) is the last).
  Index dim(int i) const {
    const int r = rank();
    const int k = i < 0 ? r + i : i;
    QAWARE_CHECK(k >= 0 && k < r, "Shape::dim: axis ", i, " is out of range for shape ", str());
    return dims_[static_cast<std::size_t>(k)];
  }
  Index numel() const {
    Index n = 1;
    for (Index d : dims_) n *= d;
    return n;
  }
  // Product of all dimensions but the last (the rows of the matrix view).
  Index rows() const {
    Index n = 1;
    for (std::size_t i = 0; i + 1 < dims_.size(); ++i) n *= dims_[i];
    return n;
  }
  // The last dimension (the columns of the matrix view); 1 for a scalar.
  Index cols() const { return dims_.empty() ? 1 : dims_.back(); }

  const std::vector<Index>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  std::string str() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  // Dimensions are non-negative and their product fits in Index (so numel(),
  // rows() and byte counts cannot overflow).
  void validate() const {
    Index n = 1;
    for (Index d : dims_) {
      QAWARE_CHECK(d >= 0, "Shape: negative dimension in ", str());
      QAWARE_CHECK(d == 0 || n <= std::numeric_limits<Index>::max() / d, "Shape: ", str(),
                   " has more elements than an Index can count");
      n *= d;
    }
  }
  std::vector<Index> dims_;
};

}  // namespace qaware
