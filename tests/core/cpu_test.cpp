// The CPU probe and the library-wide instruction-set cap (core/cpu.hpp):
// level names, consistency with the cpuid bits, the cap's rule, and
// QAWARE_MAX_ISA read once (ctest also runs the environment test with the
// variable set, see CMakeLists.txt). That each kernel family obeys the cap is
// tested with the family (gemm path, sgemm, fake quantization, dropout,
// optimizer tests).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "qaware/core/cpu.hpp"

namespace qaware {
namespace {

TEST(CpuTest, LevelNamesParseAndRoundTrip) {
  for (Isa isa : kEachIsa) EXPECT_EQ(parse_isa(isa_name(isa)), isa) << isa_name(isa);
  EXPECT_EQ(parse_isa("AVX512-VNNI"), Isa::kAvx512Vnni);
  EXPECT_EQ(parse_isa(" avx2_vnni "), Isa::kAvx2Vnni);
  EXPECT_EQ(parse_isa("all"), Isa::kAmx);
  EXPECT_EQ(parse_isa(""), Isa::kAmx);
  try {
    parse_isa("sse9");
    FAIL() << "expected qaware::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'sse9'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("avx512_vnni"), std::string::npos) << e.what();
  }
}

// What this machine offers, printed for the log, and each level against the
// cpuid / XCR0 bits it needs.
TEST(CpuTest, LevelsFollowTheCpuidBits) {
  const CpuFeatures& f = cpu_features();
  std::string levels;
  for (Isa isa : kEachIsa)
    if (cpu_has(isa)) levels += std::string(levels.empty() ? "" : ",") + isa_name(isa);
  std::printf("[ cpu      ] avx2=%d fma=%d avxvnni=%d avx512f=%d bw=%d vl=%d dq=%d vnni=%d amx-tile=%d amx-int8=%d "
              "os_ymm=%d os_zmm=%d os_tiles=%d amx_permitted=%d\n[ levels   ] %s (cap %s)\n",
              f.avx2, f.fma, f.avxvnni, f.avx512f, f.avx512bw, f.avx512vl, f.avx512dq, f.avx512vnni, f.amx_tile,
              f.amx_int8, f.os_ymm, f.os_zmm, f.os_tiles, f.amx_permitted, levels.c_str(), isa_name(max_isa()));
  EXPECT_TRUE(cpu_has(Isa::kScalar));
  EXPECT_EQ(cpu_has(Isa::kAvx2), f.avx2 && f.fma && f.os_ymm);
  EXPECT_EQ(cpu_has(Isa::kAvx2Vnni), cpu_has(Isa::kAvx2) && f.avxvnni);
  EXPECT_EQ(cpu_has(Isa::kAvx512),
            cpu_has(Isa::kAvx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_zmm);
  EXPECT_EQ(cpu_has(Isa::kAvx512Vnni), cpu_has(Isa::kAvx512) && f.avx512vnni);
  EXPECT_EQ(cpu_has(Isa::kAmx),
            cpu_has(Isa::kAvx512Vnni) && f.amx_tile && f.amx_int8 && f.os_tiles && f.amx_permitted);
  // The OS must save a register file before its instructions count.
  if (f.os_zmm) {
    EXPECT_TRUE(f.os_ymm);
  }
}

TEST(CpuTest, CapAdmitsALevelAndEveryLevelBelowIt) {
  for (Isa cap : kEachIsa) {
    const ScopedMaxIsa scope(cap);
    EXPECT_EQ(max_isa(), cap);
    Isa best = Isa::kScalar;
    for (Isa level : kEachIsa) {
      const bool want = static_cast<int>(level) <= static_cast<int>(cap) && cpu_has(level);
      EXPECT_EQ(isa_enabled(level), want) << "cap " << isa_name(cap) << ", level " << isa_name(level);
      if (want) best = level;
    }
    EXPECT_EQ(best_isa(), best) << "cap " << isa_name(cap);
  }
}

TEST(CpuTest, ScopedCapRestoresThePreviousOne) {
  const Isa before = max_isa();
  {
    const ScopedMaxIsa outer(Isa::kAvx2);
    {
      const ScopedMaxIsa inner(Isa::kScalar);
      EXPECT_EQ(max_isa(), Isa::kScalar);
      EXPECT_EQ(best_isa(), Isa::kScalar);
    }
    EXPECT_EQ(max_isa(), Isa::kAvx2);
  }
  EXPECT_EQ(max_isa(), before);
  EXPECT_EQ(set_max_isa(before), before);
}

// Without QAWARE_MAX_ISA every level is admitted; with it, its level (or an
// Error naming a bad value, on every call). Either way the variable is read
// once: changing it later changes nothing.
TEST(CpuTest, EnvironmentCapIsReadOnce) {
  const char* env = std::getenv("QAWARE_MAX_ISA");
  const std::string value = env ? env : "";
  if (env && value == "sse9") {
    for (int i = 0; i < 2; ++i) {
      try {
        max_isa();
        FAIL() << "expected qaware::Error for QAWARE_MAX_ISA=sse9";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("QAWARE_MAX_ISA"), std::string::npos) << e.what();
      }
    }
    return;
  }
  const Isa want = env ? parse_isa(value) : Isa::kAmx;
  EXPECT_EQ(max_isa(), want) << "QAWARE_MAX_ISA=" << (env ? value : "<unset>");
  setenv("QAWARE_MAX_ISA", want == Isa::kScalar ? "avx2" : "scalar", 1);
  EXPECT_EQ(max_isa(), want);
  if (env)
    setenv("QAWARE_MAX_ISA", value.c_str(), 1);
  else
    unsetenv("QAWARE_MAX_ISA");
}

}  // namespace
}  // namespace qaware
