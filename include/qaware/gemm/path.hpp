#pragma once
// INT8 GEMM paths: which kernels this build has, which this CPU and OS can
// run, which the user allows, and which one ran.
//
// A path is one bit of a mask (ruy's Path idea). The enabled paths are
//   compiled_paths() & cpu_paths() & env_paths()   (scalar is always enabled)
// and the best enabled path -- the highest bit -- is the default for packing.
//
// cpu_paths() asks cpuid which instructions exist and xgetbv (XCR0) whether the
// OS saves the registers they use: YMM state for AVX2 / AVX-VNNI, opmask + ZMM
// state (XCR0 bits 5-7) for AVX-512, tile config + tile data (bits 17-18) for
// AMX. Linux also hands out AMX tile state only on request, so AMX additionally
// needs arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) to succeed; that
// request is made once, the first time cpu_paths() runs.
//
// QAWARE_PATHS restricts the choice, for tests and benchmarks:
//   QAWARE_PATHS=scalar,avx2      only these two (the best of them wins)
// It is read when pack_b() picks a path; a PackedMatrix keeps the path it was
// packed for, and gemm() runs that path (refusing one this CPU cannot run).
// Names: scalar, avx2, avxvnni, avx512vnni, amx, all; separators: comma, space,
// '+' or '|'; case-insensitive. An unknown name raises qaware::Error.

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qaware/core/error.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

// QAWARE_GEMM_X86: the x86-64 kernels are compiled (function target
// attributes; GCC >= 11 or Clang >= 12 for AVX-VNNI and AMX intrinsics).
#if !defined(QAWARE_GEMM_X86)
#if defined(__x86_64__) && !defined(__INTEL_COMPILER) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define QAWARE_GEMM_X86 1
#else
#define QAWARE_GEMM_X86 0
#endif
#endif

namespace qaware {
namespace gemm {

// Bits in order of preference: a higher bit is a faster path.
enum class Path : std::uint32_t {
  kNone = 0,
  kScalar = 1u << 0,
  kAvx2 = 1u << 1,
  kAvxVnni = 1u << 2,
  kAvx512Vnni = 1u << 3,
  kAmx = 1u << 4,
};

constexpr Path kAllPaths = static_cast<Path>(0x1Fu);

constexpr Path operator|(Path a, Path b) {
  return static_cast<Path>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr Path operator&(Path a, Path b) {
  return static_cast<Path>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
constexpr Path operator~(Path a) { return static_cast<Path>(~static_cast<std::uint32_t>(a) & 0x1Fu); }
// True when every bit of `p` is in `mask` (and p is not empty).
constexpr bool has(Path mask, Path p) { return p != Path::kNone && (mask & p) == p; }

// The single paths, best last.
constexpr Path kEachPath[] = {Path::kScalar, Path::kAvx2, Path::kAvxVnni, Path::kAvx512Vnni, Path::kAmx};

inline const char* path_name(Path p) {
  switch (p) {
    case Path::kScalar: return "scalar";
    case Path::kAvx2: return "avx2";
    case Path::kAvxVnni: return "avxvnni";
    case Path::kAvx512Vnni: return "avx512vnni";
    case Path::kAmx: return "amx";
    case Path::kNone: return "none";
  }
  return "mixed";
}

// "scalar,avx2" for a mask; "none" for the empty mask.
inline std::string paths_string(Path mask) {
  std::string s;
  for (Path p : kEachPath) {
    if (has(mask, p)) {
      if (!s.empty()) s += ',';
      s += path_name(p);
    }
  }
  return s.empty() ? std::string("none") : s;
}

// Parses a QAWARE_PATHS value. An empty or all-separator string means all.
inline Path parse_paths(const std::string& spec) {
  Path mask = Path::kNone;
  bool any = false;
  std::string token;
  auto flush = [&]() {
    if (token.empty()) return;
    any = true;
    if (token == "all") {
      mask = mask | kAllPaths;
    } else if (token == "scalar") {
      mask = mask | Path::kScalar;
    } else if (token == "avx2") {
      mask = mask | Path::kAvx2;
    } else if (token == "avxvnni" || token == "avx-vnni" || token == "avx_vnni") {
      mask = mask | Path::kAvxVnni;
    } else if (token == "avx512vnni" || token == "avx512-vnni" || token == "avx512_vnni") {
      mask = mask | Path::kAvx512Vnni;
    } else if (token == "amx") {
      mask = mask | Path::kAmx;
    } else {
      QAWARE_CHECK(false, "QAWARE_PATHS: unknown path '", token, "' in '", spec,
                   "' (known: scalar, avx2, avxvnni, avx512vnni, amx, all)");
    }
    token.clear();
  };
  for (char ch : spec) {
    if (ch == ',' || ch == '+' || ch == '|' || std::isspace(static_cast<unsigned char>(ch))) {
      flush();
    } else {
      token += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  flush();
  return any ? mask : kAllPaths;
}

// Paths whose kernels this build contains.
constexpr Path compiled_paths() {
#if QAWARE_GEMM_X86
  return kAllPaths;
#else
  return Path::kScalar;
#endif
}

// What cpuid / xgetbv report, for diagnostics and tests.
struct CpuFeatures {
  bool avx2 = false, fma = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool amx_tile = false, amx_int8 = false;
  bool os_ymm = false, os_zmm = false, os_tiles = false;  // XCR0 state bits
  bool amx_permitted = false;                             // arch_prctl granted tile data
};

namespace detail {

#if QAWARE_GEMM_X86
inline std::uint64_t read_xcr0() {
  std::uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

// Linux keeps AMX tile data off until a process asks for it (kernel >= 5.16).
inline bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022;
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
#else
  return false;  // other OSes: not supported by this library
#endif
}
#endif

inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if QAWARE_GEMM_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u;
  f.fma = (c >> 12) & 1u;
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr0 = read_xcr0();
  f.os_ymm = (xcr0 & 0x6u) == 0x6u;                                   // SSE + AVX state
  f.os_zmm = f.os_ymm && (xcr0 & 0xE0u) == 0xE0u;                     // opmask, ZMM_Hi256, Hi16_ZMM
  f.os_tiles = (xcr0 & (3ull << 17)) == (3ull << 17);                 // XTILECFG + XTILEDATA
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1u;
  f.avx512f = (b >> 16) & 1u;
  f.avx512dq = (b >> 17) & 1u;
  f.avx512bw = (b >> 30) & 1u;
  f.avx512vl = (b >> 31) & 1u;
  f.avx512vnni = (c >> 11) & 1u;
  f.amx_tile = (d >> 24) & 1u;
  f.amx_int8 = (d >> 25) & 1u;
  const unsigned max_subleaf = a;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avxvnni = (a >> 4) & 1u;
  }
  if (f.amx_tile && f.amx_int8 && f.os_tiles) f.amx_permitted = request_amx_permission();
#endif
  return f;
}

inline Path paths_from_features(const CpuFeatures& f) {
  Path p = Path::kScalar;
  const bool avx2 = f.avx2 && f.fma && f.os_ymm;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_zmm;
  if (avx2) p = p | Path::kAvx2;
  if (avx2 && f.avxvnni) p = p | Path::kAvxVnni;
  if (avx512 && f.avx512vnni) p = p | Path::kAvx512Vnni;
  // The AMX kernel's epilogue is compiled for AVX-512 too, so it needs both.
  if (avx512 && f.avx512vnni && f.amx_tile && f.amx_int8 && f.os_tiles && f.amx_permitted) p = p | Path::kAmx;
  return p;
}

struct PathState {
  std::atomic<std::uint32_t> last{0};
  std::atomic<std::uint32_t> ran{0};
};
inline PathState& path_state() {
  static PathState s;
  return s;
}

inline void note_path_ran(Path p) {
  path_state().last.store(static_cast<std::uint32_t>(p), std::memory_order_relaxed);
  path_state().ran.fetch_or(static_cast<std::uint32_t>(p), std::memory_order_relaxed);
}

}  // namespace detail

// cpuid / xgetbv results (detected once; also makes the AMX permission request).
inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detail::detect_cpu_features();
  return f;
}

// Paths this CPU and OS can run (scalar always).
inline Path cpu_paths() {
  static const Path p = detail::paths_from_features(cpu_features());
  return p;
}

// The QAWARE_PATHS restriction (all paths when unset). Read on every call so
// tests can change it; throws qaware::Error on an unknown name.
inline Path env_paths() {
  const char* s = std::getenv("QAWARE_PATHS");
  return s ? parse_paths(s) : kAllPaths;
}

// The highest path in `mask`, or kNone for an empty mask.
inline Path best_path(Path mask) {
  for (int i = 4; i >= 0; --i) {
    const Path p = static_cast<Path>(1u << i);
    if (has(mask, p)) return p;
  }
  return Path::kNone;
}

// Paths runnable here and allowed by QAWARE_PATHS. Scalar stays enabled as the
// fallback even when QAWARE_PATHS names only paths this CPU lacks.
inline Path enabled_paths() { return (compiled_paths() & cpu_paths() & env_paths()) | Path::kScalar; }

// The path new packs use by default.
inline Path best_path() { return best_path(enabled_paths()); }

// The path of the most recent GEMM (any thread), kNone before the first one.
inline Path last_path() { return static_cast<Path>(detail::path_state().last.load(std::memory_order_relaxed)); }
// Every path that has run a GEMM in this process.
inline Path paths_run() { return static_cast<Path>(detail::path_state().ran.load(std::memory_order_relaxed)); }

}  // namespace gemm
}  // namespace qaware
