#pragma once
// Broadcasting machinery shared by add, sub, mul and softmax's mask
// (internal). Shapes broadcast as in NumPy: aligned from the right, each pair
// of dimensions equal or one of them 1; missing leading dimensions count as 1.
//
// A BroadcastPlan drops size-1 output dimensions and merges neighbouring
// dimensions that both inputs traverse the same way (both contiguous or both
// broadcast), so the common cases reduce to one or two loops:
//   [B,T,C] + [B,T,C] -> one dim of B*T*C elements
//   [B,T,C] + [C]     -> B*T rows of C, b's row reused
//   [B,NH,T,T] + [B,1,1,T] -> [B, NH*T, T], the mask row reused NH*T times
// The innermost merged dimension is walked with a stride of 1 or 0 per input.

#include <algorithm>
#include <array>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace detail {

// The broadcast shape of a and b; `op` names the caller in the error.
inline Shape broadcast_shape(const char* op, const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  std::vector<Index> out(static_cast<std::size_t>(r));
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const Index da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    QAWARE_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a.str(), " and ", b.str(),
                 " do not broadcast (dimension ", i - r, " is ", da, " vs ", db, ")");
    out[static_cast<std::size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

struct BroadcastPlan {
  Shape out;                               // the output (broadcast) shape
  Index numel = 0;                         // elements of out
  std::array<Index, 2> input_numel{0, 0};  // elements of a and b
  Index inner = 1;                         // length of the innermost merged dimension
  std::array<Index, 2> inner_stride{0, 0};  // a's and b's stride along it: 1 or 0
  std::vector<Index> outer_dims;           // the other merged dimensions, outermost first
  std::array<std::vector<Index>, 2> outer_strides;  // a's and b's strides along them (0 = broadcast)
};

inline BroadcastPlan make_broadcast_plan(const char* op, const Shape& a, const Shape& b) {
  BroadcastPlan p;
  p.out = broadcast_shape(op, a, b);
  p.numel = p.out.numel();
  p.input_numel = {a.numel(), b.numel()};
  const int r = p.out.rank();
  // Strides of a and b padded to rank r, 0 along broadcast dimensions.
  std::array<std::vector<Index>, 2> s;
  const std::array<const Shape*, 2> in{&a, &b};
  for (int k = 0; k < 2; ++k) {
    const Shape& x = *in[static_cast<std::size_t>(k)];
    auto& sk = s[static_cast<std::size_t>(k)];
    sk.assign(static_cast<std::size_t>(r), 0);
    Index acc = 1;
    for (int i = r - 1; i >= 0; --i) {
      const int ix = x.rank() - r + i;
      const Index d = ix >= 0 ? x[ix] : 1;
      sk[static_cast<std::size_t>(i)] = d == 1 ? 0 : acc;
      acc *= d;
    }
  }
  // Drop size-1 output dimensions; merge a dimension into its outer
  // neighbour when both inputs step through the pair as one dimension.
  std::vector<Index> dims;
  std::array<std::vector<Index>, 2> st;
  for (int i = 0; i < r; ++i) {
    const Index d = p.out[i];
    if (d == 1) continue;
    const Index sa = s[0][static_cast<std::size_t>(i)], sb = s[1][static_cast<std::size_t>(i)];
    if (!dims.empty() && st[0].back() == sa * d && st[1].back() == sb * d) {
      dims.back() *= d;
      st[0].back() = sa;
      st[1].back() = sb;
    } else {
      dims.push_back(d);
      st[0].push_back(sa);
      st[1].push_back(sb);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    st[0].push_back(0);
    st[1].push_back(0);
  }
  p.inner = dims.back();
  p.inner_stride = {st[0].back(), st[1].back()};
  dims.pop_back();
  st[0].pop_back();
  st[1].pop_back();
  p.outer_dims = std::move(dims);
  p.outer_strides = std::move(st);
  return p;
}

// Calls f(out_offset, a_offset, b_offset, n) on consecutive spans covering
// the output elements [e0, e1). Within a span the output is contiguous and
// input k advances by plan.inner_stride[k] per element.
template <typename F>
void for_each_span(const BroadcastPlan& p, Index e0, Index e1, F&& f) {
  if (e0 >= e1 || p.inner == 0) return;
  Index j = e0 % p.inner;
  StridedCursor<2> cur(p.outer_dims, {&p.outer_strides[0], &p.outer_strides[1]}, e0 / p.inner);
  for (Index e = e0; e < e1;) {
    const Index n = std::min(p.inner - j, e1 - e);
    f(e, cur.offset(0) + j * p.inner_stride[0], cur.offset(1) + j * p.inner_stride[1], n);
    e += n;
    j = 0;
    cur.next();
  }
}

// y = op(a, b) elementwise over the broadcast shape; parallel over elements.
template <typename Scalar, typename Op>
void broadcast_binary(const BroadcastPlan& p, const Scalar* a, const Scalar* b, Scalar* y, Op op) {
  const Index sa = p.inner_stride[0], sb = p.inner_stride[1];
  parallel_for(0, p.numel, kElementGrain, [&](Index e0, Index e1) {
    for_each_span(p, e0, e1, [&](Index o, Index ia, Index ib, Index n) {
      Scalar* yo = y + o;
      const Scalar* ap = a + ia;
      const Scalar* bp = b + ib;
      if (sa && sb) {
        for (Index j = 0; j < n; ++j) yo[j] = op(ap[j], bp[j]);
      } else if (sa) {
        const Scalar bv = *bp;
        for (Index j = 0; j < n; ++j) yo[j] = op(ap[j], bv);
      } else if (sb) {
        const Scalar av = *ap;
        for (Index j = 0; j < n; ++j) yo[j] = op(av, bp[j]);
      } else {
        std::fill(yo, yo + n, op(*ap, *bp));
      }
    });
  });
}

// Gradient of input k (0 = a, 1 = b): dt += g(dy, other) summed over every
// output position input k is broadcast to, where `other` is the other
// input's value there (pass nullptr when g ignores it; it then gets 0).
// Parallel over elements when input k has the output's size (no two output
// elements share a target); otherwise one thread, in a fixed order.
// overwrite (dt = instead of +=) needs input k to have the output's size,
// so that every element of dt is written exactly once.
template <typename Scalar, typename G>
void broadcast_accumulate(const BroadcastPlan& p, int k, Scalar* dt, const Scalar* dy, const Scalar* other, G g,
                          bool overwrite = false) {
  const std::size_t ks = static_cast<std::size_t>(k), os = 1 - ks;
  QAWARE_CHECK(!overwrite || p.input_numel[ks] == p.numel,
               "broadcast_accumulate: overwrite needs an input of the output's size");
  const Index st = p.inner_stride[ks];
  const Index so = other ? p.inner_stride[os] : 0;
  auto run = [&](Index e0, Index e1, auto mode) {
    for_each_span(p, e0, e1, [&](Index e, Index ia, Index ib, Index n) {
      const Scalar* d = dy + e;
      Scalar* t = dt + (k == 0 ? ia : ib);
      const Scalar* ov = other ? other + (k == 0 ? ib : ia) : nullptr;
      const Scalar o0 = ov ? *ov : Scalar(0);
      if (st) {
        if (so) {
          for (Index j = 0; j < n; ++j) put(mode, t[j], g(d[j], ov[j]));
        } else {
          for (Index j = 0; j < n; ++j) put(mode, t[j], g(d[j], o0));
        }
      } else {
        Scalar acc(0);
        if (so) {
          for (Index j = 0; j < n; ++j) acc += g(d[j], ov[j]);
        } else {
          for (Index j = 0; j < n; ++j) acc += g(d[j], o0);
        }
        put(mode, *t, acc);
      }
    });
  };
  if (p.input_numel[ks] != p.numel) return run(0, p.numel, Accumulate{});
  for_mode(overwrite, [&](auto mode) {
    parallel_for(0, p.numel, kElementGrain, [&](Index e0, Index e1) { run(e0, e1, mode); });
  });
}

// One-sided broadcast of a row-wise operand (softmax's additive mask) to the
// rows of x: x is viewed as rows of its last dimension, and the operand's
// offset for row r comes from a cursor over x's leading dimensions.
struct RowBroadcast {
  std::vector<Index> dims;     // x's leading dimensions
  std::vector<Index> strides;  // the operand's strides along them (0 = broadcast)
  Index inner_stride = 0;      // the operand's stride along x's last dimension: 1 or 0
};

// `what` names the operand in errors, e.g. "softmax: mask".
inline RowBroadcast make_row_broadcast(const char* op, const char* what, const Shape& x, const Shape& m) {
  QAWARE_CHECK(x.rank() >= 1, op, ": expected a tensor of rank >= 1, got ", x.str());
  QAWARE_CHECK(m.rank() <= x.rank(), op, ": ", what, " ", m.str(), " has more dimensions than x ", x.str());
  const int r = x.rank();
  RowBroadcast rb;
  rb.dims.assign(x.begin(), x.end() - 1);
  rb.strides.assign(static_cast<std::size_t>(r - 1), 0);
  Index acc = 1;
  for (int i = r - 1; i >= 0; --i) {
    const int im = m.rank() - r + i;
    const Index d = im >= 0 ? m[im] : 1;
    QAWARE_CHECK(d == x[i] || d == 1, op, ": ", what, " ", m.str(), " does not broadcast to x ", x.str(),
                 " (dimension ", i - r, " is ", d, " vs ", x[i], ")");
    const Index stride = d == 1 ? 0 : acc;
    if (i == r - 1)
      rb.inner_stride = stride;
    else
      rb.strides[static_cast<std::size_t>(i)] = stride;
    acc *= d;
  }
  return rb;
}

}  // namespace detail
}  // namespace qaware
