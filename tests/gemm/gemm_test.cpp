// INT8 GEMM, every path against the scalar triple-loop reference: int32
// results must be identical (integer arithmetic has no tolerance), output
// stages bit-identical to the reference formula and within stated bounds of a
// double-precision evaluation. A path this CPU cannot run is skipped with a
// message naming it; emulated_test.cpp still checks its packing here.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gemm/gemm_test_util.hpp"
#include "qaware/core/threading.hpp"

namespace qaware {
namespace gemm_test {
namespace {

class GemmPathTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (!path_runs_here(GetParam().path))
      GTEST_SKIP() << "path '" << gemm::path_name(GetParam().path)
                   << "' is not supported by this CPU/OS (runnable here: "
                   << gemm::paths_string(gemm::compiled_paths() & gemm::cpu_paths()) << ")";
  }
  Variant path() const { return GetParam(); }
  // pack_b for this variant.
  PackedMatrix pack(const std::int8_t* b, Index K, Index N, Index ldb, BLayout layout, std::int32_t zb) const {
    return gemm::detail_pack_b(b, K, N, ldb, layout, zb, GetParam().path, GetParam().avx2_format);
  }
};

// B's zero point is covered by ZeroPointCompensation.
template <class TA>
void sweep(Variant path, BLayout layout, std::uint64_t seed) {
  ASSERT_TRUE(for_each_sweep_case<TA>(layout, seed, /*b_zero_points=*/false,
                                      [&](const Case<TA>& cs, bool) { return int32_matches_reference(cs, path); }));
}

TEST_P(GemmPathTest, SizeSweepUint8KxN) { sweep<std::uint8_t>(path(), BLayout::kKxN, 1); }
TEST_P(GemmPathTest, SizeSweepUint8NxK) { sweep<std::uint8_t>(path(), BLayout::kNxK, 2); }
TEST_P(GemmPathTest, SizeSweepInt8KxN) { sweep<std::int8_t>(path(), BLayout::kKxN, 3); }
TEST_P(GemmPathTest, SizeSweepInt8NxK) { sweep<std::int8_t>(path(), BLayout::kNxK, 4); }

TEST_P(GemmPathTest, DeepK) {
  Rng rng(11);
  for (Index K : {4096, 4099}) {
    ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(5, 19, K, BLayout::kKxN, rng, 77, 0, 1, 0, 3), path()));
    ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(7, 50, K, BLayout::kNxK, rng, -3, 0, 0, 2, 0), path()));
  }
}

TEST_P(GemmPathTest, Gemv) {
  Rng rng(12);
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(1, 1000, 768, BLayout::kNxK, rng, 128), path()));
  ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(1, 33, 4099, BLayout::kKxN, rng), path()));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(1, 1, 1, BLayout::kKxN, rng, 3), path()));
}

// BERT-base shapes: the attention/FFN projections at sequence 128 and 16, and
// a 4096-row case (a batch of 32 x 128 tokens) with narrow N and K so the
// triple-loop reference stays cheap; 1024 rows under sanitizers.
TEST_P(GemmPathTest, BertShapes) {
  Rng rng(13);
  const Index big_rows = kSanitized ? 1024 : 4096;
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(128, 768, 768, BLayout::kNxK, rng, 119), path()));
  ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(16, 768, 768, BLayout::kNxK, rng), path()));
  ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(big_rows, 48, 96, BLayout::kNxK, rng, 5), path()));
}

// Constant extreme inputs: acc = K (a - za)(b - zb) exactly, computed here in
// int64 independently of the reference. 255 * 127 pairs are where vpmaddubsw
// would saturate (2 * 255 * 127 = 64770 > 32767).
template <class TA>
void extremes(Variant path, std::initializer_list<int> a_values) {
  for (Index K : {1000, 4099}) {
    for (int av : a_values) {
      for (int bv : {-128, 127, -1}) {
        const Index M = 7, N = 21;
        std::vector<TA> a(static_cast<std::size_t>(M * K), static_cast<TA>(av));
        std::vector<std::int8_t> b(static_cast<std::size_t>(K * N), static_cast<std::int8_t>(bv));
        const PackedMatrix pb = gemm::detail_pack_b(b.data(), K, N, N, BLayout::kKxN, 0, path.path, path.avx2_format);
        std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
        gemm::gemm(a.data(), M, K, K, 0, pb, Output::int32(c.data(), N));
        const std::int64_t expected = static_cast<std::int64_t>(K) * av * bv;
        for (std::int32_t v : c) ASSERT_EQ(v, expected) << "K=" << K << " A=" << av << " B=" << bv;
      }
    }
  }
}

TEST_P(GemmPathTest, ExtremeValuesUint8) { extremes<std::uint8_t>(path(), {0, 255, 1}); }
TEST_P(GemmPathTest, ExtremeValuesInt8) { extremes<std::int8_t>(path(), {-128, 127, 0}); }

// Alternating extremes along K (255, 255, 0, 255, ...) against alternating B,
// so neighbouring K pairs mix signs and magnitudes; checked against the reference.
TEST_P(GemmPathTest, MixedExtremes) {
  Rng rng(14);
  for (int rep = 0; rep < 2; ++rep) {
    Case<std::uint8_t> cs(9, 37, 515, BLayout::kKxN, rng);
    for (auto& x : cs.a) x = rng.below(4) == 0 ? 0 : 255;
    for (auto& x : cs.b) x = rng.below(2) ? 127 : -128;
    ASSERT_TRUE(int32_matches_reference(cs, path()));
    Case<std::int8_t> cs8(9, 37, 515, BLayout::kNxK, rng);
    for (auto& x : cs8.a) x = rng.below(2) ? 127 : -128;
    for (auto& x : cs8.b) x = rng.below(2) ? 127 : -128;
    ASSERT_TRUE(int32_matches_reference(cs8, path()));
  }
}

// Adjacent K pairs at vpmaddubsw's int16 limit with A = 255: (64, 64) sums to
// 32640 (fits), (64, 65) to 32895 and (-64, -65) to -32895 (saturate unless
// the maddubs format repairs them), (-128, 0) and (127, -128) never saturate.
TEST_P(GemmPathTest, PairSumsAtTheInt16Limit) {
  const std::vector<std::pair<int, int>> pairs = {{64, 64}, {64, 65}, {-64, -64}, {-64, -65}, {-128, 0},
                                                  {127, -128}, {127, 2}, {-1, -128}, {0, -128}, {65, 64}};
  const Index N = static_cast<Index>(pairs.size()), K = 64, M = 3;
  std::vector<std::int8_t> b(static_cast<std::size_t>(K * N));  // N x K
  for (Index n = 0; n < N; ++n)
    for (Index k = 0; k < K; ++k)
      b[static_cast<std::size_t>(n * K + k)] = static_cast<std::int8_t>(k % 2 ? pairs[static_cast<std::size_t>(n)].second
                                                                               : pairs[static_cast<std::size_t>(n)].first);
  std::vector<std::uint8_t> a(static_cast<std::size_t>(M * K), 255);
  const PackedMatrix pb = pack(b.data(), K, N, K, BLayout::kNxK, 0);
  std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
  gemm::gemm(a.data(), M, K, K, 0, pb, Output::int32(c.data(), N));
  for (Index m = 0; m < M; ++m)
    for (Index n = 0; n < N; ++n) {
      const auto& pr = pairs[static_cast<std::size_t>(n)];
      ASSERT_EQ(c[static_cast<std::size_t>(m * N + n)], (K / 2) * 255 * (pr.first + pr.second))
          << "pair (" << pr.first << ", " << pr.second << ")";
    }
}

// The deepest K gemm() accepts for uint8 A without zero points:
// 65793 * 255 * 128 = 2147483520 <= 2^31 - 1 < 65794 * 255 * 128.
TEST_P(GemmPathTest, DeepestKAtTheInt32Limit) {
  const Index K = 65793, M = 2, N = 3;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(M * K), 255);
  for (int bv : {-128, 127}) {
    std::vector<std::int8_t> b(static_cast<std::size_t>(K * N), static_cast<std::int8_t>(bv));
    const PackedMatrix pb = pack(b.data(), K, N, K, BLayout::kNxK, 0);
    std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
    gemm::gemm(a.data(), M, K, K, 0, pb, Output::int32(c.data(), N));
    for (std::int32_t v : c) ASSERT_EQ(v, static_cast<std::int64_t>(K) * 255 * bv);
  }
}

TEST_P(GemmPathTest, ZeroPointCompensation) {
  Rng rng(15);
  const Index M = 23, N = 45, K = 300;
  for (std::int32_t za : {0, 1, 128, 255}) {
    for (std::int32_t zb : {0, -128, -1, 5, 127}) {
      ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(M, N, K, BLayout::kKxN, rng, za, zb, 1, 2, 3), path()));
    }
  }
  for (std::int32_t za : {-128, -1, 0, 3, 127}) {
    for (std::int32_t zb : {0, -128, 7, 127}) {
      ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(M, N, K, BLayout::kNxK, rng, za, zb), path()));
    }
  }
  // Extreme values with extreme zero points: |acc| = K * 255 * 255.
  const Index K2 = 33000;  // 33000 * 255 * 255 = 2145825000 < 2^31 - 1
  std::vector<std::uint8_t> a(static_cast<std::size_t>(2 * K2), 0);
  std::vector<std::int8_t> b(static_cast<std::size_t>(K2 * 3), 127);
  const PackedMatrix pb = pack(b.data(), K2, 3, 3, BLayout::kKxN, -128);
  std::vector<std::int32_t> c(6);
  gemm::gemm(a.data(), 2, K2, K2, 255, pb, Output::int32(c.data(), 3));
  for (std::int32_t v : c) ASSERT_EQ(v, static_cast<std::int64_t>(K2) * (0 - 255) * (127 + 128));
}

// Scales and biases for the float and requantized stages.
struct StageParams {
  float a_scale;
  std::vector<float> b_scales, bias;
};

StageParams stage_params(Index N, bool per_channel, Rng& rng) {
  StageParams p;
  p.a_scale = 0.0173f;
  p.b_scales.resize(per_channel ? static_cast<std::size_t>(N) : 1);
  for (auto& s : p.b_scales) s = static_cast<float>(rng.uniform(0.0005, 0.004));
  p.bias.resize(static_cast<std::size_t>(N));
  for (auto& b : p.bias) b = static_cast<float>(rng.uniform(-3.0, 3.0));
  return p;
}

gemm::Dequantize make_dq(const StageParams& sp, bool with_bias, gemm::Activation act) {
  gemm::Dequantize dq;
  dq.a_scale = sp.a_scale;
  dq.b_scales = sp.b_scales.data();
  dq.b_scale_count = static_cast<Index>(sp.b_scales.size());
  dq.bias = with_bias ? sp.bias.data() : nullptr;
  dq.activation = act;
  return dq;
}

// Activation in double, for the independent check.
double act_double(gemm::Activation a, double y) {
  if (a == gemm::Activation::kRelu) return y > 0 ? y : 0;
  if (a == gemm::Activation::kGelu) return 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0)));
  return y;
}

// K = 200 fits one K block of every path; K = 530 spans several, so kernels
// that finish the tile from their registers on the last K block (micro_out)
// do it on accumulated sums too.
TEST_P(GemmPathTest, DequantizeStage) {
  Rng rng(16);
  for (Index K : {200, 530}) {
    for (bool per_channel : {false, true}) {
      for (bool with_bias : {false, true}) {
        for (auto act : {gemm::Activation::kNone, gemm::Activation::kRelu, gemm::Activation::kGelu}) {
          Case<std::uint8_t> cs(37, 70, K, BLayout::kNxK, rng, 121, per_channel ? 0 : 3, 2, 0, 5);
          const StageParams sp = stage_params(cs.N, per_channel, rng);
          const gemm::Dequantize dq = make_dq(sp, with_bias, act);
          const PackedMatrix pb = cs.pack(path().path, path().avx2_format);
          GuardedOutput<float> out(cs.M, cs.N, cs.ldc, -12345.0f);
          gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, Output::dequantize(out.data(), cs.ldc, dq));
          ASSERT_TRUE(out.untouched_outside());
          const std::vector<std::int32_t> acc = cs.reference();
          for (Index m = 0; m < cs.M; ++m) {
            for (Index n = 0; n < cs.N; ++n) {
              const std::int32_t a = acc[static_cast<std::size_t>(m * cs.N + n)];
              // 1) The same float formula (shared fma routine, same erf): bit-identical.
              const float expect = gemm::reference_dequantize(a, n, dq);
              ASSERT_EQ(out.at(m, n), expect) << cs.str() << " at (" << m << ", " << n << ")";
              // 2) Independently, in double. Float rounds float(acc), the scale
              // product and the fma (3 roundings of 2^-24 relative to |acc*s| +
              // |bias|, the terms before any cancellation); GELU adds erf's and
              // its own few roundings (<= 8 ulp of the result) and passes the
              // input error on with slope <= 1.13.
              const double s = static_cast<double>(sp.a_scale) * sp.b_scales[per_channel ? static_cast<std::size_t>(n) : 0];
              const double bias = with_bias ? sp.bias[static_cast<std::size_t>(n)] : 0.0;
              const double lin = static_cast<double>(a) * s + bias;
              const double y = act_double(act, lin);
              const double in_err = 4.0 * 0x1p-24 * (std::fabs(static_cast<double>(a) * s) + std::fabs(bias));
              const double tol = (act == gemm::Activation::kGelu) ? 1.13 * in_err + 8.0 * 0x1p-24 * std::fabs(y) + 1e-37
                                                                  : in_err + 1e-37;
              ASSERT_NEAR(out.at(m, n), y, tol) << cs.str() << " at (" << m << ", " << n << ")";
            }
          }
        }
      }
    }
  }
}

// qmin / qmax: the output range (the type's by default; a narrower one, as a
// sub-8-bit activation's codes, when given).
template <class TO>
void requantize_case(Variant path, Rng& rng, bool per_channel, gemm::Activation act, std::int32_t out_zp,
                     std::int32_t qmin = std::is_same<TO, std::uint8_t>::value ? 0 : -128,
                     std::int32_t qmax = std::is_same<TO, std::uint8_t>::value ? 255 : 127) {
  Case<std::int8_t> cs(29, 83, 150, BLayout::kKxN, rng, -5, 0, 0, 3, 4);
  const StageParams sp = stage_params(cs.N, per_channel, rng);
  const gemm::Dequantize dq = make_dq(sp, true, act);
  const bool narrow = qmax - qmin < 255;
  const float out_scale = narrow ? 0.3f : 0.021f;  // small enough that some outputs saturate
  const PackedMatrix pb = cs.pack(path.path, path.avx2_format);
  GuardedOutput<TO> out(cs.M, cs.N, cs.ldc, static_cast<TO>(77));
  const Output stage = narrow ? Output::requantize(out.data(), cs.ldc, dq, out_scale, out_zp, qmin, qmax)
                              : Output::requantize(out.data(), cs.ldc, dq, out_scale, out_zp);
  gemm::gemm(cs.a.data(), cs.M, cs.K, cs.lda, cs.za, pb, stage);
  ASSERT_TRUE(out.untouched_outside());
  const std::vector<std::int32_t> acc = cs.reference();
  int saturated = 0, inside = 0;
  for (Index m = 0; m < cs.M; ++m) {
    for (Index n = 0; n < cs.N; ++n) {
      const std::int32_t q =
          gemm::reference_requantize(acc[static_cast<std::size_t>(m * cs.N + n)], n, dq, out_scale, out_zp, qmin, qmax);
      ASSERT_EQ(static_cast<std::int32_t>(out.at(m, n)), q) << cs.str() << " at (" << m << ", " << n << ")";
      if (q == qmin || q == qmax) ++saturated; else ++inside;
    }
  }
  // The case must exercise both saturation and ordinary rounding.
  EXPECT_GT(saturated, 0);
  EXPECT_GT(inside, 0);
}

TEST_P(GemmPathTest, RequantizeStageUint8) {
  Rng rng(17);
  for (bool per_channel : {false, true})
    for (auto act : {gemm::Activation::kNone, gemm::Activation::kRelu, gemm::Activation::kGelu})
      requantize_case<std::uint8_t>(path(), rng, per_channel, act, 128);
}

TEST_P(GemmPathTest, RequantizeStageInt8) {
  Rng rng(18);
  for (bool per_channel : {false, true})
    for (auto act : {gemm::Activation::kNone, gemm::Activation::kRelu, gemm::Activation::kGelu})
      requantize_case<std::int8_t>(path(), rng, per_channel, act, -3);
}

// Codes of a 4-bit range: unsigned [0, 15] and signed [-8, 7] (and uint8
// codes stored as int8 minus 128: [-128, -113]).
TEST_P(GemmPathTest, RequantizeStageNarrowRange) {
  Rng rng(20);
  for (bool per_channel : {false, true}) {
    requantize_case<std::uint8_t>(path(), rng, per_channel, gemm::Activation::kNone, 7, 0, 15);
    requantize_case<std::int8_t>(path(), rng, per_channel, gemm::Activation::kGelu, 0, -8, 7);
    requantize_case<std::int8_t>(path(), rng, per_channel, gemm::Activation::kRelu, -121, -128, -113);
  }
}

// The requantized stage rounds half to even: with out_scale 2 and no bias,
// accumulators 1, 3, 5, -1, -3 map to 0.5, 1.5, 2.5, -0.5, -1.5 -> 0, 2, 2, -0, -2.
TEST_P(GemmPathTest, RequantizeRoundsHalfToEven) {
  const std::vector<int> accs = {1, 3, 5, -1, -3, 7};
  const Index N = static_cast<Index>(accs.size()), K = 1, M = 1;
  std::vector<std::int8_t> b(accs.begin(), accs.end());  // K x N, A = [1]
  const std::vector<std::uint8_t> a = {1};
  const PackedMatrix pb = pack(b.data(), K, N, N, BLayout::kKxN, 0);
  const float one = 1.0f;
  gemm::Dequantize dq;
  dq.a_scale = 1.0f;
  dq.b_scales = &one;
  dq.b_scale_count = 1;
  std::vector<std::int8_t> c(static_cast<std::size_t>(N));
  gemm::gemm(a.data(), M, K, K, 0, pb, Output::requantize(c.data(), N, dq, 2.0f, 0));
  const std::vector<int> expected = {0, 2, 2, 0, -2, 4};
  for (Index n = 0; n < N; ++n) EXPECT_EQ(c[static_cast<std::size_t>(n)], expected[static_cast<std::size_t>(n)]) << n;
}

TEST_P(GemmPathTest, ThreadCountDoesNotChangeResults) {
  Rng rng(19);
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    ASSERT_TRUE(int32_matches_reference(Case<std::uint8_t>(200, 130, 70, BLayout::kNxK, rng, 9), path()));
    ASSERT_TRUE(int32_matches_reference(Case<std::int8_t>(3, 300, 70, BLayout::kKxN, rng, 1), path()));
  }
  set_num_threads(saved);
}

TEST_P(GemmPathTest, PackedMatrixServesManyCalls) {
  Rng rng(20);
  const Index N = 50, K = 90;
  const auto b = random_values<std::int8_t>(N * K, rng, -128, 127);
  const PackedMatrix pb = pack(b.data(), K, N, K, BLayout::kNxK, 0);
  EXPECT_EQ(pb.path(), path().path);
  const PackedMatrix copy = pb;  // deep copy
  for (Index M : {1, 6, 64, 131}) {
    const auto a = random_values<std::uint8_t>(M * K, rng, 0, 255);
    std::vector<std::int32_t> c(static_cast<std::size_t>(M * N)), ref(c.size());
    gemm::gemm(a.data(), M, K, K, 4, M % 2 ? copy : pb, Output::int32(c.data(), N));
    gemm::reference_gemm_s32(a.data(), M, K, K, 4, b.data(), N, K, BLayout::kNxK, 0, ref.data(), N);
    ASSERT_EQ(c, ref) << "M=" << M;
    EXPECT_EQ(gemm::last_path(), path().path);
  }
}

// AVX2 runs once per format (pack_b's own choice is tested in
// GemmAvx2FormatTest below). The uniformly random A of most cases makes the
// A-fixed format repair about a third of the A values: its worst case,
// still exact.
INSTANTIATE_TEST_SUITE_P(Paths, GemmPathTest,
                         ::testing::Values(Variant{Path::kScalar, gemm::Avx2Format::kChoose}, Variant{Path::kAvx2, gemm::Avx2Format::kPairs}, Variant{Path::kAvx2, gemm::Avx2Format::kQuads},
                                           Variant{Path::kAvx2, gemm::Avx2Format::kFixA},
                                           Variant{Path::kAvxVnni, gemm::Avx2Format::kChoose}, Variant{Path::kAvx512Vnni, gemm::Avx2Format::kChoose},
                                           Variant{Path::kAmx, gemm::Avx2Format::kChoose}),
                         [](const ::testing::TestParamInfo<Variant>& info) { return variant_test_name(info.param); });

// pack_b picks the maddubs format for weights whose adjacent K pairs rarely
// reach |b0| + |b1| > 128 (here normal with sigma 20, like per-channel
// quantized trained weights) and the int16 pairs for uniformly random ones.
TEST(GemmAvx2FormatTest, PackChoosesTheFormatFromTheWeights) {
  if (!path_runs_here(Path::kAvx2)) GTEST_SKIP() << "path 'avx2' is not supported by this CPU/OS";
  Rng rng(21);
  Case<std::uint8_t> uniform(64, 96, 320, BLayout::kNxK, rng, 3);
  Case<std::uint8_t> trained(64, 96, 320, BLayout::kNxK, rng, 3);
  for (auto& x : trained.b) x = static_cast<std::int8_t>(std::max(-128.0, std::min(127.0, std::nearbyint(rng.normal(0, 20)))));
  const PackedMatrix pu = uniform.pack(Path::kAvx2), pt = trained.pack(Path::kAvx2);
  EXPECT_EQ(pu.format(), gemm::detail::Format::kAvx2Pairs);
  EXPECT_EQ(pt.format(), gemm::detail::Format::kAvx2Quads);
  EXPECT_LE(pt.correction_count() * gemm::detail::kAvx2MaxCorrectionRatio, trained.N * trained.K / 2);
  ASSERT_TRUE(int32_matches_reference(uniform, Variant{Path::kAvx2, gemm::Avx2Format::kChoose}));
  ASSERT_TRUE(int32_matches_reference(trained, Variant{Path::kAvx2, gemm::Avx2Format::kChoose}));
  // Forced maddubs format on uniform weights: about a quarter of the pairs need
  // a correction, all of which must be exact.
  const PackedMatrix forced = uniform.pack(Path::kAvx2, gemm::Avx2Format::kQuads);
  EXPECT_GT(forced.correction_count(), uniform.N * uniform.K / 16);
}

// The A-fixed quads at any a_shift: every shift moves which A values need a
// repair (A - za + a_shift outside [0, 255], or adjacent sums past 255), never
// the result.
TEST(GemmAvx2FormatTest, AFixedQuadsAreExactAtEveryShift) {
  if (!path_runs_here(Path::kAvx2)) GTEST_SKIP() << "path 'avx2' is not supported by this CPU/OS";
  Rng rng(23);
  for (std::int32_t shift : {0, 1, 37, 128, 200, 255}) {
    SCOPED_TRACE(::testing::Message() << "a_shift " << shift);
    Case<std::uint8_t> u(37, 50, 1029, BLayout::kNxK, rng, 201, 0, 3);
    Case<std::int8_t> s8(29, 25, 515, BLayout::kKxN, rng, -90, 5);
    for (auto& x : u.b) x = static_cast<std::int8_t>(std::max(-128.0, std::min(127.0, std::nearbyint(rng.normal(0, 60)))));
    for (const auto* cs : {static_cast<const void*>(&u), static_cast<const void*>(&s8)}) {
      const bool is_u = cs == &u;
      const PackedMatrix pb = is_u ? gemm::detail_pack_b(u.b.data(), u.K, u.N, u.ldb, u.layout, u.zb, Path::kAvx2, gemm::Avx2Format::kFixA, shift)
                                   : gemm::detail_pack_b(s8.b.data(), s8.K, s8.N, s8.ldb, s8.layout, s8.zb, Path::kAvx2, gemm::Avx2Format::kFixA, shift);
      ASSERT_EQ(pb.format(), gemm::detail::Format::kAvx2FixA);
      ASSERT_EQ(pb.a_shift(), shift);
      const Index M = is_u ? u.M : s8.M, N = is_u ? u.N : s8.N;
      std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
      if (is_u) {
        gemm::gemm(u.a.data(), u.M, u.K, u.lda, u.za, pb, Output::int32(c.data(), N));
        ASSERT_EQ(c, u.reference());
      } else {
        gemm::gemm(s8.a.data(), s8.M, s8.K, s8.lda, s8.za, pb, Output::int32(c.data(), N));
        ASSERT_EQ(c, s8.reference());
      }
    }
  }
}

// pack_b_for_a: weights like BERT's at initialisation (normal, scaled to the
// largest value of each column: about 1 in 20 K pairs could saturate
// vpmaddubsw) would need the int16 pairs alone; with activations that
// concentrate around their zero point (layer-norm like, or one-sided like
// GELU outputs) it takes the A-fixed quads, placing the zero point where few
// repairs are needed; with uniformly random A it keeps the int16 pairs. All
// exact, also for another A than the one shown.
TEST(GemmAvx2FormatTest, PackForAChoosesFromTheActivations) {
  if (!path_runs_here(Path::kAvx2)) GTEST_SKIP() << "path 'avx2' is not supported by this CPU/OS";
  Rng rng(24);
  const Index M = 96, N = 72, K = 768;
  auto init_like = [&](Case<std::uint8_t>& cs) {
    for (auto& x : cs.b) x = static_cast<std::int8_t>(std::max(-127.0, std::min(127.0, std::nearbyint(rng.normal(0, 40)))));
  };
  auto clamp8 = [](double v) { return static_cast<std::uint8_t>(std::max(0.0, std::min(255.0, std::nearbyint(v)))); };
  Case<std::uint8_t> ln(M, N, K, BLayout::kNxK, rng, 131), gelu(M, N, K, BLayout::kNxK, rng, 15),
      uniform(M, N, K, BLayout::kNxK, rng, 128);
  init_like(ln), init_like(gelu), init_like(uniform);
  for (auto& x : ln.a) x = clamp8(rng.normal(131, 25));
  for (auto& x : gelu.a) x = clamp8(15 + std::fabs(rng.normal(0, 20)) * (rng.below(8) == 0 ? -0.3 : 1.0));
  ASSERT_EQ(gemm::detail_pack_b(ln.b.data(), K, N, ln.ldb, BLayout::kNxK, 0, Path::kAvx2, gemm::Avx2Format::kChoose).format(),
            gemm::detail::Format::kAvx2Pairs);
  for (Case<std::uint8_t>* cs : {&ln, &gelu, &uniform}) {
    const PackedMatrix pb = gemm::pack_b_for_a(cs->a.data(), M, cs->lda, cs->za, cs->b.data(), K, N, cs->ldb,
                                               BLayout::kNxK, 0, Path::kAvx2);
    SCOPED_TRACE(cs->str() + " a_shift " + std::to_string(pb.a_shift()));
    EXPECT_EQ(pb.format(), cs == &uniform ? gemm::detail::Format::kAvx2Pairs : gemm::detail::Format::kAvx2FixA);
    if (cs == &ln) {
      EXPECT_TRUE(pb.a_shift() > 40 && pb.a_shift() < 100);  // room on both sides, sums <= 255
    }
    if (cs == &gelu) {
      EXPECT_LE(pb.a_shift(), 40);  // one-sided: near A's own codes
    }
    std::vector<std::int32_t> c(static_cast<std::size_t>(M * N));
    gemm::gemm(cs->a.data(), M, K, cs->lda, cs->za, pb, Output::int32(c.data(), N));
    ASSERT_EQ(c, cs->reference());
    // Another A (uniform: many repairs) with the same packing.
    Case<std::uint8_t> other = *cs;
    for (auto& x : other.a) x = static_cast<std::uint8_t>(rng.below(256));
    gemm::gemm(other.a.data(), M, K, other.lda, other.za, pb, Output::int32(c.data(), N));
    ASSERT_EQ(c, other.reference());
  }
}

// pack_b packs an N x K weight (the PyTorch layout) with word copies for the
// formats with groups of 4 int8 or 2 int16 along K (8 columns x 32 or 16 K
// values at a time as AVX2 transposes where the CPU has AVX2, then a column
// at a time); the K x N layout takes the element-by-element loop. Both must
// give the same bytes, column sums and maddubs corrections (and the same
// count of unsafe maddubs pairs) for the same B, at edge sizes of K (groups,
// vector chunks, the maddubs K block) and N (8-column groups, panels).
TEST(GemmPackTest, AHugeKIsRefusedBeforeItsBoundCanWrap) {
  // K * 128 * 255 wrapped int64 to 0 for K = 2^50 (issue 22), so the depth
  // check passed and the call died in an allocation. The depth is refused
  // before anything is read or allocated.
  const std::int8_t b[1] = {1};
  for (const Index K : {Index(1) << 50, Index(1) << 31, (Index(1) << 62) + 3}) {
    try {
      gemm::pack_b(b, K, 1, K, BLayout::kNxK, 0, gemm::Path::kScalar);
      ADD_FAILURE() << "K = " << K << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("too deep for int32 accumulation"), std::string::npos) << e.what();
    }
  }
}

TEST(GemmPackTest, WeightLayoutPacksLikeTheGeneralLoop) {
  struct Fmt {
    Path path;
    gemm::Avx2Format avx2_format;
  };
  std::vector<Fmt> fmts;
  if (gemm::has(gemm::compiled_paths(), Path::kAvx2)) {
    fmts.push_back({Path::kAvx2, gemm::Avx2Format::kPairs});
    fmts.push_back({Path::kAvx2, gemm::Avx2Format::kQuads});
    fmts.push_back({Path::kAvx2, gemm::Avx2Format::kFixA});
    fmts.push_back({Path::kAvx2, gemm::Avx2Format::kChoose});
  }
  if (gemm::has(gemm::compiled_paths(), Path::kAvxVnni)) fmts.push_back({Path::kAvxVnni, gemm::Avx2Format::kChoose});
  if (gemm::has(gemm::compiled_paths(), Path::kAvx512Vnni)) fmts.push_back({Path::kAvx512Vnni, gemm::Avx2Format::kChoose});
  if (fmts.empty()) GTEST_SKIP() << "no path with 4-value groups is compiled";
  Rng rng(77);
  for (Index K : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 64, 66, 511, 512, 513, 1030})
    for (Index N : {1, 7, 8, 16, 23, 24, 25, 48, 49}) {
      const Index ldb = K + (K % 3);  // tight and padded leading dimensions
      // Sigma 50: about 1 in 30 pairs needs a maddubs correction.
      std::vector<std::int8_t> nxk(static_cast<std::size_t>(N * ldb), 99), kxn(static_cast<std::size_t>(K * N));
      for (Index n = 0; n < N; ++n)
        for (Index k = 0; k < K; ++k) {
          const auto v = static_cast<std::int8_t>(std::max(-128.0, std::min(127.0, std::nearbyint(rng.normal(0, 50)))));
          nxk[static_cast<std::size_t>(n * ldb + k)] = v;
          kxn[static_cast<std::size_t>(k * N + n)] = v;
        }
      ASSERT_EQ(gemm::detail::count_unsafe_b_pairs(nxk.data(), K, N, ldb, BLayout::kNxK),
                gemm::detail::count_unsafe_b_pairs(kxn.data(), K, N, N, BLayout::kKxN))
          << "K=" << K << " N=" << N;
      for (const Fmt& f : fmts) {
        SCOPED_TRACE(::testing::Message() << gemm::path_name(f.path) << " format " << static_cast<int>(f.avx2_format) << " K=" << K
                                          << " N=" << N);
        const PackedMatrix a = gemm::detail_pack_b(nxk.data(), K, N, ldb, BLayout::kNxK, 0, f.path, f.avx2_format);
        const PackedMatrix b = gemm::detail_pack_b(kxn.data(), K, N, N, BLayout::kKxN, 0, f.path, f.avx2_format);
        ASSERT_EQ(a.format(), b.format());
        ASSERT_EQ(a.panels(), b.panels());
        ASSERT_EQ(a.panel_bytes(), b.panel_bytes());
        for (Index p = 0; p < a.panels(); ++p)
          ASSERT_EQ(0, std::memcmp(a.panel(p), b.panel(p), static_cast<std::size_t>(a.panel_bytes()))) << "panel " << p;
        ASSERT_TRUE(std::equal(a.col_sums(), a.col_sums() + N, b.col_sums()));
        ASSERT_EQ(a.correction_count(), b.correction_count());
        if (a.format() != gemm::detail::Format::kAvx2Quads) continue;
        const Index kblocks = gemm::detail::ceil_div(a.padded_depth(), gemm::detail::kAvx2QuadsKC);
        for (Index p = 0; p < a.panels(); ++p)
          for (Index kb = 0; kb < kblocks; ++kb) {
            ASSERT_EQ(a.corrections_end(p, kb) - a.corrections_begin(p, kb),
                      b.corrections_end(p, kb) - b.corrections_begin(p, kb));
            for (auto x = a.corrections_begin(p, kb), y = b.corrections_begin(p, kb); x != a.corrections_end(p, kb);
                 ++x, ++y)
              ASSERT_TRUE(x->k == y->k && x->j == y->j && x->value == y->value) << "panel " << p << " block " << kb;
          }
      }
    }
}

// unpack_b returns the B that was packed, in the weight layout, for every
// compiled path and AVX2 format (the maddubs quads with their corrections
// put back), from both input layouts, for uniform weights (about 1 in 4 K
// pairs corrected in the quads) and at the formats' edge sizes.
TEST(GemmPackTest, UnpackReturnsTheWeightsThatWerePacked) {
  std::vector<std::pair<Path, gemm::Avx2Format>> fmts;
  for (Path p : gemm::kEachPath) {
    if (!gemm::has(gemm::compiled_paths(), p)) continue;
    if (p == Path::kAvx2) {
      for (gemm::Avx2Format f : {gemm::Avx2Format::kPairs, gemm::Avx2Format::kQuads, gemm::Avx2Format::kFixA})
        fmts.push_back({p, f});
    } else {
      fmts.push_back({p, gemm::Avx2Format::kChoose});
    }
  }
  Rng rng(78);
  Index corrected = 0;
  for (Index K : {1, 2, 3, 5, 17, 64, 65, 513, 1030})
    for (Index N : {1, 9, 24, 33, 49}) {
      std::vector<std::int8_t> nxk(static_cast<std::size_t>(N * K)), kxn(static_cast<std::size_t>(K * N));
      for (Index n = 0; n < N; ++n)
        for (Index k = 0; k < K; ++k) {
          const auto v = static_cast<std::int8_t>(static_cast<int>(rng.below(256)) - 128);
          nxk[static_cast<std::size_t>(n * K + k)] = v;
          kxn[static_cast<std::size_t>(k * N + n)] = v;
        }
      for (const auto& [path, fmt] : fmts) {
        SCOPED_TRACE(::testing::Message() << gemm::path_name(path) << " format " << static_cast<int>(fmt) << " K=" << K
                                          << " N=" << N);
        const PackedMatrix a = gemm::detail_pack_b(nxk.data(), K, N, K, BLayout::kNxK, 0, path, fmt);
        const PackedMatrix b = gemm::detail_pack_b(kxn.data(), K, N, N, BLayout::kKxN, 0, path, fmt);
        corrected += a.correction_count();
        ASSERT_EQ(gemm::unpack_b(a), nxk);
        ASSERT_EQ(gemm::unpack_b(b), nxk);
      }
    }
  if (gemm::has(gemm::compiled_paths(), Path::kAvx2)) {
    EXPECT_GT(corrected, 0) << "no maddubs correction was unpacked";
  }
}

}  // namespace
}  // namespace gemm_test
}  // namespace qaware
