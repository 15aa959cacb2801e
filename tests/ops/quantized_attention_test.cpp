// quantized_attention_scores / quantized_attention_context: the forward is
// the exact integer sum of the operands' codes, dequantized as the file
// comment of ops/kernels/quantized_attention.hpp says (checked against int64
// sums and the fma written out here), for uint8 and int8 operands and with
// T and HS past the GEMM's panel and block edges; it agrees with the float
// products of the same fake-quantized values to float rounding; the
// backward is exactly theirs; and bad parameters are refused.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ops_test_util.hpp"
#include "qaware/ops/attention_products.hpp"
#include "qaware/ops/quantized_attention.hpp"
#include "qaware/quant/kernels/fake_quantize.hpp"

namespace qaware {
namespace {

using test::throws_with;

// Values of the codes of `o`: (c - z) * s for random codes c.
DynTensor<float> coded(Shape s, const OperandQuant& o, Rng& rng, std::vector<std::int32_t>& codes) {
  DynTensor<float> x(std::move(s));
  codes.resize(static_cast<std::size_t>(x.numel()));
  for (Index i = 0; i < x.numel(); ++i) {
    const auto c = static_cast<std::int32_t>(o.qmin + static_cast<std::int64_t>(rng.below(
                                                          static_cast<std::uint64_t>(o.qmax - o.qmin + 1))));
    codes[static_cast<std::size_t>(i)] = c;
    x[i] = static_cast<float>(c - o.zero_point) * o.scale;
  }
  return x;
}

struct Case {
  Index B, T, NH, HS;
  bool signed_operands;
};

TEST(QuantizedAttentionTest, ForwardIsTheExactIntegerProductDequantized) {
  for (const Case& c : {Case{2, 5, 3, 4, false}, Case{1, 17, 2, 33, false}, Case{2, 9, 2, 8, true},
                        Case{1, 50, 1, 70, false}}) {
    SCOPED_TRACE(::testing::Message() << "B=" << c.B << " T=" << c.T << " NH=" << c.NH << " HS=" << c.HS
                                      << (c.signed_operands ? " int8" : " uint8"));
    const Index B = c.B, T = c.T, NH = c.NH, HS = c.HS, C = NH * HS;
    IntegerAttentionParams p;
    auto op = [&](float s, std::int32_t z) {
      return c.signed_operands ? OperandQuant{s, z - 128, -128, 127} : OperandQuant{s, z, 0, 255};
    };
    p.q = op(0.021f, 131);
    p.k = op(0.017f, 120);
    p.v = op(0.033f, 126);
    p.p = OperandQuant{1.0f / 255.0f, 0, 0, 255};
    Rng rng(3);
    std::vector<std::int32_t> cq, ck, cv, cp;
    const DynTensor<float> q = coded(Shape{B, T, C}, p.q, rng, cq), k = coded(Shape{B, T, C}, p.k, rng, ck);
    const DynTensor<float> v = coded(Shape{B, T, C}, p.v, rng, cv), pr = coded(Shape{B, NH, T, T}, p.p, rng, cp);
    const float alpha = 1.0f / std::sqrt(static_cast<float>(HS));
    DynTensor<float> s(Shape{B, NH, T, T}), ctx(Shape{B, T, C});
    ops::quantized_attention_scores_forward(q.data(), k.data(), s.data(), B, T, C, NH, alpha, p);
    ops::quantized_attention_context_forward(pr.data(), v.data(), ctx.data(), B, T, C, NH, p);
    const float s_scale = (p.q.scale * p.k.scale) * alpha, c_scale = p.p.scale * p.v.scale;
    Index bad = 0;
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < NH; ++h)
        for (Index i = 0; i < T; ++i)
          for (Index j = 0; j < T; ++j) {
            std::int64_t acc = 0;
            for (Index d = 0; d < HS; ++d)
              acc += std::int64_t(cq[static_cast<std::size_t>((b * T + i) * C + h * HS + d)] - p.q.zero_point) *
                     (ck[static_cast<std::size_t>((b * T + j) * C + h * HS + d)] - p.k.zero_point);
            const float want = std::fma(static_cast<float>(acc), s_scale, 0.0f);
            bad += s[((b * NH + h) * T + i) * T + j] != want;
          }
    EXPECT_EQ(bad, 0) << "scores";
    bad = 0;
    for (Index b = 0; b < B; ++b)
      for (Index h = 0; h < NH; ++h)
        for (Index i = 0; i < T; ++i)
          for (Index d = 0; d < HS; ++d) {
            std::int64_t acc = 0;
            for (Index j = 0; j < T; ++j)
              acc += std::int64_t(cp[static_cast<std::size_t>(((b * NH + h) * T + i) * T + j)] - p.p.zero_point) *
                     (cv[static_cast<std::size_t>((b * T + j) * C + h * HS + d)] - p.v.zero_point);
            bad += ctx[(b * T + i) * C + h * HS + d] != std::fma(static_cast<float>(acc), c_scale, 0.0f);
          }
    EXPECT_EQ(bad, 0) << "context";

    // The float products of the same values agree to float rounding.
    DynTensor<float> sf(s.shape()), cf(ctx.shape());
    ops::attention_scores_forward(q.data(), k.data(), sf.data(), B, T, C, NH, alpha);
    ops::attention_context_forward(pr.data(), v.data(), cf.data(), B, T, C, NH);
    double smax = 0, serr = 0, cmax = 0, cerr = 0;
    for (Index i = 0; i < s.numel(); ++i) {
      smax = std::max(smax, std::abs(static_cast<double>(sf[i])));
      serr = std::max(serr, std::abs(static_cast<double>(s[i]) - sf[i]));
    }
    for (Index i = 0; i < ctx.numel(); ++i) {
      cmax = std::max(cmax, std::abs(static_cast<double>(cf[i])));
      cerr = std::max(cerr, std::abs(static_cast<double>(ctx[i]) - cf[i]));
    }
    EXPECT_LE(serr, 1e-5 * smax);
    EXPECT_LE(cerr, 1e-5 * cmax);
  }
}

TEST(QuantizedAttentionTest, CodesOfUnquantizedInputsAreTheFakeQuantizersCodes) {
  // Raw q, k give the same output as their fake-quantized values.
  const Index B = 1, T = 6, NH = 2, HS = 5, C = NH * HS;
  IntegerAttentionParams p{{0.05f, 128, 0, 255}, {0.04f, 127, 0, 255}, {0.05f, 128, 0, 255}, {1.0f / 255, 0, 0, 255}};
  Rng rng(4);
  DynTensor<float> q(Shape{B, T, C}), k(Shape{B, T, C});
  init::normal(q, rng, 0.0, 2.0);
  init::normal(k, rng, 0.0, 2.0);
  const DynTensor<float> fq = fake_quantize_per_tensor_affine(q, p.q.scale, p.q.zero_point, p.q.qmin, p.q.qmax);
  const DynTensor<float> fk = fake_quantize_per_tensor_affine(k, p.k.scale, p.k.zero_point, p.k.qmin, p.k.qmax);
  DynTensor<float> a(Shape{B, NH, T, T}), b(Shape{B, NH, T, T});
  ops::quantized_attention_scores_forward(q.data(), k.data(), a.data(), B, T, C, NH, 0.5f, p);
  ops::quantized_attention_scores_forward(fq.data(), fk.data(), b.data(), B, T, C, NH, 0.5f, p);
  for (Index i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << i;
}

TEST(QuantizedAttentionTest, BackwardIsTheFloatProductsBackward) {
  const Index B = 2, T = 4, NH = 2, HS = 3, C = NH * HS;
  IntegerAttentionParams p{{0.05f, 128, 0, 255}, {0.04f, 127, 0, 255}, {0.05f, 128, 0, 255}, {1.0f / 255, 0, 0, 255}};
  Rng rng(5);
  std::vector<std::int32_t> c1, c2, c3, c4;
  const DynTensor<float> q = coded(Shape{B, T, C}, p.q, rng, c1), k = coded(Shape{B, T, C}, p.k, rng, c2);
  const DynTensor<float> v = coded(Shape{B, T, C}, p.v, rng, c3), pr = coded(Shape{B, NH, T, T}, p.p, rng, c4);
  DynTensor<float> ds(Shape{B, NH, T, T}), dctx(Shape{B, T, C});
  init::normal(ds, rng, 0.0, 1.0);
  init::normal(dctx, rng, 0.0, 1.0);
  auto grads = [&](bool integer) {
    Tape<float> t1, t2;
    const Var<float> vq = t1.leaf(q), vk = t1.leaf(k), vv = t2.leaf(v), vp = t2.leaf(pr);
    const Var<float> s = integer ? quantized_attention_scores(vq, vk, NH, 0.5f, p) : attention_scores(vq, vk, NH, 0.5f);
    const Var<float> c = integer ? quantized_attention_context(vp, vv, p) : attention_context(vp, vv);
    t1.backward(s, ds);
    t2.backward(c, dctx);
    return std::vector<DynTensor<float>>{t1.grad(vq), t1.grad(vk), t2.grad(vv), t2.grad(vp)};
  };
  const auto gi = grads(true), gf = grads(false);
  for (std::size_t n = 0; n < gi.size(); ++n)
    for (Index i = 0; i < gi[n].numel(); ++i) ASSERT_EQ(gi[n][i], gf[n][i]) << "input " << n << " element " << i;
}

TEST(QuantizedAttentionTest, BadParametersAreRefused) {
  const Index B = 1, T = 2, NH = 1, C = 4;
  DynTensor<float> q(Shape{B, T, C}, 0.0f), s(Shape{B, NH, T, T});
  IntegerAttentionParams p{{0.05f, 128, 0, 255}, {0.04f, 127, 0, 255}, {0.05f, 128, 0, 255}, {1.0f / 255, 0, 0, 255}};
  p.k.scale = 0.0f;
  EXPECT_TRUE(throws_with([&] { ops::quantized_attention_scores_forward(q.data(), q.data(), s.data(), B, T, C, NH, 1.0f, p); },
                          {"k: scale 0 must be finite and positive"}));
  p.k.scale = 0.04f;
  p.v.qmax = 300;
  EXPECT_TRUE(throws_with([&] { ops::quantized_attention_scores_forward(q.data(), q.data(), s.data(), B, T, C, NH, 1.0f, p); },
                          {"v: range [0, 300] fits neither uint8 nor int8"}));
  p.v.qmax = 255;
  p.p.zero_point = -1;
  EXPECT_TRUE(throws_with([&] { ops::quantized_attention_scores_forward(q.data(), q.data(), s.data(), B, T, C, NH, 1.0f, p); },
                          {"probabilities: zero point -1 outside [0, 255]"}));
}

}  // namespace
}  // namespace qaware
