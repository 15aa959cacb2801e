#pragma once
// INT8 GEMM on an NVIDIA GPU with dp4a: C = output_stage((A - za) * (B - zb)),
// the CPU GEMM's semantics (qaware/gemm/gemm.hpp) with device memory.
//
//   auto w = qaware::cuda::pack_b(weight, K, N, /*ldb=*/K, qaware::gemm::BLayout::kNxK);   // host int8 -> device
//   qaware::cuda::gemm(x_dev, M, K, /*lda=*/K, x_zero_point, w,
//                      qaware::cuda::Output::int32(c_dev, N), stream);
//
// A is uint8 or int8 in device memory, M x K row-major with lda >= K (any
// alignment; 16-byte aligned rows load faster). B is packed once into a
// DevicePackedMatrix. C is device memory, M x N with ldc >= N. The call is
// asynchronous on `stream`, as every CUDA kernel launch is; arguments are
// checked on the host first, and a failed launch is a qaware::Error.
//
// What must hold, and how it does:
// - Integers equal the CPU GEMM's exactly. The kernel sums raw products
//   sum_k A*B with dp4a (u8 x s8 or s8 x s8, four K values per instruction),
//   then folds the zero points in: acc = sum A*B - za*colsum(B)[n]
//   - zb*rowsum(A)[m] + K*za*zb. The raw sum may pass 2^31 where acc does not
//   (|A| up to 255 against |A - za| up to 128): every step is done modulo 2^32
//   (dp4a's adds wrap; the corrections use unsigned arithmetic), and the host
//   checks, as the CPU GEMM does, that the exact acc fits int32, so the result
//   modulo 2^32 is acc itself.
// - Output stages are the CPU's, from the same code: dequantize is
//   numerics::dequantize_accumulator(acc, a_scale * b_scale[n], bias[n]) (one
//   fma, correctly rounded on both), requantize is numerics::quantize with the
//   host's 1 / out_scale, so with no activation or ReLU the floats and codes
//   are bit-identical to the CPU's. GELU uses CUDA's erff (maximum error 2 ulp)
//   where the CPU uses Eigen's rational erf approximation (up to about 8 ulp of
//   1 from erf near |x| = 3), so a GELU output 0.5 y (1 + erf(y / sqrt 2)) can
//   differ by about 0.5 |y| * 10 ulp(1) absolute (relatively large where the
//   output is tiny, y < -3), and a requantized GELU output by one code where
//   the float lands that close to a rounding boundary.
//
// The kernel: a 128 x 128 block tile over 32 K bytes, 256 threads that each own
// 8 x 8 outputs; A's tile is stored transposed in shared memory as 4-byte K
// quads ([8][128] words), B is packed on the host as the same quads
// ([Kp/4][Np] words, Kp = K rounded up to 32, Np = N rounded up to 128, zero
// padded) so each tile is one coalesced 16-byte load per thread. Tiles are
// double-buffered: the next tile's global loads are in flight while the
// current one is multiplied, with one barrier per tile.

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/numerics.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/cuda/runtime.cuh"
#include "qaware/gemm/layout.hpp"
#include "qaware/gemm/output.hpp"

namespace qaware {
namespace cuda {
namespace detail {

constexpr int kBlockM = 128;             // rows of C per thread block
constexpr int kBlockN = 128;             // columns of C per thread block
constexpr int kBlockK = 32;              // K bytes per tile
constexpr int kQuads = kBlockK / 4;      // K quads (one 32-bit word each) per tile
constexpr int kThreads = 256;            // 16 x 16 threads, 8 x 8 outputs each
constexpr int kThreadM = 8, kThreadN = 8;

// B as the kernel reads it: word [q][n] holds B[4q + j][n] in byte j.
struct HostPackedB {
  std::vector<std::uint32_t> words;  // [quads][padded_cols]
  std::vector<std::int32_t> col_sums;  // sum_k B[k][n], N values
  Index quads = 0, padded_cols = 0;
};

inline HostPackedB pack_b_host(const std::int8_t* b, Index K, Index N, Index ldb, gemm::BLayout layout) {
  HostPackedB p;
  p.quads = (K + kBlockK - 1) / kBlockK * kQuads;
  p.padded_cols = (N + kBlockN - 1) / kBlockN * kBlockN;
  p.words.assign(static_cast<std::size_t>(p.quads * p.padded_cols), 0u);
  p.col_sums.assign(static_cast<std::size_t>(N), 0);
  for (Index k = 0; k < K; ++k) {
    for (Index n = 0; n < N; ++n) {
      const std::int8_t v = layout == gemm::BLayout::kKxN ? b[k * ldb + n] : b[n * ldb + k];
      p.words[static_cast<std::size_t>((k / 4) * p.padded_cols + n)] |= static_cast<std::uint32_t>(
                                                                            static_cast<std::uint8_t>(v))
                                                                        << (8 * (k % 4));
      p.col_sums[static_cast<std::size_t>(n)] += v;
    }
  }
  return p;
}

}  // namespace detail

// B (int8, K x N, with a zero point) packed once and resident on the device.
class DevicePackedMatrix {
 public:
  DevicePackedMatrix() = default;
  Index depth() const { return K_; }
  Index cols() const { return N_; }
  std::int32_t zero_point() const { return zero_point_; }
  bool empty() const { return N_ == 0; }
  // The packed words ([padded_quads()][padded_cols()], device memory) and the column sums (N values).
  const std::uint32_t* words() const { return words_.data(); }
  const std::int32_t* col_sums() const { return col_sums_.data(); }
  Index padded_quads() const { return quads_; }
  Index padded_cols() const { return padded_cols_; }

 private:
  friend DevicePackedMatrix pack_b(const std::int8_t*, Index, Index, Index, gemm::BLayout, std::int32_t);
  DeviceBuffer<std::uint32_t> words_;
  DeviceBuffer<std::int32_t> col_sums_;
  Index K_ = 0, N_ = 0, quads_ = 0, padded_cols_ = 0;
  std::int32_t zero_point_ = 0;
};

// Packs host int8 B (K x N in `layout`, leading dimension ldb) and uploads it.
inline DevicePackedMatrix pack_b(const std::int8_t* b, Index K, Index N, Index ldb, gemm::BLayout layout,
                                 std::int32_t zero_point = 0) {
  QAWARE_CHECK(b != nullptr, "cuda::pack_b: B is null (K = ", K, ", N = ", N, ")");
  QAWARE_CHECK(K >= 1 && N >= 1, "cuda::pack_b: K and N must be >= 1, got K = ", K, ", N = ", N);
  QAWARE_CHECK(K <= std::numeric_limits<std::int32_t>::max() - detail::kBlockK &&
                   N <= std::numeric_limits<std::int32_t>::max() - detail::kBlockN,
               "cuda::pack_b: K = ", K, " or N = ", N, " is too large (the kernel indexes with int)");
  QAWARE_CHECK(ldb >= (layout == gemm::BLayout::kKxN ? N : K), "cuda::pack_b: ldb = ", ldb, " is smaller than ",
               layout == gemm::BLayout::kKxN ? "N = " : "K = ", layout == gemm::BLayout::kKxN ? N : K);
  QAWARE_CHECK(zero_point >= -128 && zero_point <= 127, "cuda::pack_b: zero point ", zero_point,
               " is outside the int8 range [-128, 127]");
  gemm::detail::check_pack_depth("cuda::pack_b", K, zero_point);
  detail::HostPackedB h = detail::pack_b_host(b, K, N, ldb, layout);
  DevicePackedMatrix p;
  p.words_ = DeviceBuffer<std::uint32_t>(static_cast<Index>(h.words.size()));
  p.words_.upload(h.words.data(), static_cast<Index>(h.words.size()));
  p.col_sums_ = DeviceBuffer<std::int32_t>(N);
  p.col_sums_.upload(h.col_sums.data(), N);
  p.K_ = K;
  p.N_ = N;
  p.quads_ = h.quads;
  p.padded_cols_ = h.padded_cols;
  p.zero_point_ = zero_point;
  return p;
}

// The dequantize stage's parameters with device copies of the weight scales
// and the bias, checked once on the host with the CPU GEMM's rules.
class DeviceDequantize {
 public:
  DeviceDequantize() = default;
  // `dq` holds host pointers; N is the GEMM's column count.
  DeviceDequantize(const gemm::Dequantize& dq, Index N) {
    gemm::detail::check_dequantize("cuda::DeviceDequantize", dq, N);
    a_scale_ = dq.a_scale;
    activation_ = dq.activation;
    N_ = N;
    b_scales_ = DeviceBuffer<float>(dq.b_scale_count);
    b_scales_.upload(dq.b_scales, dq.b_scale_count);
    if (dq.bias != nullptr) {
      bias_ = DeviceBuffer<float>(N);
      bias_.upload(dq.bias, N);
    }
  }
  float a_scale() const { return a_scale_; }
  const float* b_scales() const { return b_scales_.data(); }
  Index b_scale_count() const { return b_scales_.size(); }
  const float* bias() const { return bias_.empty() ? nullptr : bias_.data(); }
  gemm::Activation activation() const { return activation_; }
  Index cols() const { return N_; }

 private:
  float a_scale_ = 1.0f;
  DeviceBuffer<float> b_scales_, bias_;
  gemm::Activation activation_ = gemm::Activation::kNone;
  Index N_ = 0;
};

// Where and how C is written (device memory): gemm::Output's kind, pointer,
// leading dimension and requantization parameters, with the device copies of
// the dequantize parameters in place of its host ones.
class Output {
 public:
  using Kind = gemm::Output::Kind;
  static Output int32(std::int32_t* c, Index ldc) { return Output(gemm::Output::int32(c, ldc), nullptr); }
  static Output dequantize(float* c, Index ldc, const DeviceDequantize& dq) {
    return Output(gemm::Output::dequantize(c, ldc, gemm::Dequantize{}), &dq);
  }
  static Output requantize(std::uint8_t* c, Index ldc, const DeviceDequantize& dq, float out_scale,
                           std::int32_t out_zero_point, std::int32_t qmin = 0, std::int32_t qmax = 255) {
    return Output(gemm::Output::requantize(c, ldc, gemm::Dequantize{}, out_scale, out_zero_point, qmin, qmax), &dq);
  }
  static Output requantize(std::int8_t* c, Index ldc, const DeviceDequantize& dq, float out_scale,
                           std::int32_t out_zero_point, std::int32_t qmin = -128, std::int32_t qmax = 127) {
    return Output(gemm::Output::requantize(c, ldc, gemm::Dequantize{}, out_scale, out_zero_point, qmin, qmax), &dq);
  }
  // An Output refers to its DeviceDequantize, which must outlive it: no temporaries.
  static Output dequantize(float*, Index, const DeviceDequantize&&) = delete;
  template <class TC>
  static Output requantize(TC*, Index, const DeviceDequantize&&, float, std::int32_t, std::int32_t = 0,
                           std::int32_t = 0) = delete;

  Kind kind() const { return o_.kind(); }
  void* data() const { return o_.data(); }
  Index ldc() const { return o_.ldc(); }
  const DeviceDequantize* dequant() const { return dq_; }
  float out_scale() const { return o_.out_scale(); }
  std::int32_t out_zero_point() const { return o_.out_zero_point(); }
  std::int32_t qmin() const { return o_.qmin(); }
  std::int32_t qmax() const { return o_.qmax(); }

 private:
  Output(const gemm::Output& o, const DeviceDequantize* dq) : o_(o), dq_(dq) {}
  gemm::Output o_;  // its host dequantize parameters are unused
  const DeviceDequantize* dq_;
};

namespace detail {

// Everything the kernel reads, by value.
struct GemmArgs {
  const void* a;
  long long lda;
  int M, N, K;
  const std::uint32_t* b;  // [quads][padded_cols] words
  long long ldb_words;     // padded_cols
  const std::int32_t* col_sums;
  // acc = raw - za * colsum[n] - zb * rowsum[m] + k_za_zb, all modulo 2^32.
  std::uint32_t a_zp, b_zp, k_za_zb;
  void* c;
  long long ldc;
  float a_scale;
  const float* b_scales;
  int per_channel;
  const float* bias;
  int activation;  // gemm::Activation
  float inv_out_scale;
  std::int32_t out_zp, qmin, qmax;
};

// d = c + sum of the four products of A's bytes (unsigned or signed) and B's (signed).
template <bool kSignedA>
__device__ __forceinline__ std::uint32_t dp4a(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
  std::uint32_t d;
  if constexpr (kSignedA) {
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  } else {
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  }
  return d;
}

// The same sum against 1,1,1,1: the four bytes of A added to c.
template <bool kSignedA>
__device__ __forceinline__ std::uint32_t byte_sum(std::uint32_t a, std::uint32_t c) {
  return dp4a<kSignedA>(a, 0x01010101u, c);
}

// Loads this thread's 16 bytes of A's tile (row m0 + t/2, K bytes k0 + 16 (t%2) ...),
// zero beyond M and K. kAligned: A and lda are 16-byte aligned.
template <bool kAligned>
__device__ __forceinline__ void load_a(const GemmArgs& p, int m0, int k0, uint4& w) {
  const int t = threadIdx.x;
  const int m = m0 + t / 2, k = k0 + 16 * (t % 2);
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  if (m >= p.M) {
    w = make_uint4(0, 0, 0, 0);
    return;
  }
  const std::uint8_t* row = a + static_cast<long long>(m) * p.lda;
  if (kAligned && k + 16 <= p.K) {
    w = *reinterpret_cast<const uint4*>(row + k);
    return;
  }
  std::uint32_t v[4] = {0, 0, 0, 0};
#pragma unroll
  for (int j = 0; j < 16; ++j)
    if (k + j < p.K) v[j / 4] |= static_cast<std::uint32_t>(row[k + j]) << (8 * (j % 4));
  w = make_uint4(v[0], v[1], v[2], v[3]);
}

// Loads this thread's 16 bytes of B's tile: quad row t/32, columns n0 + 4 (t%32) ... (always within the padding).
__device__ __forceinline__ void load_b(const GemmArgs& p, int n0, int q0, uint4& w) {
  const int t = threadIdx.x;
  const std::uint32_t* src = p.b + static_cast<long long>(q0 + t / 32) * p.ldb_words + n0 + 4 * (t % 32);
  w = *reinterpret_cast<const uint4*>(src);
}

__device__ __forceinline__ float activate(int activation, float y) {
  if (activation == static_cast<int>(gemm::Activation::kRelu)) return y > 0.0f ? y : 0.0f;
  if (activation == static_cast<int>(gemm::Activation::kGelu))
    return 0.5f * y * (1.0f + erff(y * 0.70710678118654752440f));
  return y;
}

template <class TA, gemm::Output::Kind kKind, bool kAligned>
__global__ void __launch_bounds__(kThreads) gemm_kernel(const GemmArgs p) {
  constexpr bool kSignedA = std::is_same<TA, std::int8_t>::value;
  // A's rows are padded by 4 words: the transposed store writes quads q and
  // q + 4 of one row from neighbouring lanes, which would share a bank.
  __shared__ __align__(16) std::uint32_t as[2][kQuads][kBlockM + 4];
  __shared__ __align__(16) std::uint32_t bs[2][kQuads][kBlockN];
  __shared__ std::int32_t row_sums[kBlockM];

  const int t = threadIdx.x;
  const int tx = t % 16, ty = t / 16;
  const int m0 = blockIdx.y * kBlockM, n0 = blockIdx.x * kBlockN;
  const int tiles = (p.K + kBlockK - 1) / kBlockK;

  std::uint32_t acc[kThreadM][kThreadN];
#pragma unroll
  for (int i = 0; i < kThreadM; ++i)
#pragma unroll
    for (int j = 0; j < kThreadN; ++j) acc[i][j] = 0;
  std::uint32_t row_sum = 0;  // this thread's half of row m0 + t/2

  // Where this thread stores its loads: A transposed (quads 4 (t%2) .. +3 of row t/2), B as loaded.
  auto store = [&](int buf, const uint4& wa, const uint4& wb) {
    const int r = t / 2, q = 4 * (t % 2);
    as[buf][q + 0][r] = wa.x;
    as[buf][q + 1][r] = wa.y;
    as[buf][q + 2][r] = wa.z;
    as[buf][q + 3][r] = wa.w;
    *reinterpret_cast<uint4*>(&bs[buf][t / 32][4 * (t % 32)]) = wb;
  };

  uint4 wa, wb;
  load_a<kAligned>(p, m0, 0, wa);
  load_b(p, n0, 0, wb);
  if (p.b_zp != 0)
    row_sum = byte_sum<kSignedA>(
        wa.w, byte_sum<kSignedA>(wa.z, byte_sum<kSignedA>(wa.y, byte_sum<kSignedA>(wa.x, row_sum))));
  store(0, wa, wb);
  __syncthreads();

  for (int tile = 0; tile < tiles; ++tile) {
    const int buf = tile & 1;
    const bool more = tile + 1 < tiles;
    if (more) {  // the next tile's loads are in flight during the products below
      load_a<kAligned>(p, m0, (tile + 1) * kBlockK, wa);
      load_b(p, n0, (tile + 1) * kQuads, wb);
    }
#pragma unroll
    for (int q = 0; q < kQuads; ++q) {
      const uint4 a0 = *reinterpret_cast<const uint4*>(&as[buf][q][4 * ty]);
      const uint4 a1 = *reinterpret_cast<const uint4*>(&as[buf][q][64 + 4 * ty]);
      const uint4 b0 = *reinterpret_cast<const uint4*>(&bs[buf][q][4 * tx]);
      const uint4 b1 = *reinterpret_cast<const uint4*>(&bs[buf][q][64 + 4 * tx]);
      const std::uint32_t av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const std::uint32_t bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < kThreadM; ++i)
#pragma unroll
        for (int j = 0; j < kThreadN; ++j) acc[i][j] = dp4a<kSignedA>(av[i], bv[j], acc[i][j]);
    }
    if (more) {
      if (p.b_zp != 0)
        row_sum = byte_sum<kSignedA>(
            wa.w, byte_sum<kSignedA>(wa.z, byte_sum<kSignedA>(wa.y, byte_sum<kSignedA>(wa.x, row_sum))));
      store(buf ^ 1, wa, wb);
    }
    __syncthreads();
  }

  if (p.b_zp != 0) {
    row_sum += __shfl_xor_sync(0xffffffffu, row_sum, 1);  // the two halves of the row are neighbouring lanes
    if (t % 2 == 0) row_sums[t / 2] = static_cast<std::int32_t>(row_sum);
    __syncthreads();
  }

  // Output stage. Thread rows: 4 ty + i and 64 + 4 ty + i; columns: 4 tx + j and 64 + 4 tx + j.
#pragma unroll
  for (int i = 0; i < kThreadM; ++i) {
    const int ml = (i < 4 ? 0 : 64) + 4 * ty + (i % 4);
    const int m = m0 + ml;
    if (m >= p.M) continue;
    const std::uint32_t row_term = p.b_zp * static_cast<std::uint32_t>(p.b_zp != 0 ? row_sums[ml] : 0);
#pragma unroll
    for (int j = 0; j < kThreadN; ++j) {
      const int n = n0 + (j < 4 ? 0 : 64) + 4 * tx + (j % 4);
      if (n >= p.N) continue;
      const std::int32_t v = static_cast<std::int32_t>(
          acc[i][j] - p.a_zp * static_cast<std::uint32_t>(p.col_sums[n]) - row_term + p.k_za_zb);
      const long long at = static_cast<long long>(m) * p.ldc + n;
      if constexpr (kKind == gemm::Output::Kind::kInt32) {
        static_cast<std::int32_t*>(p.c)[at] = v;
      } else {
        const float scale = __fmul_rn(p.a_scale, p.b_scales[p.per_channel ? n : 0]);
        const float y = activate(p.activation,
                                 numerics::dequantize_accumulator(v, scale, p.bias != nullptr ? p.bias[n] : 0.0f));
        if constexpr (kKind == gemm::Output::Kind::kFloat) {
          static_cast<float*>(p.c)[at] = y;
        } else {
          const std::int32_t code = numerics::quantize(y, p.inv_out_scale, p.out_zp, p.qmin, p.qmax);
          if constexpr (kKind == gemm::Output::Kind::kUint8)
            static_cast<std::uint8_t*>(p.c)[at] = static_cast<std::uint8_t>(code);
          else
            static_cast<std::int8_t*>(p.c)[at] = static_cast<std::int8_t>(code);
        }
      }
    }
  }
}

template <class TA, gemm::Output::Kind kKind>
void launch(const GemmArgs& p, bool aligned, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.N + kBlockN - 1) / kBlockN),
                  static_cast<unsigned>((p.M + kBlockM - 1) / kBlockM));
  if (aligned)
    gemm_kernel<TA, kKind, true><<<grid, kThreads, 0, stream>>>(p);
  else
    gemm_kernel<TA, kKind, false><<<grid, kThreads, 0, stream>>>(p);
}

template <class TA>
void run(const TA* a, Index M, Index K, Index lda, std::int32_t a_zero_point, const DevicePackedMatrix& b,
         const Output& out, cudaStream_t stream) {
  constexpr bool kSigned = std::is_same<TA, std::int8_t>::value;
  QAWARE_CHECK(!b.empty(), "cuda::gemm: B is an empty DevicePackedMatrix (pack it with cuda::pack_b first)");
  const Index N = b.cols();
  QAWARE_CHECK(a != nullptr, "cuda::gemm: A is null (M = ", M, ", K = ", K, ")");
  QAWARE_CHECK(M >= 1 && M <= std::numeric_limits<std::int32_t>::max(), "cuda::gemm: M must be in [1, 2^31 - 1], got ",
               M);
  QAWARE_CHECK(static_cast<Index>((M + kBlockM - 1) / kBlockM) <= 65535, "cuda::gemm: M = ", M,
               " needs more than 65535 row blocks; split M");
  QAWARE_CHECK(K == b.depth(), "cuda::gemm: A has K = ", K, " columns but B was packed with K = ", b.depth(),
               " (N = ", N, ")");
  QAWARE_CHECK(lda >= K, "cuda::gemm: lda = ", lda, " is smaller than K = ", K);
  gemm::detail::check_a_zero_point_and_depth("cuda::gemm", kSigned, K, a_zero_point, b.zero_point());
  QAWARE_CHECK(out.data() != nullptr, "cuda::gemm: output C is null (M = ", M, ", N = ", N, ")");
  QAWARE_CHECK(out.ldc() >= N, "cuda::gemm: ldc = ", out.ldc(), " is smaller than N = ", N);

  GemmArgs p{};
  p.a = a;
  p.lda = lda;
  p.M = static_cast<int>(M);
  p.N = static_cast<int>(N);
  p.K = static_cast<int>(K);
  p.b = b.words();
  p.ldb_words = b.padded_cols();
  p.col_sums = b.col_sums();
  p.a_zp = static_cast<std::uint32_t>(a_zero_point);
  p.b_zp = static_cast<std::uint32_t>(b.zero_point());
  p.k_za_zb = static_cast<std::uint32_t>(static_cast<std::uint64_t>(K) * p.a_zp * p.b_zp);
  p.c = out.data();
  p.ldc = out.ldc();

  const Output::Kind kind = out.kind();
  if (kind != Output::Kind::kInt32) {
    const DeviceDequantize* dq = out.dequant();
    QAWARE_CHECK(dq != nullptr && dq->b_scale_count() >= 1, "cuda::gemm: the output stage has no dequantize parameters");
    QAWARE_CHECK(dq->cols() == N, "cuda::gemm: the dequantize parameters were made for N = ", dq->cols(),
                 " columns, B has N = ", N);
    p.a_scale = dq->a_scale();
    p.b_scales = dq->b_scales();
    p.per_channel = dq->b_scale_count() > 1 ? 1 : 0;
    p.bias = dq->bias();
    p.activation = static_cast<int>(dq->activation());
    if (kind == Output::Kind::kUint8 || kind == Output::Kind::kInt8) {
      gemm::detail::check_requantize("cuda::gemm", kind, out.out_scale(), out.out_zero_point(), out.qmin(),
                                     out.qmax());
      p.inv_out_scale = 1.0f / out.out_scale();
      p.out_zp = out.out_zero_point();
      p.qmin = out.qmin();
      p.qmax = out.qmax();
    }
  }
  const bool aligned = reinterpret_cast<std::uintptr_t>(a) % 16 == 0 && lda % 16 == 0;
  switch (kind) {
    case Output::Kind::kInt32: launch<TA, Output::Kind::kInt32>(p, aligned, stream); break;
    case Output::Kind::kFloat: launch<TA, Output::Kind::kFloat>(p, aligned, stream); break;
    case Output::Kind::kUint8: launch<TA, Output::Kind::kUint8>(p, aligned, stream); break;
    case Output::Kind::kInt8: launch<TA, Output::Kind::kInt8>(p, aligned, stream); break;
  }
  QAWARE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail

// C = output_stage((A - a_zero_point) * (B - b_zero_point)), A uint8 M x K in device memory.
inline void gemm(const std::uint8_t* a, Index M, Index K, Index lda, std::int32_t a_zero_point,
                 const DevicePackedMatrix& b, const Output& out, cudaStream_t stream = nullptr) {
  detail::run(a, M, K, lda, a_zero_point, b, out, stream);
}

// The same with int8 A.
inline void gemm(const std::int8_t* a, Index M, Index K, Index lda, std::int32_t a_zero_point,
                 const DevicePackedMatrix& b, const Output& out, cudaStream_t stream = nullptr) {
  detail::run(a, M, K, lda, a_zero_point, b, out, stream);
}

}  // namespace cuda
}  // namespace qaware
