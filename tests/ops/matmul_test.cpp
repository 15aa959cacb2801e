// matmul: forward against a naive triple loop for every transpose flag,
// batched and with a shared rank-2 b; backward against finite differences.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "ops_test_util.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/matmul.hpp"

namespace qaware {
namespace {

using test::grads_match;
using test::throws_with;
using test::uniform;

// y[i] = op(a[i]) op(b[i]) by the definition, in double.
DynTensor<double> naive_matmul(const DynTensor<double>& a, const DynTensor<double>& b, bool ta, bool tb) {
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  const Index M = ta ? as.dim(-1) : as.dim(-2), K = ta ? as.dim(-2) : as.dim(-1);
  const Index N = tb ? bs.dim(-2) : bs.dim(-1);
  const Index batch = as.numel() / (M * K);
  const bool shared = bs.rank() == 2;
  std::vector<Index> ys(as.begin(), as.end());
  ys[ys.size() - 2] = M;
  ys[ys.size() - 1] = N;
  DynTensor<double> y = DynTensor<double>::zeros(Shape(ys));
  for (Index i = 0; i < batch; ++i) {
    const double* ai = a.data() + i * M * K;
    const double* bi = b.data() + (shared ? 0 : i * K * N);
    for (Index m = 0; m < M; ++m)
      for (Index n = 0; n < N; ++n) {
        double s = 0.0;
        for (Index k = 0; k < K; ++k) s += (ta ? ai[k * M + m] : ai[m * K + k]) * (tb ? bi[n * K + k] : bi[k * N + n]);
        y[i * M * N + m * N + n] = s;
      }
  }
  return y;
}

// Shapes of a and b before the flags for (batch dims, M, K, N).
Shape a_shape(std::vector<Index> batch, Index M, Index K, bool ta) {
  batch.push_back(ta ? K : M);
  batch.push_back(ta ? M : K);
  return Shape(batch);
}
Shape b_shape(std::vector<Index> batch, Index K, Index N, bool tb) {
  batch.push_back(tb ? N : K);
  batch.push_back(tb ? K : N);
  return Shape(batch);
}

class MatmulFlagsTest : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(MatmulFlagsTest, ForwardMatchesNaiveBatchedAndShared) {
  const auto [ta, tb] = GetParam();
  for (bool shared : {false, true}) {
    const Shape as = a_shape({2, 2}, 3, 4, ta);
    const Shape bs = shared ? b_shape({}, 4, 5, tb) : b_shape({2, 2}, 4, 5, tb);
    const DynTensor<double> a = uniform(as, 1), b = uniform(bs, 2);
    Tape<double> tape;
    Var<double> y = matmul(tape.constant(a), tape.constant(b), ta, tb);
    const DynTensor<double> ref = naive_matmul(a, b, ta, tb);
    ASSERT_EQ(y.shape(), ref.shape());
    // Eigen sums the same 4 products in another order: a few ulp of O(1).
    for (Index i = 0; i < ref.numel(); ++i) EXPECT_NEAR(y.value()[i], ref[i], 1e-14) << "shared " << shared << " at " << i;
  }
}

TEST_P(MatmulFlagsTest, BackwardMatchesFiniteDifferences) {
  const auto [ta, tb] = GetParam();
  GradCheckFn f = [ta = ta, tb = tb](Tape<double>&, const std::vector<Var<double>>& v) {
    return matmul(v[0], v[1], ta, tb);
  };
  // Batched, shared b (one stacked GEMM, or per-batch products when ta), and
  // a single product. (These are too small for the across-batch threads;
  // BackwardOfManyProductsMatchesDefinition covers that path.)
  EXPECT_TRUE(grads_match(f, {uniform(a_shape({2, 2}, 3, 4, ta), 3), uniform(b_shape({2, 2}, 4, 5, tb), 4)}));
  EXPECT_TRUE(grads_match(f, {uniform(a_shape({3}, 3, 4, ta), 5), uniform(b_shape({}, 4, 2, tb), 6)}));
  EXPECT_TRUE(grads_match(f, {uniform(a_shape({}, 2, 3, ta), 7), uniform(b_shape({}, 3, 4, tb), 8)}));
}

TEST_P(MatmulFlagsTest, BackwardOfManyProductsMatchesDefinition) {
  // 8 products of 40 x 32 x 36 (enough work for the across-batch threads),
  // batched and with b shared; reference: the chain rule summed term by term.
  const auto [ta, tb] = GetParam();
  const Index BATCH = 8, M = 40, K = 32, N = 36;
  for (bool shared : {false, true}) {
    const DynTensor<double> a = uniform(a_shape({2, 4}, M, K, ta), 21);
    const DynTensor<double> b = uniform(shared ? b_shape({}, K, N, tb) : b_shape({2, 4}, K, N, tb), 22);
    Tape<double> tape;
    Var<double> va = tape.leaf(a), vb = tape.leaf(b);
    Var<double> y = matmul(va, vb, ta, tb);
    const DynTensor<double> dy = uniform(y.shape(), 23);
    tape.backward(y, dy);
    DynTensor<double> da = DynTensor<double>::zeros(a.shape()), db = DynTensor<double>::zeros(b.shape());
    for (Index i = 0; i < BATCH; ++i) {
      const Index ao = i * M * K, bo = shared ? 0 : i * K * N;
      for (Index m = 0; m < M; ++m)
        for (Index n = 0; n < N; ++n) {
          const double g = dy[(i * M + m) * N + n];
          for (Index k = 0; k < K; ++k) {
            const Index ai = ao + (ta ? k * M + m : m * K + k), bi = bo + (tb ? n * K + k : k * N + n);
            da[ai] += g * b[bi];
            db[bi] += g * a[ai];
          }
        }
    }
    // Sums of up to 8 * 40 O(1) products in another order: 1e-12 absolute.
    for (Index i = 0; i < da.numel(); ++i) ASSERT_NEAR(va.grad()[i], da[i], 1e-12) << "shared " << shared;
    for (Index i = 0; i < db.numel(); ++i) ASSERT_NEAR(vb.grad()[i], db[i], 1e-12) << "shared " << shared;
  }
}

INSTANTIATE_TEST_SUITE_P(AllFlags, MatmulFlagsTest, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool>>& info) {
                           return std::string(std::get<0>(info.param) ? "TransA" : "A") +
                                  (std::get<1>(info.param) ? "TransB" : "B");
                         });

TEST(MatmulTest, LargerProductsMatchNaive) {
  // 3 products of 64 x 96 x 80 (one after another, Eigen threads each) and
  // 8 of them (spread across threads, one thread per GEMM). Double keeps the
  // test binary free of float GEMM kernels (compile time); the float path is
  // the same template, checked against PyTorch by the composed golden test.
  for (Index batch : {3, 8}) {
    const DynTensor<double> a = uniform(Shape{batch, 64, 96}, 11), b = uniform(Shape{batch, 80, 96}, 12);
    Tape<double> tape;
    Var<double> y = matmul(tape.constant(a), tape.constant(b), false, true);
    const DynTensor<double> ref = naive_matmul(a, b, false, true);
    // 96 O(1) products summed in another order: 1e-13 absolute.
    for (Index i = 0; i < ref.numel(); ++i) ASSERT_NEAR(y.value()[i], ref[i], 1e-13) << "batch " << batch << " at " << i;
  }
}

// float runs on the AVX2 GEMM (ops/detail/sgemm.hpp) where the CPU has it:
// forward and both gradients against the double definition on the same
// values, batched (across threads) and shared, every flag, with edge sizes
// around the kernel's 6 x 16 tile; the same bits with 1 and 2 threads.
// Tolerance per element: 4 * (terms + 1) * 2^-24 * sum of |terms| (float
// summation of `terms` products).
TEST(MatmulTest, FloatMatchesDoubleDefinitionAndThreadCounts) {
  const Index BATCH = 8, M = 13, K = 70, N = 17;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared : {false, true}) {
        const DynTensor<double> ad = uniform(a_shape({2, 4}, M, K, ta), 31);
        const DynTensor<double> bd = uniform(shared ? b_shape({}, K, N, tb) : b_shape({2, 4}, K, N, tb), 32);
        const DynTensor<double> dyd = uniform(Shape{2, 4, M, N}, 33);
        const DynTensor<float> a = ad.cast<float>(), b = bd.cast<float>(), dy = dyd.cast<float>();
        DynTensor<float> y[2], da[2], db[2];
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          Tape<float> tape;
          Var<float> va = tape.leaf(a), vb = tape.leaf(b);
          Var<float> out = matmul(va, vb, ta, tb);
          tape.backward(out, dy);
          y[threads - 1] = out.value();
          da[threads - 1] = va.grad();
          db[threads - 1] = vb.grad();
        }
        set_num_threads(0);
        const std::string what = std::string("ta ") + (ta ? "1" : "0") + " tb " + (tb ? "1" : "0") + " shared " +
                                 (shared ? "1" : "0");
        ASSERT_TRUE(std::equal(y[0].begin(), y[0].end(), y[1].begin())) << what;
        ASSERT_TRUE(std::equal(da[0].begin(), da[0].end(), da[1].begin())) << what;
        ASSERT_TRUE(std::equal(db[0].begin(), db[0].end(), db[1].begin())) << what;
        // The definition on the float values, in double, with |term| sums.
        DynTensor<double> ry = DynTensor<double>::zeros(y[0].shape()), my = ry;
        DynTensor<double> rda = DynTensor<double>::zeros(a.shape()), mda = rda;
        DynTensor<double> rdb = DynTensor<double>::zeros(b.shape()), mdb = rdb;
        for (Index i = 0; i < BATCH; ++i) {
          const Index ao = i * M * K, bo = shared ? 0 : i * K * N;
          for (Index m = 0; m < M; ++m)
            for (Index n = 0; n < N; ++n) {
              const Index yi = (i * M + m) * N + n;
              const double g = dy[yi];
              for (Index k = 0; k < K; ++k) {
                const Index ai = ao + (ta ? k * M + m : m * K + k), bi = bo + (tb ? n * K + k : k * N + n);
                const double av = a[ai], bv = b[bi];
                ry[yi] += av * bv, my[yi] += std::abs(av * bv);
                rda[ai] += g * bv, mda[ai] += std::abs(g * bv);
                rdb[bi] += g * av, mdb[bi] += std::abs(g * av);
              }
            }
        }
        auto close = [&](const DynTensor<float>& got, const DynTensor<double>& ref, const DynTensor<double>& mag,
                         double terms, const char* name) {
          for (Index i = 0; i < ref.numel(); ++i) {
            const double tol = 4.0 * (terms + 1) * std::ldexp(1.0, -24) * mag[i];
            if (std::abs(got[i] - ref[i]) > tol) {
              ADD_FAILURE() << what << ": " << name << "[" << i << "] = " << got[i] << ", expected " << ref[i] << " +- "
                            << tol;
              return;
            }
          }
        };
        close(y[0], ry, my, K, "y");
        close(da[0], rda, mda, N, "da");
        close(db[0], rdb, mdb, shared ? BATCH * M : M, "db");
      }
}

TEST(MatmulTest, BadShapesNameBothOperands) {
  Tape<double> tape;
  Var<double> a = tape.constant(uniform(Shape{2, 3, 4}, 1));
  EXPECT_TRUE(throws_with([&] { matmul(a, tape.constant(uniform(Shape{5, 6}, 2))); },
                          {"matmul", "[2, 3, 4]", "[5, 6]", "K = 4", "K = 5"}));
  EXPECT_TRUE(throws_with([&] { matmul(a, tape.constant(uniform(Shape{3, 4, 6}, 2))); },
                          {"matmul", "batch", "[2, 3, 4]", "[3, 4, 6]"}));
  EXPECT_TRUE(throws_with([&] { matmul(a, tape.constant(uniform(Shape{1, 2, 4, 6}, 2))); },
                          {"matmul", "rank", "[1, 2, 4, 6]"}));
  EXPECT_TRUE(throws_with([&] { matmul(a, tape.constant(uniform(Shape{4}, 2))); }, {"matmul", "rank >= 2", "[4]"}));
  // With trans_b the inner dimension of b is its last.
  EXPECT_TRUE(throws_with([&] { matmul(a, tape.constant(uniform(Shape{4, 5}, 2)), false, true); },
                          {"transposed", "K = 5"}));
}

}  // namespace
}  // namespace qaware
