// Path selection (QAWARE_PATHS, cpuid), the "best path ran" check, and
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

using gemm::parse_paths;

// Sets QAWARE_PATHS for one scope and restores the previous value.
class ScopedPathsEnv {
 public:
  explicit ScopedPathsEnv(const char* value) {
    const char* old = std::getenv("QAWARE_PATHS");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value)
      setenv("QAWARE_PATHS", value, 1);
    else
      unsetenv("QAWARE_PATHS");
  }
  ~ScopedPathsEnv() {
    if (had_)
      setenv("QAWARE_PATHS", old_.c_str(), 1);
    else
      unsetenv("QAWARE_PATHS");
  }

 private:
  bool had_ = false;
  std::string old_;
};

TEST(GemmPathsTest, ParsesNamesAndSeparators) {
  EXPECT_EQ(parse_paths("scalar"), Path::kScalar);
  EXPECT_EQ(parse_paths("scalar,avx2"), Path::kScalar | Path::kAvx2);
  EXPECT_EQ(parse_paths(" AVX2 + amx | avx512vnni "), Path::kAvx2 | Path::kAmx | Path::kAvx512Vnni);
  EXPECT_EQ(parse_paths("avx-vnni"), Path::kAvxVnni);
  EXPECT_EQ(parse_paths("avx512_vnni,,"), Path::kAvx512Vnni);
  EXPECT_EQ(parse_paths("all"), gemm::kAllPaths);
  EXPECT_EQ(parse_paths(""), gemm::kAllPaths);
  EXPECT_EQ(parse_paths(" , "), gemm::kAllPaths);
}

TEST(GemmPathsTest, UnknownNameIsAnError) {
  try {
    parse_paths("avx2,sse9");
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sse9"), std::string::npos) << e.what();
  }
}

TEST(GemmPathsTest, NamesRoundTrip) {
  for (Path p : gemm::kEachPath) EXPECT_EQ(parse_paths(gemm::path_name(p)), p);
  EXPECT_EQ(parse_paths(gemm::paths_string(gemm::kAllPaths)), gemm::kAllPaths);
  EXPECT_EQ(gemm::paths_string(Path::kNone), "none");
}

TEST(GemmPathsTest, BestIsTheHighestBit) {
  EXPECT_EQ(gemm::best_path(Path::kScalar | Path::kAvx2), Path::kAvx2);
  EXPECT_EQ(gemm::best_path(Path::kAvx2 | Path::kAmx | Path::kAvxVnni), Path::kAmx);
  EXPECT_EQ(gemm::best_path(Path::kAvxVnni | Path::kAvx512Vnni), Path::kAvx512Vnni);
  EXPECT_EQ(gemm::best_path(Path::kNone), Path::kNone);
}

// What this machine offers, printed for the log; plus consistency between
// the cpuid bits and the path mask.
TEST(GemmPathsTest, CpuFeaturesAreConsistent) {
  const gemm::CpuFeatures& f = gemm::cpu_features();
  const Path cpu = gemm::cpu_paths();
  std::printf("[ cpu      ] avx2=%d fma=%d avxvnni=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d amx-tile=%d amx-int8=%d "
              "os_ymm=%d os_zmm=%d os_tiles=%d amx_permitted=%d\n[ paths    ] cpu: %s, compiled: %s, enabled: %s\n",
              f.avx2, f.fma, f.avxvnni, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512vnni, f.amx_tile,
              f.amx_int8, f.os_ymm, f.os_zmm, f.os_tiles, f.amx_permitted, gemm::paths_string(cpu).c_str(),
              gemm::paths_string(gemm::compiled_paths()).c_str(), gemm::paths_string(gemm::enabled_paths()).c_str());
  EXPECT_TRUE(gemm::has(cpu, Path::kScalar));
  EXPECT_EQ(gemm::has(cpu, Path::kAvx2), f.avx2 && f.fma && f.os_ymm);
  if (gemm::has(cpu, Path::kAvx512Vnni)) {
    EXPECT_TRUE(f.avx512vnni && f.os_zmm);
  }
  if (gemm::has(cpu, Path::kAmx)) {
    EXPECT_TRUE(f.amx_tile && f.amx_int8 && f.os_tiles && f.amx_permitted);
  }
}

TEST(GemmPathsTest, EnvironmentRestrictsTheDefaultPath) {
  Rng rng(30);
  const auto b = random_values<std::int8_t>(8 * 8, rng, -128, 127);
  {
    ScopedPathsEnv env("scalar");
    EXPECT_EQ(gemm::enabled_paths(), Path::kScalar);
    EXPECT_EQ(gemm::pack_b(b.data(), 8, 8, 8, BLayout::kKxN).path(), Path::kScalar);
  }
  {
    // Naming only a path this CPU may lack still leaves scalar as the fallback.
    ScopedPathsEnv env("amx");
    EXPECT_TRUE(gemm::has(gemm::enabled_paths(), Path::kScalar));
    EXPECT_EQ(gemm::best_path(), gemm::has(gemm::cpu_paths(), Path::kAmx) ? Path::kAmx : Path::kScalar);
  }
  {
    ScopedPathsEnv env("no-such-path");
    EXPECT_THROW(gemm::enabled_paths(), Error);
    EXPECT_THROW(gemm::pack_b(b.data(), 8, 8, 8, BLayout::kKxN), Error);
  }
  {
    ScopedPathsEnv env(nullptr);
    EXPECT_EQ(gemm::enabled_paths(), gemm::compiled_paths() & gemm::cpu_paths());
  }
}

// Fails when the fastest path this CPU offers did not run a GEMM (for
// example because QAWARE_PATHS excludes it, or detection missed it).
TEST(GemmPathsTest, BestPathTheCpuOffersWasExercised) {
  const Path best = gemm::best_path(gemm::compiled_paths() & gemm::cpu_paths());
  Rng rng(31);
  Case<std::uint8_t> cs(40, 70, 130, BLayout::kNxK, rng, 17);
  const PackedMatrix pb = gemm::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout);  // default path
  ASSERT_EQ(pb.path(), best) << "the default pack chose '" << gemm::path_name(pb.path()) << "' but this CPU offers '"
                             << gemm::path_name(best) << "' (QAWARE_PATHS="
                             << (std::getenv("QAWARE_PATHS") ? std::getenv("QAWARE_PATHS") : "<unset>") << ")";
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
