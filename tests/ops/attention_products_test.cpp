// attention_scores / attention_context: forward against the definition in
// double, backward against finite differences, and in float bit for bit
// against the composed ops they replace (reshape, permute, matmul, scale),
// forward and backward, including q and k as one node.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops_test_util.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/attention_products.hpp"
#include "qaware/ops/matmul.hpp"
#include "qaware/ops/mul.hpp"
#include "qaware/ops/permute.hpp"
#include "qaware/ops/reshape.hpp"
#include "qaware/ops/scale.hpp"

namespace qaware {
namespace {

using test::grads_match;
using test::throws_with;
using test::uniform;

// Element (b, t, h, d) of a (B, T, C) tensor with heads of HS features.
template <typename T>
T at(const DynTensor<T>& x, Index b, Index t, Index h, Index d, Index HS) {
  const Index T_ = x.shape()[1], C = x.shape()[2];
  return x[(b * T_ + t) * C + h * HS + d];
}

TEST(AttentionProductsTest, ForwardMatchesDefinition) {
  const Index B = 2, T = 5, NH = 3, HS = 4, C = NH * HS;
  const DynTensor<double> q = uniform(Shape{B, T, C}, 1), k = uniform(Shape{B, T, C}, 2), v = uniform(Shape{B, T, C}, 3);
  const DynTensor<double> p = uniform(Shape{B, NH, T, T}, 4);
  const double alpha = 0.37;
  Tape<double> tape;
  const Var<double> s = attention_scores(tape.constant(q), tape.constant(k), NH, alpha);
  const Var<double> ctx = attention_context(tape.constant(p), tape.constant(v));
  ASSERT_EQ(s.shape(), Shape({B, NH, T, T}));
  ASSERT_EQ(ctx.shape(), Shape({B, T, C}));
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < NH; ++h)
      for (Index i = 0; i < T; ++i) {
        for (Index j = 0; j < T; ++j) {
          double dot = 0;
          for (Index d = 0; d < HS; ++d) dot += at(q, b, i, h, d, HS) * at(k, b, j, h, d, HS);
          // HS O(1) products summed in another order: 1e-14.
          EXPECT_NEAR(s.value()[((b * NH + h) * T + i) * T + j], alpha * dot, 1e-14);
        }
        for (Index d = 0; d < HS; ++d) {
          double acc = 0;
          for (Index j = 0; j < T; ++j) acc += p[((b * NH + h) * T + i) * T + j] * at(v, b, j, h, d, HS);
          EXPECT_NEAR(ctx.value()[(b * T + i) * C + h * HS + d], acc, 1e-14);
        }
      }
}

TEST(AttentionProductsTest, BackwardMatchesFiniteDifferences) {
  const Index B = 2, T = 4, NH = 2, HS = 3, C = NH * HS;
  GradCheckFn scores = [&](Tape<double>&, const std::vector<Var<double>>& v) {
    return attention_scores(v[0], v[1], NH, 0.6);
  };
  EXPECT_TRUE(grads_match(scores, {uniform(Shape{B, T, C}, 5), uniform(Shape{B, T, C}, 6)}));
  // q and k one node: both gradients land in it.
  GradCheckFn self = [&](Tape<double>&, const std::vector<Var<double>>& v) {
    return attention_scores(v[0], v[0], NH, 0.6);
  };
  EXPECT_TRUE(grads_match(self, {uniform(Shape{B, T, C}, 7)}));
  GradCheckFn context = [&](Tape<double>&, const std::vector<Var<double>>& v) { return attention_context(v[0], v[1]); };
  EXPECT_TRUE(grads_match(context, {uniform(Shape{B, NH, T, T}, 8), uniform(Shape{B, T, C}, 9)}));
}

// The composed forms the ops replace (QATAttention's earlier code).
template <typename S>
Var<S> split(Var<S> x, Index NH) {
  const Shape& s = x.shape();
  return permute(reshape(x, Shape{s[0], s[1], NH, s[2] / NH}), {0, 2, 1, 3});
}

template <typename T>
::testing::AssertionResult same_bits(const DynTensor<T>& a, const DynTensor<T>& b, const char* what) {
  if (a.shape() != b.shape()) return ::testing::AssertionFailure() << what << ": shapes differ";
  for (Index i = 0; i < a.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0)
      return ::testing::AssertionFailure() << what << " differs at " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

// Runs scores -> (a fixed elementwise weight) -> context in float both ways
// and compares every value and gradient bit for bit. q_is_k feeds one node
// as both q and k.
void expect_same_bits_as_composed(Index B, Index T, Index NH, Index HS, bool q_is_k, int threads) {
  const Index C = NH * HS;
  const float alpha = 1.0f / std::sqrt(static_cast<float>(HS));
  const DynTensor<float> q = uniform<float>(Shape{B, T, C}, 11), k = uniform<float>(Shape{B, T, C}, 12);
  const DynTensor<float> v = uniform<float>(Shape{B, T, C}, 13), w = uniform<float>(Shape{B, NH, T, T}, 14);
  const DynTensor<float> dy = uniform<float>(Shape{B, T, C}, 15);
  const int prev = num_threads();
  set_num_threads(threads);
  struct Out {
    DynTensor<float> s, ctx, dq, dk, dv;
  };
  auto run = [&](bool fused) {
    Tape<float> tape;
    const Var<float> vq = tape.leaf(q), vk = q_is_k ? vq : tape.leaf(k), vv = tape.leaf(v);
    Var<float> s = fused ? attention_scores(vq, vk, NH, alpha) : scale(matmul(split(vq, NH), split(vk, NH), false, true), alpha);
    // A weight that differs per element, so that dp carries information.
    const Var<float> p = mul(s, tape.constant(w));
    Var<float> ctx = fused ? attention_context(p, vv)
                           : reshape(permute(matmul(p, split(vv, NH)), {0, 2, 1, 3}), Shape{B, T, C});
    tape.backward(ctx, dy);
    return Out{s.value(), ctx.value(), vq.grad(), q_is_k ? DynTensor<float>() : vk.grad(), vv.grad()};
  };
  const Out f = run(true), c = run(false);
  set_num_threads(prev);
  const std::string where = "B " + std::to_string(B) + " T " + std::to_string(T) + " NH " + std::to_string(NH) +
                            " HS " + std::to_string(HS) + (q_is_k ? " (q is k)" : "") + ", " +
                            std::to_string(threads) + " thread(s)";
  SCOPED_TRACE(where);
  EXPECT_TRUE(same_bits(f.s, c.s, "scores"));
  EXPECT_TRUE(same_bits(f.ctx, c.ctx, "context"));
  EXPECT_TRUE(same_bits(f.dq, c.dq, "dq"));
  if (!q_is_k) {
    EXPECT_TRUE(same_bits(f.dk, c.dk, "dk"));
  }
  EXPECT_TRUE(same_bits(f.dv, c.dv, "dv"));
}

TEST(AttentionProductsTest, FloatGivesTheComposedOpsBits) {
  expect_same_bits_as_composed(2, 7, 3, 5, false, 1);
  expect_same_bits_as_composed(2, 7, 3, 5, true, 1);
  // BERT-like heads (HS 64, T past one 6-row tile and 16-column strip), across
  // threads: each product still runs whole on one thread.
  expect_same_bits_as_composed(2, 40, 4, 64, false, 2);
  expect_same_bits_as_composed(1, 33, 2, 16, true, 2);
}

TEST(AttentionProductsTest, ShapeErrorsNameTheShapes) {
  Tape<float> tape;
  const Var<float> q = tape.constant(DynTensor<float>(Shape{2, 4, 6}));
  const Var<float> k = tape.constant(DynTensor<float>(Shape{2, 5, 6}));
  EXPECT_TRUE(throws_with([&] { attention_scores(q, k, 2, 1.0f); }, {"attention_scores", "[2, 4, 6]", "[2, 5, 6]"}));
  EXPECT_TRUE(throws_with([&] { attention_scores(q, q, 4, 1.0f); }, {"C = 6", "heads = 4"}));
  const Var<float> p = tape.constant(DynTensor<float>(Shape{2, 2, 4, 3}));
  EXPECT_TRUE(throws_with([&] { attention_context(p, q); }, {"attention_context", "[2, 2, 4, 3]", "[2, 4, 6]"}));
}

}  // namespace
}  // namespace qaware
