#pragma once
// Helpers shared by the nn tests.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "qaware/core/tensor.hpp"

namespace qaware::test {

// max |a - b| <= tol * max(max |b|, floor) elementwise; reports the worst
// element. The tolerance is relative to the tensor's scale (not to each
// element), the right yardstick for sums whose terms cancel.
template <typename A, typename B>
::testing::AssertionResult close_to_scale(const DynTensor<A>& a, const DynTensor<B>& b, double tol,
                                          const std::string& what, double floor = 1e-30) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << what << ": shape " << a.shape().str() << " vs " << b.shape().str();
  double ref = floor, worst = 0.0;
  Index at = 0;
  for (Index i = 0; i < b.numel(); ++i) ref = std::max(ref, std::abs(static_cast<double>(b[i])));
  for (Index i = 0; i < a.numel(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (worst <= tol * ref) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max |diff| " << worst << " at " << at << " (" << a[at] << " vs "
                                       << b[at] << ") exceeds " << tol << " * " << ref;
}

// Bit-for-bit equality of two float tensors.
template <typename T>
::testing::AssertionResult bit_identical(const DynTensor<T>& a, const DynTensor<T>& b, const std::string& what) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << what << ": shape " << a.shape().str() << " vs " << b.shape().str();
  Index bad = 0, first = -1;
  for (Index i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      if (first < 0) first = i;
      ++bad;
    }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << a.numel() << " elements differ; first at "
                                       << first << ": " << a[first] << " vs " << b[first];
}

template <typename T>
double max_abs(const DynTensor<T>& t) {
  double m = 0.0;
  for (Index i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(t[i])));
  return m;
}

// The largest |a - b| / max(|b|) over a tensor (for reporting).
template <typename A, typename B>
double scaled_error(const DynTensor<A>& a, const DynTensor<B>& b) {
  double ref = 1e-30, worst = 0.0;
  for (Index i = 0; i < b.numel(); ++i) ref = std::max(ref, std::abs(static_cast<double>(b[i])));
  for (Index i = 0; i < a.numel(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return worst / ref;
}

}  // namespace qaware::test
