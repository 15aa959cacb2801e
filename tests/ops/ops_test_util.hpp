#pragma once
// Helpers shared by the op tests: deterministic inputs, a gradient-check
// assertion and an error-message assertion.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "qaware/autograd/gradcheck.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/core/tensor.hpp"

namespace qaware::test {

// Uniform [lo, hi) values from a fixed seed.
template <typename Scalar = double>
DynTensor<Scalar> uniform(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  DynTensor<Scalar> t(std::move(s));
  Rng rng(seed);
  init::uniform(t, rng, lo, hi);
  return t;
}

// start, start + step, ... in row-major order.
inline DynTensor<double> iota(Shape s, double start = 0.0, double step = 1.0) {
  DynTensor<double> t(std::move(s));
  for (Index i = 0; i < t.numel(); ++i) t[i] = start + step * static_cast<double>(i);
  return t;
}

inline DynTensor<std::int64_t> ints(Shape s, std::vector<std::int64_t> v) {
  DynTensor<std::int64_t> t(std::move(s));
  EXPECT_EQ(static_cast<Index>(v.size()), t.numel());
  for (Index i = 0; i < t.numel(); ++i) t[i] = v[static_cast<std::size_t>(i)];
  return t;
}

// grad_check with its defaults (h = 1e-6, rtol = 1e-6, atol = 1e-8: central
// differences in double on O(1) graphs, see gradcheck.hpp) unless `opt`
// says otherwise.
inline ::testing::AssertionResult grads_match(const GradCheckFn& f, const std::vector<DynTensor<double>>& inputs,
                                              const GradCheckOptions& opt = {}) {
  const GradCheckResult r = grad_check(f, inputs, opt);
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << r.max_abs_error << ", max rel error "
                                       << r.max_rel_error << "\n"
                                       << r.report;
}

// f() throws qaware::Error whose message contains every one of `parts`.
template <typename F>
::testing::AssertionResult throws_with(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : parts)
      if (what.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << what << "\" lacks \"" << p << "\"";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no qaware::Error thrown";
}

// Row-major multi-index of linear position i in `s`.
inline std::vector<Index> unravel(Index i, const Shape& s) {
  std::vector<Index> idx(static_cast<std::size_t>(s.rank()));
  for (int d = s.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = i % s[d];
    i /= s[d];
  }
  return idx;
}

// Linear position in `s` of the trailing-aligned multi-index `idx` (of a
// larger or equal rank), reading size-1 dimensions of s at 0 (NumPy
// broadcasting, written independently of qaware's plan).
inline Index broadcast_source(const std::vector<Index>& idx, const Shape& s) {
  Index off = 0;
  const int shift = static_cast<int>(idx.size()) - s.rank();
  for (int d = 0; d < s.rank(); ++d) {
    const Index i = s[d] == 1 ? 0 : idx[static_cast<std::size_t>(d + shift)];
    off = off * s[d] + i;
  }
  return off;
}

}  // namespace qaware::test

namespace qaware::test {

// The broadcast shape by NumPy's rule, written out for the tests.
inline Shape naive_broadcast_shape(const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  std::vector<Index> out;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const Index da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    out.push_back(da == 1 ? db : da);
  }
  return Shape(out);
}

// (a, b) shape pairs every broadcasting op is checked on.
inline std::vector<std::pair<Shape, Shape>> broadcast_cases() {
  return {
      {Shape{2, 3, 4}, Shape{2, 3, 4}},        // same shape
      {Shape{2, 3, 4}, Shape{4}},              // a row / bias
      {Shape{2, 3, 4}, Shape{3, 4}},           // a trailing suffix
      {Shape{4}, Shape{2, 3, 4}},              // the row on the left
      {Shape{2, 3, 4}, Shape{1}},              // one element
      {Shape{2, 3, 4}, Shape{}},               // rank 0
      {Shape{2, 3, 4, 5}, Shape{2, 1, 1, 5}},  // an attention mask [B,1,1,T]
      {Shape{3, 1}, Shape{1, 4}},              // both sides broadcast
      {Shape{2, 1, 4}, Shape{3, 1}},           // both sides, different ranks
      {Shape{}, Shape{}},                      // two scalars
  };
}

// Checks a broadcasting Var op against an elementwise reference: the
// forward value by value, the backward by finite differences on every case,
// and the backward of a large case (parallel chunks that split rows) against
// the chain rule applied through the naive index map. da_ref / db_ref are
// the partial derivatives of ref at (a, b).
template <typename VarOp, typename Ref, typename DaRef, typename DbRef>
void check_broadcast_op(VarOp var_op, Ref ref, DaRef da_ref, DbRef db_ref) {
  std::vector<std::pair<Shape, Shape>> cases = broadcast_cases();
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const auto& [as, bs] = cases[c];
    SCOPED_TRACE(as.str() + " with " + bs.str());
    const DynTensor<double> a = uniform(as, 10 + c), b = uniform(bs, 100 + c);
    Tape<double> tape;
    Var<double> y = var_op(tape.constant(a), tape.constant(b));
    const Shape os = naive_broadcast_shape(as, bs);
    ASSERT_EQ(y.shape(), os);
    for (Index i = 0; i < os.numel(); ++i) {
      const std::vector<Index> idx = unravel(i, os);
      // The same single IEEE operation on the same operands: exact.
      EXPECT_EQ(y.value()[i], ref(a[broadcast_source(idx, as)], b[broadcast_source(idx, bs)])) << "at " << i;
    }
    GradCheckFn f = [&](Tape<double>&, const std::vector<Var<double>>& v) { return var_op(v[0], v[1]); };
    EXPECT_TRUE(grads_match(f, {a, b}));
  }
  // Large: 84480 outputs, rows of 40 split across 32 Ki-element chunks.
  const std::vector<std::pair<Shape, Shape>> large = {{Shape{64, 33, 40}, Shape{33, 1}},
                                                      {Shape{33, 1}, Shape{64, 33, 40}},
                                                      {Shape{64, 33, 40}, Shape{64, 33, 40}}};
  for (const auto& [as, bs] : large) {
    SCOPED_TRACE("large " + as.str() + " with " + bs.str());
    const DynTensor<double> a = uniform(as, 7), b = uniform(bs, 8);
    Tape<double> tape;
    Var<double> va = tape.leaf(a), vb = tape.leaf(b);
    Var<double> y = var_op(va, vb);
    const DynTensor<double> dy = uniform(y.shape(), 9);
    tape.backward(y, dy);
    DynTensor<double> da = DynTensor<double>::zeros(as), db = DynTensor<double>::zeros(bs);
    for (Index i = 0; i < y.numel(); ++i) {
      const std::vector<Index> idx = unravel(i, y.shape());
      const Index ia = broadcast_source(idx, as), ib = broadcast_source(idx, bs);
      ASSERT_EQ(y.value()[i], ref(a[ia], b[ib]));
      da[ia] += dy[i] * da_ref(a[ia], b[ib]);
      db[ib] += dy[i] * db_ref(a[ia], b[ib]);
    }
    // Sums of up to 2560 O(1) terms in another order: 1e-12 absolute.
    for (Index i = 0; i < da.numel(); ++i) ASSERT_NEAR(va.grad()[i], da[i], 1e-12) << "da at " << i;
    for (Index i = 0; i < db.numel(); ++i) ASSERT_NEAR(vb.grad()[i], db[i], 1e-12) << "db at " << i;
  }
}

}  // namespace qaware::test
