#pragma once
// What every INT8 GEMM (the CPU paths and the CUDA kernel) shares about its
// operands: how an unpacked B is laid out, and the largest |A - za| and
// |B - zb| that bound the int32 accumulator, |acc| <= K * max_a * max_b.

#include <cstdint>
#include <limits>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {
namespace gemm {

enum class BLayout {
  kKxN,  // B[k][n] = b[k*ldb + n], ldb >= N
  kNxK,  // B[k][n] = b[n*ldb + k], ldb >= K (PyTorch's Linear.weight)
};

namespace detail {

// max |B[k][n] - zero_point| over int8 B.
inline std::int64_t max_abs_b(std::int32_t zero_point) {
  const std::int64_t lo = -128 - static_cast<std::int64_t>(zero_point), hi = 127 - static_cast<std::int64_t>(zero_point);
  return lo < 0 ? (-lo > hi ? -lo : hi) : hi;
}

// max |A[m][k] - zero_point| over int8 (a_signed) or uint8 A, for a zero point within the type's range.
inline std::int64_t max_abs_a(bool a_signed, std::int32_t zero_point) {
  const std::int64_t lo = a_signed ? -128 : 0, hi = a_signed ? 127 : 255;
  return zero_point - lo > hi - zero_point ? zero_point - lo : hi - zero_point;
}

// Throws unless even the smallest activation range (|A - a_zero_point| <= 128)
// keeps |sum_k (A - za)(B - zb)| within int32 for B's zero point: the check a
// packed B makes once (each GEMM call checks its actual range). K is checked
// first: beyond 2^31 the product could wrap int64 (K = 2^50 did).
inline void check_pack_depth(const char* who, Index K, std::int32_t b_zero_point) {
  QAWARE_CHECK(K <= std::numeric_limits<std::int32_t>::max(), who, ": K = ", K,
               " is too deep for int32 accumulation (K alone exceeds 2^31 - 1); split K");
  const std::int64_t bound = static_cast<std::int64_t>(K) * 128 * max_abs_b(b_zero_point);
  QAWARE_CHECK(bound <= std::numeric_limits<std::int32_t>::max(), who, ": K = ", K,
               " is too deep for int32 accumulation: |sum| can reach K * 128 * ", max_abs_b(b_zero_point), " = ",
               bound, " > 2^31 - 1; split K");
}

// Throws unless A's zero point lies in A's type and |acc| <= K * max_a * max_b
// fits int32 (every GEMM's precondition for exact results); `who` names the caller.
inline void check_a_zero_point_and_depth(const char* who, bool a_signed, Index K, std::int32_t a_zero_point,
                                         std::int32_t b_zero_point) {
  const std::int32_t alo = a_signed ? -128 : 0, ahi = a_signed ? 127 : 255;
  QAWARE_CHECK(a_zero_point >= alo && a_zero_point <= ahi, who, ": A zero point ", a_zero_point, " is outside the ",
               a_signed ? "int8" : "uint8", " range [", alo, ", ", ahi, "]");
  const std::int64_t max_a = max_abs_a(a_signed, a_zero_point);
  const std::int64_t max_b = max_abs_b(b_zero_point);
  const std::int64_t bound = static_cast<std::int64_t>(K) * max_a * max_b;
  QAWARE_CHECK(bound <= std::numeric_limits<std::int32_t>::max(), who, ": K = ", K,
               " is too deep for int32 accumulation: |sum_k (A - ", a_zero_point, ")(B - ", b_zero_point,
               ")| can reach K * ", max_a, " * ", max_b, " = ", bound, " > 2^31 - 1; split K");
}

}  // namespace detail
}  // namespace gemm
}  // namespace qaware
