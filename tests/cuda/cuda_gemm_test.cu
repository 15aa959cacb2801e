// The CUDA INT8 GEMM against the CPU's scalar reference (qaware/gemm/reference.hpp):
// the CPU GEMM tests' shapes, extreme values, zero points and every output
// stage. Integers, and floats without GELU, must be identical; GELU within
// what CUDA's erff and Eigen's erf differ by (see cuda/gemm.cuh).
//
// Without a CUDA device the GPU tests skip with a message; the packing, the
// argument checks and the error reporting still run.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/error_of.hpp"
#include "gemm/gemm_test_util.hpp"
#include "qaware/cuda/gemm.cuh"

namespace qaware {
namespace {

using gemm::Activation;
using gemm::BLayout;
using gemm_test::Case;
using gemm_test::kSizes;

bool have_gpu() { return cuda::device_count() > 0; }

// QAWARE_REQUIRE_GPU=1 (tools/gpu_check.sh run sets it) turns the skip into a
// failure, so that a GPU machine whose driver cannot run this build does not
// pass by skipping everything.
bool gpu_required() {
  const char* v = std::getenv("QAWARE_REQUIRE_GPU");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

#define QAWARE_REQUIRE_GPU()                                                                                     \
  do {                                                                                                           \
    if (!have_gpu()) {                                                                                           \
      if (gpu_required()) FAIL() << "QAWARE_REQUIRE_GPU is set but no CUDA device is usable: " << cuda::device_status(); \
      GTEST_SKIP() << "no usable CUDA device here (" << cuda::device_status()                                   \
                   << "): the GPU part of this test runs on a machine with one (tools/gpu_check.sh)";            \
    }                                                                                                            \
  } while (0)

template <class T>
cuda::DeviceBuffer<T> to_device(const std::vector<T>& v) {
  cuda::DeviceBuffer<T> d(static_cast<Index>(v.size()));
  d.upload(v.data(), static_cast<Index>(v.size()));
  return d;
}

template <class T>
std::vector<T> to_host(const cuda::DeviceBuffer<T>& d) {
  std::vector<T> v(static_cast<std::size_t>(d.size()));
  d.download(v.data(), d.size());
  return v;
}

// C on the device: M x ldc plus a guard row, every element first set to `sentinel`.
template <class T>
struct DeviceOut {
  Index M, N, ldc;
  T sentinel;
  cuda::DeviceBuffer<T> buf;
  DeviceOut(Index m, Index n, Index ld, T s)
      : M(m), N(n), ldc(ld), sentinel(s), buf(to_device(std::vector<T>(static_cast<std::size_t>((m + 1) * ld), s))) {}
  // The result; a write outside the M x N window fails the assertion.
  std::vector<T> fetch() const {
    QAWARE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> h = to_host(buf);
    for (Index i = 0; i < static_cast<Index>(h.size()); ++i) {
      const Index m = i / ldc, n = i % ldc;
      if (m >= M || n >= N)
        EXPECT_TRUE(h[static_cast<std::size_t>(i)] == sentinel) << "write outside C at row " << m << ", column " << n;
    }
    return h;
  }
};

// A copied to the device `offset` bytes past an aligned allocation (an
// offset other than 0 makes the kernel load A byte by byte).
template <class TA>
struct DeviceA {
  cuda::DeviceBuffer<TA> buf;
  Index offset;
  DeviceA(const std::vector<TA>& a, Index off) : offset(off) {
    std::vector<TA> padded(static_cast<std::size_t>(off), TA(0));
    padded.insert(padded.end(), a.begin(), a.end());
    buf = to_device(padded);
  }
  const TA* data() const { return buf.data() + offset; }
};

// Runs the int32 GEMM on the device (with `packed`, or B packed here) and
// compares every element with the reference.
template <class TA>
::testing::AssertionResult int32_matches_reference(const Case<TA>& cs, Index a_offset = 0,
                                                   cudaStream_t stream = nullptr,
                                                   const cuda::DevicePackedMatrix* packed = nullptr) {
  cuda::DevicePackedMatrix own;
  if (packed == nullptr) {
    own = cuda::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout, cs.zb);
    packed = &own;
  }
  const cuda::DevicePackedMatrix& pb = *packed;
  const DeviceA<TA> a(cs.a, a_offset);
  DeviceOut<std::int32_t> out(cs.M, cs.N, cs.ldc, 0x5A5A5A5A);
  cuda::gemm(a.data(), cs.M, cs.K, cs.lda, cs.za, pb, cuda::Output::int32(out.buf.data(), cs.ldc), stream);
  const std::vector<std::int32_t> c = out.fetch();
  const std::vector<std::int32_t> ref = cs.reference();
  for (Index m = 0; m < cs.M; ++m)
    for (Index n = 0; n < cs.N; ++n)
      if (c[static_cast<std::size_t>(m * cs.ldc + n)] != ref[static_cast<std::size_t>(m * cs.N + n)])
        return ::testing::AssertionFailure() << cs.str() << " A offset " << a_offset << ": C[" << m << "][" << n
                                             << "] = " << c[static_cast<std::size_t>(m * cs.ldc + n)]
                                             << ", reference " << ref[static_cast<std::size_t>(m * cs.N + n)];
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// Host-side parts: run everywhere.

TEST(CudaPackTest, WordsHoldTheKQuadsOfEachColumnZeroPadded) {
  Rng rng(1);
  for (BLayout layout : {BLayout::kKxN, BLayout::kNxK}) {
    for (Index K : {1, 3, 4, 5, 31, 32, 33, 100}) {
      for (Index N : {1, 7, 128, 129}) {
        Case<std::uint8_t> cs(1, N, K, layout, rng, 0, 0, 0, 3, 0);
        const cuda::detail::HostPackedB p = cuda::detail::pack_b_host(cs.b.data(), K, N, cs.ldb, layout);
        ASSERT_EQ(p.quads % cuda::detail::kQuads, 0);
        ASSERT_GE(p.quads * 4, K);
        ASSERT_EQ(p.padded_cols % cuda::detail::kBlockN, 0);
        ASSERT_GE(p.padded_cols, N);
        for (Index k = 0; k < p.quads * 4; ++k) {
          for (Index n = 0; n < p.padded_cols; ++n) {
            const std::uint32_t w = p.words[static_cast<std::size_t>((k / 4) * p.padded_cols + n)];
            const auto byte = static_cast<std::int8_t>(static_cast<std::uint8_t>(w >> (8 * (k % 4))));
            const std::int8_t want =
                k < K && n < N ? cs.b[static_cast<std::size_t>(layout == BLayout::kKxN ? k * cs.ldb + n : n * cs.ldb + k)]
                               : std::int8_t(0);
            ASSERT_EQ(byte, want) << "K=" << K << " N=" << N << " k=" << k << " n=" << n;
          }
        }
        for (Index n = 0; n < N; ++n) {
          std::int32_t s = 0;
          for (Index k = 0; k < K; ++k)
            s += cs.b[static_cast<std::size_t>(layout == BLayout::kKxN ? k * cs.ldb + n : n * cs.ldb + k)];
          ASSERT_EQ(p.col_sums[static_cast<std::size_t>(n)], s) << "column " << n;
        }
      }
    }
  }
}

using test::error_of;

TEST(CudaPackTest, BadArgumentsAreRefusedBeforeAnyDeviceCall) {
  const std::vector<std::int8_t> b(64, 1);
  EXPECT_NE(error_of([&] { cuda::pack_b(nullptr, 4, 4, 4, BLayout::kKxN); }).find("B is null (K = 4, N = 4)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::pack_b(b.data(), 0, 4, 4, BLayout::kKxN); }).find("got K = 0, N = 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::pack_b(b.data(), 4, 8, 4, BLayout::kKxN); }).find("ldb = 4 is smaller than N = 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::pack_b(b.data(), 8, 4, 4, BLayout::kNxK); }).find("ldb = 4 is smaller than K = 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::pack_b(b.data(), 4, 4, 4, BLayout::kKxN, 128); }).find("zero point 128"),
            std::string::npos);
  // 131072 * 128 * 128 = 2^31: one past the deepest K.
  EXPECT_NE(error_of([&] { cuda::pack_b(b.data(), 131072, 1, 131072, BLayout::kNxK); }).find("K = 131072 is too deep"),
            std::string::npos);
}

TEST(CudaDequantizeTest, BadScalesAreRefusedBeforeAnyDeviceCall) {
  const std::vector<float> scales = {0.5f, std::nanf(""), 0.25f};
  gemm::Dequantize dq;
  dq.a_scale = 0.0f;
  dq.b_scales = scales.data();
  dq.b_scale_count = 1;
  EXPECT_NE(error_of([&] { cuda::DeviceDequantize(dq, 3); }).find("A scale must be finite and > 0, got 0"),
            std::string::npos);
  dq.a_scale = 1.0f;
  dq.b_scale_count = 2;
  EXPECT_NE(error_of([&] { cuda::DeviceDequantize(dq, 3); }).find("2 B scales given; need 1 (per tensor) or N = 3"),
            std::string::npos);
  dq.b_scale_count = 3;
  EXPECT_NE(error_of([&] { cuda::DeviceDequantize(dq, 3); }).find("B scale [1] must be finite and > 0, got nan"),
            std::string::npos);
  dq.b_scale_count = 1;
  dq.activation = static_cast<Activation>(7);
  EXPECT_NE(error_of([&] { cuda::DeviceDequantize(dq, 3); }).find("invalid activation 7"), std::string::npos);
}

TEST(CudaRuntimeTest, AFailedCallIsAnErrorNamingTheCall) {
  if (have_gpu()) {
    // An impossible allocation fails on a device too.
    const std::string e = error_of([] { cuda::DeviceBuffer<std::uint8_t> huge(Index(1) << 60); });
    EXPECT_NE(e.find("CUDA: cudaMalloc("), std::string::npos) << e;
    EXPECT_NE(e.find("cudaErrorMemoryAllocation"), std::string::npos) << e;
    // The caught failure is not reported again by the next GEMM's launch check.
    Rng rng(2);
    EXPECT_TRUE(int32_matches_reference(Case<std::uint8_t>(3, 5, 7, BLayout::kKxN, rng)));
  } else {
    const std::vector<std::int8_t> b(16, 1);
    const std::string e = error_of([&] { cuda::pack_b(b.data(), 4, 4, 4, BLayout::kKxN); });
    EXPECT_NE(e.find("CUDA: cudaMalloc("), std::string::npos) << e;
    EXPECT_NE(e.find("failed: cuda"), std::string::npos) << e;
  }
}

// ---------------------------------------------------------------------------
// The kernel, on a device.

// The CPU tests' sweep, with B zero points too, and A one byte past an
// aligned address (loaded byte by byte) on the cases with odd leading dimensions.
template <class TA>
void sweep(BLayout layout, std::uint64_t seed) {
  ASSERT_TRUE(gemm_test::for_each_sweep_case<TA>(layout, seed, /*b_zero_points=*/true, [](const Case<TA>& cs, bool odd) {
    return int32_matches_reference(cs, odd ? 1 : 0);
  }));
}

TEST(CudaGemmTest, SizeSweepUint8KxN) {
  QAWARE_REQUIRE_GPU();
  sweep<std::uint8_t>(BLayout::kKxN, 1);
}
TEST(CudaGemmTest, SizeSweepUint8NxK) {
  QAWARE_REQUIRE_GPU();
  sweep<std::uint8_t>(BLayout::kNxK, 2);
}
TEST(CudaGemmTest, SizeSweepInt8KxN) {
  QAWARE_REQUIRE_GPU();
  sweep<std::int8_t>(BLayout::kKxN, 3);
}
TEST(CudaGemmTest, SizeSweepInt8NxK) {
  QAWARE_REQUIRE_GPU();
  sweep<std::int8_t>(BLayout::kNxK, 4);
}

TEST(CudaGemmTest, AlignedAndUnalignedAGiveTheSameResults) {
  QAWARE_REQUIRE_GPU();
  Rng rng(5);
  for (Index K : {16, 48, 64, 100, 1024}) {  // lda = K: aligned rows where K % 16 == 0
    Case<std::uint8_t> cs(130, 150, K, BLayout::kNxK, rng, 17);
    for (Index offset : {0, 1, 4, 15}) ASSERT_TRUE(int32_matches_reference(cs, offset));
  }
}

TEST(CudaGemmTest, DeepK) {
  QAWARE_REQUIRE_GPU();
  Rng rng(11);
  for (Index K : {4096, 4099}) {
    ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(5, 19, K, BLayout::kKxN, rng, 77, 0, 1, 0, 3)));
    ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(7, 50, K, BLayout::kNxK, rng, -3, 0, 0, 2, 0)));
    ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(200, 260, K, BLayout::kNxK, rng, 128, 9)));
  }
}

TEST(CudaGemmTest, Gemv) {
  QAWARE_REQUIRE_GPU();
  Rng rng(12);
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(1, 1000, 768, BLayout::kNxK, rng, 128)));
  ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(1, 33, 4099, BLayout::kKxN, rng)));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(1, 1, 1, BLayout::kKxN, rng, 3)));
}

// BERT-base projections at sequence 128 and 16, the FFN's 3072-wide layers,
// and 4096 rows (a batch of 32 x 128 tokens) with a narrow N and K so the
// triple-loop reference stays cheap.
TEST(CudaGemmTest, BertShapes) {
  QAWARE_REQUIRE_GPU();
  Rng rng(13);
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(128, 768, 768, BLayout::kNxK, rng, 119)));
  ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(16, 768, 768, BLayout::kNxK, rng)));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(128, 3072, 768, BLayout::kNxK, rng, 64)));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(128, 768, 3072, BLayout::kNxK, rng, 1)));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(4096, 48, 96, BLayout::kNxK, rng, 5)));
}

// Constant extreme inputs: acc = K (a - za)(b - zb), computed here in int64
// independently of the reference.
template <class TA>
void extremes(std::initializer_list<int> a_values) {
  for (Index K : {1000, 4099}) {
    for (int av : a_values) {
      for (int bv : {-128, 127, -1}) {
        const Index M = 7, N = 21;
        const std::vector<TA> a(static_cast<std::size_t>(M * K), static_cast<TA>(av));
        const std::vector<std::int8_t> b(static_cast<std::size_t>(K * N), static_cast<std::int8_t>(bv));
        const cuda::DevicePackedMatrix pb = cuda::pack_b(b.data(), K, N, N, BLayout::kKxN);
        const DeviceA<TA> da(a, 0);
        DeviceOut<std::int32_t> out(M, N, N, 0x5A5A5A5A);
        cuda::gemm(da.data(), M, K, K, 0, pb, cuda::Output::int32(out.buf.data(), N));
        const std::vector<std::int32_t> c = out.fetch();
        for (Index i = 0; i < M * N; ++i)
          ASSERT_EQ(c[static_cast<std::size_t>(i)], static_cast<std::int64_t>(K) * av * bv)
              << "K=" << K << " A=" << av << " B=" << bv;
      }
    }
  }
}

TEST(CudaGemmTest, ExtremeValuesUint8) {
  QAWARE_REQUIRE_GPU();
  extremes<std::uint8_t>({0, 255, 1});
}
TEST(CudaGemmTest, ExtremeValuesInt8) {
  QAWARE_REQUIRE_GPU();
  extremes<std::int8_t>({-128, 127, 0});
}

TEST(CudaGemmTest, MixedExtremes) {
  QAWARE_REQUIRE_GPU();
  Rng rng(14);
  for (int rep = 0; rep < 2; ++rep) {
    Case<std::uint8_t> cs(9, 37, 515, BLayout::kKxN, rng);
    for (auto& x : cs.a) x = rng.below(4) == 0 ? 0 : 255;
    for (auto& x : cs.b) x = rng.below(2) ? 127 : -128;
    ASSERT_TRUE(int32_matches_reference(cs));
    Case<std::int8_t> cs8(9, 37, 515, BLayout::kNxK, rng);
    for (auto& x : cs8.a) x = rng.below(2) ? 127 : -128;
    for (auto& x : cs8.b) x = rng.below(2) ? 127 : -128;
    ASSERT_TRUE(int32_matches_reference(cs8));
  }
}

// The deepest K for uint8 A without zero points (65793 * 255 * 128 <= 2^31 - 1),
// and one where the raw sum of A * B passes 2^31 while (A - za)(B - zb) does
// not: A = 255, za = 128, B = -128, K = 131071 gives a raw sum of
// -4.28e9 and acc = 127 * -128 * K = -2130690048; only the modulo-2^32
// arithmetic of the zero-point folding gets it right.
TEST(CudaGemmTest, DeepestKAndARawSumPastInt32) {
  QAWARE_REQUIRE_GPU();
  struct Deep {
    Index K;
    int a, za, b;
  };
  for (const Deep& d : {Deep{65793, 255, 0, -128}, Deep{65793, 255, 0, 127}, Deep{131071, 255, 128, -128},
                        Deep{131071, 0, 128, 127}}) {
    const Index M = 2, N = 3;
    const std::vector<std::uint8_t> a(static_cast<std::size_t>(M * d.K), static_cast<std::uint8_t>(d.a));
    const std::vector<std::int8_t> b(static_cast<std::size_t>(d.K * N), static_cast<std::int8_t>(d.b));
    const cuda::DevicePackedMatrix pb = cuda::pack_b(b.data(), d.K, N, d.K, BLayout::kNxK);
    const DeviceA<std::uint8_t> da(a, 0);
    DeviceOut<std::int32_t> out(M, N, N, 0x5A5A5A5A);
    cuda::gemm(da.data(), M, d.K, d.K, d.za, pb, cuda::Output::int32(out.buf.data(), N));
    const std::vector<std::int32_t> c = out.fetch();
    for (Index i = 0; i < M * N; ++i)
      ASSERT_EQ(c[static_cast<std::size_t>(i)], static_cast<std::int64_t>(d.K) * (d.a - d.za) * d.b)
          << "K=" << d.K << " A=" << d.a << " za=" << d.za << " B=" << d.b;
  }
}

TEST(CudaGemmTest, ZeroPointCompensation) {
  QAWARE_REQUIRE_GPU();
  Rng rng(15);
  const Index M = 140, N = 45, K = 300;
  for (std::int32_t za : {0, 1, 128, 255})
    for (std::int32_t zb : {0, -128, -1, 5, 127})
      ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(M, N, K, BLayout::kKxN, rng, za, zb, 1, 2, 3), 1));
  for (std::int32_t za : {-128, -1, 0, 3, 127})
    for (std::int32_t zb : {0, -128, 7, 127})
      ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(M, N, K, BLayout::kNxK, rng, za, zb)));
  // |acc| = K * 255 * 255 with both zero points at their extremes.
  const Index K2 = 33000;
  const std::vector<std::uint8_t> a(static_cast<std::size_t>(2 * K2), 0);
  const std::vector<std::int8_t> b(static_cast<std::size_t>(K2 * 3), 127);
  const cuda::DevicePackedMatrix pb = cuda::pack_b(b.data(), K2, 3, 3, BLayout::kKxN, -128);
  const DeviceA<std::uint8_t> da(a, 0);
  DeviceOut<std::int32_t> out(2, 3, 3, 0x5A5A5A5A);
  cuda::gemm(da.data(), 2, K2, K2, 255, pb, cuda::Output::int32(out.buf.data(), 3));
  const std::vector<std::int32_t> c = out.fetch();
  for (Index i = 0; i < 6; ++i)
    ASSERT_EQ(c[static_cast<std::size_t>(i)], static_cast<std::int64_t>(K2) * (0 - 255) * (127 + 128));
}

// Scales and biases for the float and requantized stages.
struct StageParams {
  float a_scale = 0.0173f;
  std::vector<float> b_scales, bias;
  StageParams(Index N, bool per_channel, Rng& rng) {
    b_scales.resize(per_channel ? static_cast<std::size_t>(N) : 1);
    for (auto& s : b_scales) s = static_cast<float>(rng.uniform(0.0005, 0.004));
    bias.resize(static_cast<std::size_t>(N));
    for (auto& b : bias) b = static_cast<float>(rng.uniform(-3.0, 3.0));
  }
  gemm::Dequantize dq(bool with_bias, Activation act) const {
    gemm::Dequantize d;
    d.a_scale = a_scale;
    d.b_scales = b_scales.data();
    d.b_scale_count = static_cast<Index>(b_scales.size());
    d.bias = with_bias ? bias.data() : nullptr;
    d.activation = act;
    return d;
  }
};

// GELU's tolerance: CUDA's erff is within 2 ulp of erf, Eigen's float erf
// within about 8 ulp(1) (4.7e-7 measured near x = 3.27, where erf is close to
// 1), so 0.5 y (1 + erf(y / sqrt 2)) may differ by 0.5 |y| * 10 ulp(1), plus
// a few ulp of the result for the products and the sum.
float gelu_tolerance(float pre_activation, float value) {
  constexpr float kUlp1 = 1.1920929e-7f;
  return 0.5f * std::fabs(pre_activation) * 10.0f * kUlp1 + 4.0f * kUlp1 * std::fabs(value);
}

TEST(CudaGemmTest, DequantizeStage) {
  QAWARE_REQUIRE_GPU();
  Rng rng(16);
  for (Index K : {200, 530}) {
    for (bool per_channel : {false, true}) {
      for (bool with_bias : {false, true}) {
        for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kGelu}) {
          Case<std::uint8_t> cs(137, 70, K, BLayout::kNxK, rng, 121, per_channel ? 0 : 3, 2, 0, 5);
          const StageParams sp(cs.N, per_channel, rng);
          const gemm::Dequantize dq = sp.dq(with_bias, act);
          const cuda::DeviceDequantize ddq(dq, cs.N);
          const cuda::DevicePackedMatrix pb = cuda::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout, cs.zb);
          const DeviceA<std::uint8_t> a(cs.a, 0);
          DeviceOut<float> out(cs.M, cs.N, cs.ldc, -12345.0f);
          cuda::gemm(a.data(), cs.M, cs.K, cs.lda, cs.za, pb, cuda::Output::dequantize(out.buf.data(), cs.ldc, ddq));
          const std::vector<float> c = out.fetch();
          const std::vector<std::int32_t> acc = cs.reference();
          for (Index m = 0; m < cs.M; ++m) {
            for (Index n = 0; n < cs.N; ++n) {
              const std::int32_t s = acc[static_cast<std::size_t>(m * cs.N + n)];
              const float want = gemm::reference_dequantize(s, n, dq);
              const float got = c[static_cast<std::size_t>(m * cs.ldc + n)];
              if (act == Activation::kGelu) {
                gemm::Dequantize linear = dq;
                linear.activation = Activation::kNone;
                const float y = gemm::reference_dequantize(s, n, linear);
                ASSERT_LE(std::fabs(got - want), gelu_tolerance(y, want))
                    << cs.str() << " gelu at (" << m << ", " << n << "): " << got << " vs " << want;
              } else {
                ASSERT_EQ(got, want) << cs.str() << " act " << gemm::activation_name(act) << " at (" << m << ", " << n
                                     << ")";
              }
            }
          }
        }
      }
    }
  }
}

// Requantized codes equal the reference's; under GELU one code apart where
// the float is within GELU's tolerance of a rounding boundary.
template <class TC>
void requantize_case(Rng& rng, bool per_channel, Activation act, std::int32_t zp, std::int32_t qmin, std::int32_t qmax) {
  Case<std::uint8_t> cs(150, 140, 333, BLayout::kNxK, rng, 128, 0, 1, 0, 3);
  const StageParams sp(cs.N, per_channel, rng);
  const gemm::Dequantize dq = sp.dq(true, act);
  const cuda::DeviceDequantize ddq(dq, cs.N);
  const cuda::DevicePackedMatrix pb = cuda::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout, cs.zb);
  const DeviceA<std::uint8_t> a(cs.a, 1);
  const float out_scale = 0.021f;
  DeviceOut<TC> out(cs.M, cs.N, cs.ldc, static_cast<TC>(77));
  cuda::gemm(a.data(), cs.M, cs.K, cs.lda, cs.za, pb,
             cuda::Output::requantize(out.buf.data(), cs.ldc, ddq, out_scale, zp, qmin, qmax));
  const std::vector<TC> c = out.fetch();
  const std::vector<std::int32_t> acc = cs.reference();
  Index saturated = 0, inside = 0;
  for (Index m = 0; m < cs.M; ++m) {
    for (Index n = 0; n < cs.N; ++n) {
      const std::int32_t s = acc[static_cast<std::size_t>(m * cs.N + n)];
      const std::int32_t want = gemm::reference_requantize(s, n, dq, out_scale, zp, qmin, qmax);
      const std::int32_t got = c[static_cast<std::size_t>(m * cs.ldc + n)];
      (want == qmin || want == qmax ? saturated : inside) += 1;
      if (act == Activation::kGelu) {
        ASSERT_LE(std::abs(got - want), 1) << cs.str() << " at (" << m << ", " << n << ")";
        if (got != want) {  // only at a boundary: the float must be within tolerance of a half code
          gemm::Dequantize linear = dq;
          linear.activation = Activation::kNone;
          const float x = gemm::reference_dequantize(s, n, linear), y = gemm::reference_dequantize(s, n, dq);
          const float half = (std::floor(y / out_scale) + 0.5f) * out_scale;
          ASSERT_LE(std::fabs(y - half), gelu_tolerance(x, y) + 1e-6f * out_scale) << "at (" << m << ", " << n << ")";
        }
      } else {
        ASSERT_EQ(got, want) << cs.str() << " act " << gemm::activation_name(act) << " at (" << m << ", " << n << ")";
      }
    }
  }
  EXPECT_GT(saturated, 0);
  EXPECT_GT(inside, 0);
}

TEST(CudaGemmTest, RequantizeStages) {
  QAWARE_REQUIRE_GPU();
  Rng rng(17);
  for (bool per_channel : {false, true}) {
    for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kGelu}) {
      requantize_case<std::uint8_t>(rng, per_channel, act, 128, 0, 255);
      requantize_case<std::int8_t>(rng, per_channel, act, -3, -128, 127);
    }
    // 4-bit codes.
    requantize_case<std::uint8_t>(rng, per_channel, Activation::kNone, 7, 0, 15);
    requantize_case<std::int8_t>(rng, per_channel, Activation::kRelu, -121, -128, -113);
  }
}

// With out_scale 2: accumulators 1, 3, 5, -1, -3, 7 -> 0.5, 1.5, ... -> 0, 2, 2, 0, -2, 4.
TEST(CudaGemmTest, RequantizeRoundsHalfToEven) {
  QAWARE_REQUIRE_GPU();
  const std::vector<std::int8_t> b = {1, 3, 5, -1, -3, 7};  // K = 1 x N = 6, A = [1]
  const Index N = 6;
  const cuda::DevicePackedMatrix pb = cuda::pack_b(b.data(), 1, N, N, BLayout::kKxN);
  const DeviceA<std::uint8_t> a(std::vector<std::uint8_t>{1}, 0);
  const float one = 1.0f;
  gemm::Dequantize dq;
  dq.b_scales = &one;
  dq.b_scale_count = 1;
  const cuda::DeviceDequantize ddq(dq, N);
  DeviceOut<std::int8_t> out(1, N, N, 99);
  cuda::gemm(a.data(), 1, 1, 1, 0, pb, cuda::Output::requantize(out.buf.data(), N, ddq, 2.0f, 0));
  const std::vector<std::int8_t> c = out.fetch();
  const std::vector<int> expected = {0, 2, 2, 0, -2, 4};
  for (Index n = 0; n < N; ++n) EXPECT_EQ(c[static_cast<std::size_t>(n)], expected[static_cast<std::size_t>(n)]) << n;
}

TEST(CudaGemmTest, APackedMatrixServesManyCallsOnAStream) {
  QAWARE_REQUIRE_GPU();
  Rng rng(19);
  cudaStream_t stream = nullptr;
  QAWARE_CUDA_CHECK(cudaStreamCreate(&stream));
  Case<std::int8_t> cs(300, 200, 640, BLayout::kNxK, rng, -5, 2);
  const cuda::DevicePackedMatrix pb = cuda::pack_b(cs.b.data(), cs.K, cs.N, cs.ldb, cs.layout, cs.zb);
  for (int rep = 0; rep < 3; ++rep) {
    for (auto& x : cs.a) x = static_cast<std::int8_t>(static_cast<int>(rng.below(256)) - 128);
    EXPECT_TRUE(int32_matches_reference(cs, 0, stream, &pb));
  }
  QAWARE_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST(CudaGemmTest, BadCallsAreErrorsNamingTheValues) {
  QAWARE_REQUIRE_GPU();
  const std::vector<std::int8_t> b(32 * 8, 1);
  const cuda::DevicePackedMatrix pb = cuda::pack_b(b.data(), 32, 8, 8, BLayout::kKxN, 0);
  const DeviceA<std::uint8_t> a(std::vector<std::uint8_t>(64 * 40, 1), 0);
  DeviceOut<std::int32_t> out(64, 8, 8, 0x5A5A5A5A);
  std::int32_t* c = out.buf.data();
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 2, 31, 32, 0, pb, cuda::Output::int32(c, 8)); })
                .find("A has K = 31 columns but B was packed with K = 32"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 2, 32, 16, 0, pb, cuda::Output::int32(c, 8)); })
                .find("lda = 16 is smaller than K = 32"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 0, 32, 32, 0, pb, cuda::Output::int32(c, 8)); })
                .find("M must be in [1, 2^31 - 1], got 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 2, 32, 32, 256, pb, cuda::Output::int32(c, 8)); })
                .find("A zero point 256 is outside the uint8 range [0, 255]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 2, 32, 32, 0, pb, cuda::Output::int32(c, 4)); })
                .find("ldc = 4 is smaller than N = 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::gemm(a.data(), 2, 32, 32, 0, pb, cuda::Output::int32(nullptr, 8)); })
                .find("output C is null (M = 2, N = 8)"),
            std::string::npos);
  const float one = 1.0f;
  gemm::Dequantize dq;
  dq.b_scales = &one;
  dq.b_scale_count = 1;
  const cuda::DeviceDequantize other(dq, 9);
  EXPECT_NE(error_of([&] {
              cuda::gemm(a.data(), 2, 32, 32, 0, pb,
                         cuda::Output::dequantize(reinterpret_cast<float*>(c), 8, other));
            }).find("made for N = 9 columns, B has N = 8"),
            std::string::npos);
  const cuda::DeviceDequantize ddq(dq, 8);
  EXPECT_NE(error_of([&] {
              cuda::gemm(a.data(), 2, 32, 32, 0, pb,
                         cuda::Output::requantize(reinterpret_cast<std::uint8_t*>(c), 8, ddq, 0.5f, 20, 0, 15));
            }).find("output zero point 20 is outside the output range [0, 15]"),
            std::string::npos);
  // K too deep for int32 with these zero points: 33000 * 255 * 255 fits, 33026 * 255 * 255 does not.
  const std::vector<std::int8_t> deep(33026, 0);
  const cuda::DevicePackedMatrix pd = cuda::pack_b(deep.data(), 33026, 1, 33026, BLayout::kNxK, -128);
  const DeviceA<std::uint8_t> ad(std::vector<std::uint8_t>(33026, 0), 0);
  EXPECT_NE(error_of([&] { cuda::gemm(ad.data(), 1, 33026, 33026, 255, pd, cuda::Output::int32(c, 1)); })
                .find("K = 33026 is too deep for int32 accumulation"),
            std::string::npos);
}

}  // namespace
}  // namespace qaware
