#pragma once
// QATLinear: y = fq_out(linear(fq_in(x), fq_w(W), b)), PyTorch's nn.Linear
// layout (W is (OUT, IN), y = x W^T + b) with fake quantization of
//   the weight          "weight_fake_quant" (QConfig::weight; per channel
//                       along axis 0 = one scale per output row by default),
//   the input           "input_fake_quant"  (QConfig::activation; on by default),
//   the output          "output_fake_quant" (QConfig::activation; off by default).
// The input and weight points are what an INT8 GEMM needs after export; the
// output point is for layers whose output feeds an integer op directly.
// When both points qualify (integer_linear_params() below), the product itself
// runs on the INT8 GEMM, as the exported model will run it
// (QConfig::integer_linear, on by default); otherwise as linear()'s float
// product. The backward is the same either way.
// Parameters: "weight" (OUT, IN), "bias" (OUT). Weights start as
// normal(0, init_std) (Hugging Face BERT's initializer_range 0.02), biases 0.
//   x is (..., IN); y is (..., OUT).

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "qaware/core/rng.hpp"
#include "qaware/nn/module.hpp"
#include "qaware/ops/linear.hpp"
#include "qaware/ops/quantized_linear.hpp"

namespace qaware {
namespace nn {

struct LinearOptions {
  bool bias = true;
  bool quantize_input = true;
  bool quantize_output = false;
  double init_std = 0.02;
};

template <typename Scalar>
class QATLinear;

// The integer form of a product x W^T + b whose input x passes the
// quantization point `in` and whose weight W (out_rows, ...) passes `wt` --
// what a QAT forward runs on the INT8 GEMM and what an exporter writes -- or
// nullopt when the points have none (then `*why`, when given, says why):
// `integer_linear` (QConfig::integer_linear) is on, Scalar is float, and both
// points are on and fake-quantizing, with integer ranges the GEMM takes
// (input per tensor within uint8 or int8; weight symmetric within int8, per
// tensor or per output row). Observed and learnable (LSQ) points alike: the
// parameters are the ones the points' fake quantization uses now (for LSQ
// the scale clamped to eps and the zero point rounded, FakeQuantize::qparams),
// so after a forward, the ones it used. A qualifying configuration whose
// values the GEMM cannot run (a scale that is not finite and positive, a zero
// point outside its range) raises qaware::Error naming the value.
template <typename Scalar>
std::optional<IntegerLinearParams> integer_product_params(const QuantPoint<Scalar>& in, const QuantPoint<Scalar>& wt,
                                                          Index out_rows, bool integer_linear,
                                                          std::string* why = nullptr) {
  auto none = [&](const std::string& reason) -> std::optional<IntegerLinearParams> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (!std::is_same_v<Scalar, float>) return none("the INT8 GEMM takes float layers only");
  if (!integer_linear) return none("QConfig::integer_linear is off");
  if (!in.enabled()) return none("the input is not quantized");
  if (!wt.enabled()) return none("the weight is not quantized");
  if (!in.fake_quantize().fake_quant_enabled() || !wt.fake_quantize().fake_quant_enabled())
    return none("fake quantization is disabled");
  const QuantParams qi = in.qparams(), qw = wt.qparams();
  if (qi.per_channel || qi.channels() != 1) return none("the input is quantized per channel");
  if (qw.per_channel ? (qw.axis != 0 || static_cast<Index>(qw.channels()) != out_rows) : qw.channels() != 1)
    return none("the weight is quantized per channel along an axis other than the output rows");
  for (std::int32_t z : qw.zero_point)
    if (z != 0) return none(::qaware::detail::concat("the weight is affine (zero point ", z, ")"));
  // Ranges are within +-2^24 (QuantSpec::range), so they fit int32.
  IntegerLinearParams p;
  p.input_scale = qi.scale[0];
  p.input_zero_point = qi.zero_point[0];
  p.input_min = static_cast<std::int32_t>(qi.quant_min);
  p.input_max = static_cast<std::int32_t>(qi.quant_max);
  p.weight_scales = qw.scale;
  p.weight_min = static_cast<std::int32_t>(qw.quant_min);
  p.weight_max = static_cast<std::int32_t>(qw.quant_max);
  const std::string range = p.range_problem();
  if (!range.empty()) return none(range);
  p.check(out_rows, "integer product");
  return p;
}

// The integer form of `layer`'s product (integer_product_params of its input
// and weight points).
template <typename Scalar>
std::optional<IntegerLinearParams> integer_linear_params(const QATLinear<Scalar>& layer, std::string* why = nullptr) {
  return integer_product_params(layer.input_quant(), layer.weight_quant(), layer.out_features(),
                                layer.qconfig().integer_linear, why);
}

template <typename Scalar>
class QATLinear : public Module<Scalar> {
 public:
  QATLinear(Index in_features, Index out_features, Rng& rng, const QConfig& qconfig = {}, LinearOptions options = {})
      : in_(in_features), out_(out_features), opt_(options) {
    QAWARE_CHECK(in_features > 0 && out_features > 0, "QATLinear: in_features (", in_features,
                 ") and out_features (", out_features, ") must be positive");
    weight_ = Param<Scalar>(Shape{out_, in_});
    init::normal(weight_.value(), rng, 0.0, options.init_std);
    if (options.bias) bias_ = Param<Scalar>(Shape{out_});
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override {
    v.param("weight", weight_);
    if (opt_.bias) v.param("bias", bias_);
    v.quant("input_fake_quant", input_fq_);
    v.quant("weight_fake_quant", weight_fq_);
    v.quant("output_fake_quant", output_fq_);
  }

  void configure(const QConfig& qc) override {
    qconfig_ = qc;
    weight_fq_ = QuantPoint<Scalar>(qc.weight, channels_of(qc.weight, out_, in_));
    input_fq_ = opt_.quantize_input ? QuantPoint<Scalar>(qc.activation, in_) : QuantPoint<Scalar>();
    output_fq_ = opt_.quantize_output ? QuantPoint<Scalar>(qc.activation, out_) : QuantPoint<Scalar>();
  }

  // After a load: the integer product's parameters must be ones the GEMM
  // runs (integer_product_params throws naming the values otherwise), or a
  // forward would fail on a state that was accepted.
  void check_loaded() const override { integer_linear_params(*this); }

  // x (..., IN) -> y (..., OUT).
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x) {
    QAWARE_CHECK(x.rank() >= 1 && x.dim(-1) == in_, "QATLinear: x ", x.shape().str(), " must end in IN = ", in_,
                 " features (weight [", out_, ", ", in_, "])");
    const bool tr = this->is_training();
    const Var<Scalar> xq = input_fq_(tape, x, tr);
    const Var<Scalar> wq = weight_fq_(tape, tape.param(weight_), tr);
    Var<Scalar> y;
    last_integer_ = false;
    if constexpr (std::is_same_v<Scalar, float>) {
      if (const std::optional<IntegerLinearParams> p = integer_linear_params(*this)) {
        y = opt_.bias ? quantized_linear(xq, wq, tape.param(bias_), *p) : quantized_linear(xq, wq, *p);
        last_integer_ = true;
      }
    }
    if (!y.valid()) y = opt_.bias ? linear(xq, wq, tape.param(bias_)) : linear(xq, wq);
    return output_fq_(tape, y, tr);
  }

  // Whether the last forward ran its product on the INT8 GEMM
  // (integer_linear_params()).
  bool last_forward_was_integer() const { return last_integer_; }
  // The same forward without gradients.
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x)); });
  }

  Param<Scalar>& weight() { return weight_; }
  Param<Scalar>& bias() {
    QAWARE_CHECK(opt_.bias, "QATLinear::bias: this layer has no bias");
    return bias_;
  }
  QuantPoint<Scalar>& input_quant() { return input_fq_; }
  QuantPoint<Scalar>& weight_quant() { return weight_fq_; }
  QuantPoint<Scalar>& output_quant() { return output_fq_; }
  const QuantPoint<Scalar>& input_quant() const { return input_fq_; }
  const QuantPoint<Scalar>& weight_quant() const { return weight_fq_; }
  const QuantPoint<Scalar>& output_quant() const { return output_fq_; }
  bool has_bias() const { return opt_.bias; }
  const Param<Scalar>& weight() const { return weight_; }
  const Param<Scalar>& bias() const {
    QAWARE_CHECK(opt_.bias, "QATLinear::bias: this layer has no bias");
    return bias_;
  }
  const QConfig& qconfig() const { return qconfig_; }
  Index in_features() const { return in_; }
  Index out_features() const { return out_; }

  // Channel count of a per-channel weight point along its axis.
  static Index channels_of(const std::optional<FakeQuantizeConfig>& c, Index out, Index in) {
    if (!c || !c->spec.per_channel) return 0;
    const int axis = c->spec.axis;
    const int a = axis < 0 ? axis + 2 : axis;
    QAWARE_CHECK(a == 0 || a == 1, "QATLinear: weight channel axis ", axis, " is out of range for a rank-2 weight");
    return a == 0 ? out : in;
  }

 private:
  Index in_, out_;
  LinearOptions opt_;
  QConfig qconfig_;
  Param<Scalar> weight_, bias_;
  QuantPoint<Scalar> input_fq_, weight_fq_, output_fq_;
  bool last_integer_ = false;
};

}  // namespace nn
}  // namespace qaware
