#pragma once
// The exported model's building blocks that hold quantization: QuantStep (a
// quantization point of the QAT graph, frozen) and Linear (a linear layer on
// the INT8 GEMM, or in float where the caller kept it float).
//
// Parity with the QAT eval forward holds by construction: each piece runs the
// kernels the QAT layer runs, on the values it computes.
//   QuantStep   y = fake_quantize(x, params): what a QuantPoint computes in
//               eval mode (its observer off; for a learnable point, the
//               clamped scale and rounded zero point: FakeQuantize::qparams).
//   Linear      integer: the input codes of x (core/numerics.hpp's quantize,
//               which gives the codes the QAT forward recovers from its
//               fake-quantized input), the exact int32 product with the
//               packed int8 weight codes and the dequantizing output stage
//               fma(float(acc), sx * sw[o], b[o]) --
//               ops::quantized_linear_forward_packed, the function the QAT
//               forward runs after packing its weight. Integer results are
//               exact on every GEMM path and the output stage is the same
//               formula on every path, so the path the weights were packed
//               for does not change the output.
//               float: the input step, then linear_forward (the QAT float
//               product) with the weight as the QAT forward multiplied it
//               (fake-quantized, if its point was on).
//   Both: then the output step (QATLinear's output_fake_quant, if it was on).
// Weights are packed once, for the best GEMM path of the CPU they are loaded
// on; the int8 codes are not kept beside the packed matrix (unpack_b gives
// them back for saving).

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/gemm/gemm.hpp"
#include "qaware/ops/kernels/linear.hpp"
#include "qaware/ops/kernels/quantized_attention.hpp"
#include "qaware/ops/kernels/quantized_linear.hpp"
#include "qaware/quant/kernels/fake_quantize.hpp"
#include "qaware/quant/qparams.hpp"

namespace qaware {
namespace deploy {
namespace detail {

// Every one of n values is finite, or an Error names `who`, `what` and the first that is not.
inline void check_finite(const float* v, Index n, const std::string& who, const char* what) {
  for (Index i = 0; i < n; ++i)
    QAWARE_CHECK(std::isfinite(v[i]), who, ": ", what, " value ", v[i], " at flat index ", i, " is not finite");
}

}  // namespace detail

// A frozen quantization point: fake quantization with fixed parameters, or
// nothing.
class QuantStep {
 public:
  QuantStep() = default;
  // Checks the parameters (scales finite and positive, zero points within
  // the range, one pair per tensor or per channel); `who` names the point in
  // the error.
  QuantStep(QuantParams params, const std::string& who) : params_(std::move(params)) { check(*params_, who); }

  bool enabled() const { return params_.has_value(); }
  const QuantParams& params() const {
    QAWARE_CHECK(params_.has_value(), "deploy::QuantStep: this step is off");
    return *params_;
  }

  // x -> fake_quantize(x) (x when off).
  DynTensor<float> operator()(DynTensor<float> x) const {
    if (!params_) return x;
    return fake_quantize(x, *params_);
  }

  static void check(const QuantParams& p, const std::string& who) {
    QAWARE_CHECK(!p.scale.empty() && p.scale.size() == p.zero_point.size(), who, ": ", p.scale.size(), " scales and ",
                 p.zero_point.size(), " zero points");
    QAWARE_CHECK(p.per_channel || p.scale.size() == 1, who, ": a per-tensor point has ", p.scale.size(), " scales");
    ::qaware::detail::check_range(who.c_str(), p.quant_min, p.quant_max);
    for (std::size_t c = 0; c < p.scale.size(); ++c) {
      ::qaware::detail::check_scale(who.c_str(), p.scale[c], static_cast<long>(c));
      ::qaware::detail::check_zero_point(who.c_str(), p.zero_point[c], p.quant_min, p.quant_max, static_cast<long>(c));
    }
  }

 private:
  std::optional<QuantParams> params_;
};

class Linear {
 public:
  Linear() = default;

  // An integer layer: `codes` (out x in, PyTorch's weight layout) are the
  // weight's int8 codes, within [p.weight_min, p.weight_max]; bias has `out`
  // values or none. Packs the codes for the best GEMM path of this CPU.
  static Linear integer(const std::int8_t* codes, Index out, Index in, IntegerLinearParams p, std::vector<float> bias,
                        QuantStep output, const std::string& who) {
    check_shape(out, in, bias, who);
    QAWARE_CHECK(codes != nullptr, who, ": no weight codes");
    const std::string problem = p.problem(out);
    QAWARE_CHECK(problem.empty(), who, ": ", problem);
    // Every output is float(acc) * sx * sw with |acc| <= in * max|qx - zx| *
    // max|qw|: scales for which that bound passes the largest float would
    // give infinite outputs, so they are refused here, not found at a forward.
    const double max_x = std::max(double(p.input_zero_point) - p.input_min, double(p.input_max) - p.input_zero_point);
    const double max_w = std::max(std::fabs(double(p.weight_min)), std::fabs(double(p.weight_max)));
    const double max_sw = *std::max_element(p.weight_scales.begin(), p.weight_scales.end());
    const double bound = double(in) * max_x * max_w * double(p.input_scale) * max_sw;
    QAWARE_CHECK(bound <= std::numeric_limits<float>::max(), who, ": input scale ", p.input_scale,
                 " x weight scale ", max_sw, " x ", in, " inputs x ", max_x, " x ", max_w,
                 " (the largest input and weight codes) = ", bound,
                 " exceeds the largest float: outputs could be infinite");
    for (Index i = 0; i < out * in; ++i)
      QAWARE_CHECK(codes[i] >= p.weight_min && codes[i] <= p.weight_max, who, ": weight code ", int(codes[i]),
                   " at row ", i / in, ", column ", i % in, " is outside the declared range [", p.weight_min, ", ",
                   p.weight_max, "]");
    Linear l;
    l.out_ = out;
    l.in_ = in;
    l.params_ = std::move(p);
    l.bias_ = std::move(bias);
    l.output_ = std::move(output);
    l.packed_ = gemm::pack_b(codes, in, out, in, gemm::BLayout::kNxK, 0);
    return l;
  }

  // A float layer: `weight` (out x in) as the QAT forward multiplies it.
  static Linear floating(DynTensor<float> weight, std::vector<float> bias, QuantStep input, QuantStep output,
                         const std::string& who) {
    QAWARE_CHECK(weight.rank() == 2, who, ": the weight must be (OUT, IN), got ", weight.shape().str());
    check_shape(weight.dim(0), weight.dim(1), bias, who);
    detail::check_finite(weight.data(), weight.numel(), who, "weight");
    Linear l;
    l.out_ = weight.dim(0);
    l.in_ = weight.dim(1);
    l.weight_ = std::move(weight);
    l.bias_ = std::move(bias);
    l.input_ = std::move(input);
    l.output_ = std::move(output);
    return l;
  }

  bool is_integer() const { return !packed_.empty(); }
  Index in_features() const { return in_; }
  Index out_features() const { return out_; }
  bool has_bias() const { return !bias_.empty(); }
  const std::vector<float>& bias() const { return bias_; }
  const QuantStep& input_step() const { return input_; }
  const QuantStep& output_step() const { return output_; }
  // Integer layers: the integer parameters and the packed weight.
  const IntegerLinearParams& params() const {
    QAWARE_CHECK(is_integer(), "deploy::Linear::params: this layer is float");
    return params_;
  }
  const gemm::PackedMatrix& packed_weight() const {
    QAWARE_CHECK(is_integer(), "deploy::Linear::packed_weight: this layer is float");
    return packed_;
  }
  // The weight's int8 codes (out x in), unpacked.
  std::vector<std::int8_t> weight_codes() const { return gemm::unpack_b(packed_weight()); }
  // Float layers: the weight.
  const DynTensor<float>& float_weight() const {
    QAWARE_CHECK(!is_integer(), "deploy::Linear::float_weight: this layer is integer");
    return weight_;
  }

  // Integer layers without an output step: x (R, ...) flattened to R rows ->
  // the codes of y under `o`, from the GEMM's requantizing stage (the codes
  // of y's fake-quantized values, without y in float).
  ops::OperandCodes forward_codes(const DynTensor<float>& x, const OperandQuant& o) const {
    QAWARE_CHECK(is_integer() && !output_.enabled(), "deploy::Linear::forward_codes: needs an integer layer without "
                 "an output step");
    QAWARE_CHECK(x.rank() >= 1 && x.dim(-1) == in_, "deploy::Linear: x ", x.shape().str(), " must end in IN = ", in_,
                 " features (weight [", out_, ", ", in_, "])");
    const Index R = x.shape().rows();
    const float* b = bias_.empty() ? nullptr : bias_.data();
    ops::OperandCodes c;
    c.is_unsigned = o.is_unsigned();
    c.zero_point = o.zero_point;
    c.bytes.reset(new std::uint8_t[static_cast<std::size_t>(R * out_)]);
    if (c.is_unsigned)
      ops::quantized_linear_forward_requantized(x.data(), packed_, b, c.bytes.get(), R, in_, out_, params_, o.scale,
                                                o.zero_point, o.qmin, o.qmax);
    else
      ops::quantized_linear_forward_requantized(x.data(), packed_, b, reinterpret_cast<std::int8_t*>(c.bytes.get()), R,
                                                in_, out_, params_, o.scale, o.zero_point, o.qmin, o.qmax);
    return c;
  }

  // x (..., IN) -> y (..., OUT). An integer layer may apply `activation` in
  // its output stage, after the bias and before the output step; a float
  // layer takes none.
  DynTensor<float> forward(const DynTensor<float>& x, gemm::Activation activation = gemm::Activation::kNone) const {
    QAWARE_CHECK(x.rank() >= 1 && x.dim(-1) == in_, "deploy::Linear: x ", x.shape().str(), " must end in IN = ", in_,
                 " features (weight [", out_, ", ", in_, "])");
    Shape ys = x.shape();
    ys[ys.rank() - 1] = out_;
    DynTensor<float> y(ys);
    const Index R = x.shape().rows();
    const float* b = bias_.empty() ? nullptr : bias_.data();
    if (is_integer()) {
      ops::quantized_linear_forward_packed(x.data(), packed_, b, y.data(), R, in_, out_, params_, activation);
    } else {
      QAWARE_CHECK(activation == gemm::Activation::kNone, "deploy::Linear: a float layer has no fused activation");
      const DynTensor<float> xq = input_(x);
      ops::linear_forward(xq.data(), weight_.data(), b, y.data(), R, in_, out_);
    }
    return output_(std::move(y));
  }

 private:
  static void check_shape(Index out, Index in, const std::vector<float>& bias, const std::string& who) {
    QAWARE_CHECK(out > 0 && in > 0, who, ": weight [", out, ", ", in, "] must have positive sizes");
    QAWARE_CHECK(bias.empty() || static_cast<Index>(bias.size()) == out, who, ": ", bias.size(),
                 " bias values for ", out, " outputs");
    detail::check_finite(bias.data(), static_cast<Index>(bias.size()), who, "bias");
  }

  Index out_ = 0, in_ = 0;
  IntegerLinearParams params_;
  gemm::PackedMatrix packed_;
  DynTensor<float> weight_;
  std::vector<float> bias_;
  QuantStep input_, output_;
};

}  // namespace deploy
}  // namespace qaware
