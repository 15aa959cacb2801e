#pragma once
// The layer base: Module, its visitor, quantization points, state dicts.
//
// A Module lists what it holds in one virtual function, visit(v):
//   v.param("weight", weight_);              a Param
//   v.quant("weight_fake_quant", wq_);       a QuantPoint (fake quantizer, may be off)
//   v.rng("dropout", rng_);                  a dropout generator (saved in checkpoints)
//   v.child("attention", attention_);        a sub-module (its names are prefixed)
// Names are relative and may contain dots ("attention.output.LayerNorm");
// an empty child name adds no prefix component. Everything else (named
// parameters, state dicts, train / eval, quantization switches, QConfig
// overrides, RNG seeding) walks the tree through visit(), so a module
// stores no pointers to its members: modules are copyable and movable
// (a copy is an independent model). A Param must not move while a tape or
// an optimizer refers to it: build the optimizer after the model is in
// its final place and after apply_qconfig.
//
// Parameter names follow Hugging Face BERT ("encoder.layer.0.attention.self.query.weight").
// A quantization point "P" (e.g. "...query.weight_fake_quant") contributes
//   learnable points:  Params "P.scale" (or "P.log_scale") and "P.zero_point"
//   all points:        buffers from FakeQuantize::state_dict(), e.g.
//                      "P.scale", "P.zero_point" (non-learnable), "P.observer_enabled",
//                      "P.fake_quant_enabled", "P.activation_post_process.min_val", ...
// A point that is off (no FakeQuantizeConfig) contributes nothing.
//
// state_dict() maps every name to a safetensors TensorData: Params in
// Scalar's dtype (F32 for float), quantization buffers as F64 (they hold
// floats and counts exactly). load_state_dict(dict, options):
//   * a Param whose stored shape differs from the model's raises Error
//     naming both shapes, in every mode (as PyTorch);
//   * strict (default): a missing or an unexpected name raises Error that
//     lists them; non-strict: they are returned in LoadResult;
//   * a quantization point is loaded only when all of its entries are
//     present (otherwise its names count as missing and it keeps its state);
//     LoadOptions::allow_missing_quant_state tolerates that in strict mode
//     (a Hugging Face checkpoint has weights only);
//   * nothing changes unless every check passes (params are converted and
//     quantization states are validated on copies first; then, committed,
//     every module checks what only its whole state shows -- check_loaded:
//     an integer product's input and weight scales must multiply to a
//     finite float -- and on an Error the previous state is put back).
// Floating-point Params load from F32, F64, F16 or BF16 tensors.
//
// train() / eval(): dropout is active only in training mode, and the
// observers update only in training mode. (PyTorch keeps observing in eval
// mode until disable_observer(); here eval() forwards never change the
// quantization state, so a validation pass cannot disturb the ranges.)

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/io/safetensors.hpp"
#include "qaware/nn/qconfig.hpp"
#include "qaware/optim/optimizer.hpp"
#include "qaware/quant/fake_quantize_module.hpp"

namespace qaware {
namespace nn {

template <typename Scalar>
class Module;

// ---------------------------------------------------------------------------
// QuantPoint: one place where a tensor is fake-quantized (or not).

template <typename Scalar>
class QuantPoint {
 public:
  QuantPoint() = default;  // off
  // `channels`: for per-channel configurations, the number of channels the
  // point will see, so that its scales (and learnable Params) have their
  // final shape from the start (0 = learn it from the first input).
  explicit QuantPoint(const std::optional<FakeQuantizeConfig>& cfg, Index channels = 0) {
    if (!cfg) return;
    fq_.emplace(*cfg);
    if (cfg->spec.per_channel && channels > 0) init_channels(channels);
  }

  bool enabled() const { return fq_.has_value(); }
  // The configuration of an enabled point.
  const FakeQuantizeConfig& config() const { return fake_quantize().config(); }

  // y = fake_quantize(x), or x itself when the point is off. In training
  // mode the observer (when enabled) sees x first; in eval mode it does not.
  Var<Scalar> operator()(Tape<Scalar>& tape, Var<Scalar> x, bool training) {
    if (!fq_) return x;
    if (training || !fq_->observer_enabled()) return fq_->forward(tape, x);
    struct Reenable {
      FakeQuantize<Scalar>& f;
      ~Reenable() { f.enable_observer(); }
    } reenable{*fq_};
    fq_->disable_observer();
    return fq_->forward(tape, x);
  }

  FakeQuantize<Scalar>& fake_quantize() {
    QAWARE_CHECK(fq_.has_value(), "QuantPoint: this point is off (no FakeQuantizeConfig)");
    return *fq_;
  }
  const FakeQuantize<Scalar>& fake_quantize() const {
    QAWARE_CHECK(fq_.has_value(), "QuantPoint: this point is off (no FakeQuantizeConfig)");
    return *fq_;
  }
  // The (scale, zero point, range) the next forward would use.
  QuantParams qparams() const { return fake_quantize().qparams(); }

 private:
  void init_channels(Index C) {
    StateDict s = fq_->state_dict();
    const FakeQuantizeConfig& cfg = fq_->config();
    const std::string key = cfg.learnable && cfg.scale_domain == ScaleDomain::Log ? "log_scale" : "scale";
    const double s0 = s.at(key)[0], z0 = s.at("zero_point")[0];
    s[key] = DynTensor<double>(Shape{C}, s0);
    s["zero_point"] = DynTensor<double>(Shape{C}, z0);
    fq_->load_state_dict(s);
  }

  std::optional<FakeQuantize<Scalar>> fq_;
};

// ---------------------------------------------------------------------------
// Visitors.

template <typename Scalar>
class Visitor {
 public:
  virtual ~Visitor() = default;
  virtual void param(const std::string& name, Param<Scalar>& p) = 0;
  virtual void quant(const std::string& name, QuantPoint<Scalar>& q) = 0;
  virtual void rng(const std::string& name, Rng& r) = 0;
  virtual void child(const std::string& name, Module<Scalar>& m) = 0;
};

namespace detail {
inline std::string join_name(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}
}  // namespace detail

// Walks a module tree with full dotted names; override the on_* hooks.
template <typename Scalar>
class Walker : public Visitor<Scalar> {
 public:
  explicit Walker(std::string prefix = "") : prefix_(std::move(prefix)) {}

  void walk(Module<Scalar>& root) {
    on_module(prefix_, root);
    root.visit(*this);
  }

  void param(const std::string& name, Param<Scalar>& p) final { on_param(detail::join_name(prefix_, name), p); }
  void quant(const std::string& name, QuantPoint<Scalar>& q) final {
    if (q.enabled()) on_quant(detail::join_name(prefix_, name), q);
  }
  void rng(const std::string& name, Rng& r) final { on_rng(detail::join_name(prefix_, name), r); }
  void child(const std::string& name, Module<Scalar>& m) final {
    const std::string saved = prefix_;
    prefix_ = detail::join_name(prefix_, name);
    on_module(prefix_, m);
    m.visit(*this);
    prefix_ = saved;
  }

 protected:
  virtual void on_module(const std::string&, Module<Scalar>&) {}
  virtual void on_param(const std::string&, Param<Scalar>&) {}
  // Only called for points that are on.
  virtual void on_quant(const std::string&, QuantPoint<Scalar>&) {}
  virtual void on_rng(const std::string&, Rng&) {}

 private:
  std::string prefix_;
};

// ---------------------------------------------------------------------------
// Loading options and results.

struct LoadOptions {
  bool strict = true;
  // Quantization entries may be absent (the points keep their state).
  bool allow_missing_quant_state = false;
  // Glob patterns of unexpected names to skip silently.
  std::vector<std::string> ignore;
  // Check everything, change nothing (the result and the Errors are those
  // of a real load).
  bool validate_only = false;

  static LoadOptions non_strict() {
    LoadOptions o;
    o.strict = false;
    return o;
  }
  // A Hugging Face BertModel / BertLayer state dict: every float weight
  // must be there and nothing unknown, but quantization state may be
  // missing (observers will initialise it); the position_ids buffer some
  // transformers versions save is skipped.
  static LoadOptions hugging_face() {
    LoadOptions o;
    o.allow_missing_quant_state = true;
    o.ignore = {"*position_ids"};
    return o;
  }
};

struct LoadResult {
  std::vector<std::string> missing;     // names the model expects but the dict lacks
  std::vector<std::string> unexpected;  // names in the dict the model does not have
  bool complete() const { return missing.empty() && unexpected.empty(); }
};

namespace detail {

// Every value of a float or integer safetensors tensor as double.
inline DynTensor<double> tensor_to_double(const io::TensorData& t) {
  switch (t.dtype) {
    case io::DType::F64: return t.as<double>();
    case io::DType::F32:
    case io::DType::F16:
    case io::DType::BF16: return t.to_float().cast<double>();
    case io::DType::I64: return t.as<std::int64_t>().cast<double>();
    case io::DType::I32: return t.as<std::int32_t>().cast<double>();
    case io::DType::I8: return t.as<std::int8_t>().cast<double>();
    case io::DType::U8: return t.as<std::uint8_t>().cast<double>();
  }
  qaware::detail::fail("tensor_to_double: unknown dtype");
}

// A float tensor as Scalar (exact for F32 / F16 / BF16 and for F64 -> double).
template <typename Scalar>
DynTensor<Scalar> tensor_to_scalar(const io::TensorData& t, const std::string& name) {
  QAWARE_CHECK(io::is_float_dtype(t.dtype), "load_state_dict: '", name, "' has dtype ", io::dtype_name(t.dtype),
               "; a parameter needs a floating-point tensor");
  if (t.dtype == io::dtype_of<Scalar>()) return t.as<Scalar>();
  if (t.dtype == io::DType::F64) return t.as<double>().cast<Scalar>();
  return t.to_float().cast<Scalar>();
}

inline std::string name_list(const std::vector<std::string>& names, std::size_t max_shown = 12) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < max_shown; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > max_shown) s += qaware::detail::concat(", ... (", names.size() - max_shown, " more)");
  return s;
}

// The names a FakeQuantize's learnable Params get, and the entry of each
// in FakeQuantize::state_dict().
template <typename Scalar>
std::vector<std::pair<std::string, Param<Scalar>*>> quant_params(FakeQuantize<Scalar>& fq) {
  if (!fq.learnable()) return {};
  const bool log = fq.config().scale_domain == ScaleDomain::Log;
  return {{log ? "log_scale" : "scale", &fq.scale_param()}, {"zero_point", &fq.zero_point_param()}};
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Module.

template <typename Scalar>
class Module {
 public:
  virtual ~Module() = default;

  // Lists this module's Params, quantization points, RNGs and children.
  virtual void visit(Visitor<Scalar>& v) = 0;

  // (Re)creates this module's own quantization points (not its children's)
  // from `config`. apply_qconfig calls it for every module of a tree.
  virtual void configure(const QConfig& config) { (void)config; }

  // ---- mode ----
  void train(bool on = true) {
    struct W : Walker<Scalar> {
      bool on;
      explicit W(bool o) : on(o) {}
      void on_module(const std::string&, Module<Scalar>& m) override { m.training_ = on; }
    } w(on);
    w.walk(*this);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- enumeration ----
  NamedParams<Scalar> named_parameters(const std::string& prefix = "") {
    struct W : Walker<Scalar> {
      NamedParams<Scalar> out;
      using Walker<Scalar>::Walker;
      void on_param(const std::string& n, Param<Scalar>& p) override { out.emplace_back(n, &p); }
      void on_quant(const std::string& n, QuantPoint<Scalar>& q) override {
        for (auto& [k, p] : detail::quant_params(q.fake_quantize())) out.emplace_back(detail::join_name(n, k), p);
      }
    } w(prefix);
    w.walk(*this);
    return std::move(w.out);
  }
  std::vector<Param<Scalar>*> parameters() {
    std::vector<Param<Scalar>*> out;
    for (auto& kv : named_parameters()) out.push_back(kv.second);
    return out;
  }
  std::vector<std::pair<std::string, QuantPoint<Scalar>*>> named_quant_points(const std::string& prefix = "") {
    struct W : Walker<Scalar> {
      std::vector<std::pair<std::string, QuantPoint<Scalar>*>> out;
      using Walker<Scalar>::Walker;
      void on_quant(const std::string& n, QuantPoint<Scalar>& q) override { out.emplace_back(n, &q); }
    } w(prefix);
    w.walk(*this);
    return std::move(w.out);
  }
  std::vector<std::pair<std::string, Rng*>> named_rngs(const std::string& prefix = "") {
    struct W : Walker<Scalar> {
      std::vector<std::pair<std::string, Rng*>> out;
      using Walker<Scalar>::Walker;
      void on_rng(const std::string& n, Rng& r) override { out.emplace_back(n, &r); }
    } w(prefix);
    w.walk(*this);
    return std::move(w.out);
  }

  void zero_grad() {
    for (Param<Scalar>* p : parameters()) p->zero_grad();
  }

  // ---- quantization switches (every point that is on) ----
  void enable_observers(bool on = true) {
    for (auto& kv : named_quant_points()) kv.second->fake_quantize().enable_observer(on);
  }
  void enable_fake_quant(bool on = true) {
    for (auto& kv : named_quant_points()) kv.second->fake_quantize().enable_fake_quant(on);
  }
  // Learnable points start training their scales (observer off); the
  // others keep their settings. Call after the observers have seen data.
  void enable_param_learning() {
    for (auto& kv : named_quant_points())
      if (kv.second->fake_quantize().learnable()) kv.second->fake_quantize().enable_param_learning();
  }

  // Reseeds every dropout generator from `seed` and its full name, so that
  // layers draw independent streams.
  void seed(std::uint64_t seed) {
    for (auto& [name, r] : named_rngs()) {
      std::uint64_t h = 1469598103934665603ULL;  // FNV-1a of the name
      for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
      r->reseed(seed ^ h);
    }
  }

  // ---- state ----
  // Every Param and quantization buffer by name (see the file comment).
  io::TensorDict state_dict(const std::string& prefix = "") const {
    struct W : Walker<Scalar> {
      io::TensorDict out;
      using Walker<Scalar>::Walker;
      void on_param(const std::string& n, Param<Scalar>& p) override { put(n, io::TensorData::from(p.value())); }
      void on_quant(const std::string& n, QuantPoint<Scalar>& q) override {
        FakeQuantize<Scalar>& fq = q.fake_quantize();
        std::set<std::string> param_keys;
        for (auto& [k, p] : detail::quant_params(fq)) {
          put(detail::join_name(n, k), io::TensorData::from(p->value()));
          param_keys.insert(k);
        }
        for (auto& [k, v] : fq.state_dict())
          if (!param_keys.count(k)) put(detail::join_name(n, k), io::TensorData::from(v));
      }
      void put(const std::string& n, io::TensorData t) {
        QAWARE_CHECK(out.emplace(n, std::move(t)).second, "state_dict: the name '", n, "' appears twice");
      }
    } w(prefix);
    w.walk(const_cast<Module&>(*this));  // the walker only reads
    return std::move(w.out);
  }

  // Loads a state dict (see the file comment for the rules).
  LoadResult load_state_dict(const io::TensorDict& dict, const LoadOptions& options = {}) {
    return load_state_dict_impl(dict, options, true);
  }

  // What only a module's whole loaded state can show, checked after a load
  // (e.g. that an integer product's input and weight scales multiply to a
  // finite float); throws qaware::Error naming the values. load_state_dict
  // calls it on every module of the tree and, on an Error, puts the previous
  // state back. Default: nothing to check.
  virtual void check_loaded() const {}

 private:
  LoadResult load_state_dict_impl(const io::TensorDict& dict, const LoadOptions& options, bool check_modules) {
    struct Entry {
      std::string name;
      Param<Scalar>* param;
    };
    struct QEntry {
      std::string name;
      QuantPoint<Scalar>* point;
    };
    struct W : Walker<Scalar> {
      std::vector<Entry> params;
      std::vector<QEntry> quants;
      void on_param(const std::string& n, Param<Scalar>& p) override { params.push_back({n, &p}); }
      void on_quant(const std::string& n, QuantPoint<Scalar>& q) override { quants.push_back({n, &q}); }
    } w;
    w.walk(*this);

    LoadResult result;
    std::vector<std::string> quant_missing, mismatched;
    std::set<std::string> used;
    std::vector<std::pair<Param<Scalar>*, DynTensor<Scalar>>> staged;
    for (const Entry& e : w.params) {
      auto it = dict.find(e.name);
      if (it == dict.end()) {
        result.missing.push_back(e.name);
        continue;
      }
      used.insert(e.name);
      if (it->second.shape != e.param->shape()) {
        mismatched.push_back(qaware::detail::concat("'", e.name, "': stored ", it->second.shape.str(), ", model ",
                                            e.param->shape().str()));
        continue;
      }
      staged.emplace_back(e.param, detail::tensor_to_scalar<Scalar>(it->second, e.name));
    }
    // Quantization points: all entries present -> validate on a copy.
    std::vector<std::pair<QuantPoint<Scalar>*, StateDict>> staged_quant;
    for (const QEntry& q : w.quants) {
      FakeQuantize<Scalar>& fq = q.point->fake_quantize();
      const auto qparams = detail::quant_params(fq);
      StateDict want = fq.state_dict();
      std::vector<std::string> absent;
      StateDict got;
      for (const auto& kv : want) {
        const std::string full = detail::join_name(q.name, kv.first);
        auto it = dict.find(full);
        if (it == dict.end()) {
          absent.push_back(full);
          continue;
        }
        used.insert(full);
        for (const auto& [k, p] : qparams) {
          if (k == kv.first && it->second.shape != p->shape())
            mismatched.push_back(qaware::detail::concat("'", full, "': stored ", it->second.shape.str(), ", model ",
                                                p->shape().str()));
        }
        got.emplace(kv.first, detail::tensor_to_double(it->second));
      }
      if (!absent.empty()) {
        quant_missing.insert(quant_missing.end(), absent.begin(), absent.end());
        continue;
      }
      // Shape mismatches are reported first (below), as the clearer
      // message; a point's values are checked only when none was found.
      if (!mismatched.empty()) continue;
      FakeQuantize<Scalar> trial = fq;
      try {
        trial.load_state_dict(got);  // validates every value; the model is untouched
      } catch (const Error& e) {
        throw Error(qaware::detail::concat("load_state_dict: quantization point '", q.name, "': ", e.what()));
      }
      staged_quant.emplace_back(q.point, std::move(got));
    }
    for (const auto& kv : dict) {
      if (used.count(kv.first)) continue;
      bool ignored = false;
      for (const std::string& pat : options.ignore) ignored = ignored || glob_match(pat, kv.first);
      if (!ignored) result.unexpected.push_back(kv.first);
    }
    QAWARE_CHECK(mismatched.empty(), "load_state_dict: shape mismatch for ", mismatched.size(), " tensor(s): ",
                 detail::name_list(mismatched));
    if (options.strict) {
      std::vector<std::string> fatal_missing = result.missing;
      if (!options.allow_missing_quant_state)
        fatal_missing.insert(fatal_missing.end(), quant_missing.begin(), quant_missing.end());
      QAWARE_CHECK(fatal_missing.empty() && result.unexpected.empty(), "load_state_dict (strict): ",
                   fatal_missing.size(), " missing: [", detail::name_list(fatal_missing), "]; ",
                   result.unexpected.size(), " unexpected: [", detail::name_list(result.unexpected), "]");
    }
    result.missing.insert(result.missing.end(), quant_missing.begin(), quant_missing.end());
    if (options.validate_only && !check_modules) return result;
    // Commit, then check every module's whole state (check_loaded); on a
    // problem, or in validate_only mode, the previous state comes back (a
    // state dict round-trips exactly).
    io::TensorDict previous;
    if (check_modules) previous = state_dict();
    for (auto& [p, v] : staged) p->assign(v);
    for (auto& [q, s] : staged_quant) q->fake_quantize().load_state_dict(s);
    if (!check_modules) return result;
    std::string problem;
    struct Checker : Walker<Scalar> {
      std::string* problem;
      void on_module(const std::string& name, Module<Scalar>& m) override {
        if (!problem->empty()) return;
        try {
          m.check_loaded();
        } catch (const Error& e) {
          *problem = qaware::detail::concat("'", name.empty() ? std::string("(the model)") : name, "': ", e.what());
        }
      }
    } checker;
    checker.problem = &problem;
    checker.walk(*this);
    if (!problem.empty() || options.validate_only) load_state_dict_impl(previous, LoadOptions{}, false);
    QAWARE_CHECK(problem.empty(), "load_state_dict: ", problem, " (the model keeps its previous state)");
    return result;
  }

 public:

 protected:
  Module() = default;
  Module(const Module&) = default;
  Module(Module&&) noexcept = default;
  Module& operator=(const Module&) = default;
  Module& operator=(Module&&) noexcept = default;

 private:
  bool training_ = true;
};

// Configures every module of `root` with model_config.resolve(its name)
// (module names as named_parameters gives them, without the parameter
// suffix; the root is `prefix`). Replaces the quantization points and
// their state, so call it before training and before building the optimizer.
template <typename Scalar>
void apply_qconfig(Module<Scalar>& root, const ModelQConfig& model_config, const std::string& prefix = "") {
  struct W : Walker<Scalar> {
    const ModelQConfig& cfg;
    W(const ModelQConfig& c, const std::string& p) : Walker<Scalar>(p), cfg(c) {}
    void on_module(const std::string& n, Module<Scalar>& m) override { m.configure(cfg.resolve(n)); }
  } w(model_config, prefix);
  w.walk(root);
}

// ---------------------------------------------------------------------------
// Optimizer parameter groups for a model:
//   "decay"       weights (rank >= 2 Params): lr, weight_decay
//   "no_decay"    biases and LayerNorm (rank-1 Params): lr, no weight decay
//   "quant_scale" learnable quantization scales: quant_lr, no weight decay,
//                 clamped to >= scale_min after each step (linear-domain
//                 scales; log-domain ones are not clamped)
//   "quant_zero_point" learnable zero points: quant_lr, no weight decay
// Empty groups are left out.

struct ParamGroupOptions {
  double lr = 1e-3;
  double weight_decay = 0.01;
  std::optional<double> quant_lr;  // unset: lr
  double scale_min = kQuantEps;
};

template <typename Scalar>
std::vector<ParamGroup<Scalar>> make_param_groups(Module<Scalar>& model, const ParamGroupOptions& o = {}) {
  struct W : Walker<Scalar> {
    std::vector<Param<Scalar>*> decay, no_decay, scale, log_scale, zp;
    void on_param(const std::string&, Param<Scalar>& p) override { (p.shape().rank() >= 2 ? decay : no_decay).push_back(&p); }
    void on_quant(const std::string&, QuantPoint<Scalar>& q) override {
      FakeQuantize<Scalar>& fq = q.fake_quantize();
      if (!fq.learnable()) return;
      (fq.config().scale_domain == ScaleDomain::Log ? log_scale : scale).push_back(&fq.scale_param());
      zp.push_back(&fq.zero_point_param());
    }
  } w;
  w.walk(model);
  std::vector<ParamGroup<Scalar>> groups;
  auto add = [&](std::vector<Param<Scalar>*> ps, const char* name, double lr, double wd, bool clamp) {
    if (ps.empty()) return;
    ParamGroup<Scalar> g;
    g.params = std::move(ps);
    g.lr = lr;
    g.weight_decay = wd;
    g.name = name;
    if (clamp) g.clamp_min = static_cast<Scalar>(o.scale_min);
    groups.push_back(std::move(g));
  };
  const double qlr = o.quant_lr ? *o.quant_lr : o.lr;
  add(std::move(w.decay), "decay", o.lr, o.weight_decay, false);
  add(std::move(w.no_decay), "no_decay", o.lr, 0.0, false);
  add(std::move(w.scale), "quant_scale", qlr, 0.0, true);
  add(std::move(w.log_scale), "quant_log_scale", qlr, 0.0, false);
  add(std::move(w.zp), "quant_zero_point", qlr, 0.0, false);
  QAWARE_CHECK(!groups.empty(), "make_param_groups: the model has no parameters");
  return groups;
}

}  // namespace nn
}  // namespace qaware

namespace qaware {
namespace nn {
namespace detail {
// Runs f(tape) on a fresh tape with gradients off and returns a copy of the
// result's value: the layers' tape-less forwards share the tape code path,
// so both give bit-identical numbers.
template <typename Scalar, typename F>
DynTensor<Scalar> run_no_grad(F&& f) {
  Tape<Scalar> tape;
  tape.set_grad_enabled(false);
  const Var<Scalar> y = f(tape);
  return y.value();
}
}  // namespace detail
}  // namespace nn
}  // namespace qaware
