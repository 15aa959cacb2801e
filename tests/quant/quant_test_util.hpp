#pragma once
// Helpers shared by the quantization tests.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error_of.hpp"
#include "common/fixture.hpp"
#include "qaware/core/cpu.hpp"
#include "qaware/core/error.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"
#include "qaware/quant/qparams.hpp"

namespace qaware::test {

// The fake-quant kernels' instruction sets this CPU can run (scalar always);
// tests cap the library at each in turn with ScopedMaxIsa.
inline std::vector<Isa> runnable_isas() {
  std::vector<Isa> v{Isa::kScalar};
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (cpu_has(isa)) v.push_back(isa);
  return v;
}

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

using test::error_of;

// The QuantSpec a golden case describes ("<prefix>spec.bits", ".signed",
// ".narrow", ".reduce", ".custom", ".custom_min", ".custom_max", ".symmetric").
inline QuantSpec spec_from(const Fixture& f, const std::string& p) {
  auto i = [&](const char* k) { return f.scalar<std::int64_t>(p + "spec." + k); };
  QuantSpec s;
  if (i("custom")) {
    s = QuantSpec::custom(i("custom_min"), i("custom_max"), i("signed") != 0, i("symmetric") != 0);
  } else {
    s.bits = static_cast<int>(i("bits"));
    s.is_signed = i("signed") != 0;
    s.narrow_range = i("narrow") != 0;
  }
  s.reduce_range = i("reduce") != 0;
  s.symmetric = i("symmetric") != 0;
  return s;
}

}  // namespace qaware::test
