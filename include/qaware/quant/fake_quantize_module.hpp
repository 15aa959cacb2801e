#pragma once
// FakeQuantize: observer + quantization parameters + fake-quant op, as
// torch.ao.quantization.FakeQuantize (and, with `learnable`,
// torch.ao.quantization._LearnableFakeQuantize).
//
// forward(tape, x) / forward(x):
//   observer enabled:   observe x (detached), recompute (scale, zero point)
//                       from the observer (learnable: copy them into the
//                       scale / zero-point Params, PyTorch's "static estimate")
//   observer disabled:  keep the current values (learnable: clamp the scale
//                       Param to eps, as PyTorch)
//   fake quant enabled: y = fake_quantize(x) (learnable: the LSQ op with the
//                       Params on the tape); disabled: y = x.
// Observation and fake quantization are switched separately
// (enable_observer / enable_fake_quant), e.g. to freeze the observers after
// N steps; the learnable module adds PyTorch's enable_param_learning /
// enable_static_estimate / enable_static_observation.
//
// A FakeQuantizeConfig (spec + observer description + STE + learnable
// options) constructs everything, so a later QConfig only has to fill one in.
//
// Learnable, symmetric specs: PyTorch zeroes the zero point each forward;
// we set it to the symmetric convention of the spec instead (0 for signed
// ranges, the same as PyTorch; the midpoint for unsigned ranges, where 0
// would be wrong) and keep that Param frozen.
//
// State (state_dict / load_state_dict): "scale", "zero_point" (or, for a
// log-domain learnable scale, "log_scale"), "observer_enabled",
// "fake_quant_enabled", "learning_enabled" (learnable), and the observer's
// entries prefixed "activation_post_process." (PyTorch's names).

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/quant/fake_quantize.hpp"
#include "qaware/quant/histogram_observer.hpp"
#include "qaware/quant/learnable.hpp"
#include "qaware/quant/observers.hpp"

namespace qaware {

enum class ObserverKind { MinMax, MovingAverageMinMax, Histogram, Percentile, Mse };

struct ObserverConfig {
  ObserverKind kind = ObserverKind::MovingAverageMinMax;
  double averaging_constant = 0.01;          // MovingAverageMinMax (per tensor or per channel)
  HistogramOptions histogram;                 // Histogram
  double percentile = 99.99;                  // Percentile
  int mse_candidates = 100;                   // Mse
  std::optional<double> batch_averaging;      // Percentile / Mse: nullopt = running mean of batches
  QParamsAlgorithm algorithm = QParamsAlgorithm::Observer;
  float eps = kQuantEps;
};

// The observer a config describes. Per-channel specs take the per-channel
// MinMax / moving-average observers; Histogram, Percentile and Mse are per
// tensor only.
inline std::unique_ptr<Observer> make_observer(const QuantSpec& spec, const ObserverConfig& cfg) {
  switch (cfg.kind) {
    case ObserverKind::MinMax:
      if (spec.per_channel) return std::make_unique<PerChannelMinMaxObserver>(spec, cfg.algorithm, cfg.eps);
      return std::make_unique<MinMaxObserver>(spec, cfg.algorithm, cfg.eps);
    case ObserverKind::MovingAverageMinMax:
      if (spec.per_channel)
        return std::make_unique<MovingAveragePerChannelMinMaxObserver>(spec, cfg.averaging_constant, cfg.algorithm,
                                                                       cfg.eps);
      return std::make_unique<MovingAverageMinMaxObserver>(spec, cfg.averaging_constant, cfg.algorithm, cfg.eps);
    case ObserverKind::Histogram:
      return std::make_unique<HistogramObserver>(spec, cfg.histogram, cfg.algorithm, cfg.eps);
    case ObserverKind::Percentile:
      return std::make_unique<PercentileObserver>(spec, cfg.percentile, cfg.batch_averaging, cfg.algorithm, cfg.eps);
    case ObserverKind::Mse:
      return std::make_unique<MseObserver>(spec, cfg.mse_candidates, cfg.batch_averaging, cfg.algorithm, cfg.eps);
  }
  detail::fail("make_observer: unknown observer kind");
}

// How one tensor is fake-quantized: the one configuration type, consumed
// by FakeQuantize and (as QConfig's weight / activation) by the QAT layers.
// The default is the activation preset.
struct FakeQuantizeConfig {
  QuantSpec spec = QuantSpec::uint8();
  ObserverConfig observer;
  SteMode ste = SteMode::Clipped;
  bool learnable = false;                          // LSQ: scale and zero point are trained
  std::optional<double> grad_factor;               // learnable: nullopt = LSQ's 1/sqrt(numel * quant_max)
  ScaleDomain scale_domain = ScaleDomain::Linear;  // learnable

  // Weights: signed, symmetric, per channel along `axis`, observed by a
  // per-channel moving average with constant 1 (the current weights' range).
  static FakeQuantizeConfig weight(int bits = 8, int axis = 0) {
    FakeQuantizeConfig c;
    c.spec = QuantSpec::signed_bits(bits, /*symmetric=*/true).with_per_channel(axis);
    c.observer.averaging_constant = 1.0;
    return c;
  }
  // Activations: unsigned, affine, per tensor, MovingAverageMinMax (0.01).
  static FakeQuantizeConfig activation(int bits = 8) {
    FakeQuantizeConfig c;
    c.spec = QuantSpec::unsigned_bits(bits, /*symmetric=*/false);
    return c;
  }

  FakeQuantizeConfig& with_bits(int b) {
    QAWARE_CHECK(b >= 2 && b <= 8, "FakeQuantizeConfig::with_bits: bits must be in [2, 8], got ", b);
    spec.bits = b;
    return *this;
  }
  FakeQuantizeConfig& with_learnable(bool on = true) {
    learnable = on;
    return *this;
  }
  FakeQuantizeConfig& with_ste(SteMode m) {
    ste = m;
    return *this;
  }
  FakeQuantizeConfig& with_observer(ObserverKind kind) {
    observer.kind = kind;
    return *this;
  }

  std::string str() const {
    std::string s = spec.str();
    if (learnable) s += " learnable";
    if (ste != SteMode::Clipped) s += std::string(" ste=") + ste_mode_name(ste);
    return s;
  }
};

template <typename Scalar>
class FakeQuantize {
 public:
  explicit FakeQuantize(FakeQuantizeConfig cfg) : FakeQuantize(cfg, make_observer(cfg.spec, cfg.observer)) {}
  // With a custom observer (its spec must be cfg.spec).
  FakeQuantize(FakeQuantizeConfig cfg, std::unique_ptr<Observer> observer)
      : cfg_(std::move(cfg)), observer_(std::move(observer)) {
    QAWARE_CHECK(observer_ != nullptr, "FakeQuantize: null observer");
    const QRange r = cfg_.spec.range();
    qparams_.per_channel = cfg_.spec.per_channel;
    qparams_.axis = cfg_.spec.axis;
    qparams_.quant_min = r.quant_min;
    qparams_.quant_max = r.quant_max;
    if (cfg_.learnable) {
      QAWARE_CHECK(r.quant_min <= 0 && r.quant_max >= 0, "FakeQuantize: a learnable range must include 0, got [",
                   r.quant_min, ", ", r.quant_max, "]");
    }
    resize_params(1);  // allocated even when unused, so that copies never see an empty Param
  }

  FakeQuantize(const FakeQuantize& o)
      : cfg_(o.cfg_), observer_(o.observer_->clone()), qparams_(o.qparams_), observer_on_(o.observer_on_),
        fake_quant_on_(o.fake_quant_on_), scale_(o.scale_), zero_point_(o.zero_point_) {}
  FakeQuantize& operator=(const FakeQuantize& o) {
    if (this != &o) *this = FakeQuantize(o);
    return *this;
  }
  FakeQuantize(FakeQuantize&&) noexcept = default;
  FakeQuantize& operator=(FakeQuantize&&) noexcept = default;

  // ---- forward ----
  Var<Scalar> forward(Tape<Scalar>& tape, Var<Scalar> x) {
    QAWARE_CHECK(x.valid() && &x.tape() == &tape, "FakeQuantize::forward: x is not on this tape");
    prepare(x.value());
    if (!fake_quant_on_) return x;
    if (!cfg_.learnable) return fake_quantize(x, qparams_, cfg_.ste);
    const LearnableOptions opt = learnable_options();
    if (!cfg_.spec.per_channel)
      return fake_quantize_learnable_per_tensor_affine(x, tape.param(scale_), tape.param(zero_point_),
                                                       qparams_.quant_min, qparams_.quant_max, opt);
    return fake_quantize_learnable_per_channel_affine(x, tape.param(scale_), tape.param(zero_point_), cfg_.spec.axis,
                                                      qparams_.quant_min, qparams_.quant_max, opt);
  }

  // Without a tape (no gradient).
  DynTensor<Scalar> forward(const DynTensor<Scalar>& x) {
    prepare(x);
    if (!fake_quant_on_) return x;
    if (!cfg_.learnable) return fake_quantize(x, qparams_);
    if (!cfg_.spec.per_channel)
      return fake_quantize_learnable_per_tensor_affine(x, effective_scale(0), zero_point_.value()[0],
                                                       qparams_.quant_min, qparams_.quant_max);
    std::vector<Scalar> s(static_cast<std::size_t>(scale_.numel())), z(s.size());
    for (Index c = 0; c < scale_.numel(); ++c) {
      s[static_cast<std::size_t>(c)] = effective_scale(c);
      z[static_cast<std::size_t>(c)] = zero_point_.value()[c];
    }
    return fake_quantize_learnable_per_channel_affine(x, s, z, cfg_.spec.axis, qparams_.quant_min,
                                                      qparams_.quant_max);
  }

  // ---- switches ----
  void enable_observer(bool on = true) { observer_on_ = on; }
  void disable_observer() { enable_observer(false); }
  void enable_fake_quant(bool on = true) { fake_quant_on_ = on; }
  void disable_fake_quant() { enable_fake_quant(false); }
  bool observer_enabled() const { return observer_on_; }
  bool fake_quant_enabled() const { return fake_quant_on_; }

  // Learnable modules (PyTorch's _LearnableFakeQuantize modes).
  void enable_param_learning() {
    require_learnable("enable_param_learning");
    set_learning(true);
    fake_quant_on_ = true;
    observer_on_ = false;
  }
  void enable_static_estimate() {
    require_learnable("enable_static_estimate");
    set_learning(false);
    fake_quant_on_ = true;
    observer_on_ = true;
  }
  void enable_static_observation() {
    require_learnable("enable_static_observation");
    set_learning(false);
    fake_quant_on_ = false;
    observer_on_ = true;
  }
  bool learnable() const { return cfg_.learnable; }
  bool learning_enabled() const { return cfg_.learnable && scale_.requires_grad(); }
  Param<Scalar>& scale_param() {
    require_learnable("scale_param");
    return scale_;
  }
  Param<Scalar>& zero_point_param() {
    require_learnable("zero_point_param");
    return zero_point_;
  }

  // ---- parameters ----
  // The (scale, zero point) the next fake quantization uses: for learnable
  // modules the Params' values with the scale clamped to eps and the zero
  // point rounded and clamped (PyTorch's calculate_qparams).
  QuantParams qparams() const {
    if (!cfg_.learnable) return qparams_;
    QuantParams q = qparams_;
    const Index C = scale_.numel();
    q.scale.resize(static_cast<std::size_t>(C));
    q.zero_point.resize(static_cast<std::size_t>(C));
    // A symmetric point's forward sets its zero point to the symmetric one
    // first (prepare), whatever a loaded state held: report that one.
    const bool symmetric = fake_quant_on_ && cfg_.spec.symmetric;
    for (Index c = 0; c < C; ++c) {
      q.scale[static_cast<std::size_t>(c)] = static_cast<float>(effective_scale(c));
      q.zero_point[static_cast<std::size_t>(c)] =
          symmetric ? static_cast<std::int32_t>(symmetric_zero_point())
                    : static_cast<std::int32_t>(
                          ops::learnable_zero_point_forward(zero_point_.value()[c], q.quant_min, q.quant_max));
    }
    return q;
  }
  // What the observer currently suggests.
  QuantParams calculate_qparams() const { return observer_->calculate_qparams(); }

  Observer& observer() { return *observer_; }
  const Observer& observer() const { return *observer_; }
  const FakeQuantizeConfig& config() const { return cfg_; }

  // ---- state ----
  StateDict state_dict() const {
    StateDict s;
    if (cfg_.learnable) {
      s[cfg_.scale_domain == ScaleDomain::Log ? "log_scale" : "scale"] = scale_.value().template cast<double>();
      s["zero_point"] = zero_point_.value().template cast<double>();
      s["learning_enabled"] = detail::obs::scalar_tensor(learning_enabled() ? 1.0 : 0.0);
    } else {
      s["scale"] = detail::obs::vector_tensor(qparams_.scale);
      DynTensor<double> z(Shape{static_cast<Index>(qparams_.zero_point.size())});
      for (std::size_t i = 0; i < qparams_.zero_point.size(); ++i) z[static_cast<Index>(i)] = qparams_.zero_point[i];
      s["zero_point"] = std::move(z);
    }
    s["observer_enabled"] = detail::obs::scalar_tensor(observer_on_ ? 1.0 : 0.0);
    s["fake_quant_enabled"] = detail::obs::scalar_tensor(fake_quant_on_ ? 1.0 : 0.0);
    for (auto& kv : observer_->state_dict()) s["activation_post_process." + kv.first] = std::move(kv.second);
    return s;
  }
  // Validates every value before changing anything: on an Error the module
  // is as it was. Refused: scales that are not finite and > 0 (log scales
  // that are not finite or above 80, whose exp overflows a float), zero
  // points that are not finite (learnable) or not integers in
  // [quant_min, quant_max] (fixed), a per-tensor point given several
  // scales, a per-channel point given another channel count than it has,
  // switches other than 0 or 1, and observer state the observer refuses.
  void load_state_dict(const StateDict& s) {
    const std::string who = "FakeQuantize";
    const bool log_domain = cfg_.learnable && cfg_.scale_domain == ScaleDomain::Log;
    const char* scale_key = log_domain ? "log_scale" : "scale";
    const auto& sc = detail::obs::entry(s, who, scale_key);
    const auto& zp = detail::obs::entry(s, who, "zero_point");
    const Index C = sc.numel();
    QAWARE_CHECK(C == zp.numel() && C >= 1, who, "::load_state_dict: ", C, " scales but ", zp.numel(), " zero points");
    QAWARE_CHECK(cfg_.spec.per_channel || C == 1, who, "::load_state_dict: a per-tensor point takes one scale, got ", C);
    const Index have = cfg_.learnable ? scale_.numel() : static_cast<Index>(qparams_.scale.size());
    QAWARE_CHECK(have <= 1 || C == have, who, "::load_state_dict: ", C, " scales for a per-channel point with ", have,
                 " channels");
    const double qmin = static_cast<double>(qparams_.quant_min), qmax = static_cast<double>(qparams_.quant_max);
    for (Index c = 0; c < C; ++c) {
      const double v = sc[c], z = zp[c];
      if (log_domain) {
        QAWARE_CHECK(std::isfinite(v) && v <= 80.0, who, "::load_state_dict: log_scale[", c, "] is ", v,
                     " (must be finite and <= 80)");
      } else {
        QAWARE_CHECK(v > 0 && v <= detail::obs::kFloatMax && static_cast<float>(v) > 0.0f, who, "::load_state_dict: scale[",
                     c, "] is ", v, " (must be finite and > 0 as a float)");
      }
      if (cfg_.learnable)
        detail::obs::check_finite(who, "zero_point[" + std::to_string(c) + "]", z);
      else
        QAWARE_CHECK(z >= qmin && z <= qmax && z == std::floor(z), who, "::load_state_dict: zero_point[", c, "] is ", z,
                     " (must be an integer in [", qparams_.quant_min, ", ", qparams_.quant_max, "])");
    }
    auto flag = [&](const char* key) {
      const double v = detail::obs::scalar_entry(s, who, key);
      QAWARE_CHECK(v == 0.0 || v == 1.0, who, "::load_state_dict: '", key, "' must be 0 or 1, got ", v);
      return v == 1.0;
    };
    const bool observer_on = flag("observer_enabled"), fake_quant_on = flag("fake_quant_enabled");
    const bool learning = cfg_.learnable && flag("learning_enabled");
    StateDict obs;
    const std::string prefix = "activation_post_process.";
    for (const auto& kv : s)
      if (kv.first.compare(0, prefix.size(), prefix) == 0) obs.emplace(kv.first.substr(prefix.size()), kv.second);
    std::unique_ptr<Observer> observer = observer_->clone();
    observer->load_state_dict(obs);

    // Commit.
    observer_ = std::move(observer);
    if (cfg_.learnable) {
      resize_params(C);
      for (Index c = 0; c < C; ++c) {
        scale_.value()[c] = static_cast<Scalar>(sc[c]);
        zero_point_.value()[c] = static_cast<Scalar>(zp[c]);
      }
      set_learning(learning);
    } else {
      qparams_.scale.assign(static_cast<std::size_t>(C), 0.0f);
      qparams_.zero_point.assign(static_cast<std::size_t>(C), 0);
      for (Index c = 0; c < C; ++c) {
        qparams_.scale[static_cast<std::size_t>(c)] = static_cast<float>(sc[c]);
        qparams_.zero_point[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(zp[c]);
      }
    }
    observer_on_ = observer_on;
    fake_quant_on_ = fake_quant_on;
  }

 private:
  void require_learnable(const char* what) const {
    QAWARE_CHECK(cfg_.learnable, "FakeQuantize::", what, ": this module is not learnable (FakeQuantizeConfig::learnable)");
  }
  LearnableOptions learnable_options() const {
    LearnableOptions o;
    o.grad_factor = cfg_.grad_factor;
    o.ste = cfg_.ste;
    o.scale_domain = cfg_.scale_domain;
    o.eps = cfg_.observer.eps;
    return o;
  }
  Scalar effective_scale(Index c) const {
    const Scalar v = scale_.value()[c];
    const Scalar s = cfg_.scale_domain == ScaleDomain::Log ? std::exp(v) : v;
    return std::max(s, static_cast<Scalar>(cfg_.observer.eps));
  }
  void set_learning(bool on) {
    scale_.set_requires_grad(on);
    zero_point_.set_requires_grad(on && !cfg_.spec.symmetric);
  }
  void resize_params(Index C) {
    // (A default-constructed Param holds no storage, though its rank-0 shape counts one element.)
    const bool allocated = scale_.value().data() != nullptr;
    if (allocated && scale_.numel() == C) return;
    const bool learning = allocated ? scale_.requires_grad() : true;  // PyTorch's Parameters start trainable
    scale_ = Param<Scalar>(DynTensor<Scalar>(Shape{C}, cfg_.scale_domain == ScaleDomain::Log ? Scalar(0) : Scalar(1)));
    zero_point_ = Param<Scalar>(DynTensor<Scalar>::zeros(Shape{C}));
    set_learning(learning);
  }
  // The symmetric zero point of the spec (0 for signed ranges).
  std::int32_t symmetric_zero_point() const {
    return choose_qparams(-1.0f, 1.0f, cfg_.spec, QParamsAlgorithm::Observer, cfg_.observer.eps).zero_point;
  }

  // Observation and parameter refresh before the op.
  void prepare(const DynTensor<Scalar>& x) {
    if (observer_on_) {
      observer_->observe(x);
      QuantParams q = observer_->calculate_qparams();
      if (!cfg_.learnable) {
        qparams_.scale = std::move(q.scale);
        qparams_.zero_point = std::move(q.zero_point);
      } else {
        resize_params(static_cast<Index>(q.scale.size()));
        for (Index c = 0; c < scale_.numel(); ++c) {
          const float sc = q.scale[static_cast<std::size_t>(c)];
          scale_.value()[c] = cfg_.scale_domain == ScaleDomain::Log ? static_cast<Scalar>(std::log(static_cast<Scalar>(sc)))
                                                                    : static_cast<Scalar>(sc);
          zero_point_.value()[c] = static_cast<Scalar>(q.zero_point[static_cast<std::size_t>(c)]);
        }
      }
    } else if (cfg_.learnable && cfg_.scale_domain == ScaleDomain::Linear) {
      for (Index c = 0; c < scale_.numel(); ++c)
        scale_.value()[c] = std::max(scale_.value()[c], static_cast<Scalar>(cfg_.observer.eps));
    }
    if (cfg_.learnable) {
      if (cfg_.spec.per_channel) {
        const auto v = detail::fq::channel_view("FakeQuantize::forward", x.shape(), cfg_.spec.axis);
        if (scale_.numel() != v.channels) {
          QAWARE_CHECK(scale_.numel() == 1, "FakeQuantize::forward: x ", x.shape().str(), " has ", v.channels,
                       " channels on axis ", v.axis, " but the module holds ", scale_.numel());
          const Scalar s0 = scale_.value()[0], z0 = zero_point_.value()[0];
          resize_params(v.channels);
          scale_.value().fill(s0);
          zero_point_.value().fill(z0);
        }
      }
      if (fake_quant_on_ && cfg_.spec.symmetric) zero_point_.value().fill(static_cast<Scalar>(symmetric_zero_point()));
    }
  }

  FakeQuantizeConfig cfg_;
  std::unique_ptr<Observer> observer_;
  QuantParams qparams_;  // non-learnable: the current scale / zero point (starts at 1 / 0)
  bool observer_on_ = true;
  bool fake_quant_on_ = true;
  Param<Scalar> scale_, zero_point_;  // learnable
};

}  // namespace qaware
