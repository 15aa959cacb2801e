#pragma once
// The machinery every INT8 GEMM path shares: the validated problem, the block
// plan, A packing, the output-stage epilogue and the block loop (drive).
//
// A path is a Kernel type with
//   kFormat, MR, NR, G, KC, AElem, BElem  layout constants: MR x NR micro-tile,
//                                   K groups of G (= layout_of(kFormat).kalign),
//                                   K blocks of KC for the L1 cache
//   convert<TA>(v)                  one A element as the kernel stores it
//   kShiftSigned                    128 when convert<int8_t> adds 128 (int8 A
//                                   made unsigned for u8 x s8 instructions), else 0
//   micro(a, b, kc, rows, a_signed, accumulate, tile)
//                                   tile[MR][NR] (+)= A sub-panel x B sub-panel
//                                   over kc depth; only `rows` rows need be right,
//                                   but up to MR rows may be written (the packed
//                                   rows past M are zero, the strip holds them)
//   kFixup                          Fixup::kNone, or which exact corrections
//                                   follow each K block's micro-kernel call:
//     kB: fixup(b, panel, k0, a, rows, tile)   recorded in B by pack_b (AVX2 maddubs)
//     kA: pack_a(p, m0, rows, kp, dst, row_off, fixes, starts) packs A itself
//         (as A - za + b.a_shift()) and records them; fixup_a(panel, begin,
//         end, tile) applies them (AVX2 A-fixed quads)
//   optional, where kFixup is kNone:
//     micro_out(a, b, kc, rows, accumulate, tile, TileOut)
//                                   micro() for the last K block that adds the
//                                   compensation, applies the int32 or float
//                                   output stage (no GELU) in registers and
//                                   stores C itself: drive() then skips the
//                                   pass over the strip (AVX-512 VNNI)
//     pack_rows<TA>(p, m0, rows, kp, dst, row_off)
//                                   pack_a_block's bytes and row offsets, by a
//                                   faster route (AVX-512 VNNI)
//   worker(problem, plan, shared, scratch, t0, t1)
//                                   runs tasks [t0, t1); carries the path's
//                                   function target attribute so drive(), the
//                                   packing and the epilogue inlined into it are
//                                   compiled for that ISA.
// The helpers below are always_inline and carry no target attribute, so they
// take the ISA of the worker they are inlined into (a user TU needs no -march).
//
// Packed A (per worker, one M block at a time): panels of MR rows, each panel
// [Kp/G][MR][G] -- the G consecutive K values one instruction consumes, for MR
// rows side by side -- so a micro-kernel reads one contiguous stream. Rows past
// M are zero.
//
// Loop nest of one task (an M block x a chunk of B panels), GotoBLAS style:
//   for each B panel j (NR columns)
//     for each K block (KC deep): the B sub-panel (KC x NR) stays in L1
//       for each A panel i (MR rows): micro-kernel into the MC x NR int32 strip
//         (or, on the last K block with micro_out, straight into C)
//     output stage on the strip (not with micro_out)

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/gemm/output.hpp"
#include "qaware/gemm/packed_matrix.hpp"
#include "qaware/gemm/path.hpp"
#include "qaware/core/numerics.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define QAWARE_GEMM_INLINE inline __attribute__((always_inline))
#define QAWARE_GEMM_NOINLINE __attribute__((noinline))
#else
#define QAWARE_GEMM_INLINE inline
#define QAWARE_GEMM_NOINLINE
#endif

#if defined(__clang__)
#define QAWARE_GEMM_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define QAWARE_GEMM_UNROLL _Pragma("GCC unroll 64")
#else
#define QAWARE_GEMM_UNROLL
#endif

namespace qaware {
namespace gemm {
namespace detail {

// Which exact corrections a kernel applies after each K block (see above).
enum class Fixup { kNone, kB, kA };

// One A value a kA kernel's packing had to change: C[row][n] += value * B[k][n]
// for every column n (row within its MR-row panel).
struct RowCorrection {
  std::int32_t k;
  std::int16_t row;
  std::int16_t value;  // |value| <= 255
};

// Where a micro-kernel that finishes its tile itself (Kernel::micro_out, used
// on the last K block) writes it: `rows` x `cols` values of C from `c` (row
// stride ldc elements), each the int32 sum plus col_off[j] + row_off[i], as
// int32 or, when to_float, dequantized as fma(float(sum), scale[j], bias[j])
// (bias 0 when null) and then ReLU'd when relu -- epilogue()'s arithmetic,
// element for element. Only for the int32 and float outputs without GELU.
struct TileOut {
  void* c = nullptr;
  Index ldc = 0;
  int rows = 0;
  Index cols = 0;
  const std::int32_t* col_off = nullptr;  // at the tile's first column
  const std::int32_t* row_off = nullptr;  // at the tile's first row
  const float* scale = nullptr;           // at the tile's first column (to_float)
  const float* bias = nullptr;            // at the tile's first column, or null
  bool to_float = false;
  bool relu = false;
};

// Whether Kernel has micro_out (it then writes C from its registers on the
// last K block instead of leaving the tile to epilogue()).
template <class Kernel, class = void>
struct has_micro_out : std::false_type {};
template <class Kernel>
struct has_micro_out<Kernel, std::void_t<decltype(&Kernel::micro_out)>> : std::true_type {};

// Whether Kernel packs A itself (Kernel::pack_rows, pack_a_block's layout and
// results, faster).
template <class Kernel, class = void>
struct has_pack_rows : std::false_type {};
template <class Kernel>
struct has_pack_rows<Kernel, std::void_t<decltype(&Kernel::template pack_rows<std::uint8_t>)>> : std::true_type {};

// A validated GEMM call.
struct Problem {
  const void* a = nullptr;
  bool a_signed = false;  // int8 A (else uint8)
  Index M = 0, K = 0, lda = 0;
  std::int32_t a_zp = 0;
  const PackedMatrix* b = nullptr;
  Output out = Output::int32(nullptr, 0);
};

// How the M x N output is cut into tasks, and what each worker needs.
struct Plan {
  Index mc = 0;            // rows per M block (multiple of MR)
  Index m_blocks = 0;
  Index n_chunks = 0;      // column chunks (in whole panels)
  Index panels_per_chunk = 0;
  Index tasks = 0;         // m_blocks * n_chunks, task = (m block, n chunk), n fastest
  int workers = 1;
  // Scratch: one region of `worker_bytes` per worker, after a shared region.
  std::size_t shared_bytes = 0, worker_bytes = 0;
  std::size_t a_offset = 0, rowoff_offset = 0, tile_offset = 0, ytile_offset = 0;  // within a worker region
  // kA kernels: room for a block's RowCorrections (at most one per A value) and
  // their starts per (MR-row panel, K block), also within a worker region.
  std::size_t fixes_offset = 0, starts_offset = 0;
  // tile: the MC x NR int32 accumulator strip; ytile: its float twin
  // Shared region: column offsets (N int32) and per-column scales (N float).
  std::size_t coloff_offset = 0, scale_offset = 0;
};

// Bytes of packed A one block may use: sized for a core's L2 (Zen 3 has
// 512 KiB, Intel server cores 1-2 MiB), leaving room for the B panel.
constexpr Index kABlockBytes = 192 * 1024;

// Bytes of the MC x NR int32 accumulator strip: it is revisited by every A
// panel, so it should share L1 with the B sub-panel rather than evict it.
constexpr Index kStripBytes = 12 * 1024;

// kc: the kernel's K block when it corrects A (Fixup::kA), else 0.
inline Plan make_plan(const Problem& p, int mr, int nr, int a_elem, int threads, Index kc) {
  Plan pl;
  const PackedMatrix& b = *p.b;
  const Index M = p.M, Kp = b.padded_depth(), panels = b.panels();
  const Index row_bytes = Kp * a_elem;
  Index mc = std::max<Index>(mr, std::min(kABlockBytes / row_bytes, kStripBytes / (4 * nr)) / mr * mr);
  mc = std::min(mc, round_up(M, mr));
  Index m_blocks = ceil_div(M, mc);
  const Index t = std::max(1, threads);
  if (t > 1 && m_blocks >= t) {
    // Even out the row blocks over the workers.
    m_blocks = std::min(round_up(m_blocks, t), ceil_div(M, mr));
    mc = round_up(ceil_div(M, m_blocks), mr);
    m_blocks = ceil_div(M, mc);
  }
  // With several workers, cut the columns too until there are about 8 tasks
  // per worker (small M, GEMV; and load balance when row blocks do not divide
  // evenly). A worker's tasks are consecutive, so it packs each A block once.
  const Index n_chunks = t == 1 ? 1 : std::min(panels, std::max<Index>(1, ceil_div(8 * t, m_blocks)));
  pl.mc = mc;
  pl.m_blocks = m_blocks;
  pl.panels_per_chunk = ceil_div(panels, n_chunks);
  pl.n_chunks = ceil_div(panels, pl.panels_per_chunk);
  pl.tasks = pl.m_blocks * pl.n_chunks;
  pl.workers = static_cast<int>(std::min<Index>(t, pl.tasks));

  auto align = [](std::size_t x) { return (x + 63) / 64 * 64; };
  const std::size_t N = static_cast<std::size_t>(b.cols());
  pl.coloff_offset = 0;
  pl.scale_offset = align(N * 4);
  pl.shared_bytes = pl.scale_offset + align(N * 4);
  pl.a_offset = 0;
  pl.rowoff_offset = align(static_cast<std::size_t>(mc * row_bytes));
  pl.tile_offset = pl.rowoff_offset + align(static_cast<std::size_t>(mc) * 4);
  const std::size_t tile_bytes = align(static_cast<std::size_t>(mc) * static_cast<std::size_t>(b.panel_cols()) * 4);
  pl.ytile_offset = pl.tile_offset + tile_bytes;
  pl.worker_bytes = pl.ytile_offset + tile_bytes;
  if (kc > 0) {
    pl.fixes_offset = pl.worker_bytes;
    pl.starts_offset = pl.fixes_offset + align(static_cast<std::size_t>(mc * Kp) * sizeof(RowCorrection));
    const std::size_t starts = static_cast<std::size_t>((mc / mr) * ceil_div(Kp, kc) + 1);
    pl.worker_bytes = pl.starts_offset + align(starts * 4);
  }
  return pl;
}

// Wrapping int32 addition (the accumulators are exact modulo 2^32; the true
// result fits in int32 by the K check, so the wrapped sum is the exact value).
QAWARE_GEMM_INLINE std::int32_t wrap_add(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}
QAWARE_GEMM_INLINE std::int32_t wrap_mul(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) * static_cast<std::uint32_t>(b));
}

// Shared per-call data: column offsets and scales.
//   col_off[n] = -(za + shift) * colsum[n] + K * za * zb
// where shift = 128 when the kernel stored int8 A as A + 128, and za is A's
// zero point as the kernel sees A (a_shift for the A-fixed quads).
QAWARE_GEMM_INLINE void prepare_columns(const Problem& p, std::int32_t za, std::int32_t shift, std::int32_t* col_off,
                                        float* scale) {
  const PackedMatrix& b = *p.b;
  const Index N = b.cols();
  const std::int32_t* cs = b.col_sums();
  const std::int32_t zb = b.zero_point();
  const std::int32_t kzz = wrap_mul(wrap_mul(static_cast<std::int32_t>(p.K), za), zb);
  const std::int32_t neg = -(za + shift);
  for (Index n = 0; n < N; ++n) col_off[n] = wrap_add(wrap_mul(neg, cs[n]), kzz);
  if (p.out.kind() != Output::Kind::kInt32) {
    const Dequantize& dq = p.out.dequant();
    for (Index n = 0; n < N; ++n) scale[n] = dq.a_scale * dq.b_scales[dq.b_scale_count == 1 ? 0 : n];
  }
}

// Packs rows [m0, m0 + rows) of A into `dst` in the [Kp/G][MR][G] panel layout
// (rows padded to a multiple of MR with zeros, K to Kp) and, when B has a zero
// point, stores row_off[r] = -zb * sum_k A[m0 + r][k] (else 0).
template <class Kernel, class TA>
QAWARE_GEMM_INLINE void pack_a_block(const Problem& p, Index m0, Index rows, Index kp, typename Kernel::AElem* dst,
                                     std::int32_t* row_off) {
  using AElem = typename Kernel::AElem;
  constexpr Index MR = Kernel::MR, G = Kernel::G;
  const TA* a = static_cast<const TA*>(p.a);
  const Index K = p.K;
  const std::int32_t zb = p.b->zero_point();
  const Index padded_rows = round_up(rows, MR);
  const Index full_groups = K / G, groups = kp / G;
  for (Index r = 0; r < padded_rows; ++r) {
    AElem* out = dst + (r / MR) * (kp * MR) + (r % MR) * G;
    if (r >= rows) {
      for (Index g = 0; g < groups; ++g)
        for (Index e = 0; e < G; ++e) out[g * MR * G + e] = AElem(0);
      continue;
    }
    const TA* src = a + (m0 + r) * p.lda;
    for (Index g = 0; g < full_groups; ++g) {
      AElem* o = out + g * MR * G;
      const TA* s = src + g * G;
      for (Index e = 0; e < G; ++e) o[e] = Kernel::template convert<TA>(s[e]);
    }
    for (Index g = full_groups; g < groups; ++g) {
      AElem* o = out + g * MR * G;
      for (Index e = 0; e < G; ++e) {
        const Index k = g * G + e;
        o[e] = k < K ? Kernel::template convert<TA>(src[k]) : AElem(0);
      }
    }
    if (zb != 0) {
      std::int32_t sum = 0;
      for (Index k = 0; k < K; ++k) sum += src[k];
      row_off[r] = wrap_mul(-zb, sum);
    } else {
      row_off[r] = 0;
    }
  }
}

// Applies the output stage to a rows x cols corner of tile (leading dim ld)
// for output rows [m0, m0 + rows) and columns [n0, n0 + cols). ytile is float
// scratch of the same shape. Plain loops (no memcpy calls): a strip is only a
// few dozen bytes wide and this runs once per strip.
QAWARE_GEMM_INLINE void epilogue(const Problem& p, const std::int32_t* tile, float* ytile, Index ld, Index m0,
                                 Index rows, Index n0, Index cols, const std::int32_t* col_off, const float* scale,
                                 const std::int32_t* row_off) {
  const Output& out = p.out;
  const std::int32_t* co = col_off + n0;
  const Index ldc = out.ldc();
  if (out.kind() == Output::Kind::kInt32) {
    std::int32_t* c = static_cast<std::int32_t*>(out.data()) + m0 * ldc + n0;
    for (Index i = 0; i < rows; ++i) {
      const std::int32_t* t = tile + i * ld;
      std::int32_t* ci = c + i * ldc;
      const std::int32_t ro = row_off[i];
      for (Index j = 0; j < cols; ++j) ci[j] = wrap_add(wrap_add(t[j], co[j]), ro);
    }
    return;
  }
  const Dequantize& dq = out.dequant();
  const float* s = scale + n0;
  const float* bias = dq.bias ? dq.bias + n0 : nullptr;
  const Activation act = dq.activation;
  const bool to_float = out.kind() == Output::Kind::kFloat;
  for (Index i = 0; i < rows; ++i) {
    const std::int32_t* t = tile + i * ld;
    const std::int32_t ro = row_off[i];
    float* y = to_float ? static_cast<float*>(out.data()) + (m0 + i) * ldc + n0 : ytile + i * ld;
    if (bias) {
      for (Index j = 0; j < cols; ++j) y[j] = numerics::dequantize_accumulator(wrap_add(wrap_add(t[j], co[j]), ro), s[j], bias[j]);
    } else {
      for (Index j = 0; j < cols; ++j) y[j] = numerics::dequantize_accumulator(wrap_add(wrap_add(t[j], co[j]), ro), s[j], 0.0f);
    }
    if (act == Activation::kRelu) {
      for (Index j = 0; j < cols; ++j) y[j] = y[j] > 0.0f ? y[j] : 0.0f;
    } else if (act == Activation::kGelu) {
      numerics::gelu_erf(y, y, cols);
    }
  }
  if (to_float) return;
  const float inv = 1.0f / out.out_scale();
  const std::int32_t zp = out.out_zero_point(), qmin = out.qmin(), qmax = out.qmax();
  for (Index i = 0; i < rows; ++i) {
    const float* y = ytile + i * ld;
    if (out.kind() == Output::Kind::kUint8) {
      std::uint8_t* c = static_cast<std::uint8_t*>(out.data()) + (m0 + i) * ldc + n0;
      for (Index j = 0; j < cols; ++j) c[j] = static_cast<std::uint8_t>(numerics::quantize(y[j], inv, zp, qmin, qmax));
    } else {
      std::int8_t* c = static_cast<std::int8_t*>(out.data()) + (m0 + i) * ldc + n0;
      for (Index j = 0; j < cols; ++j) c[j] = static_cast<std::int8_t>(numerics::quantize(y[j], inv, zp, qmin, qmax));
    }
  }
}

// Asks for the cache lines of part of an output strip (rows [m0, m0 + rows),
// columns [n0, n0 + cols)) well before the epilogue writes them: each strip
// row is a new line of C at stride ldc, a pattern hardware prefetchers miss,
// and without this the epilogue of a large M stalls on its stores once C no
// longer fits the cache. Called a few rows at a time, as the first K block
// reaches them, so the requests are spread out rather than dropped.
QAWARE_GEMM_INLINE void prefetch_output_strip(const Output& out, Index m0, Index rows, Index n0, Index cols) {
#if defined(__GNUC__) || defined(__clang__)
  const Index es = out.kind() == Output::Kind::kInt32 || out.kind() == Output::Kind::kFloat ? 4 : 1;
  const char* base = static_cast<const char*>(out.data()) + (m0 * out.ldc() + n0) * es;
  const Index stride = out.ldc() * es, last = cols * es - 1;
  for (Index i = 0; i < rows; ++i) {
    __builtin_prefetch(base + i * stride, 1, 3);
    __builtin_prefetch(base + i * stride + last, 1, 3);
  }
#else
  (void)out, (void)m0, (void)rows, (void)n0, (void)cols;
#endif
}

// The TileOut of the micro tile at rows [m0 + i0, m0 + i0 + rows) and
// columns [n0, n0 + cols) (int32 or float output without GELU).
QAWARE_GEMM_INLINE TileOut tile_out(const Problem& p, const std::int32_t* col_off, const float* scale,
                                    const std::int32_t* row_off, Index m0, Index i0, int rows, Index n0, Index cols) {
  TileOut o;
  const Output& out = p.out;
  o.ldc = out.ldc();
  o.rows = rows;
  o.cols = cols;
  o.col_off = col_off + n0;
  o.row_off = row_off + i0;
  o.to_float = out.kind() == Output::Kind::kFloat;
  const Index at = (m0 + i0) * o.ldc + n0;
  if (o.to_float) {
    const Dequantize& dq = out.dequant();
    o.c = static_cast<float*>(out.data()) + at;
    o.scale = scale + n0;
    o.bias = dq.bias ? dq.bias + n0 : nullptr;
    o.relu = dq.activation == Activation::kRelu;
  } else {
    o.c = static_cast<std::int32_t*>(out.data()) + at;
  }
  return o;
}

// Runs tasks [t0, t1) of the plan with Kernel. `scratch` is this worker's region,
// `shared` the per-call region. Only the A packing depends on A's type, so the
// rest is compiled once per kernel.
template <class Kernel>
QAWARE_GEMM_INLINE void drive(const Problem& p, const Plan& pl, unsigned char* shared, unsigned char* scratch, Index t0,
                              Index t1) {
  using AElem = typename Kernel::AElem;
  const PackedMatrix& b = *p.b;
  const Index kp = b.padded_depth(), N = b.cols(), M = p.M;
  constexpr Index MR = Kernel::MR, NR = Kernel::NR;
  const std::int32_t* col_off = reinterpret_cast<const std::int32_t*>(shared + pl.coloff_offset);
  const float* scale = reinterpret_cast<const float*>(shared + pl.scale_offset);
  AElem* a_buf = reinterpret_cast<AElem*>(scratch + pl.a_offset);
  std::int32_t* row_off = reinterpret_cast<std::int32_t*>(scratch + pl.rowoff_offset);
  std::int32_t* tile = reinterpret_cast<std::int32_t*>(scratch + pl.tile_offset);
  float* ytile = reinterpret_cast<float*>(scratch + pl.ytile_offset);
  RowCorrection* fixes = reinterpret_cast<RowCorrection*>(scratch + pl.fixes_offset);
  std::int32_t* starts = reinterpret_cast<std::int32_t*>(scratch + pl.starts_offset);
  // Kernels with micro_out finish each tile from their registers (no pass over
  // the strip) where the output stage allows it.
  bool fuse = false;
  if constexpr (has_micro_out<Kernel>::value) {
    static_assert(Kernel::kFixup == Fixup::kNone, "micro_out writes C before any K-block correction");
    const Output::Kind kind = p.out.kind();
    fuse = kind == Output::Kind::kInt32 ||
           (kind == Output::Kind::kFloat && p.out.dequant().activation != Activation::kGelu);
  }
  Index packed_block = -1;
  for (Index t = t0; t < t1; ++t) {
    const Index mb = t / pl.n_chunks, nc = t % pl.n_chunks;
    const Index m0 = mb * pl.mc;
    const Index rows = std::min(pl.mc, M - m0);
    if (mb != packed_block) {
      if constexpr (Kernel::kFixup == Fixup::kA) {
        if (p.a_signed) {
          Kernel::template pack_a<std::int8_t>(p, m0, rows, kp, a_buf, row_off, fixes, starts);
        } else {
          Kernel::template pack_a<std::uint8_t>(p, m0, rows, kp, a_buf, row_off, fixes, starts);
        }
      } else if constexpr (has_pack_rows<Kernel>::value) {
        if (p.a_signed) {
          Kernel::template pack_rows<std::int8_t>(p, m0, rows, kp, a_buf, row_off);
        } else {
          Kernel::template pack_rows<std::uint8_t>(p, m0, rows, kp, a_buf, row_off);
        }
      } else if (p.a_signed) {
        pack_a_block<Kernel, std::int8_t>(p, m0, rows, kp, a_buf, row_off);
      } else {
        pack_a_block<Kernel, std::uint8_t>(p, m0, rows, kp, a_buf, row_off);
      }
      packed_block = mb;
    }
    const Index p0 = nc * pl.panels_per_chunk;
    const Index p1 = std::min(b.panels(), p0 + pl.panels_per_chunk);
    for (Index j = p0; j < p1; ++j) {
      const unsigned char* panel = static_cast<const unsigned char*>(b.panel(j));
      const Index n0 = j * NR, cols = std::min(NR, N - n0);
      for (Index k0 = 0; k0 < kp; k0 += Kernel::KC) {
        const Index kc = std::min<Index>(Kernel::KC, kp - k0);
        const void* bsub = panel + k0 * NR * static_cast<Index>(sizeof(typename Kernel::BElem));
        for (Index i0 = 0; i0 < rows; i0 += MR) {
          const int r = static_cast<int>(std::min(MR, rows - i0));
          const AElem* asub = a_buf + i0 * kp + k0 * MR;
          if (k0 == 0) prefetch_output_strip(p.out, m0 + i0, r, n0, cols);
          if constexpr (has_micro_out<Kernel>::value) {
            if (fuse && k0 + kc == kp) {
              Kernel::micro_out(asub, bsub, kc, r, k0 > 0, tile + i0 * NR,
                                tile_out(p, col_off, scale, row_off, m0, i0, r, n0, cols));
              continue;
            }
          }
          Kernel::micro(asub, bsub, kc, r, p.a_signed, k0 > 0, tile + i0 * NR);
          if constexpr (Kernel::kFixup == Fixup::kB) Kernel::fixup(b, j, k0, asub, r, tile + i0 * NR);
          if constexpr (Kernel::kFixup == Fixup::kA) {
            const Index slot = (i0 / MR) * ceil_div(kp, Kernel::KC) + k0 / Kernel::KC;
            Kernel::fixup_a(panel, fixes + starts[slot], fixes + starts[slot + 1], tile + i0 * NR);
          }
        }
      }
      if (!fuse) epilogue(p, tile, ytile, NR, m0, rows, n0, cols, col_off, scale, row_off);
    }
  }
}

// Plans, reserves the workspace (gemm/workspace.hpp) and runs
// Kernel::worker on every worker.
template <class Kernel>
void run_kernel(const Problem& p) {
  const Plan pl = make_plan(p, Kernel::MR, Kernel::NR, static_cast<int>(sizeof(typename Kernel::AElem)), num_threads(),
                            Kernel::kFixup == Fixup::kA ? Kernel::KC : 0);
  const std::size_t total = pl.shared_bytes + pl.worker_bytes * static_cast<std::size_t>(pl.workers);
  AlignedBuffer& ws = workspace();
  ws.reserve(total);
  unsigned char* base = ws.data();
  // The A-fixed quads see A - za + a_shift as uint8 A with zero point a_shift.
  const bool fix_a = Kernel::kFixup == Fixup::kA;
  const std::int32_t shift = p.a_signed ? Kernel::kShiftSigned : 0;
  prepare_columns(p, fix_a ? p.b->a_shift() : p.a_zp, shift, reinterpret_cast<std::int32_t*>(base + pl.coloff_offset),
                  reinterpret_cast<float*>(base + pl.scale_offset));
  unsigned char* workers_base = base + pl.shared_bytes;
  const Index W = pl.workers;
  parallel_for(0, W, 1, [&](Index lo, Index hi) {
    for (Index w = lo; w < hi; ++w) {
      const Index t0 = pl.tasks * w / W, t1 = pl.tasks * (w + 1) / W;
      Kernel::worker(p, pl, base, workers_base + static_cast<std::size_t>(w) * pl.worker_bytes, t0, t1);
    }
  });
}

}  // namespace detail
}  // namespace gemm
}  // namespace qaware
