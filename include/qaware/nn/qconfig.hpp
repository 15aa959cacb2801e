#pragma once
// Quantization configuration of the QAT layers.
//
//   QuantConfig    how one kind of tensor is fake-quantized (bits, signed,
//                  symmetric, per tensor / per channel, observer, STE,
//                  learnable or not), or `enabled = false` (no fake quant).
//   QConfig        one layer's configuration: `weight` for its weights and
//                  `activation` for its activation quantization points.
//                  QConfig::fp32() turns both off (the FP32 baseline).
//   ModelQConfig   a model-wide default plus overrides selected by glob
//                  patterns on dotted module names, e.g.
//                    ModelQConfig cfg(QConfig::w8a8());
//                    cfg.override_pattern("encoder.layer.*.intermediate.dense", QConfig::wa(4, 8));
//                  gives the FFN's first dense layer 4-bit weights (W4A8)
//                  and every other layer INT8 (mixed precision).
//
// Defaults (QConfig{} == QConfig::w8a8()):
//   weights      int8, symmetric, per channel along axis 0 (one scale per
//                output row of a PyTorch (OUT, IN) weight), observed with a
//                per-channel moving-average min/max with averaging constant
//                1, i.e. the range of the current weights (PyTorch's default
//                0.01 lags behind weights that move during training);
//   activations  uint8, affine, per tensor, MovingAverageMinMax observer
//                (averaging constant 0.01, the first batch sets the range);
//   STE          PyTorch's clipped STE; not learnable. QConfig::lsq() makes
//                both learnable (LSQ: scales and zero points are trained,
//                initialised from the observer).
//
// Pattern matching (glob_match): `*` matches any run of characters,
// dots included, `?` any one character; everything else matches itself.
// The whole name must match. ModelQConfig::resolve(name) applies the
// default, then every override whose pattern matches `name`, in the order
// they were added: the LAST matching override wins. Names are module names
// (no parameter suffix): "encoder.layer.0.attention.self.query",
// "encoder.layer.3.intermediate.dense", "encoder.layer.0.attention" (the
// attention's own points: scores, probabilities, Q/K/V matmul inputs).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/quant/fake_quantize_module.hpp"

namespace qaware {
namespace nn {

enum class Granularity { PerTensor, PerChannel };

struct QuantConfig {
  bool enabled = true;
  int bits = 8;               // 2..8
  bool is_signed = false;     // int (true) or uint (false) range
  bool symmetric = false;
  Granularity granularity = Granularity::PerTensor;
  int axis = 0;               // channel axis when per channel (negative counts from the end)
  bool narrow_range = false;
  bool reduce_range = false;
  ObserverConfig observer;    // kind, averaging constant, ...
  SteMode ste = SteMode::Clipped;
  bool learnable = false;     // LSQ: scale and zero point are trained
  std::optional<double> grad_factor;               // learnable: nullopt = 1 / sqrt(numel * quant_max)
  ScaleDomain scale_domain = ScaleDomain::Linear;  // learnable

  static QuantConfig off() {
    QuantConfig c;
    c.enabled = false;
    return c;
  }
  // Signed, symmetric, per channel along `axis`, current-range observer.
  static QuantConfig weight(int bits = 8, int axis = 0) {
    QuantConfig c;
    c.bits = bits;
    c.is_signed = true;
    c.symmetric = true;
    c.granularity = Granularity::PerChannel;
    c.axis = axis;
    c.observer.kind = ObserverKind::MovingAverageMinMax;
    c.observer.averaging_constant = 1.0;
    return c;
  }
  // Unsigned, affine, per tensor, MovingAverageMinMax (0.01).
  static QuantConfig activation(int bits = 8) {
    QuantConfig c;
    c.bits = bits;
    return c;
  }

  QuantConfig& with_bits(int b) {
    bits = b;
    return *this;
  }
  QuantConfig& with_learnable(bool on = true) {
    learnable = on;
    return *this;
  }
  QuantConfig& with_ste(SteMode m) {
    ste = m;
    return *this;
  }
  QuantConfig& with_observer(ObserverKind kind) {
    observer.kind = kind;
    return *this;
  }

  bool per_channel() const { return granularity == Granularity::PerChannel; }

  QuantSpec spec() const {
    QuantSpec s;
    s.bits = bits;
    s.is_signed = is_signed;
    s.symmetric = symmetric;
    s.narrow_range = narrow_range;
    s.reduce_range = reduce_range;
    s.per_channel = per_channel();
    s.axis = axis;
    return s;
  }

  FakeQuantizeConfig fake_quantize_config() const {
    QAWARE_CHECK(enabled, "QuantConfig::fake_quantize_config: quantization is off");
    FakeQuantizeConfig f;
    f.spec = spec();
    f.observer = observer;
    f.ste = ste;
    f.learnable = learnable;
    f.grad_factor = grad_factor;
    f.scale_domain = scale_domain;
    return f;
  }

  std::string str() const {
    if (!enabled) return "off";
    std::string s = spec().str();
    if (learnable) s += " learnable";
    if (ste != SteMode::Clipped) s += std::string(" ste=") + ste_mode_name(ste);
    return s;
  }
};

struct QConfig {
  QuantConfig weight = QuantConfig::weight(8);
  QuantConfig activation = QuantConfig::activation(8);
  // QATLinear computes x W^T on the INT8 GEMM when its input and weight
  // points allow it (exact integer products, the exported model's numbers);
  // false keeps Eigen's float product of the fake-quantized
  // values. The two differ by float rounding only.
  bool integer_linear = true;

  // Quantization off: the FP32 baseline.
  static QConfig fp32() { return {QuantConfig::off(), QuantConfig::off()}; }
  static QConfig w8a8() { return {}; }
  // `weight_bits`-bit weights, `activation_bits`-bit activations (0 = off).
  static QConfig wa(int weight_bits, int activation_bits) {
    QConfig c;
    if (weight_bits > 0)
      c.weight.bits = weight_bits;
    else
      c.weight = QuantConfig::off();
    if (activation_bits > 0)
      c.activation.bits = activation_bits;
    else
      c.activation = QuantConfig::off();
    return c;
  }
  // Learnable (LSQ) scales and zero points for weights and activations.
  static QConfig lsq(int weight_bits = 8, int activation_bits = 8) {
    QConfig c = wa(weight_bits, activation_bits);
    c.weight.learnable = c.weight.enabled;
    c.activation.learnable = c.activation.enabled;
    return c;
  }

  bool enabled() const { return weight.enabled || activation.enabled; }
  std::string str() const { return "weight: " + weight.str() + "; activation: " + activation.str(); }
};

// Glob match of a whole name: `*` any run (dots included), `?` one character.
inline bool glob_match(const std::string& pattern, const std::string& name) {
  std::size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

class ModelQConfig {
 public:
  ModelQConfig() = default;
  explicit ModelQConfig(QConfig default_config) : default_(std::move(default_config)) {}

  // Adds an override; later overrides win over earlier ones.
  ModelQConfig& override_pattern(std::string pattern, QConfig config) {
    QAWARE_CHECK(!pattern.empty(), "ModelQConfig::override_pattern: empty pattern");
    overrides_.emplace_back(std::move(pattern), std::move(config));
    return *this;
  }

  // The configuration of the module called `module_name`.
  const QConfig& resolve(const std::string& module_name) const {
    const QConfig* c = &default_;
    for (const auto& [pattern, config] : overrides_)
      if (glob_match(pattern, module_name)) c = &config;
    return *c;
  }

  const QConfig& default_config() const { return default_; }
  const std::vector<std::pair<std::string, QConfig>>& overrides() const { return overrides_; }

 private:
  QConfig default_;
  std::vector<std::pair<std::string, QConfig>> overrides_;
};

}  // namespace nn
}  // namespace qaware
