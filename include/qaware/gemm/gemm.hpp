#pragma once
// INT8 GEMM: C = A * B with int32 accumulation, then an output stage.
//
//   auto w = qaware::gemm::pack_b(weight, K, N, /*ldb=*/K, qaware::gemm::BLayout::kNxK);
//   qaware::gemm::gemm(x, M, K, /*lda=*/K, x_zero_point, w, qaware::gemm::Output::int32(c, N));
//
// A is uint8 or int8, M x K, row-major with leading dimension lda >= K. B is a
// PackedMatrix (packed once, see packed_matrix.hpp). The layers, as in ruy:
//   gemm() -> validate -> the path B was packed for (checked against this CPU)
//          -> plan blocks -> per worker: pack A block -> micro-kernel -> output stage.
// The integer result is exact on every path:
//   acc[m][n] = sum_k (A[m][k] - a_zero_point) * (B[k][n] - b_zero_point)
// with the zero points folded in afterwards from row sums of A (computed while
// packing A, only when B has a zero point) and column sums of B (computed by
// pack_b). K must be small enough that |acc| cannot pass 2^31 - 1 for the given
// types and zero points; otherwise qaware::Error names K. Work is split over M
// blocks (and N panel chunks when M is small) across qaware::num_threads()
// workers via qaware::parallel_for. reference.hpp holds the triple-loop oracle.

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/gemm/kernels/amx.hpp"
#include "qaware/gemm/kernels/avx2.hpp"
#include "qaware/gemm/kernels/avx512_vnni.hpp"
#include "qaware/gemm/kernels/avx_vnni.hpp"
#include "qaware/gemm/kernels/common.hpp"
#include "qaware/gemm/kernels/scalar.hpp"
#include "qaware/gemm/output.hpp"
#include "qaware/gemm/packed_matrix.hpp"
#include "qaware/gemm/path.hpp"

namespace qaware {
namespace gemm {
namespace detail {

// Checks every argument and returns the problem; throws qaware::Error.
template <class TA>
Problem validate(const TA* a, Index M, Index K, Index lda, std::int32_t a_zero_point, const PackedMatrix& b,
                 const Output& out) {
  static_assert(std::is_same<TA, std::uint8_t>::value || std::is_same<TA, std::int8_t>::value,
                "gemm: A must be uint8_t or int8_t");
  constexpr bool kSigned = std::is_same<TA, std::int8_t>::value;
  QAWARE_CHECK(!b.empty(), "gemm: B is an empty PackedMatrix (pack it with pack_b first)");
  const Index N = b.cols();
  QAWARE_CHECK(a != nullptr, "gemm: A is null (M = ", M, ", K = ", K, ")");
  QAWARE_CHECK(M >= 1, "gemm: M must be >= 1, got ", M);
  QAWARE_CHECK(K == b.depth(), "gemm: A has K = ", K, " columns but B was packed with K = ", b.depth(), " (N = ", N,
               ")");
  QAWARE_CHECK(lda >= K, "gemm: lda = ", lda, " is smaller than K = ", K);
  const Path path = b.path();
  QAWARE_CHECK(has(compiled_paths() & cpu_paths(), path), "gemm: B was packed for path '", path_name(path),
               "', which this CPU/OS does not support (supported: ", paths_string(compiled_paths() & cpu_paths()),
               "); pack again for one of those");
  check_a_zero_point_and_depth("gemm", kSigned, K, a_zero_point, b.zero_point());

  QAWARE_CHECK(out.data() != nullptr, "gemm: output C is null (M = ", M, ", N = ", N, ")");
  QAWARE_CHECK(out.ldc() >= N, "gemm: ldc = ", out.ldc(), " is smaller than N = ", N);
  const Output::Kind kind = out.kind();
  if (kind != Output::Kind::kInt32) check_dequantize("gemm", out.dequant(), N);
  if (kind == Output::Kind::kUint8 || kind == Output::Kind::kInt8)
    check_requantize("gemm", kind, out.out_scale(), out.out_zero_point(), out.qmin(), out.qmax());
  Problem p;
  p.a = a;
  p.a_signed = kSigned;
  p.M = M;
  p.K = K;
  p.lda = lda;
  p.a_zp = a_zero_point;
  p.b = &b;
  p.out = out;
  return p;
}

inline void run_path(const Problem& p) {
  switch (p.b->path()) {
#if QAWARE_GEMM_X86
    case Path::kAvx2:
      switch (p.b->format()) {
        case Format::kAvx2Quads: run_kernel<Avx2QuadsKernel>(p); break;
        case Format::kAvx2FixA: run_kernel<Avx2FixAKernel>(p); break;
        default: run_kernel<Avx2Kernel>(p); break;
      }
      break;
    case Path::kAvxVnni: run_kernel<AvxVnniKernel>(p); break;
    case Path::kAvx512Vnni: run_kernel<Avx512VnniKernel>(p); break;
    case Path::kAmx: run_kernel<AmxKernel>(p); break;
#endif
    default: run_kernel<ScalarKernel>(p); break;
  }
  note_path_ran(p.b->path());
}

}  // namespace detail

// C = output_stage((A - a_zero_point) * (B - b_zero_point)), A uint8, M x K.
inline void gemm(const std::uint8_t* a, Index M, Index K, Index lda, std::int32_t a_zero_point, const PackedMatrix& b,
                 const Output& out) {
  detail::run_path(detail::validate(a, M, K, lda, a_zero_point, b, out));
}

// The same with int8 A.
inline void gemm(const std::int8_t* a, Index M, Index K, Index lda, std::int32_t a_zero_point, const PackedMatrix& b,
                 const Output& out) {
  detail::run_path(detail::validate(a, M, K, lda, a_zero_point, b, out));
}

}  // namespace gemm
}  // namespace qaware
