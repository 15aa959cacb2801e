#pragma once
// Quantization configuration of the QAT layers.
//
//   QConfig        one layer's configuration: `weight` for its weights and
//                  `activation` for its activation quantization points,
//                  each a FakeQuantizeConfig (quant/fake_quantize_module.hpp:
//                  spec, observer, STE, learnable or not) or std::nullopt
//                  (no fake quantization). QConfig::fp32() turns both off
//                  (the FP32 baseline).
//   ModelQConfig   a model-wide default plus overrides selected by glob
//                  patterns on dotted module names, e.g.
//                    ModelQConfig cfg(QConfig::w8a8());
//                    cfg.override_pattern("encoder.layer.*.intermediate.dense", QConfig::wa(4, 8));
//                  gives the FFN's first dense layer 4-bit weights (W4A8)
//                  and every other layer INT8 (mixed precision).
//
// Defaults (QConfig{} == QConfig::w8a8(); FakeQuantizeConfig's presets):
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

// One layer's configuration. `weight` and `activation` are the
// FakeQuantizeConfig of its weight and activation points, or std::nullopt
// for no fake quantization there.
struct QConfig {
  std::optional<FakeQuantizeConfig> weight = FakeQuantizeConfig::weight(8);
  std::optional<FakeQuantizeConfig> activation = FakeQuantizeConfig::activation(8);
  // QATLinear computes x W^T on the INT8 GEMM when its input and weight
  // points allow it (exact integer products, the exported model's numbers);
  // false keeps Eigen's float product of the fake-quantized
  // values. The two differ by float rounding only.
  bool integer_linear = true;

  // Quantization off: the FP32 baseline.
  static QConfig fp32() { return {std::nullopt, std::nullopt}; }
  static QConfig w8a8() { return {}; }
  // `weight_bits`-bit weights, `activation_bits`-bit activations (0 = off).
  static QConfig wa(int weight_bits, int activation_bits) {
    QAWARE_CHECK(weight_bits <= 0 || (weight_bits >= 2 && weight_bits <= 8), "QConfig::wa: weight bits must be in [2, 8] "
                 "(or <= 0 for unquantized weights), got ", weight_bits);
    QAWARE_CHECK(activation_bits <= 0 || (activation_bits >= 2 && activation_bits <= 8), "QConfig::wa: activation bits "
                 "must be in [2, 8] (or <= 0 for unquantized activations), got ", activation_bits);
    QConfig c;
    if (weight_bits > 0)
      c.weight->with_bits(weight_bits);
    else
      c.weight.reset();
    if (activation_bits > 0)
      c.activation->with_bits(activation_bits);
    else
      c.activation.reset();
    return c;
  }
  // Learnable (LSQ) scales and zero points for weights and activations.
  static QConfig lsq(int weight_bits = 8, int activation_bits = 8) {
    QConfig c = wa(weight_bits, activation_bits);
    if (c.weight) c.weight->learnable = true;
    if (c.activation) c.activation->learnable = true;
    return c;
  }

  bool enabled() const { return weight.has_value() || activation.has_value(); }
  std::string str() const { return "weight: " + point_str(weight) + "; activation: " + point_str(activation); }

 private:
  static std::string point_str(const std::optional<FakeQuantizeConfig>& c) { return c ? c->str() : "off"; }
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
