#pragma once
// AMX path (Sapphire Rapids and later): tile matrix multiply.
//
// Eight tile registers of up to 16 rows x 64 bytes. With palette 1 every tile
// here is configured 16 rows x 64 bytes:
//   tmm0..3  C: 2 x 2 blocks of 16 x 16 int32 (a 32 x 32 output block)
//   tmm4..5  A: rows 0-15 and 16-31 of the panel, 64 K values each
//   tmm6..7  B: columns 0-15 and 16-31, 16 K quads x (16 columns x 4 bytes)
// tdpbusd (uint8 A) / tdpbssd (int8 A) add sum_{q,i} A[m][4q+i] * B[q][4n+i]
// to C[m][n] in int32 with no intermediate rounding or saturation, so int8 A
// needs no offset here. B is packed [Kp/64][2][16][16][4] and A [Kp/64][32][64]
// so every A and B tile is one contiguous KiB (stride 64 bytes). K blocks of
// 512 keep the B sub-panel (16 KiB) in L1; the 32 x 32 int32 block goes through
// the accumulator strip between K blocks.
//
// The OS must have granted tile state (arch_prctl, see path.hpp); each worker
// loads the tile configuration (ldtilecfg) before its tasks and releases it
// (tilerelease) after.
//
// GCC's tile-load/config intrinsics are inline asm that do not tell the
// compiler they read memory, so compiler barriers (asm volatile with a
// "memory" clobber) make sure packed data and the config are stored first.

#include <cstdint>
#include <cstring>

#include "qaware/gemm/kernels/common.hpp"

#if QAWARE_GEMM_X86
#include "qaware/core/intrinsics.hpp"

#define QAWARE_GEMM_TARGET_AMX \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")))

namespace qaware {
namespace gemm {
namespace detail {

// The 64-byte LDTILECFG operand.
struct alignas(64) AmxTileConfig {
  std::uint8_t palette_id;
  std::uint8_t start_row;
  std::uint8_t reserved[14];
  std::uint16_t colsb[16];  // bytes per row of tile i
  std::uint8_t rows[16];    // rows of tile i
};
static_assert(sizeof(AmxTileConfig) == 64, "LDTILECFG takes 64 bytes");

inline void compiler_barrier() { __asm__ volatile("" ::: "memory"); }

struct AmxKernel {
  static constexpr Path kPath = Path::kAmx;
  static constexpr Format kFormat = Format::kAmx;
  static constexpr Fixup kFixup = Fixup::kNone;
  static constexpr Index MR = 32, NR = 32, G = 64, KC = 512;
  static constexpr std::int32_t kShiftSigned = 0;
  using AElem = std::uint8_t;  // int8 A is kept as its bit pattern
  using BElem = std::int8_t;

  template <class TA>
  static AElem convert(TA v) {
    return static_cast<AElem>(v);
  }

  // tile[32][32] (+)= A sub-panel [kc/64][32][64] x B sub-panel [kc/64][2][16][64].
  // With rows <= 16 only the upper half (one A tile, C tiles 0 and 1) is computed.
  QAWARE_GEMM_TARGET_AMX static void micro(const AElem* a, const void* bsub, Index kc, int rows, bool a_signed,
                                           bool accumulate, std::int32_t* tile) {
    const std::uint8_t* b = static_cast<const std::uint8_t*>(bsub);
    const Index blocks = kc / 64;
    constexpr Index ldt = NR * 4;  // bytes per row of the int32 strip
    std::int32_t* lower = tile + 16 * NR;
    compiler_barrier();
    if (accumulate) {
      _tile_loadd(0, tile, ldt);
      _tile_loadd(1, tile + 16, ldt);
    } else {
      _tile_zero(0);
      _tile_zero(1);
    }
    if (rows > 16) {
      if (accumulate) {
        _tile_loadd(2, lower, ldt);
        _tile_loadd(3, lower + 16, ldt);
      } else {
        _tile_zero(2);
        _tile_zero(3);
      }
      if (a_signed) {
        for (Index kb = 0; kb < blocks; ++kb) {
          _tile_loadd(4, a + kb * 2048, 64);
          _tile_loadd(6, b + kb * 2048, 64);
          _tile_loadd(7, b + kb * 2048 + 1024, 64);
          _tile_loadd(5, a + kb * 2048 + 1024, 64);
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
          _tile_dpbssd(2, 5, 6);
          _tile_dpbssd(3, 5, 7);
        }
      } else {
        for (Index kb = 0; kb < blocks; ++kb) {
          _tile_loadd(4, a + kb * 2048, 64);
          _tile_loadd(6, b + kb * 2048, 64);
          _tile_loadd(7, b + kb * 2048 + 1024, 64);
          _tile_loadd(5, a + kb * 2048 + 1024, 64);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          _tile_dpbusd(2, 5, 6);
          _tile_dpbusd(3, 5, 7);
        }
      }
      _tile_stored(2, lower, ldt);
      _tile_stored(3, lower + 16, ldt);
    } else {
      if (a_signed) {
        for (Index kb = 0; kb < blocks; ++kb) {
          _tile_loadd(4, a + kb * 2048, 64);
          _tile_loadd(6, b + kb * 2048, 64);
          _tile_loadd(7, b + kb * 2048 + 1024, 64);
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
        }
      } else {
        for (Index kb = 0; kb < blocks; ++kb) {
          _tile_loadd(4, a + kb * 2048, 64);
          _tile_loadd(6, b + kb * 2048, 64);
          _tile_loadd(7, b + kb * 2048 + 1024, 64);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
        }
      }
    }
    _tile_stored(0, tile, ldt);
    _tile_stored(1, tile + 16, ldt);
    compiler_barrier();
  }

  QAWARE_GEMM_TARGET_AMX QAWARE_GEMM_NOINLINE static void worker(const Problem& p, const Plan& pl,
                                                                 unsigned char* shared, unsigned char* scratch,
                                                                 Index t0, Index t1) {
    AmxTileConfig cfg;
    std::memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
      cfg.colsb[t] = 64;
      cfg.rows[t] = 16;
    }
    compiler_barrier();
    _tile_loadconfig(&cfg);
    drive<AmxKernel>(p, pl, shared, scratch, t0, t1);
    _tile_release();
  }
};

}  // namespace detail
}  // namespace gemm
}  // namespace qaware

#endif  // QAWARE_GEMM_X86
