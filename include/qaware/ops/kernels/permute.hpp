#pragma once
// The forward and backward kernels of permute (ops/permute.hpp describes the op), on
// raw pointers and without the tape, so that an inference runtime runs the
// same code as training.

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/ops/detail/common.hpp"

namespace qaware {
namespace detail {

// y = permute(x, perm) as loops over y's merged dimensions.
struct PermutePlan {
  Index numel = 0;
  std::vector<Index> dims;        // y's merged dimensions, outermost first
  std::vector<Index> in_strides;  // x's stride along each
  // Row mode (x's stride along y's last merged dimension is 1): rows of
  // dims.back() contiguous elements; `outer` is every merged dim but the last.
  // Tile mode: `tile_dim` is the merged dim along which x is contiguous, and
  // `outer` is every merged dim but tile_dim and the last.
  bool row_mode = true;
  std::size_t tile_dim = 0;
  std::vector<Index> outer_dims, outer_in_strides, outer_out_strides;
};

inline std::string perm_str(const std::vector<int>& perm) {
  std::string s = "{";
  for (std::size_t i = 0; i < perm.size(); ++i) s += (i ? ", " : "") + std::to_string(perm[i]);
  return s + "}";
}

// Checks that perm is a permutation of x's dimensions.
inline void check_perm(const char* op, const Shape& xs, const std::vector<int>& perm) {
  const int r = xs.rank();
  bool ok = static_cast<int>(perm.size()) == r;
  std::vector<bool> seen(static_cast<std::size_t>(r), false);
  for (int p : perm) {
    if (!ok || p < 0 || p >= r || seen[static_cast<std::size_t>(p)]) {
      ok = false;
      break;
    }
    seen[static_cast<std::size_t>(p)] = true;
  }
  QAWARE_CHECK(ok, op, ": ", perm_str(perm), " is not a permutation of the ", r, " dimensions of ", xs.str());
}

inline PermutePlan make_permute_plan(const Shape& xs, const std::vector<int>& perm) {
  PermutePlan p;
  p.numel = xs.numel();
  const std::vector<Index> xstr = contiguous_strides(xs.dims());
  for (int src : perm) {
    const Index d = xs[src], s = xstr[static_cast<std::size_t>(src)];
    if (d == 1) continue;
    if (!p.dims.empty() && p.in_strides.back() == s * d) {
      p.dims.back() *= d;
      p.in_strides.back() = s;
    } else {
      p.dims.push_back(d);
      p.in_strides.push_back(s);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.in_strides.push_back(1);
  }
  const std::size_t n = p.dims.size();
  p.row_mode = p.in_strides.back() == 1;
  const std::vector<Index> ostr = contiguous_strides(p.dims);
  if (!p.row_mode) {
    p.tile_dim = static_cast<std::size_t>(std::find(p.in_strides.begin(), p.in_strides.end(), Index(1)) -
                                          p.in_strides.begin());
  }
  for (std::size_t i = 0; i + 1 < n; ++i) {
    if (!p.row_mode && i == p.tile_dim) continue;
    p.outer_dims.push_back(p.dims[i]);
    p.outer_in_strides.push_back(p.in_strides[i]);
    p.outer_out_strides.push_back(ostr[i]);
  }
  return p;
}

inline std::vector<int> inverse_perm(const std::vector<int>& perm) {
  std::vector<int> inv(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) inv[static_cast<std::size_t>(perm[i])] = static_cast<int>(i);
  return inv;
}

// y = permute(x) (Accumulate: y += permute(x)); parallel over rows / tiles.
template <bool Accumulate, typename Scalar>
void permute_copy(const PermutePlan& p, const Scalar* x, Scalar* y) {
  if (p.numel == 0) return;
  const Index L = p.dims.back();
  if (p.row_mode) {
    parallel_for(0, p.numel / L, row_grain(L), [&](Index r0, Index r1) {
      StridedCursor<1> cur(p.outer_dims, {&p.outer_in_strides}, r0);
      for (Index r = r0; r < r1; ++r, cur.next()) {
        const Scalar* src = x + cur.offset(0);
        Scalar* dst = y + r * L;
        if constexpr (Accumulate) {
          for (Index j = 0; j < L; ++j) dst[j] += src[j];
        } else {
          std::memcpy(dst, src, static_cast<std::size_t>(L) * sizeof(Scalar));
        }
      }
    });
    return;
  }
  constexpr Index TB = 32;
  const Index Dj = p.dims[p.tile_dim], SL = p.in_strides.back();
  const Index OSj = contiguous_strides(p.dims)[p.tile_dim];
  const Index tiles = (Dj + TB - 1) / TB;
  const Index outer = p.numel / (Dj * L);
  parallel_for(0, outer * tiles, std::max<Index>(1, kElementGrain / (TB * L)), [&](Index i0, Index i1) {
    StridedCursor<2> cur(p.outer_dims, {&p.outer_in_strides, &p.outer_out_strides}, i0 / tiles);
    Index o = i0 / tiles;
    for (Index item = i0; item < i1; ++item) {
      while (item / tiles != o) {
        cur.next();
        ++o;
      }
      const Index j0 = (item % tiles) * TB, j1 = std::min(Dj, j0 + TB);
      const Scalar* xb = x + cur.offset(0);
      Scalar* yb = y + cur.offset(1);
      for (Index l0 = 0; l0 < L; l0 += TB) {
        const Index l1 = std::min(L, l0 + TB);
        for (Index j = j0; j < j1; ++j) {
          const Scalar* src = xb + j;
          Scalar* dst = yb + j * OSj;
          for (Index l = l0; l < l1; ++l) {
            if constexpr (Accumulate)
              dst[l] += src[l * SL];
            else
              dst[l] = src[l * SL];
          }
        }
      }
    }
  });
}

}  // namespace detail

namespace ops {

// x (shape S) -> y (shape S permuted), laid out as `plan`
// (detail::make_permute_plan(S, perm)) says.
template <typename Scalar>
void permute_forward(const detail::PermutePlan& plan, const Scalar* x, Scalar* y) {
  detail::permute_copy<false>(plan, x, y);
}

// dx += permute(dy, inverse perm), or dx = when overwrite; `inverse_plan`
// is detail::make_permute_plan(y's shape, detail::inverse_perm(perm)).
// The overwrite is a plain copy: it equals the old 0 + dy bitwise because a
// tape gradient never holds -0.0 (each is 0 + sums, or a first write that
// detail::put normalised the same way).
template <typename Scalar>
void permute_backward(const detail::PermutePlan& inverse_plan, const Scalar* dy, Scalar* dx, bool overwrite = false) {
  if (overwrite)
    detail::permute_copy<false>(inverse_plan, dy, dx);
  else
    detail::permute_copy<true>(inverse_plan, dy, dx);
}

}  // namespace ops
}  // namespace qaware
