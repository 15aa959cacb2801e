// The float GEMM (gemm/sgemm.hpp): gemm::sgemm() on its AVX2 kernel, on
// (where the CPU has AVX-512F; skipped with a message elsewhere) its AVX-512
// kernel and on the Eigen fallback, against a double triple loop: every transpose combination,
// overwrite and accumulate, sizes around the micro-tiles (6 x 16, 6 x 32) and
// the blocks (KC = 256, MC = 120, NC = 768), 1 and 2 threads; and the two
// kernels against each other, bit for bit. Tolerance per element: 4 * K * 2^-24 times
// sum_k |a_ik b_kj| (the classic bound for float summation of K products,
// with room for the final add into C), far below what a wrong index gives.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "qaware/core/rng.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/sgemm.hpp"

namespace qaware {
namespace {

namespace sg = gemm::detail::sgemm;

struct Case {
  Index M, N, K;
};

void check(const Case& c, bool ta, bool tb, bool accumulate, int threads, std::vector<float>* out = nullptr) {
  Rng rng(static_cast<std::uint64_t>(c.M * 1000003 + c.N * 1009 + c.K + ta * 7 + tb * 13));
  const Index lda = (ta ? c.M : c.K) + 3, ldb = (tb ? c.K : c.N) + 5, ldc = c.N + 2;
  std::vector<float> A(static_cast<std::size_t>((ta ? c.K : c.M) * lda)), B(static_cast<std::size_t>((tb ? c.N : c.K) * ldb));
  std::vector<float> C(static_cast<std::size_t>(c.M * ldc));
  for (float& v : A) v = static_cast<float>(rng.uniform(-1, 1));
  for (float& v : B) v = static_cast<float>(rng.uniform(-1, 1));
  for (float& v : C) v = static_cast<float>(rng.uniform(-1, 1));
  const std::vector<float> C0 = C;
  auto a = [&](Index i, Index k) { return static_cast<double>(ta ? A[k * lda + i] : A[i * lda + k]); };
  auto b = [&](Index k, Index j) { return static_cast<double>(tb ? B[j * ldb + k] : B[k * ldb + j]); };

  set_num_threads(threads);
  gemm::sgemm(c.M, c.N, c.K, A.data(), lda, ta, B.data(), ldb, tb, C.data(), ldc, accumulate);
  set_num_threads(0);

  const std::string what = "M " + std::to_string(c.M) + " N " + std::to_string(c.N) + " K " + std::to_string(c.K) +
                           " ta " + std::to_string(ta) + " tb " + std::to_string(tb) + " acc " +
                           std::to_string(accumulate) + " threads " + std::to_string(threads);
  int bad = 0;
  for (Index i = 0; i < c.M; ++i) {
    for (Index j = 0; j < c.N; ++j) {
      double ref = accumulate ? C0[static_cast<std::size_t>(i * ldc + j)] : 0.0, mag = std::abs(ref);
      for (Index k = 0; k < c.K; ++k) {
        ref += a(i, k) * b(k, j);
        mag += std::abs(a(i, k) * b(k, j));
      }
      const double tol = 4.0 * static_cast<double>(c.K + 1) * std::ldexp(1.0, -24) * mag;
      const double got = C[static_cast<std::size_t>(i * ldc + j)];
      if (std::abs(got - ref) > tol && bad++ < 5)
        ADD_FAILURE() << what << ": C[" << i << "][" << j << "] = " << got << ", expected " << ref << " +- " << tol;
    }
    // The padding columns of C are untouched.
    for (Index j = c.N; j < ldc; ++j)
      ASSERT_EQ(C[static_cast<std::size_t>(i * ldc + j)], C0[static_cast<std::size_t>(i * ldc + j)]) << what;
  }
  EXPECT_EQ(bad, 0) << what;
  if (out) *out = C;
}

// K == 0: C stays as it is (accumulate) or becomes 0 (overwrite).
void expect_empty_k_semantics() {
  std::vector<float> C(12, 5.0f);
  gemm::sgemm(3, 4, 0, nullptr, 1, false, nullptr, 4, false, C.data(), 4, true);
  for (float v : C) EXPECT_EQ(v, 5.0f);
  gemm::sgemm(3, 4, 0, nullptr, 1, false, nullptr, 4, false, C.data(), 4, false);
  for (float v : C) EXPECT_EQ(v, 0.0f);
}

// Selects the AVX-512 kernel (on) or the AVX2 one (off) for its lifetime,
// through the library-wide cap.
class KernelScope {
 public:
  explicit KernelScope(bool avx512) : cap_(avx512 ? Isa::kAmx : Isa::kAvx2Vnni) {}

 private:
  ScopedMaxIsa cap_;
};

class SgemmTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!cpu_has(Isa::kAvx2)) GTEST_SKIP() << "this CPU lacks AVX2 + FMA: linear uses Eigen's GEMM, nothing to test";
    if (GetParam() && !cpu_has(Isa::kAvx512))
      GTEST_SKIP() << "this CPU (or OS) lacks AVX-512F: the 6 x 32 kernel cannot run here, the AVX2 kernel does";
    scope_ = std::make_unique<KernelScope>(GetParam());
    ASSERT_EQ(sg::avx512_enabled(), GetParam());
  }
  void TearDown() override { scope_.reset(); }

 private:
  std::unique_ptr<KernelScope> scope_;
};

class SgemmHelpersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has(Isa::kAvx2)) GTEST_SKIP() << "this CPU lacks AVX2 + FMA: linear uses Eigen's GEMM, nothing to test";
  }
};

TEST_P(SgemmTest, MatchesDoubleReferenceOnEdgeSizesAndEveryTranspose) {
  const Case cases[] = {{1, 1, 1},     {1, 16, 7},   {6, 16, 1},   {7, 17, 9},   {5, 3, 2},    {13, 33, 31},
                        {37, 29, 75},  {121, 15, 257}, {2, 40, 600}, {64, 48, 513}, {6, 32, 5},  {11, 47, 64},
                        {19, 65, 129}, {3, 31, 8}};
  for (const Case& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool acc : {false, true}) check(c, ta, tb, acc, 1);
}

TEST_P(SgemmTest, LargeBlocksAndTwoThreadsGiveTheSameBits) {
  // N beyond NC (768), M beyond MC (120), K beyond KC (256); big enough
  // to be split across threads along M (first) and N (second).
  const Case cases[] = {{250, 40, 300}, {9, 3100, 20}};
  for (const Case& c : cases)
    for (bool ta : {false, true}) {
      std::vector<float> one, two;
      check(c, ta, !ta, true, 1, &one);
      check(c, ta, !ta, true, 2, &two);
      EXPECT_EQ(one, two) << "M " << c.M << " N " << c.N << ": results depend on the thread count";
    }
}

// Both kernels run each C element's products as one FMA chain over k
// (KC blocks in order) and add it into C once, so they agree bit for bit:
// a model trains the same on either.
TEST_F(SgemmHelpersTest, Avx512KernelGivesTheAvx2KernelsBits) {
  if (!cpu_has(Isa::kAvx512))
    GTEST_SKIP() << "this CPU (or OS) lacks AVX-512F: the 6 x 32 kernel cannot run here, the AVX2 kernel does";
  KernelScope avx512(true);
  const Case cases[] = {{7, 17, 9}, {37, 70, 300}, {130, 100, 33}, {250, 800, 64}};
  for (const Case& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool acc : {false, true}) {
          std::vector<float> wide, narrow;
          check(c, ta, tb, acc, 1, &wide);
          {
            KernelScope avx2(false);
            check(c, ta, tb, acc, 1, &narrow);
          }
          EXPECT_EQ(wide, narrow) << "M " << c.M << " N " << c.N << " K " << c.K << " ta " << ta << " tb " << tb
                                  << " acc " << acc;
        }
}

INSTANTIATE_TEST_SUITE_P(Kernels, SgemmTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Avx512" : "Avx2"; });


// The vector packers lay out exactly what the scalar ones do (packing is a
// copy: bit-identical, zero padding included), for whole and partial
// slivers, K around the 8-wide transpose and both transposes.
TEST_F(SgemmHelpersTest, VectorPackingMatchesScalarPacking) {
  Rng rng(5);
  const Index ld = 300;
  std::vector<float> src(static_cast<std::size_t>(ld * ld));
  for (float& v : src) v = static_cast<float>(rng.uniform(-1, 1));
  // 64-byte aligned, as block_with() gives them (the B packer stores aligned).
  alignas(64) static float a1[64 * 256], a2[64 * 256];
  for (Index rows : {1, 5, 6, 7, 12, 13, 17, 32, 33})
    for (Index kc : {1, 7, 8, 9, 16, 23, 256})
      for (bool t : {false, true}) {
        const std::string what = "rows " + std::to_string(rows) + " kc " + std::to_string(kc) + " t " + std::to_string(t);
        const Index ma = (rows + sg::MR - 1) / sg::MR * sg::MR, nb = (rows + sg::NR - 1) / sg::NR * sg::NR;
        const Index nw = (rows + sg::NR512 - 1) / sg::NR512 * sg::NR512;
        // Offsets 3 and 2: unaligned sources.
        std::fill(a1, a1 + ma * kc, -7.0f);
        std::fill(a2, a2 + ma * kc, 7.0f);
        sg::pack_a(src.data(), ld, t, 3, rows, 2, kc, a1);
        sg::pack_a_avx2(src.data(), ld, t, 3, rows, 2, kc, a2);
        EXPECT_TRUE(std::equal(a1, a1 + ma * kc, a2)) << "pack_a " << what;
        std::fill(a1, a1 + nb * kc, -7.0f);
        std::fill(a2, a2 + nb * kc, 7.0f);
        sg::pack_b(src.data(), ld, t, 2, kc, 3, rows, a1);
        sg::pack_b_avx2(src.data(), ld, t, 2, kc, 3, rows, a2);
        EXPECT_TRUE(std::equal(a1, a1 + nb * kc, a2)) << "pack_b " << what;
        // The AVX-512 kernel's slivers of 32 (packed with AVX2 moves).
        std::fill(a1, a1 + nw * kc, -7.0f);
        std::fill(a2, a2 + nw * kc, 7.0f);
        sg::pack_b<sg::NR512>(src.data(), ld, t, 2, kc, 3, rows, a1);
        sg::pack_b_avx2<sg::NR512>(src.data(), ld, t, 2, kc, 3, rows, a2);
        EXPECT_TRUE(std::equal(a1, a1 + nw * kc, a2)) << "pack_b<32> " << what;
      }
}

TEST_P(SgemmTest, EmptyKOverwritesWithZerosOrLeavesC) { expect_empty_k_semantics(); }

TEST_F(SgemmHelpersTest, TheCapChoosesTheKernel) {
  for (Isa cap : kEachIsa) {
    const ScopedMaxIsa scope(cap);
    const auto admits = [&](Isa level) { return static_cast<int>(level) <= static_cast<int>(cap) && cpu_has(level); };
    EXPECT_EQ(sg::enabled(), admits(Isa::kAvx2)) << "cap " << isa_name(cap);
    EXPECT_EQ(sg::avx512_enabled(), admits(Isa::kAvx512)) << "cap " << isa_name(cap);
    EXPECT_STREQ(gemm::sgemm_kernel(), admits(Isa::kAvx512) ? "avx512" : admits(Isa::kAvx2) ? "avx2" : "eigen");
  }
  const ScopedMaxIsa scalar(Isa::kScalar);
  EXPECT_FALSE(sg::enabled());
  std::vector<float> C(1);
  const float a = 2, b = 3;
  EXPECT_FALSE(gemm::try_sgemm(1, 1, 1, &a, 1, false, &b, 1, false, C.data(), 1, false)) << "Eigen's GEMM runs instead";
  const double ad = 2, bd = 3;
  double cd = 0;
  EXPECT_FALSE(gemm::try_sgemm(1, 1, 1, &ad, 1, false, &bd, 1, false, &cd, 1, false)) << "double is never ours";
}

// Without the kernels (cap scalar, or a CPU without AVX2), sgemm() runs
// Eigen's GEMM: the same sweep of shapes, transposes and modes.
TEST(SgemmEigenTest, FallbackMatchesDoubleReference) {
  const ScopedMaxIsa scalar(Isa::kScalar);
  ASSERT_STREQ(gemm::sgemm_kernel(), "eigen");
  const Case cases[] = {{1, 1, 1}, {7, 17, 9}, {37, 29, 75}, {121, 15, 257}, {2, 40, 600}, {19, 65, 129}};
  for (const Case& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool acc : {false, true}) check(c, ta, tb, acc, 1);
  expect_empty_k_semantics();
}

// The packing buffers come from the calling thread's GEMM workspace
// (gemm/workspace.hpp): repeated products of one size reuse it.
TEST_F(SgemmHelpersTest, RepeatedProductsReuseTheWorkspace) {
  std::vector<float> a(64 * 300, 0.5f), b(300 * 80, 0.25f), c(64 * 80);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    gemm::sgemm(64, 80, 300, a.data(), 300, false, b.data(), 80, false, c.data(), 80, false);
    const unsigned char* first = gemm::detail::workspace().data();
    const std::size_t size = gemm::detail::workspace().size();
    EXPECT_GT(size, 0u);
    gemm::sgemm(64, 80, 300, a.data(), 300, false, b.data(), 80, false, c.data(), 80, false);
    EXPECT_EQ(gemm::detail::workspace().data(), first);
    EXPECT_EQ(gemm::detail::workspace().size(), size);
    EXPECT_EQ(c[0], 300 * 0.125f);
  }
  set_num_threads(0);
}

TEST(SgemmArgsTest, BadSizesAndStridesNameThem) {
  std::vector<float> a(64), b(64), c(64);
  auto message = [&](Index M, Index N, Index K, Index lda, bool ta, Index ldb, bool tb, Index ldc) {
    try {
      gemm::sgemm(M, N, K, a.data(), lda, ta, b.data(), ldb, tb, c.data(), ldc, false);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(-1, 2, 2, 2, false, 2, false, 2).find("negative size M=-1"), std::string::npos);
  EXPECT_NE(message(4, 4, 3, 2, false, 4, false, 4).find("lda=2"), std::string::npos);
  EXPECT_NE(message(4, 4, 3, 3, true, 4, false, 4).find("(A transposed)"), std::string::npos);
  EXPECT_NE(message(4, 4, 3, 3, false, 2, true, 4).find("(B transposed)"), std::string::npos);
  EXPECT_NE(message(4, 4, 3, 3, false, 4, false, 3).find("ldc=3"), std::string::npos);
}

}  // namespace
}  // namespace qaware
