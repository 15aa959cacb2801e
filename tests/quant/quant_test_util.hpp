#pragma once
// Helpers shared by the quantization tests.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/fixture.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"

namespace qaware::test {

// Every kernel ISA this CPU can run (the scalar one always).
inline std::vector<detail::fq::Isa> runnable_isas() {
  using detail::fq::Isa;
  std::vector<Isa> v{Isa::Scalar};
  if (detail::fq::cpu_isa() >= Isa::Avx2) v.push_back(Isa::Avx2);
  if (detail::fq::cpu_isa() >= Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

// Limits the fake-quant kernels to `isa` for the guard's lifetime.
class IsaLimit {
 public:
  explicit IsaLimit(detail::fq::Isa isa) : prev_(detail::fq::isa_limit().load()) {
    detail::fq::isa_limit().store(static_cast<int>(isa));
  }
  ~IsaLimit() { detail::fq::isa_limit().store(prev_); }
  IsaLimit(const IsaLimit&) = delete;
  IsaLimit& operator=(const IsaLimit&) = delete;

 private:
  int prev_;
};

// Bit-for-bit equality of two float buffers (so NaN == NaN and -0 != +0);
// reports the first few differences.
template <typename T>
::testing::AssertionResult bits_equal(const T* a, const T* b, Index n, const std::string& what) {
  int bad = 0;
  std::string msg;
  for (Index i = 0; i < n; ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      if (++bad <= 5) msg += what + "[" + std::to_string(i) + "]: " + std::to_string(a[i]) + " vs " + std::to_string(b[i]) + "\n";
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " elements differ\n" << msg;
}

// Value equality of two float buffers where NaN equals NaN and -0 equals +0
// (gradients accumulate into zeros, so a -0 term comes out as +0).
template <typename T>
::testing::AssertionResult values_equal(const T* a, const T* b, Index n, const std::string& what) {
  int bad = 0;
  std::string msg;
  for (Index i = 0; i < n; ++i) {
    const bool same = (a[i] == b[i]) || (std::isnan(a[i]) && std::isnan(b[i]));
    if (!same && ++bad <= 5) msg += what + "[" + std::to_string(i) + "]: " + std::to_string(a[i]) + " vs " + std::to_string(b[i]) + "\n";
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " elements differ\n" << msg;
}

inline std::string case_prefix(const std::string& group, std::int64_t i) {
  return group + "." + std::to_string(i) + ".";
}

}  // namespace qaware::test
