#pragma once
// The packed weight matrix B of the INT8 GEMM, and pack_b().
//
// B is int8, given once as K x N (B[k][n] = b[k*ldb + n]) or as N x K, the
// PyTorch weight layout (B[k][n] = w[n*ldb + k]). pack_b() rearranges it for
// one path's kernel (PackedMatrix::path() says which), pads it with zeros and
// records the column sums sum_k B[k][n] that the zero-point compensation needs.
// Packing happens once per weight; every GEMM with that weight reuses it.
//
// Formats (the kernels' business; documented for the tests that check them).
// Columns are cut into panels of NR; each panel holds all Kp = K rounded up to
// `kalign` rows, zero padded; within a panel:
//   scalar                 int8  [Kp][NR]                  NR = 8
//   avx2 (int16 pairs)     int16 [Kp/2][NR][2]             NR = 16  (vpmaddwd)
//   avx2 (maddubs quads)   int8  [Kp/4][NR][4]             NR = 24  (vpmaddubsw, + corrections)
//   avx2 (A-fixed quads)   int8  [Kp/4][NR][4]             NR = 24  (vpmaddubsw, A corrected per call)
//   avxvnni                int8  [Kp/4][NR][4]             NR = 16  (vpdpbusd)
//   avx512vnni             int8  [Kp/4][NR][4]             NR = 48
//   amx                    int8  [Kp/64][NR/16][16][16][4] NR = 32  (1 KiB tiles: 16 quad rows x 16 columns x 4)
//
// The AVX2 path has two formats. vpmaddubsw (u8 x s8, adjacent products added
// in int16, saturating) is exact only when no pair of adjacent K values in a
// column can sum past int16: with A <= 255 that holds when the two B values
// have opposite signs or |b0| + |b1| <= 128. Trained weights almost always
// satisfy it; for the few pairs that do not, pack_b stores b1' = sign(b1) *
// (128 - |b0|) and records a correction (k, column, b1 - b1') that the kernel
// adds after its K block as A[m][k] * (b1 - b1'), exactly. When more than
// 1/512 of the pairs need one (e.g. uniformly random weights), pack_b uses the
// int16 pair format instead, which is exact for every input (vpmaddwd never
// saturates) but needs 4 vector ops per 32 multiply-adds instead of 3.
//
// Weights straight from initialisation (normal, per-channel scale at the
// largest value) need a correction in about 1 of 20 pairs, so pack_b alone
// must pick the int16 pairs for them. Shown the activations as well,
// pack_b_for_a can keep the bound on A's side instead, where activations
// concentrate around their zero point (kernels/avx2.hpp, Avx2FixAKernel): the
// A-fixed quads keep B as it is and store A' = A - za + a_shift with adjacent
// values bounded to 0 <= a'0, a'1 and a'0 + a'1 <= 255, so every pair stays
// within 255 * 128 = 32640; the few A values that had to be changed are
// repaired exactly in each call. pack_b_for_a picks a_shift (where A's zero
// point lands) from the A it was shown, and the format only when few repairs
// are needed there; any A still gives exact results.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/gemm/layout.hpp"
#include "qaware/gemm/path.hpp"
#include "qaware/gemm/workspace.hpp"

#if QAWARE_GEMM_X86
#include "qaware/core/intrinsics.hpp"
#endif

namespace qaware {
namespace gemm {

// The AVX2 path's B formats (see the file comment). pack_b and pack_b_for_a
// choose; detail_pack_b takes a forced one (tests and benchmarks use each).
enum class Avx2Format {
  kChoose,  // pack_b's choice from B alone: maddubs quads if few pairs need a correction, else int16 pairs
  kPairs,   // int16 pairs
  kQuads,   // maddubs quads with B corrections
  kFixA,    // A-fixed quads with the given a_shift
};

namespace detail {

// How a PackedMatrix stores B (one per kernel).
enum class Format : int { kScalar, kAvx2Pairs, kAvx2Quads, kAvx2FixA, kAvxVnni, kAvx512Vnni, kAmx };

// Blocking constants of one format's kernel.
struct Layout {
  int mr;           // rows of A per micro-kernel call
  int nr;           // columns of B per panel
  int kalign;       // K is padded to a multiple of this
  int a_elem;       // bytes per packed A element
  int b_elem;       // bytes per packed B element
};

inline Layout layout_of(Format f) {
  switch (f) {
    case Format::kScalar: return {4, 8, 1, 2, 1};
    case Format::kAvx2Pairs: return {6, 16, 2, 2, 2};
    case Format::kAvx2Quads:
    case Format::kAvx2FixA: return {4, 24, 4, 1, 1};
    case Format::kAvxVnni: return {6, 16, 4, 1, 1};
    case Format::kAvx512Vnni: return {8, 48, 4, 1, 1};
    case Format::kAmx: return {32, 32, 64, 1, 1};
  }
  return {4, 8, 1, 2, 1};
}

// The K block of the AVX2 maddubs kernel; corrections are grouped by it.
constexpr Index kAvx2QuadsKC = 512;
// The maddubs format is used when at most 1 in this many K pairs needs a correction.
constexpr Index kAvx2MaxCorrectionRatio = 512;
// pack_b_for_a takes the A-fixed quads when at most 1 in this many of the
// shown A's K pairs needs a repair. Each repair costs several pairs' worth of
// kernel work, so past about 1 in 25 the int16 pairs are the cheaper format
// (the crossover is measured in benchmarks/HISTORY.md).
constexpr Index kAvx2MaxACorrectionRatio = 25;
// The a_shift of an A-fixed PackedMatrix packed without a view of A.
constexpr std::int32_t kAvx2DefaultAShift = 64;

// Element offset of B[k][j] (k < Kp, j < NR) inside one panel.
inline Index panel_offset(Format f, Index k, Index j, Index nr) {
  switch (f) {
    case Format::kScalar: return k * nr + j;
    case Format::kAvx2Pairs: return ((k >> 1) * nr + j) * 2 + (k & 1);
    case Format::kAvx2Quads:
    case Format::kAvx2FixA:
    case Format::kAvxVnni:
    case Format::kAvx512Vnni: return ((k >> 2) * nr + j) * 4 + (k & 3);
    case Format::kAmx: return (k >> 6) * (64 * nr) + (j >> 4) * 1024 + ((k & 63) >> 2) * 64 + (j & 15) * 4 + (k & 3);
  }
  return 0;
}

// One exact fix-up of the AVX2 maddubs format: C[m][j] += A[m][k] * value.
struct Correction {
  std::int32_t k;      // row of B (absolute)
  std::int16_t j;      // column within the panel
  std::int16_t value;  // b - b' (|value| <= 128)
};

// True when vpmaddubsw could saturate on the adjacent pair (x, y) for some A <= 255.
// That is when x and y have the same sign and |x| + |y| > 128; for int8 values
// (opposite signs never sum past 128 in magnitude) exactly when x + y leaves
// [-128, 128]. Branch-free, so counting loops over contiguous columns vectorize.
inline bool maddubs_unsafe(int x, int y) { return (x + y > 128) | (x + y < -128); }

// For an unsafe pair (x, v): records the correction for B[k][j] = v and
// returns the value to store instead, sign(v) * (128 - |x|), which makes the
// pair safe.
inline int maddubs_fix(int x, int v, Index k, Index j, std::vector<Correction>& fixes) {
  const int mag = 128 - (x < 0 ? -x : x);
  const int safe = v < 0 ? -mag : mag;
  fixes.push_back({static_cast<std::int32_t>(k), static_cast<std::int16_t>(j), static_cast<std::int16_t>(v - safe)});
  return safe;
}

// The A-fixed quads' bound on one adjacent K pair of A' = A - za + a_shift
// (each in [-255, 510]): stores e0 = a'0 clamped to [0, 255] and e1 = a'1
// clamped to [0, 255 - e0], so |e0 b0 + e1 b1| <= 255 * 128 for any int8 B.
inline void fix_a_pair(int x0, int x1, int& e0, int& e1) {
  e0 = x0 < 0 ? 0 : (x0 > 255 ? 255 : x0);
  const int hi = 255 - e0;
  e1 = x1 < 0 ? 0 : (x1 > hi ? hi : x1);
}

inline Index round_up(Index x, Index m) { return (x + m - 1) / m * m; }
inline Index ceil_div(Index x, Index m) { return (x + m - 1) / m; }

}  // namespace detail

class PackedMatrix {
 public:
  PackedMatrix() = default;

  bool empty() const { return k_ == 0; }
  Path path() const { return path_; }
  detail::Format format() const { return format_; }
  Index depth() const { return k_; }          // K
  Index cols() const { return n_; }           // N
  Index padded_depth() const { return kp_; }  // Kp
  Index panel_cols() const { return nr_; }    // NR
  Index panels() const { return panels_; }
  std::int32_t zero_point() const { return zero_point_; }
  // A-fixed quads only: where the kernel puts A's zero point (A' = A - za + a_shift).
  std::int32_t a_shift() const { return a_shift_; }
  // sum_k B[k][n] of the original int8 values (zero point not subtracted), N values.
  const std::int32_t* col_sums() const { return col_sums_.data(); }
  // Panel p: Kp x NR values in the path's layout.
  const void* panel(Index p) const { return data_.data() + p * panel_bytes_; }
  Index panel_bytes() const { return panel_bytes_; }
  // AVX2 maddubs format only: the corrections of panel p, K block kb.
  const detail::Correction* corrections_begin(Index p, Index kb) const {
    return corrections_.data() + correction_start_[static_cast<std::size_t>(p * k_blocks_ + kb)];
  }
  const detail::Correction* corrections_end(Index p, Index kb) const {
    return corrections_.data() + correction_start_[static_cast<std::size_t>(p * k_blocks_ + kb + 1)];
  }
  Index correction_count() const { return static_cast<Index>(corrections_.size()); }

 private:
  friend PackedMatrix detail_pack_b(const std::int8_t*, Index, Index, Index, BLayout, std::int32_t, Path, Avx2Format,
                                    std::int32_t);

  Path path_ = Path::kNone;
  detail::Format format_ = detail::Format::kScalar;
  Index k_blocks_ = 0;
  std::vector<detail::Correction> corrections_;
  std::vector<std::int32_t> correction_start_;
  Index k_ = 0, n_ = 0, kp_ = 0, nr_ = 0, panels_ = 0, panel_bytes_ = 0;
  std::int32_t zero_point_ = 0;
  std::int32_t a_shift_ = 0;
  std::vector<std::int32_t> col_sums_;
  detail::AlignedBuffer data_;
};

namespace detail {
// pack_b's argument checks (throws qaware::Error naming the values).
inline void check_pack_b(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout, std::int32_t zero_point,
                         Path path) {
  const char* lname = layout == BLayout::kKxN ? "KxN" : "NxK";
  QAWARE_CHECK(b != nullptr, "pack_b: B is null (K = ", K, ", N = ", N, ")");
  QAWARE_CHECK(K >= 1 && N >= 1, "pack_b: K and N must be >= 1, got K = ", K, ", N = ", N);
  QAWARE_CHECK(layout == BLayout::kKxN || layout == BLayout::kNxK, "pack_b: invalid layout");
  const Index min_ld = layout == BLayout::kKxN ? N : K;
  QAWARE_CHECK(ldb >= min_ld, "pack_b: ldb = ", ldb, " is smaller than ", min_ld, " for a ", lname, " B with K = ", K,
               ", N = ", N);
  QAWARE_CHECK(zero_point >= -128 && zero_point <= 127, "pack_b: B zero point ", zero_point,
               " is outside the int8 range [-128, 127]");
  QAWARE_CHECK(has(kAllPaths, path) && best_path(path) == path && path != Path::kNone,
               "pack_b: path must be exactly one of scalar, avx2, avxvnni, avx512vnni, amx (got mask ",
               static_cast<unsigned>(path), ")");
  QAWARE_CHECK(has(compiled_paths(), path), "pack_b: path '", path_name(path), "' is not compiled into this build");
  check_pack_depth("pack_b", K, zero_point);
}

// Vector helpers for packing an N x K B (each column's K values contiguous),
// used where the CPU has AVX2; they produce the bytes the scalar loops do.
// In QAT the weights change every step, so they are packed every forward and
// packing is on the training step's critical path.
inline bool pack_avx2_available() { return QAWARE_GEMM_X86 && has(cpu_paths(), Path::kAvx2); }

#if QAWARE_GEMM_X86
#define QAWARE_PACK_TARGET_AVX2 __attribute__((target("avx2")))

// Bit 2i (and 2i + 1) set where the pair (p[2i], p[2i + 1]) is maddubs_unsafe,
// for the 16 pairs of p[0, 32). vpmaddubsw by ones gives b0 + b1 exactly.
QAWARE_PACK_TARGET_AVX2 inline std::uint32_t unsafe_pair_bits_avx2(const std::int8_t* p) {
  const __m256i s = _mm256_maddubs_epi16(_mm256_set1_epi8(1), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  const __m256i bad = _mm256_or_si256(_mm256_cmpgt_epi16(s, _mm256_set1_epi16(128)),
                                      _mm256_cmpgt_epi16(_mm256_set1_epi16(-128), s));
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(bad));
}

// Words [8c, 8c + 8) of 8 columns, for c < chunks, into the 4-byte-group
// layout: word w of column i at byte (w * nr + i) * 4 of dst. Elem 1: a word
// is 4 int8 (K values 4w .. 4w + 3), a chunk 32 K values; Elem 2: 2 int16
// (K values 2w, 2w + 1, sign-extended), a chunk 16 K values. sums[i] = the
// sum of column i's K values in those chunks.
template <int Elem>
QAWARE_PACK_TARGET_AVX2 inline void pack_words8_avx2(const std::int8_t* const (&src)[8], Index chunks,
                                                     unsigned char* dst, Index nr, std::int32_t (&sums)[8]) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_si256();
  for (Index c = 0; c < chunks; ++c) {
    __m256i r[8];
    for (int i = 0; i < 8; ++i) {
      if (Elem == 1) {
        r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[i] + c * 32));
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, r[i]), ones16));
      } else {
        r[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src[i] + c * 16)));
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(r[i], ones16));
      }
    }
    // 8 x 8 transpose of 32-bit words: r[i] (column i, words 0..7) -> t[w] (word w, columns 0..7).
    const __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
    const __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
    const __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
    const __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
    // u0: words 0 (low lane) and 4 (high lane) of columns 0..3; u1: words 1 and 5; ...
    const __m256i u0 = _mm256_unpacklo_epi64(a0, a2), u1 = _mm256_unpackhi_epi64(a0, a2);
    const __m256i u2 = _mm256_unpacklo_epi64(a1, a3), u3 = _mm256_unpackhi_epi64(a1, a3);
    const __m256i v0 = _mm256_unpacklo_epi64(a4, a6), v1 = _mm256_unpackhi_epi64(a4, a6);
    const __m256i v2 = _mm256_unpacklo_epi64(a5, a7), v3 = _mm256_unpackhi_epi64(a5, a7);
    const __m256i t[8] = {_mm256_permute2x128_si256(u0, v0, 0x20), _mm256_permute2x128_si256(u1, v1, 0x20),
                          _mm256_permute2x128_si256(u2, v2, 0x20), _mm256_permute2x128_si256(u3, v3, 0x20),
                          _mm256_permute2x128_si256(u0, v0, 0x31), _mm256_permute2x128_si256(u1, v1, 0x31),
                          _mm256_permute2x128_si256(u2, v2, 0x31), _mm256_permute2x128_si256(u3, v3, 0x31)};
    unsigned char* out = dst + c * 8 * nr * 4;
    for (int w = 0; w < 8; ++w) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + w * nr * 4), t[w]);
  }
  for (int i = 0; i < 8; ++i) {
    const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc[i]), _mm256_extracti128_si256(acc[i], 1));
    const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    sums[i] = _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xb1)));
  }
}
#endif

// The maddubs_unsafe pairs (k, k + 1), k even, of one column's contiguous K
// values: calls fix(k + 1) for each, in increasing k.
template <class Fix>
void for_each_unsafe_pair(const std::int8_t* col, Index K, bool vec, Fix&& fix) {
  Index k = 0;
#if QAWARE_GEMM_X86
  if (vec)
    for (; k + 32 <= K; k += 32)
      for (std::uint32_t bits = unsafe_pair_bits_avx2(col + k); bits != 0; bits &= bits - 1, bits &= bits - 1)
        fix(k + __builtin_ctz(bits) + 1);
#else
  (void)vec;
#endif
  for (; k + 1 < K; k += 2)
    if (maddubs_unsafe(col[k], col[k + 1])) fix(k + 1);
}

// How many adjacent K pairs (within quads) of B vpmaddubsw could saturate on.
inline Index count_unsafe_b_pairs(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout) {
  Index unsafe = 0;
  const bool vec = pack_avx2_available();
  for (Index n = 0; n < N; ++n) {
    if (layout == BLayout::kNxK) {
      Index k = 0;
      const std::int8_t* col = b + n * ldb;
#if QAWARE_GEMM_X86
      if (vec)
        for (; k + 32 <= K; k += 32) unsafe += __builtin_popcount(unsafe_pair_bits_avx2(col + k)) / 2;
#else
      (void)vec;
#endif
      for (; k + 1 < K; k += 2) unsafe += maddubs_unsafe(col[k], col[k + 1]);
    } else {
      for (Index k = 0; k + 1 < K; k += 2) unsafe += maddubs_unsafe(b[k * ldb + n], b[(k + 1) * ldb + n]);
    }
  }
  return unsafe;
}
}  // namespace detail

namespace detail {
// The AVX2 format B alone allows: the maddubs quads when at most 1 in
// kAvx2MaxCorrectionRatio of its K pairs needs a correction, else the int16 pairs.
inline Avx2Format avx2_format_for_b(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout) {
  const Index pairs = N * ((K + 1) / 2);
  return count_unsafe_b_pairs(b, K, N, ldb, layout) * kAvx2MaxCorrectionRatio <= pairs ? Avx2Format::kQuads
                                                                                      : Avx2Format::kPairs;
}
}  // namespace detail

// The packer behind pack_b(). avx2_format: the AVX2 format (kChoose: from B,
// as pack_b; kFixA with a_shift in [0, 255]); other paths ignore it.
inline PackedMatrix detail_pack_b(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout,
                                  std::int32_t zero_point, Path path, Avx2Format avx2_format,
                                  std::int32_t a_shift = detail::kAvx2DefaultAShift) {
  detail::check_pack_b(b, K, N, ldb, layout, zero_point, path);
  const Index ks = layout == BLayout::kKxN ? ldb : 1;  // stride between k
  const Index ns = layout == BLayout::kKxN ? 1 : ldb;  // stride between n
  auto at = [&](Index k, Index n) -> int { return b[k * ks + n * ns]; };

  detail::Format fmt = detail::Format::kScalar;
  switch (path) {
    case Path::kAvx2: {
      const Avx2Format want =
          avx2_format == Avx2Format::kChoose ? detail::avx2_format_for_b(b, K, N, ldb, layout) : avx2_format;
      QAWARE_CHECK(a_shift >= 0 && a_shift <= 255, "pack_b: A shift ", a_shift, " is outside [0, 255]");
      fmt = want == Avx2Format::kQuads  ? detail::Format::kAvx2Quads
            : want == Avx2Format::kFixA ? detail::Format::kAvx2FixA
                                        : detail::Format::kAvx2Pairs;
      break;
    }
    case Path::kAvxVnni: fmt = detail::Format::kAvxVnni; break;
    case Path::kAvx512Vnni: fmt = detail::Format::kAvx512Vnni; break;
    case Path::kAmx: fmt = detail::Format::kAmx; break;
    default: fmt = detail::Format::kScalar; break;
  }

  const detail::Layout lay = detail::layout_of(fmt);
  PackedMatrix pm;
  pm.path_ = path;
  pm.format_ = fmt;
  pm.k_ = K;
  pm.n_ = N;
  pm.kp_ = detail::round_up(K, lay.kalign);
  pm.nr_ = lay.nr;
  pm.panels_ = detail::ceil_div(N, lay.nr);
  pm.panel_bytes_ = detail::round_up(pm.kp_ * lay.nr * lay.b_elem, 64);
  pm.zero_point_ = zero_point;
  pm.a_shift_ = fmt == detail::Format::kAvx2FixA ? a_shift : 0;
  pm.col_sums_.assign(static_cast<std::size_t>(N), 0);
  pm.data_.reserve(static_cast<std::size_t>(pm.panels_ * pm.panel_bytes_));
  // The weight case (N x K): each column's K values are contiguous, and in
  // the formats that group K by 4 (int8) or 2 (int16 pairs) a group lands
  // in 4 consecutive bytes of the panel, so a column packs as word copies
  // (8 columns at a time as vector transposes where the CPU has AVX2); the
  // general loop below packs the same bytes one at a time.
  const bool words = layout == BLayout::kNxK && fmt != detail::Format::kAmx && fmt != detail::Format::kScalar;
  const bool vec = words && detail::pack_avx2_available();
  // The word copies write every byte of a whole panel's Kp rows when no
  // group is cut by K; padding is zeroed panel by panel then, else up front.
  const Index filled = pm.kp_ * lay.nr * lay.b_elem;  // bytes of a panel's Kp x NR values
  const bool whole_words = words && K % (lay.b_elem == 1 ? 4 : 2) == 0;
  if (!whole_words) std::memset(pm.data_.data(), 0, static_cast<std::size_t>(pm.panels_ * pm.panel_bytes_));
  const bool quads = fmt == detail::Format::kAvx2Quads;
  if (quads) {
    pm.k_blocks_ = detail::ceil_div(pm.kp_, detail::kAvx2QuadsKC);
    pm.correction_start_.assign(static_cast<std::size_t>(pm.panels_ * pm.k_blocks_ + 1), 0);
  }

  for (Index p = 0; p < pm.panels_; ++p) {
    unsigned char* panel = pm.data_.data() + p * pm.panel_bytes_;
    const Index n0 = p * lay.nr;
    const Index cols = std::min<Index>(lay.nr, N - n0);
    std::vector<detail::Correction> fixes;  // this panel's, in (k, j) order after sorting
    if (whole_words) {
      if (cols < lay.nr)
        std::memset(panel, 0, static_cast<std::size_t>(pm.panel_bytes_));
      else
        std::memset(panel + filled, 0, static_cast<std::size_t>(pm.panel_bytes_ - filled));
    }
    // Column j from K value k0 on (k0 a multiple of the group) as word
    // copies, its sum (`sum` holds that of the K values before k0) and, for
    // the maddubs quads, its corrections over all of K.
    auto pack_column = [&](Index j, Index k0, std::int32_t sum) {
      const std::int8_t* col = b + (n0 + j) * ldb;
      unsigned char* dst = panel + j * 4;
      for (Index k = k0; k < K; ++k) sum += col[k];
      Index k = k0;
      if (lay.b_elem == 1) {
        for (; k + 4 <= K; k += 4) std::memcpy(dst + k * lay.nr, col + k, 4);
        for (; k < K; ++k) std::memcpy(dst + (k & ~Index(3)) * lay.nr + (k & 3), col + k, 1);
      } else {
        for (; k < K; k += 2) {
          const std::int16_t w[2] = {col[k], static_cast<std::int16_t>(k + 1 < K ? col[k + 1] : 0)};
          std::memcpy(dst + k * 2 * lay.nr, w, 4);
        }
      }
      if (quads) {
        detail::for_each_unsafe_pair(col, K, vec, [&](Index k1) {
          const std::int8_t w = static_cast<std::int8_t>(detail::maddubs_fix(col[k1 - 1], col[k1], k1, j, fixes));
          std::memcpy(panel + detail::panel_offset(fmt, k1, j, lay.nr), &w, 1);
        });
      }
      pm.col_sums_[static_cast<std::size_t>(n0 + j)] = sum;
    };
    Index jw = 0;  // columns done
#if QAWARE_GEMM_X86
    if (vec) {
      // 8 columns at a time over whole chunks of 8 words, the rest as above.
      const Index chunk = lay.b_elem == 1 ? 32 : 16;  // K values per 8 words
      const Index chunks = K / chunk;
      for (; jw + 8 <= cols; jw += 8) {
        const std::int8_t* src[8];
        for (Index i = 0; i < 8; ++i) src[i] = b + (n0 + jw + i) * ldb;
        std::int32_t sums[8];
        if (lay.b_elem == 1)
          detail::pack_words8_avx2<1>(src, chunks, panel + jw * 4, lay.nr, sums);
        else
          detail::pack_words8_avx2<2>(src, chunks, panel + jw * 4, lay.nr, sums);
        for (Index i = 0; i < 8; ++i) pack_column(jw + i, chunks * chunk, sums[i]);
      }
    }
#endif
    for (; words && jw < cols; ++jw) pack_column(jw, 0, 0);
    for (Index j = 0; !words && j < cols; ++j) {
      std::int32_t sum = 0;
      for (Index k = 0; k < K; ++k) {
        int v = at(k, n0 + j);
        sum += v;
        if (quads && (k & 1) == 1) {
          const int x = at(k - 1, n0 + j);
          if (detail::maddubs_unsafe(x, v)) v = detail::maddubs_fix(x, v, k, j, fixes);
        }
        const Index off = detail::panel_offset(fmt, k, j, lay.nr);
        if (lay.b_elem == 2) {
          const std::int16_t w = static_cast<std::int16_t>(v);
          std::memcpy(panel + off * 2, &w, 2);
        } else {
          const std::int8_t w = static_cast<std::int8_t>(v);
          std::memcpy(panel + off, &w, 1);
        }
      }
      pm.col_sums_[static_cast<std::size_t>(n0 + j)] = sum;
    }
    if (quads) {
      std::sort(fixes.begin(), fixes.end(), [](const detail::Correction& a, const detail::Correction& c) {
        return a.k != c.k ? a.k < c.k : a.j < c.j;
      });
      std::size_t next = 0;
      for (Index kb = 0; kb < pm.k_blocks_; ++kb) {
        pm.correction_start_[static_cast<std::size_t>(p * pm.k_blocks_ + kb)] =
            static_cast<std::int32_t>(pm.corrections_.size());
        const Index k_end = (kb + 1) * detail::kAvx2QuadsKC;
        while (next < fixes.size() && fixes[next].k < k_end) pm.corrections_.push_back(fixes[next++]);
      }
    }
  }
  if (quads) pm.correction_start_.back() = static_cast<std::int32_t>(pm.corrections_.size());
  return pm;
}

// Packs B (K x N, int8) for `path`, which must be one compiled path; packing for
// a path this CPU lacks is allowed (gemm() then refuses it). zero_point is B's
// (per tensor, in [-128, 127]; 0 for symmetric weights).
inline PackedMatrix pack_b(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout, std::int32_t zero_point,
                           Path path) {
  return detail_pack_b(b, K, N, ldb, layout, zero_point, path, Avx2Format::kChoose);
}

namespace detail {
// The a_shift for the A-fixed quads under which the most adjacent K pairs of
// `rows` rows spread over A (M x K) need no repair, and how many pairs do
// need one then. A pair (d0, d1) = (A - za) is left alone for the shifts s
// with 0 <= d0 + s, d1 + s and d0 + d1 + 2 s <= 255 (fix_a_pair), an interval
// of s; one pass adds up the intervals.
template <class TA>
std::pair<std::int32_t, Index> choose_a_shift(const TA* a, Index M, Index K, Index lda, std::int32_t za, Index rows) {
  std::vector<Index> diff(257, 0);
  Index pairs = 0;
  for (Index r = 0; r < rows; ++r) {
    const TA* row = a + (r * M / rows) * lda;
    for (Index k = 0; k + 1 < K; k += 2) {
      const int d0 = row[k] - za, d1 = row[k + 1] - za;
      const int t = 255 - d0 - d1;
      const int lo = std::max({0, -d0, -d1});
      const int hi = std::min(255 - d0, t >= 0 ? t / 2 : -((1 - t) / 2));
      ++pairs;
      if (lo <= hi) {  // lo <= 255 always: d >= -255
        ++diff[static_cast<std::size_t>(lo)];
        --diff[static_cast<std::size_t>(std::min(hi, 255) + 1)];
      }
    }
  }
  Index run = 0, best = -1;
  std::int32_t shift = kAvx2DefaultAShift;
  for (std::int32_t s = 0; s < 256; ++s) {
    run += diff[static_cast<std::size_t>(s)];
    if (run > best) best = run, shift = s;
  }
  return {shift, pairs - std::max<Index>(best, 0)};
}
}  // namespace detail

// Packs B (as pack_b) for multiplying the given A, or A like it (M x K, row
// stride lda, zero point a_zero_point). On the AVX2 path, when B alone would
// need the int16 pairs, it looks at up to 64 rows of A and takes the A-fixed
// quads with the a_shift that needs the fewest repairs there, if they are
// rare enough (see the header). Results are exact for every A whatever the
// format; only speed depends on how much a later A resembles this one. Other
// paths ignore A.
template <class TA>
PackedMatrix pack_b_for_a(const TA* a, Index M, Index lda, std::int32_t a_zero_point, const std::int8_t* b, Index K,
                          Index N, Index ldb, BLayout layout, std::int32_t zero_point, Path path) {
  static_assert(std::is_same<TA, std::uint8_t>::value || std::is_same<TA, std::int8_t>::value,
                "pack_b_for_a: A must be uint8_t or int8_t");
  Avx2Format avx2_format = Avx2Format::kChoose;
  std::int32_t a_shift = detail::kAvx2DefaultAShift;
  detail::check_pack_b(b, K, N, ldb, layout, zero_point, path);
  if (path == Path::kAvx2) {
    QAWARE_CHECK(a != nullptr && M >= 1 && lda >= K, "pack_b_for_a: A (M = ", M, ", K = ", K, ", lda = ", lda,
                 ") is null, empty or has lda < K");
    avx2_format = detail::avx2_format_for_b(b, K, N, ldb, layout);
    if (avx2_format == Avx2Format::kPairs) {
      const Index rows = std::min<Index>(M, 64);
      const auto choice = detail::choose_a_shift(a, M, K, lda, a_zero_point, rows);
      a_shift = choice.first;
      const Index repairs = choice.second;
      if (repairs * detail::kAvx2MaxACorrectionRatio <= rows * (K / 2)) avx2_format = Avx2Format::kFixA;
    }
  }
  return detail_pack_b(b, K, N, ldb, layout, zero_point, path, avx2_format, a_shift);
}

// B as it was given to pack_b, in the weight layout (N x K, each column's K
// values contiguous): the inverse of packing, for every format (the maddubs
// quads' shrunk values get their corrections back). An exported model keeps
// only its packed weights and unpacks them to save them.
inline std::vector<std::int8_t> unpack_b(const PackedMatrix& pm) {
  const Index K = pm.depth(), N = pm.cols(), nr = pm.panel_cols();
  const detail::Format fmt = pm.format();
  const detail::Layout lay = detail::layout_of(fmt);
  std::vector<std::int8_t> out(static_cast<std::size_t>(N * K));
  for (Index p = 0; p < pm.panels(); ++p) {
    const unsigned char* panel = static_cast<const unsigned char*>(pm.panel(p));
    const Index n0 = p * nr, cols = std::min(nr, N - n0);
    for (Index j = 0; j < cols; ++j) {
      std::int8_t* col = out.data() + (n0 + j) * K;
      for (Index k = 0; k < K; ++k) {
        const Index off = detail::panel_offset(fmt, k, j, nr);
        if (lay.b_elem == 2) {
          std::int16_t v;
          std::memcpy(&v, panel + off * 2, 2);
          col[k] = static_cast<std::int8_t>(v);
        } else {
          std::memcpy(col + k, panel + off, 1);
        }
      }
    }
    if (fmt == detail::Format::kAvx2Quads) {
      const Index blocks = detail::ceil_div(pm.padded_depth(), detail::kAvx2QuadsKC);
      for (Index kb = 0; kb < blocks; ++kb)
        for (const detail::Correction* c = pm.corrections_begin(p, kb); c != pm.corrections_end(p, kb); ++c) {
          std::int8_t& v = out[static_cast<std::size_t>((n0 + c->j) * K + c->k)];
          v = static_cast<std::int8_t>(v + c->value);
        }
    }
  }
  return out;
}

// Packs B for the best enabled path (see enabled_paths()).
inline PackedMatrix pack_b(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout,
                           std::int32_t zero_point = 0) {
  return pack_b(b, K, N, ldb, layout, zero_point, best_path());
}

}  // namespace gemm
}  // namespace qaware
