#pragma once
// The fake-quantization ops without the tape: the raw-pointer forward and
// backward kernels (ops::fake_quantize_*_forward / _backward), their
// argument checks and the plain tensor functions
// (fake_quantize_per_tensor_affine, fake_quantize_per_channel_affine,
// fake_quantize with a QuantParams, and the *_cachemask forms). An inference
// runtime fake-quantizes with exactly these; quant/fake_quantize.hpp
// describes the ops and adds their tape (Var) forms.

#include <cstdint>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"
#include "qaware/core/type_identity.hpp"
#include "qaware/quant/bitmask.hpp"
#include "qaware/quant/fake_quantize_kernels.hpp"
#include "qaware/quant/qparams.hpp"
#include "qaware/quant/ste.hpp"

namespace qaware {

namespace detail {
namespace fq {

// Elements per parallel chunk (a multiple of 64 so that mask words are never
// shared between threads).
inline constexpr Index kGrainBlocks = 256;  // x 64 elements

inline void validate_per_tensor(const char* fn, double scale, std::int64_t zero_point, std::int64_t quant_min,
                                std::int64_t quant_max) {
  check_range(fn, quant_min, quant_max);
  check_scale(fn, scale);
  check_zero_point(fn, zero_point, quant_min, quant_max);
}

// (OUTER, C, INNER) of `shape` around `axis`.
struct ChannelView {
  int axis;
  Index outer, channels, inner;
};

inline ChannelView channel_view(const char* fn, const Shape& shape, int axis) {
  const int r = shape.rank();
  QAWARE_CHECK(r >= 1, fn, ": per-channel quantization needs a tensor of rank >= 1, got shape ", shape.str());
  const int a = axis < 0 ? axis + r : axis;
  QAWARE_CHECK(a >= 0 && a < r, fn, ": axis ", axis, " is out of range for shape ", shape.str(), " (rank ", r, ")");
  ChannelView v{a, 1, shape[a], 1};
  for (int i = 0; i < a; ++i) v.outer *= shape[i];
  for (int i = a + 1; i < r; ++i) v.inner *= shape[i];
  return v;
}

template <typename S>
inline ChannelView validate_per_channel(const char* fn, const Shape& shape, const S* scale, Index n_scale,
                                        const std::int32_t* zero_point, Index n_zero_point, int axis,
                                        std::int64_t quant_min, std::int64_t quant_max) {
  check_range(fn, quant_min, quant_max);
  const ChannelView v = channel_view(fn, shape, axis);
  QAWARE_CHECK(n_scale == n_zero_point, fn, ": ", n_scale, " scales but ", n_zero_point, " zero points");
  QAWARE_CHECK(n_scale == v.channels, fn, ": ", n_scale, " scales for ", v.channels, " channels (axis ", v.axis,
               " of shape ", shape.str(), ")");
  for (Index c = 0; c < n_scale; ++c) {
    check_scale(fn, static_cast<double>(scale[c]), static_cast<long>(c));
    check_zero_point(fn, zero_point[c], quant_min, quant_max, static_cast<long>(c));
  }
  return v;
}

inline bool use_streaming_stores(Index n, std::size_t elem_bytes) {
  return static_cast<std::size_t>(n) * elem_bytes >= stream_threshold().load(std::memory_order_relaxed);
}

}  // namespace fq
}  // namespace detail

namespace ops {

// x (N) -> y (N). mask: BitMask::word_count(N) words or nullptr; bit i is set
// when element i is in range. Inputs must be valid (see the public functions).
template <typename Scalar>
void fake_quantize_per_tensor_forward(const Scalar* x, Scalar* y, std::uint64_t* mask, Index N, Scalar scale,
                                      std::int64_t zero_point, std::int64_t quant_min, std::int64_t quant_max) {
  namespace fq = detail::fq;
  const fq::Affine<Scalar> p = fq::make_affine(scale, zero_point, quant_min, quant_max);
  const bool stream = fq::use_streaming_stores(N, sizeof(Scalar));
  const Index blocks = (N + 63) / 64;
  parallel_for(0, blocks, fq::kGrainBlocks, [&](Index b0, Index b1) {
    const Index b = b0 * 64, e = std::min(N, b1 * 64);
    if (mask) std::fill(mask + b0, mask + b1, std::uint64_t(0));
    fq::affine_run(x + b, y + b, e - b, p, mask, b, stream);
  });
}

// x (OUTER, C, INNER) -> y, channel c using scale[c], zero_point[c]; mask as
// above (element order is x's memory order).
template <typename Scalar>
void fake_quantize_per_channel_forward(const Scalar* x, Scalar* y, std::uint64_t* mask, Index OUTER, Index C,
                                       Index INNER, const Scalar* scale, const std::int32_t* zero_point,
                                       std::int64_t quant_min, std::int64_t quant_max) {
  namespace fq = detail::fq;
  const Index N = OUTER * C * INNER;
  if (N == 0) return;
  const Scalar qmin = static_cast<Scalar>(quant_min), qmax = static_cast<Scalar>(quant_max);
  const Index blocks = (N + 63) / 64;
  if (INNER >= 16) {
    // Long runs of one channel: a broadcast-parameter kernel per run.
    std::vector<fq::Affine<Scalar>> params(static_cast<std::size_t>(C));
    for (Index c = 0; c < C; ++c) params[static_cast<std::size_t>(c)] = fq::make_affine(scale[c], zero_point[c], quant_min, quant_max);
    const bool stream = fq::use_streaming_stores(N, sizeof(Scalar));
    parallel_for(0, blocks, fq::kGrainBlocks, [&](Index b0, Index b1) {
      const Index b = b0 * 64, e = std::min(N, b1 * 64);
      if (mask) std::fill(mask + b0, mask + b1, std::uint64_t(0));
      for (Index i = b; i < e;) {
        const Index run = i / INNER;
        const Index end = std::min(e, (run + 1) * INNER);
        fq::affine_run(x + i, y + i, end - i, params[static_cast<std::size_t>(run % C)], mask, i, stream);
        i = end;
      }
    });
  } else {
    // Parameters change every few elements: expand them over one period of
    // C * INNER elements and use a vector-parameter kernel.
    const Index L = C * INNER;
    std::vector<Scalar> sc(static_cast<std::size_t>(L)), inv(static_cast<std::size_t>(L)), zp(static_cast<std::size_t>(L));
    for (Index p = 0; p < L; ++p) {
      const Index c = p / INNER;
      sc[static_cast<std::size_t>(p)] = scale[c];
      inv[static_cast<std::size_t>(p)] = Scalar(1) / scale[c];
      zp[static_cast<std::size_t>(p)] = static_cast<Scalar>(zero_point[c]);
    }
    const bool stream = fq::use_streaming_stores(N, sizeof(Scalar));
    parallel_for(0, blocks, fq::kGrainBlocks, [&](Index b0, Index b1) {
      const Index b = b0 * 64, e = std::min(N, b1 * 64);
      if (mask) std::fill(mask + b0, mask + b1, std::uint64_t(0));
      for (Index i = b; i < e;) {
        const Index pos = i % L;
        const Index end = std::min(e, i + (L - pos));
        fq::affine_vec(x + i, y + i, end - i, sc.data() + pos, inv.data() + pos, zp.data() + pos, qmin, qmax, mask, i,
                       stream);
        i = end;
      }
    });
  }
}

// dx (N) += dy (N) * mask (Clipped, LearnableClip) or += dy (PassThrough);
// = instead of += when overwrite.
template <typename Scalar>
void fake_quantize_backward(const Scalar* dy, const std::uint64_t* mask, Scalar* dx, Index N, SteMode ste,
                            bool overwrite = false) {
  namespace fq = detail::fq;
  const Index blocks = (N + 63) / 64;
  parallel_for(0, blocks, fq::kGrainBlocks, [&](Index b0, Index b1) {
    const Index b = b0 * 64, e = std::min(N, b1 * 64);
    if (ste == SteMode::PassThrough) {
      detail::for_mode(overwrite, [&](auto mode) {
        for (Index i = b; i < e; ++i) detail::put(mode, dx[i], dy[i]);
      });
    } else {
      fq::masked_accumulate(dy + b, mask + b0, dx + b, e - b, overwrite);
    }
  });
}

}  // namespace ops

// ---------------------------------------------------------------------------
// Plain tensor functions.

// The fake-quantized tensor and its in-range mask (PyTorch's *_cachemask ops).
template <typename Scalar>
struct FakeQuantResult {
  DynTensor<Scalar> output;
  BitMask mask;
};

template <typename Scalar>
FakeQuantResult<Scalar> fake_quantize_per_tensor_affine_cachemask(const DynTensor<Scalar>& x,
                                                                  detail::identity_t<Scalar> scale,
                                                                  std::int64_t zero_point, std::int64_t quant_min,
                                                                  std::int64_t quant_max) {
  detail::fq::validate_per_tensor("fake_quantize_per_tensor_affine", static_cast<double>(scale), zero_point, quant_min,
                                  quant_max);
  FakeQuantResult<Scalar> r{DynTensor<Scalar>(x.shape()), BitMask(x.numel())};
  ops::fake_quantize_per_tensor_forward(x.data(), r.output.data(), r.mask.words(), x.numel(), scale, zero_point,
                                        quant_min, quant_max);
  return r;
}

template <typename Scalar>
DynTensor<Scalar> fake_quantize_per_tensor_affine(const DynTensor<Scalar>& x, detail::identity_t<Scalar> scale,
                                                  std::int64_t zero_point, std::int64_t quant_min,
                                                  std::int64_t quant_max) {
  detail::fq::validate_per_tensor("fake_quantize_per_tensor_affine", static_cast<double>(scale), zero_point, quant_min,
                                  quant_max);
  DynTensor<Scalar> y(x.shape());
  ops::fake_quantize_per_tensor_forward(x.data(), y.data(), static_cast<std::uint64_t*>(nullptr), x.numel(), scale,
                                        zero_point, quant_min, quant_max);
  return y;
}

template <typename Scalar, int Rank>
Tensor<Scalar, Rank> fake_quantize_per_tensor_affine(const Tensor<Scalar, Rank>& x, detail::identity_t<Scalar> scale,
                                                     std::int64_t zero_point, std::int64_t quant_min,
                                                     std::int64_t quant_max) {
  detail::fq::validate_per_tensor("fake_quantize_per_tensor_affine", static_cast<double>(scale), zero_point, quant_min,
                                  quant_max);
  Tensor<Scalar, Rank> y(x.dimensions());
  ops::fake_quantize_per_tensor_forward(x.data(), y.data(), static_cast<std::uint64_t*>(nullptr),
                                        static_cast<Index>(x.size()), scale, zero_point, quant_min, quant_max);
  return y;
}

template <typename Scalar>
FakeQuantResult<Scalar> fake_quantize_per_channel_affine_cachemask(const DynTensor<Scalar>& x,
                                                                   const std::vector<Scalar>& scale,
                                                                   const std::vector<std::int32_t>& zero_point,
                                                                   int axis, std::int64_t quant_min,
                                                                   std::int64_t quant_max) {
  const auto v = detail::fq::validate_per_channel("fake_quantize_per_channel_affine", x.shape(), scale.data(),
                                                  static_cast<Index>(scale.size()), zero_point.data(),
                                                  static_cast<Index>(zero_point.size()), axis, quant_min, quant_max);
  FakeQuantResult<Scalar> r{DynTensor<Scalar>(x.shape()), BitMask(x.numel())};
  ops::fake_quantize_per_channel_forward(x.data(), r.output.data(), r.mask.words(), v.outer, v.channels, v.inner,
                                         scale.data(), zero_point.data(), quant_min, quant_max);
  return r;
}

template <typename Scalar>
DynTensor<Scalar> fake_quantize_per_channel_affine(const DynTensor<Scalar>& x, const std::vector<Scalar>& scale,
                                                   const std::vector<std::int32_t>& zero_point, int axis,
                                                   std::int64_t quant_min, std::int64_t quant_max) {
  const auto v = detail::fq::validate_per_channel("fake_quantize_per_channel_affine", x.shape(), scale.data(),
                                                  static_cast<Index>(scale.size()), zero_point.data(),
                                                  static_cast<Index>(zero_point.size()), axis, quant_min, quant_max);
  DynTensor<Scalar> y(x.shape());
  ops::fake_quantize_per_channel_forward(x.data(), y.data(), static_cast<std::uint64_t*>(nullptr), v.outer, v.channels,
                                         v.inner, scale.data(), zero_point.data(), quant_min, quant_max);
  return y;
}

template <typename Scalar, int Rank>
Tensor<Scalar, Rank> fake_quantize_per_channel_affine(const Tensor<Scalar, Rank>& x, const std::vector<Scalar>& scale,
                                                      const std::vector<std::int32_t>& zero_point, int axis,
                                                      std::int64_t quant_min, std::int64_t quant_max) {
  const auto v = detail::fq::validate_per_channel("fake_quantize_per_channel_affine", shape_of(x), scale.data(),
                                                  static_cast<Index>(scale.size()), zero_point.data(),
                                                  static_cast<Index>(zero_point.size()), axis, quant_min, quant_max);
  Tensor<Scalar, Rank> y(x.dimensions());
  ops::fake_quantize_per_channel_forward(x.data(), y.data(), static_cast<std::uint64_t*>(nullptr), v.outer, v.channels,
                                         v.inner, scale.data(), zero_point.data(), quant_min, quant_max);
  return y;
}

namespace detail {
namespace fq {
// The one per-tensor / per-channel dispatch of a QuantParams: per_tensor(scale,
// zero point) for a per-tensor QuantParams (which must hold one of each),
// else per_channel(scales as Scalar).
template <typename Scalar, class PerTensor, class PerChannel>
auto with_qparams(const QuantParams& qp, PerTensor&& per_tensor, PerChannel&& per_channel) {
  if (!qp.per_channel) {
    QAWARE_CHECK(qp.scale.size() == 1 && qp.zero_point.size() == 1, "fake_quantize: per-tensor QuantParams needs one "
                 "scale and one zero point, got ", qp.scale.size(), " and ", qp.zero_point.size());
    return per_tensor(static_cast<Scalar>(qp.scale[0]), qp.zero_point[0]);
  }
  return per_channel(std::vector<Scalar>(qp.scale.begin(), qp.scale.end()));
}
}  // namespace fq
}  // namespace detail

// With a QuantParams (per tensor or per channel).
template <typename Scalar>
FakeQuantResult<Scalar> fake_quantize_cachemask(const DynTensor<Scalar>& x, const QuantParams& qp) {
  return detail::fq::with_qparams<Scalar>(
      qp,
      [&](Scalar s, std::int32_t z) {
        return fake_quantize_per_tensor_affine_cachemask(x, s, z, qp.quant_min, qp.quant_max);
      },
      [&](const std::vector<Scalar>& s) {
        return fake_quantize_per_channel_affine_cachemask(x, s, qp.zero_point, qp.axis, qp.quant_min, qp.quant_max);
      });
}

template <typename Scalar>
DynTensor<Scalar> fake_quantize(const DynTensor<Scalar>& x, const QuantParams& qp) {
  return detail::fq::with_qparams<Scalar>(
      qp, [&](Scalar s, std::int32_t z) { return fake_quantize_per_tensor_affine(x, s, z, qp.quant_min, qp.quant_max); },
      [&](const std::vector<Scalar>& s) {
        return fake_quantize_per_channel_affine(x, s, qp.zero_point, qp.axis, qp.quant_min, qp.quant_max);
      });
}

}  // namespace qaware
