#pragma once
// What this CPU and OS can run, and how far the library may go: the one
// place qaware asks the hardware (cpuid, xgetbv, Linux's AMX permission).
//
// Every kernel family (INT8 and float GEMM, fake quantization, observers,
// dropout, the optimizers) picks its instruction set with isa_enabled(level):
// the CPU and OS must support the level, and the level must not exceed the
// library-wide cap max_isa(). The cap comes from the environment variable
// QAWARE_MAX_ISA, read once, the first time any kernel asks (in the spirit of
// oneDNN's ONEDNN_MAX_CPU_ISA); set_max_isa() changes it at run time (tests,
// benchmarks). Code that Eigen compiles is not covered: its instruction set is
// fixed when the user's program is compiled (-march).
//
// Levels, in order (the cap admits a level and every level below it):
//   scalar       no SIMD kernel (the compiler's baseline code only)
//   avx2         AVX2 + FMA
//   avx2_vnni    + AVX-VNNI (the VEX-encoded int8 dot products)
//   avx512       AVX-512 F, BW, VL and DQ
//   avx512_vnni  + AVX512_VNNI
//   amx          + AMX-TILE and AMX-INT8 (and the OS grants tile data)
// A level needs the OS to save the registers it uses (XCR0): YMM state for
// the AVX2 levels, opmask and ZMM state for AVX-512, tile config and data for
// AMX. Linux hands out AMX tile data only on request; the probe asks once.
// The hardware levels do not nest (Zen 4 has AVX512_VNNI but no AVX-VNNI), so
// cpu_has() answers per level.

#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "qaware/core/error.hpp"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define QAWARE_CPU_X86 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#else
#define QAWARE_CPU_X86 0
#endif

namespace qaware {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx2Vnni = 2, kAvx512 = 3, kAvx512Vnni = 4, kAmx = 5 };

constexpr Isa kEachIsa[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kAmx};

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx2Vnni: return "avx2_vnni";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512_vnni";
    case Isa::kAmx: return "amx";
  }
  return "?";
}

// A QAWARE_MAX_ISA value: a level's name (case-insensitive, '-' for '_'
// accepted) or "all". Anything else raises qaware::Error naming the value.
inline Isa parse_isa(const std::string& spec) {
  std::string s;
  for (char ch : spec) {
    if (std::isspace(static_cast<unsigned char>(ch))) continue;
    s += ch == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (s.empty() || s == "all") return Isa::kAmx;
  for (Isa isa : kEachIsa)
    if (s == isa_name(isa)) return isa;
  QAWARE_CHECK(false, "QAWARE_MAX_ISA: unknown instruction set '", spec,
               "' (known: scalar, avx2, avx2_vnni, avx512, avx512_vnni, amx, all)");
  return Isa::kScalar;
}

// The raw cpuid / xgetbv answers, for diagnostics and tests.
struct CpuFeatures {
  bool avx2 = false, fma = false, avxvnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool amx_tile = false, amx_int8 = false;
  bool os_ymm = false, os_zmm = false, os_tiles = false;  // XCR0 state bits
  bool amx_permitted = false;                             // arch_prctl granted tile data
};

namespace detail {

#if QAWARE_CPU_X86
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
  return false;  // other OSes: AMX is not used
#endif
}
#endif

inline CpuFeatures probe_cpu() {
  CpuFeatures f;
#if QAWARE_CPU_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u;
  f.fma = (c >> 12) & 1u;
  if (!osxsave || !avx) return f;
  const std::uint64_t xcr0 = read_xcr0();
  f.os_ymm = (xcr0 & 0x6u) == 0x6u;                    // SSE + AVX state
  f.os_zmm = f.os_ymm && (xcr0 & 0xE0u) == 0xE0u;      // opmask, ZMM_Hi256, Hi16_ZMM
  f.os_tiles = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG + XTILEDATA
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1u;
  f.avx512f = (b >> 16) & 1u;
  f.avx512dq = (b >> 17) & 1u;
  f.avx512bw = (b >> 30) & 1u;
  f.avx512vl = (b >> 31) & 1u;
  f.avx512vnni = (c >> 11) & 1u;
  f.amx_tile = (d >> 24) & 1u;
  f.amx_int8 = (d >> 25) & 1u;
  if (a >= 1) {  // leaf 7 has sub-leaf 1
    __cpuid_count(7, 1, a, b, c, d);
    f.avxvnni = (a >> 4) & 1u;
  }
  if (f.amx_tile && f.amx_int8 && f.os_tiles) f.amx_permitted = request_amx_permission();
#endif
  return f;
}

// The cap as first read from QAWARE_MAX_ISA (every level when unset). If the
// value is invalid the Error propagates, and the next caller reads it again.
inline std::atomic<int>& max_isa_state() {
  static std::atomic<int> cap{[] {
    const char* s = std::getenv("QAWARE_MAX_ISA");
    return static_cast<int>(s ? parse_isa(s) : Isa::kAmx);
  }()};
  return cap;
}

}  // namespace detail

// The CPU's answers, probed once (the first call also makes the AMX request).
inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detail::probe_cpu();
  return f;
}

namespace detail {
// Bit `level` set when the CPU and OS can run that level.
inline unsigned levels_from(const CpuFeatures& f) {
  const bool avx2 = f.avx2 && f.fma && f.os_ymm;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_zmm;
  // The AMX GEMM's edges and epilogue run AVX-512 VNNI code as well.
  const bool amx = avx512 && f.avx512vnni && f.amx_tile && f.amx_int8 && f.os_tiles && f.amx_permitted;
  const bool has[] = {true, avx2, avx2 && f.avxvnni, avx512, avx512 && f.avx512vnni, amx};
  unsigned mask = 0;
  for (unsigned i = 0; i < 6; ++i) mask |= has[i] ? 1u << i : 0u;
  return mask;
}
}  // namespace detail

// Whether this CPU and OS can run the instructions of `level`, whatever the cap.
inline bool cpu_has(Isa level) {
  static const unsigned mask = detail::levels_from(cpu_features());
  return (mask >> static_cast<int>(level)) & 1u;
}

// The library-wide cap (QAWARE_MAX_ISA, or the last set_max_isa()).
inline Isa max_isa() { return static_cast<Isa>(detail::max_isa_state().load(std::memory_order_relaxed)); }

// Sets the cap; returns the previous one. Kernels consult it on each call, so
// it takes effect for the next call of every kernel family (a PackedMatrix
// already packed for a path keeps it).
inline Isa set_max_isa(Isa cap) {
  return static_cast<Isa>(detail::max_isa_state().exchange(static_cast<int>(cap), std::memory_order_relaxed));
}

// Whether kernels may use `level`: the CPU has it and the cap admits it.
inline bool isa_enabled(Isa level) { return static_cast<int>(level) <= static_cast<int>(max_isa()) && cpu_has(level); }

// The highest enabled level.
inline Isa best_isa() {
  Isa best = Isa::kScalar;
  for (Isa isa : kEachIsa)
    if (isa_enabled(isa)) best = isa;
  return best;
}

// Lowers (or raises) the cap for one scope, then restores it.
class ScopedMaxIsa {
 public:
  explicit ScopedMaxIsa(Isa cap) : previous_(set_max_isa(cap)) {}
  ~ScopedMaxIsa() { set_max_isa(previous_); }
  ScopedMaxIsa(const ScopedMaxIsa&) = delete;
  ScopedMaxIsa& operator=(const ScopedMaxIsa&) = delete;

 private:
  Isa previous_;
};

}  // namespace qaware
