#pragma once
// QATGelu: y = fq(gelu(x)), GELU (erf form by default, as Hugging Face
// BERT's "gelu") with a switchable fake quantization of its output
// ("output_fake_quant", QConfig::activation; on by default here; the
// transformer block turns it off by default because the next QATLinear
// quantizes its input anyway). No parameters.

#include "qaware/nn/module.hpp"
#include "qaware/ops/gelu.hpp"

namespace qaware {
namespace nn {

template <typename Scalar>
class QATGelu : public Module<Scalar> {
 public:
  explicit QATGelu(const QConfig& qconfig = {}, bool quantize_output = true, GeluApprox approx = GeluApprox::Erf,
                   Index channels = 0)
      : quantize_output_(quantize_output), approx_(approx), channels_(channels) {
    configure(qconfig);
  }

  void visit(Visitor<Scalar>& v) override { v.quant("output_fake_quant", output_fq_); }
  void configure(const QConfig& qc) override {
    qconfig_ = qc;
    output_fq_ = quantize_output_ ? QuantPoint<Scalar>(qc.activation, channels_) : QuantPoint<Scalar>();
  }
  void set_quantize_output(bool on) {
    quantize_output_ = on;
    configure(qconfig_);
  }

  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x) { return output_fq_(tape, gelu(x, approx_), this->is_training()); }
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x) {
    return detail::run_no_grad<Scalar>([&](Tape<Scalar>& t) { return forward(t, t.constant(x)); });
  }
  QuantPoint<Scalar>& output_quant() { return output_fq_; }
  const QuantPoint<Scalar>& output_quant() const { return output_fq_; }
  GeluApprox approx() const { return approx_; }

 private:
  bool quantize_output_;
  GeluApprox approx_;
  Index channels_;
  QConfig qconfig_;
  QuantPoint<Scalar> output_fq_;
};

}  // namespace nn
}  // namespace qaware
