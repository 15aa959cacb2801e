#pragma once
// INT8 GEMM paths: which kernels this build has, which this CPU and OS can
// run, which the library-wide instruction-set cap admits, and which one ran.
//
// A path is one bit of a mask (ruy's Path idea). The enabled paths are
//   compiled_paths() & cpu_paths() & (paths the cap admits)   (scalar always)
// and the best enabled path -- the highest bit -- is the default for packing.
//
// cpu_paths() are the paths whose instructions this CPU and OS can run
// (qaware/core/cpu.hpp probes them); enabled_paths() keeps those the
// library-wide cap admits (QAWARE_MAX_ISA, set_max_isa()): a path is admitted
// when its level is, i.e. avx2 -> Isa::kAvx2, avxvnni -> kAvx2Vnni,
// avx512vnni -> kAvx512Vnni, amx -> kAmx. A PackedMatrix keeps the path it
// was packed for, and gemm() runs that path (refusing one this CPU cannot
// run), so a cap lowered later does not change an existing pack.

#include <atomic>
#include <cstdint>
#include <string>

#include "qaware/core/cpu.hpp"
#include "qaware/core/error.hpp"

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

// Paths whose kernels this build contains.
constexpr Path compiled_paths() {
#if QAWARE_GEMM_X86
  return kAllPaths;
#else
  return Path::kScalar;
#endif
}

// The instruction-set level each path needs.
constexpr Isa path_isa(Path p) {
  switch (p) {
    case Path::kAvx2: return Isa::kAvx2;
    case Path::kAvxVnni: return Isa::kAvx2Vnni;
    case Path::kAvx512Vnni: return Isa::kAvx512Vnni;
    case Path::kAmx: return Isa::kAmx;
    default: return Isa::kScalar;
  }
}

namespace detail {

// The paths whose levels pass `admit`.
template <typename Admit>
Path paths_where(Admit admit) {
  Path p = Path::kNone;
  for (Path q : kEachPath)
    if (admit(path_isa(q))) p = p | q;
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

// Paths this CPU and OS can run (scalar always), whatever the cap.
inline Path cpu_paths() {
  static const Path p = detail::paths_where([](Isa level) { return cpu_has(level); });
  return p;
}

// The highest path in `mask`, or kNone for an empty mask.
inline Path best_path(Path mask) {
  for (int i = 4; i >= 0; --i) {
    const Path p = static_cast<Path>(1u << i);
    if (has(mask, p)) return p;
  }
  return Path::kNone;
}

// Paths this build has, this CPU runs and the cap admits (scalar always).
inline Path enabled_paths() {
  return (compiled_paths() & detail::paths_where([](Isa level) { return isa_enabled(level); })) | Path::kScalar;
}

// The path new packs use by default.
inline Path best_path() { return best_path(enabled_paths()); }

// The path of the most recent GEMM (any thread), kNone before the first one.
inline Path last_path() { return static_cast<Path>(detail::path_state().last.load(std::memory_order_relaxed)); }
// Every path that has run a GEMM in this process.
inline Path paths_run() { return static_cast<Path>(detail::path_state().ran.load(std::memory_order_relaxed)); }

}  // namespace gemm
}  // namespace qaware
