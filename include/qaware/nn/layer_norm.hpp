#pragma once
// QATLayerNorm: layer normalisation over the last dimension in float
// (ops/layer_norm.hpp, as torch.nn.LayerNorm), with a switchable fake
// quantization of its output ("output_fake_quant", QConfig::activation;
// off by default). Parameters: "weight" (C) = 1, "bias" (C) = 0.

#include "qaware/nn/module.hpp"
#include "qaware/ops/layer_norm.hpp"

namespace qaware {
namespace nn {

template <typename Scalar>
class QATLayerNorm : public Module<Scalar> {
 public:
  explicit QATLayerNorm(Index channels, double eps = 1e-12, const QConfig& qconfig = {}, bool quantize_output = false)
      : C_(channels), eps_(eps), quantize_output_(quantize_output) {
    QAWARE_CHECK(channels > 0, "QATLayerNorm: channels must be positive, got ", channels);
    QAWARE_CHECK(eps >= 0, "QATLayerNorm: eps must be >= 0, got ", eps);
    weight_ = Param<Scalar>(DynTensor<Scalar>(Shape{C_}, Scalar(1)));
    bias_ = Param<Scalar>(Shape{C_});
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override {
    v.param("weight", weight_);
    v.param("bias", bias_);
    v.quant("output_fake_quant", output_fq_);
  }
  void configure(const QConfig& qc) override {
    qconfig_ = qc;
    output_fq_ = quantize_output_ ? QuantPoint<Scalar>(qc.activation, C_) : QuantPoint<Scalar>();
  }
  // Switches the output quantization (recreates the point).
  void set_quantize_output(bool on) {
    quantize_output_ = on;
    configure(qconfig_);
  }

  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x) {
    QAWARE_CHECK(x.rank() >= 1 && x.dim(-1) == C_, "QATLayerNorm: x ", x.shape().str(), " must end in C = ", C_);
    const Var<Scalar> y = layer_norm(x, tape.param(weight_), tape.param(bias_), static_cast<Scalar>(eps_));
    return output_fq_(tape, y, this->is_training());
  }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x)); });
  }

  Param<Scalar>& weight() { return weight_; }
  Param<Scalar>& bias() { return bias_; }
  QuantPoint<Scalar>& output_quant() { return output_fq_; }
  const Param<Scalar>& weight() const { return weight_; }
  const Param<Scalar>& bias() const { return bias_; }
  const QuantPoint<Scalar>& output_quant() const { return output_fq_; }
  double eps() const { return eps_; }

 private:
  Index C_;
  double eps_;
  bool quantize_output_;
  QConfig qconfig_;
  Param<Scalar> weight_, bias_;
  QuantPoint<Scalar> output_fq_;
};

}  // namespace nn
}  // namespace qaware
