#pragma once
// Helpers shared by the INT8 GEMM tests: random matrices, the reference, and
// buffers with guard values so a write outside C (past N in a row, into the
// ldc gap, or past the last row) is caught.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/gemm/gemm.hpp"
#include "qaware/gemm/reference.hpp"

namespace qaware {
namespace gemm_test {

using gemm::BLayout;
using gemm::Output;
using gemm::PackedMatrix;
using gemm::Path;

// Sanitizer builds run the same cases; only the largest shapes are scaled down
// there (see kBigRows below) to keep the ASan/UBSan suite quick.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// A path plus, for AVX2, which of its two formats to force.
struct Variant {
  Path path;
  gemm::Avx2Format avx2_format;
};

inline std::string path_test_name(Path p) {
  switch (p) {
    case Path::kScalar: return "Scalar";
    case Path::kAvx2: return "Avx2";
    case Path::kAvxVnni: return "AvxVnni";
    case Path::kAvx512Vnni: return "Avx512Vnni";
    case Path::kAmx: return "Amx";
    default: return "None";
  }
}

inline std::string variant_test_name(const Variant& v) {
  if (v.path == Path::kAvx2 && v.avx2_format == gemm::Avx2Format::kPairs) return "Avx2Pairs";
  if (v.path == Path::kAvx2 && v.avx2_format == gemm::Avx2Format::kQuads) return "Avx2Maddubs";
  if (v.path == Path::kAvx2 && v.avx2_format == gemm::Avx2Format::kFixA) return "Avx2FixA";
  return path_test_name(v.path);
}

inline void PrintTo(const Variant& v, std::ostream* os) { *os << variant_test_name(v); }

inline bool path_runs_here(Path p) { return gemm::has(gemm::compiled_paths() & gemm::cpu_paths(), p); }

// ruy's edge-case sizes: around every power of two up to 128.
inline const std::vector<Index> kSizes = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};

// Uniform values in [lo, hi].
template <class T>
std::vector<T> random_values(Index n, Rng& rng, int lo, int hi) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(lo + static_cast<int>(rng.below(static_cast<std::uint64_t>(hi - lo + 1))));
  return v;
}

// One GEMM problem with its own data.
template <class TA>
struct Case {
  Index M, N, K, lda, ldb, ldc;
  BLayout layout;
  std::int32_t za, zb;
  std::vector<TA> a;
  std::vector<std::int8_t> b;

  Case(Index m, Index n, Index k, BLayout lay, Rng& rng, std::int32_t a_zp = 0, std::int32_t b_zp = 0, Index lda_pad = 0,
       Index ldb_pad = 0, Index ldc_pad = 0)
      : M(m), N(n), K(k), lda(k + lda_pad), ldb((lay == BLayout::kKxN ? n : k) + ldb_pad), ldc(n + ldc_pad),
        layout(lay), za(a_zp), zb(b_zp) {
    constexpr bool kSigned = std::is_same<TA, std::int8_t>::value;
    a = random_values<TA>(M * lda, rng, kSigned ? -128 : 0, kSigned ? 127 : 255);
    b = random_values<std::int8_t>((lay == BLayout::kKxN ? K : N) * ldb, rng, -128, 127);
  }

  std::vector<std::int32_t> reference() const {
    std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
    gemm::reference_gemm_s32(a.data(), M, K, lda, za, b.data(), N, ldb, layout, zb, c.data(), N);
    return c;
  }
  // avx2_format: as in Variant.
  PackedMatrix pack(Path p, gemm::Avx2Format avx2_format = gemm::Avx2Format::kChoose) const {
    return gemm::detail_pack_b(b.data(), K, N, ldb, layout, zb, p, avx2_format);
  }
  std::string str() const {
    return "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
           " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) +
           (layout == BLayout::kKxN ? " KxN" : " NxK") + " za=" + std::to_string(za) + " zb=" + std::to_string(zb) +
           (std::is_same<TA, std::int8_t>::value ? " A=int8" : " A=uint8");
  }
};

// An M x ldc output buffer plus one guard row, filled with a sentinel; check()
// compares the M x N window with `expected` and asserts the rest is untouched.
template <class T>
struct GuardedOutput {
  Index M, N, ldc;
  T sentinel;
  std::vector<T> buf;
  GuardedOutput(Index m, Index n, Index ld, T s) : M(m), N(n), ldc(ld), sentinel(s), buf(static_cast<std::size_t>((m + 1) * ld), s) {}
  T* data() { return buf.data(); }
  T at(Index m, Index n) const { return buf[static_cast<std::size_t>(m * ldc + n)]; }
  ::testing::AssertionResult untouched_outside() const {
    for (Index i = 0; i < static_cast<Index>(buf.size()); ++i) {
      const Index m = i / ldc, n = i % ldc;
      if ((m >= M || n >= N) && !(buf[static_cast<std::size_t>(i)] == sentinel))
        return ::testing::AssertionFailure() << "write outside C at row " << m << ", column " << n;
    }
    return ::testing::AssertionSuccess();
  }
};

// The size sweep: every kSizes value in four shapes, each a Case handed to
// `check` (which returns an AssertionResult); stops at the first failure.
// Leading dimensions alternate between tight and odd (`odd`, the second
// argument), A has a zero point on every third case and, with
// b_zero_points, B on every fifth.
template <class TA, class F>
::testing::AssertionResult for_each_sweep_case(BLayout layout, std::uint64_t seed, bool b_zero_points, F&& check) {
  Rng rng(seed);
  constexpr bool kSigned = std::is_same<TA, std::int8_t>::value;
  int variant = 0;
  for (Index s : kSizes) {
    const Index shapes[4][3] = {{s, s, s}, {s, 33, 17}, {19, s, 35}, {21, 13, s}};
    for (const auto& sh : shapes) {
      const bool odd = (variant % 2) == 1;
      const std::int32_t za = (variant % 3 == 2) ? (kSigned ? -7 : 131) : 0;
      const std::int32_t zb = b_zero_points && (variant % 5 == 4) ? -3 : 0;
      ++variant;
      const Case<TA> cs(sh[0], sh[1], sh[2], layout, rng, za, zb, odd ? 3 : 0, odd ? 5 : 0, odd ? 7 : 0);
      ::testing::AssertionResult r = check(cs, odd);
      if (!r) return r;
    }
  }
  return ::testing::AssertionSuccess();
}

// Runs the int32 GEMM on `path` and compares with the reference, element by element.
template <class TA>
::testing::AssertionResult int32_matches_reference(const Case<TA>& cs, Variant v) {
  const PackedMatrix pb = cs.pack(v.path, v.avx2_format);
  GuardedOutput<std::int32_t> out(cs.M, cs.N, cs.ldc, 0x5A5A5A5A);
  gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, Output::int32(out.data(), cs.ldc));
  const std::vector<std::int32_t> ref = cs.reference();
  for (Index m = 0; m < cs.M; ++m)
    for (Index n = 0; n < cs.N; ++n)
      if (out.at(m, n) != ref[static_cast<std::size_t>(m * cs.N + n)])
        return ::testing::AssertionFailure() << cs.str() << ": C[" << m << "][" << n << "] = " << out.at(m, n)
                                             << ", reference " << ref[static_cast<std::size_t>(m * cs.N + n)];
  auto guard = out.untouched_outside();
  if (!guard) return guard << " (" << cs.str() << ")";
  return ::testing::AssertionSuccess();
}

}  // namespace gemm_test
}  // namespace qaware
