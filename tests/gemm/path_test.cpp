// Path selection (the CPU levels and the library-wide cap), the "best path ran" check, and
// argument validation of pack_b() / gemm().

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "gemm/gemm_test_util.hpp"

namespace qaware {
namespace gemm_test {
namespace {

TEST(GemmPathsTest, NamesAndLevels) {
  EXPECT_EQ(gemm::paths_string(gemm::kAllPaths), "scalar,avx2,avxvnni,avx512vnni,amx");
  EXPECT_EQ(gemm::paths_string(Path::kScalar | Path::kAvx512Vnni), "scalar,avx512vnni");
  EXPECT_EQ(gemm::paths_string(Path::kNone), "none");
  EXPECT_EQ(gemm::path_isa(Path::kScalar), Isa::kScalar);
  EXPECT_EQ(gemm::path_isa(Path::kAvx2), Isa::kAvx2);
  EXPECT_EQ(gemm::path_isa(Path::kAvxVnni), Isa::kAvx2Vnni);
  EXPECT_EQ(gemm::path_isa(Path::kAvx512Vnni), Isa::kAvx512Vnni);
  EXPECT_EQ(gemm::path_isa(Path::kAmx), Isa::kAmx);
}

TEST(GemmPathsTest, BestIsTheHighestBit) {
  EXPECT_EQ(gemm::best_path(Path::kScalar | Path::kAvx2), Path::kAvx2);
  EXPECT_EQ(gemm::best_path(Path::kAvx2 | Path::kAmx | Path::kAvxVnni), Path::kAmx);
  EXPECT_EQ(gemm::best_path(Path::kAvxVnni | Path::kAvx512Vnni), Path::kAvx512Vnni);
  EXPECT_EQ(gemm::best_path(Path::kNone), Path::kNone);
}

// The path mask against the CPU levels (core/cpu_test prints the cpuid bits).
TEST(GemmPathsTest, CpuPathsAreTheCpuLevels) {
  const Path cpu = gemm::cpu_paths();
  std::printf("[ paths    ] cpu: %s, compiled: %s, enabled: %s\n", gemm::paths_string(cpu).c_str(),
              gemm::paths_string(gemm::compiled_paths()).c_str(), gemm::paths_string(gemm::enabled_paths()).c_str());
  for (Path p : gemm::kEachPath) EXPECT_EQ(gemm::has(cpu, p), cpu_has(gemm::path_isa(p))) << gemm::path_name(p);
}

// The library-wide cap picks the default path: the best path whose level it
// admits. A matrix packed before the cap was lowered keeps its path.
TEST(GemmPathsTest, CapRestrictsTheDefaultPath) {
  Rng rng(30);
  Case<std::uint8_t> cs(9, 33, 40, BLayout::kKxN, rng, 3);
  const PackedMatrix best = gemm::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout);
  for (Isa cap : kEachIsa) {
    const ScopedMaxIsa scope(cap);
    Path want = Path::kScalar;
    for (Path p : gemm::kEachPath)
      if (static_cast<int>(gemm::path_isa(p)) <= static_cast<int>(cap) && gemm::has(gemm::compiled_paths() & gemm::cpu_paths(), p))
        want = p;
    EXPECT_EQ(gemm::best_path(), want) << "cap " << isa_name(cap);
    const PackedMatrix pb = gemm::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout);
    EXPECT_EQ(pb.path(), want) << "cap " << isa_name(cap);
    std::vector<std::int32_t> c(static_cast<std::size_t>(cs.M * cs.N));
    gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, Output::int32(c.data(), cs.N));
    EXPECT_EQ(gemm::last_path(), want);
    EXPECT_EQ(c, cs.reference()) << "cap " << isa_name(cap);
    gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, best, Output::int32(c.data(), cs.N));
    EXPECT_EQ(gemm::last_path(), best.path()) << "an existing pack keeps its path under cap " << isa_name(cap);
  }
}

// Fails when the fastest path this CPU offers did not run a GEMM (for
// example because QAWARE_MAX_ISA excludes it, or detection missed it).
TEST(GemmPathsTest, BestPathTheCpuOffersWasExercised) {
  const Path best = gemm::best_path(gemm::compiled_paths() & gemm::cpu_paths());
  Rng rng(31);
  Case<std::uint8_t> cs(40, 70, 130, BLayout::kNxK, rng, 17);
  const PackedMatrix pb = gemm::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout);  // default path
  ASSERT_EQ(pb.path(), best) << "the default pack chose '" << gemm::path_name(pb.path()) << "' but this CPU offers '"
                             << gemm::path_name(best) << "' (cap " << isa_name(max_isa()) << ")";
  std::vector<std::int32_t> c(static_cast<std::size_t>(cs.M * cs.N));
  gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, Output::int32(c.data(), cs.N));
  EXPECT_EQ(gemm::last_path(), best);
  EXPECT_TRUE(gemm::has(gemm::paths_run(), best));
  EXPECT_EQ(c, cs.reference());
}

// ---------------------------------------------------------------------------
// Validation: every bad argument raises qaware::Error naming what is wrong.

::testing::AssertionResult throws_with(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message '" << e.what() << "' lacks '" << needle << "'";
  }
  return ::testing::AssertionFailure() << "no qaware::Error (wanted one mentioning '" << needle << "')";
}

TEST(GemmValidationTest, PackRejectsBadArguments) {
  std::vector<std::int8_t> b(64, 1);
  const Path p = Path::kScalar;
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(nullptr, 4, 4, 4, BLayout::kKxN, 0, p); }, "B is null"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 0, 4, 4, BLayout::kKxN, 0, p); }, "K = 0"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 4, -1, 4, BLayout::kKxN, 0, p); }, "N = -1"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 4, 8, 7, BLayout::kKxN, 0, p); }, "ldb = 7"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 8, 4, 7, BLayout::kNxK, 0, p); }, "ldb = 7"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 4, 4, 4, BLayout::kKxN, 128, p); }, "zero point 128"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 4, 4, 4, BLayout::kKxN, 0, Path::kScalar | Path::kAvx2); },
                          "exactly one"));
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), 4, 4, 4, BLayout::kKxN, 0, Path::kNone); }, "exactly one"));
}

TEST(GemmValidationTest, KTooDeepForInt32IsRejected) {
  // pack_b: even |A - za| <= 128 overflows when K * 128 * 255 > 2^31 - 1 (zb = -128).
  const Index K = 65794;
  std::vector<std::int8_t> b(static_cast<std::size_t>(K), 0);
  EXPECT_TRUE(throws_with([&] { gemm::pack_b(b.data(), K, 1, K, BLayout::kNxK, -128, Path::kScalar); },
                          "K = 65794"));
  // gemm: uint8 A with za = 0 against zb = 0: 65794 * 255 * 128 > 2^31 - 1 ...
  const PackedMatrix pb = gemm::pack_b(b.data(), K, 1, K, BLayout::kNxK, 0, Path::kScalar);
  std::vector<std::uint8_t> a(static_cast<std::size_t>(K), 1);
  std::int32_t c = 0;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), 1, K, K, 0, pb, Output::int32(&c, 1)); }, "K = 65794"));
  // ... while int8 A (|A| <= 128) fits: 65794 * 128 * 128 < 2^31 - 1.
  std::vector<std::int8_t> a8(static_cast<std::size_t>(K), -128);
  EXPECT_NO_THROW(gemm::gemm(a8.data(), 1, K, K, 0, pb, Output::int32(&c, 1)));
  EXPECT_EQ(c, 0);
  // A zero point widens the range: uint8 A with za = 128 gives |A - za| <= 128.
  EXPECT_NO_THROW(gemm::gemm(a.data(), 1, K, K, 128, pb, Output::int32(&c, 1)));
}

TEST(GemmValidationTest, GemmRejectsBadArguments) {
  Rng rng(32);
  const Index M = 3, N = 5, K = 7;
  const auto b = random_values<std::int8_t>(N * K, rng, -128, 127);
  const PackedMatrix pb = gemm::pack_b(b.data(), K, N, K, BLayout::kNxK, 0, Path::kScalar);
  const auto a = random_values<std::uint8_t>(M * K, rng, 0, 255);
  const auto a8 = random_values<std::int8_t>(M * K, rng, -128, 127);
  std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
  std::vector<float> cf(c.size());
  std::vector<std::uint8_t> cq(c.size());
  const Output o = Output::int32(c.data(), N);
  EXPECT_TRUE(throws_with([&] { gemm::gemm(static_cast<const std::uint8_t*>(nullptr), M, K, K, 0, pb, o); }, "A is null"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), 0, K, K, 0, pb, o); }, "M must be >= 1"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K + 1, K + 1, 0, pb, o); }, "K = 8"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K - 1, 0, pb, o); }, "lda = 6"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 256, pb, o); }, "zero point 256"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, -1, pb, o); }, "zero point -1"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a8.data(), M, K, K, 128, pb, o); }, "zero point 128"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, PackedMatrix(), o); }, "empty PackedMatrix"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::int32(nullptr, N)); }, "C is null"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::int32(c.data(), N - 1)); }, "ldc = 4"));

  const float one = 1.0f, zero = 0.0f, inf = INFINITY;
  const std::vector<float> two_scales = {1.0f, 1.0f};
  gemm::Dequantize dq;
  dq.b_scales = &one;
  dq.b_scale_count = 1;
  EXPECT_NO_THROW(gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, dq)));
  gemm::Dequantize bad = dq;
  bad.a_scale = 0.0f;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "A scale"));
  bad = dq;
  bad.b_scales = nullptr;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "B scales are null"));
  bad = dq;
  bad.b_scales = two_scales.data();
  bad.b_scale_count = 2;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "2 B scales"));
  bad = dq;
  bad.b_scales = &inf;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "B scale [0]"));
  bad = dq;
  bad.b_scales = &zero;
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "B scale [0]"));
  bad = dq;
  bad.activation = static_cast<gemm::Activation>(9);
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::dequantize(cf.data(), N, bad)); },
                          "activation"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cq.data(), N, dq, 0.0f, 0)); },
                          "output scale"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cq.data(), N, dq, 1e-39f, 0)); },
                          "too small"));
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cq.data(), N, dq, 1.0f, 256)); },
                          "output zero point 256"));
  std::vector<std::int8_t> cs8(c.size());
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cs8.data(), N, dq, 1.0f, 128)); },
                          "output zero point 128"));
  EXPECT_TRUE(throws_with(
      [&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cs8.data(), N, dq, 1.0f, 0, -129, 7)); },
      "output range [-129, 7] is not within the int8 range [-128, 127]"));
  EXPECT_TRUE(throws_with(
      [&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cq.data(), N, dq, 1.0f, 0, 9, 3)); },
      "output range [9, 3]"));
  EXPECT_TRUE(throws_with(
      [&] { gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(cq.data(), N, dq, 1.0f, 16, 0, 15)); },
      "output zero point 16 is outside the output range [0, 15]"));
}

TEST(GemmValidationTest, PackedForAnUnsupportedPathIsRefused) {
  const Path missing = gemm::best_path(gemm::compiled_paths() & ~gemm::cpu_paths());
  if (missing == Path::kNone) GTEST_SKIP() << "this CPU runs every compiled path";
  std::vector<std::int8_t> b(16, 1);
  const PackedMatrix pb = gemm::pack_b(b.data(), 4, 4, 4, BLayout::kKxN, 0, missing);
  std::vector<std::uint8_t> a(4, 1);
  std::vector<std::int32_t> c(4);
  EXPECT_TRUE(throws_with([&] { gemm::gemm(a.data(), 1, 4, 4, 0, pb, Output::int32(c.data(), 4)); },
                          std::string("path '") + gemm::path_name(missing) + "'"));
}

}  // namespace
}  // namespace gemm_test
}  // namespace qaware
