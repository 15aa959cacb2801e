// The packing and block loop of the paths this CPU may not run (AVX-VNNI,
// AVX-512 VNNI, AMX), checked here on any x86-64 machine: each path's real
// pack_b layout, A packing, +128 compensation, K blocking, threading and
// output stage run through the real driver, with the micro-kernel replaced by
// a scalar model of the instruction it uses:
//   vpdpbusd: acc[j] += sum_{i<4} uint8 a[4q+i] * int8 b[q][j][i]
//   tdpbusd/tdpbssd: C[m][n] += sum_{q<16, i<4} A[m][4q+i] * B[q][4n+i]
// This proves the layouts and index arithmetic; the intrinsics themselves are
// only exercised by gemm_test.cpp on a CPU that has them.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gemm/gemm_test_util.hpp"
#include "qaware/core/threading.hpp"

#if QAWARE_GEMM_X86

namespace qaware {
namespace gemm_test {
namespace {

using gemm::detail::drive;
using gemm::detail::Plan;
using gemm::detail::Problem;

// vpdpbusd model on the [kc/4][MR][4] A and [kc/4][NR][4] B sub-panels.
template <class Base>
struct EmulatedVnni : Base {
  using AElem = typename Base::AElem;
  static constexpr Index MR = Base::MR, NR = Base::NR;
  static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool /*a_signed*/, bool accumulate,
                    std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    for (int r = 0; r < rows; ++r) {
      for (Index j = 0; j < NR; ++j) {
        std::uint32_t acc = accumulate ? static_cast<std::uint32_t>(tile[r * NR + j]) : 0u;
        for (Index q = 0; q < kc / 4; ++q)
          for (Index i = 0; i < 4; ++i)
            acc += static_cast<std::uint32_t>(static_cast<std::int32_t>(a[q * MR * 4 + r * 4 + i]) *
                                              static_cast<std::int32_t>(b[(q * NR + j) * 4 + i]));
        tile[r * NR + j] = static_cast<std::int32_t>(acc);
      }
    }
  }
  static void worker(const Problem& p, const Plan& pl, unsigned char* shared, unsigned char* scratch, Index t0,
                     Index t1) {
    drive<EmulatedVnni>(p, pl, shared, scratch, t0, t1);
  }
};

// tdpbusd / tdpbssd model on 1 KiB tiles: A [kc/64][2][16][64], B [kc/64][2][16][16][4].
struct EmulatedAmx : gemm::detail::AmxKernel {
  static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool a_signed, bool accumulate,
                    std::int32_t* tile) {
    const std::int8_t* b = static_cast<const std::int8_t*>(bsub);
    const int computed_rows = rows > 16 ? 32 : 16;  // whole tiles, as the hardware does
    for (int r = 0; r < computed_rows; ++r) {
      for (Index j = 0; j < NR; ++j) {
        std::uint32_t acc = accumulate ? static_cast<std::uint32_t>(tile[r * NR + j]) : 0u;
        for (Index kb = 0; kb < kc / 64; ++kb) {
          const AElem* at = a + kb * 2048 + (r / 16) * 1024 + (r % 16) * 64;
          const std::int8_t* bt = b + kb * 2048 + (j / 16) * 1024 + (j % 16) * 4;
          for (Index q = 0; q < 16; ++q) {
            for (Index i = 0; i < 4; ++i) {
              const std::int32_t av = a_signed ? static_cast<std::int32_t>(static_cast<std::int8_t>(at[q * 4 + i]))
                                               : static_cast<std::int32_t>(at[q * 4 + i]);
              acc += static_cast<std::uint32_t>(av * static_cast<std::int32_t>(bt[q * 64 + i]));
            }
          }
        }
        tile[r * NR + j] = static_cast<std::int32_t>(acc);
      }
    }
  }
  static void worker(const Problem& p, const Plan& pl, unsigned char* shared, unsigned char* scratch, Index t0,
                     Index t1) {
    drive<EmulatedAmx>(p, pl, shared, scratch, t0, t1);
  }
};

using EmulatedAvxVnni = EmulatedVnni<gemm::detail::AvxVnniKernel>;
using EmulatedAvx512Vnni = EmulatedVnni<gemm::detail::Avx512VnniKernel>;

// gemm() with the micro-kernel of `path` replaced by its model. The arguments
// are validated against a scalar-packed twin (validate() would refuse a path
// this CPU lacks), then the problem runs on the path's packing.
template <class TA>
void run_emulated(Path path, const TA* a, Index M, Index K, Index lda, std::int32_t za, const PackedMatrix& pb,
                  const PackedMatrix& scalar_twin, const Output& out) {
  Problem p = gemm::detail::validate(a, M, K, lda, za, scalar_twin, out);
  p.b = &pb;
  switch (path) {
    case Path::kAvxVnni: gemm::detail::run_kernel<EmulatedAvxVnni>(p); break;
    case Path::kAvx512Vnni: gemm::detail::run_kernel<EmulatedAvx512Vnni>(p); break;
    case Path::kAmx: gemm::detail::run_kernel<EmulatedAmx>(p); break;
    default: FAIL() << "no emulation for " << gemm::path_name(path);
  }
}

template <class TA>
::testing::AssertionResult emulated_matches_reference(const Case<TA>& cs, Path path) {
  const PackedMatrix pb = cs.pack(path), twin = cs.pack(Path::kScalar);
  GuardedOutput<std::int32_t> out(cs.M, cs.N, cs.ldc, 0x5A5A5A5A);
  run_emulated(path, cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, twin, Output::int32(out.data(), cs.ldc));
  const std::vector<std::int32_t> ref = cs.reference();
  for (Index m = 0; m < cs.M; ++m)
    for (Index n = 0; n < cs.N; ++n)
      if (out.at(m, n) != ref[static_cast<std::size_t>(m * cs.N + n)])
        return ::testing::AssertionFailure() << gemm::path_name(path) << " model, " << cs.str() << ": C[" << m << "]["
                                             << n << "] = " << out.at(m, n) << ", reference "
                                             << ref[static_cast<std::size_t>(m * cs.N + n)];
  return out.untouched_outside();
}

class EmulatedPathTest : public ::testing::TestWithParam<Path> {};

TEST_P(EmulatedPathTest, LayoutSizeSweep) {
  Rng rng(40);
  const std::vector<Index> sizes = {1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 127, 129};
  int v = 0;
  for (Index s : sizes) {
    const Index shapes[3][3] = {{s, s, s}, {s, 50, 70}, {33, s, 130}};
    for (const auto& sh : shapes) {
      const bool odd = (v++ % 2) == 1;
      const BLayout lay = (v % 3 == 0) ? BLayout::kKxN : BLayout::kNxK;
      ASSERT_TRUE(emulated_matches_reference(
          Case<std::uint8_t>(sh[0], sh[1], sh[2], lay, rng, odd ? 200 : 0, 0, odd ? 3 : 0, odd ? 1 : 0, odd ? 5 : 0),
          GetParam()));
      ASSERT_TRUE(emulated_matches_reference(
          Case<std::int8_t>(sh[0], sh[1], sh[2], lay, rng, odd ? -60 : 0, 0, odd ? 1 : 0, 0, odd ? 2 : 0), GetParam()));
    }
  }
}

// Several K blocks (KC = 256 / 512) and a tail.
TEST_P(EmulatedPathTest, DeepKAndZeroPoints) {
  Rng rng(41);
  ASSERT_TRUE(emulated_matches_reference(Case<std::uint8_t>(37, 52, 1100, BLayout::kNxK, rng, 255, -128), GetParam()));
  ASSERT_TRUE(emulated_matches_reference(Case<std::int8_t>(41, 33, 1091, BLayout::kKxN, rng, -128, 127), GetParam()));
  ASSERT_TRUE(emulated_matches_reference(Case<std::int8_t>(1, 97, 4099, BLayout::kKxN, rng, 3, -7), GetParam()));
}

TEST_P(EmulatedPathTest, ExtremeValues) {
  Rng rng(42);
  for (int pattern = 0; pattern < 3; ++pattern) {
    Case<std::uint8_t> cu(19, 50, 300, BLayout::kKxN, rng);
    Case<std::int8_t> cs(19, 50, 300, BLayout::kNxK, rng);
    for (auto& x : cu.a) x = pattern == 0 ? 255 : (rng.below(2) ? 255 : 0);
    for (auto& x : cs.a) x = pattern == 0 ? -128 : (rng.below(2) ? 127 : -128);
    for (auto& x : cu.b) x = pattern == 1 ? 127 : (rng.below(2) ? 127 : -128);
    for (auto& x : cs.b) x = pattern == 1 ? -128 : (rng.below(2) ? 127 : -128);
    ASSERT_TRUE(emulated_matches_reference(cu, GetParam()));
    ASSERT_TRUE(emulated_matches_reference(cs, GetParam()));
  }
}

TEST_P(EmulatedPathTest, ThreadsAndRequantizedOutput) {
  Rng rng(43);
  const int saved = num_threads();
  set_num_threads(3);
  ASSERT_TRUE(emulated_matches_reference(Case<std::uint8_t>(300, 100, 200, BLayout::kNxK, rng, 7), GetParam()));
  set_num_threads(saved);

  Case<std::int8_t> cs(45, 61, 260, BLayout::kNxK, rng, 2, 0, 0, 0, 3);
  std::vector<float> scales(static_cast<std::size_t>(cs.N)), bias(scales.size());
  for (auto& s : scales) s = static_cast<float>(rng.uniform(0.001, 0.003));
  for (auto& b : bias) b = static_cast<float>(rng.uniform(-2, 2));
  gemm::Dequantize dq;
  dq.a_scale = 0.02f;
  dq.b_scales = scales.data();
  dq.b_scale_count = cs.N;
  dq.bias = bias.data();
  dq.activation = gemm::Activation::kGelu;
  const PackedMatrix pb = cs.pack(GetParam()), twin = cs.pack(Path::kScalar);
  GuardedOutput<std::uint8_t> out(cs.M, cs.N, cs.ldc, 3);
  run_emulated(GetParam(), cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, twin,
               Output::requantize(out.data(), cs.ldc, dq, 0.05f, 10));
  ASSERT_TRUE(out.untouched_outside());
  const std::vector<std::int32_t> acc = cs.reference();
  for (Index m = 0; m < cs.M; ++m)
    for (Index n = 0; n < cs.N; ++n)
      ASSERT_EQ(out.at(m, n), gemm::reference_requantize(acc[static_cast<std::size_t>(m * cs.N + n)], n, dq, 0.05f, 10, 0, 255))
          << "(" << m << ", " << n << ")";
}

INSTANTIATE_TEST_SUITE_P(Layouts, EmulatedPathTest, ::testing::Values(Path::kAvxVnni, Path::kAvx512Vnni, Path::kAmx),
                         [](const ::testing::TestParamInfo<Path>& info) { return path_test_name(info.param); });

}  // namespace
}  // namespace gemm_test
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
