#pragma once
// The optimizer base: parameter groups, per-parameter state, zero_grad, the
// clamp applied after each step, and state export/import by name.
//
// A parameter group is a list of Params sharing a learning rate, a weight
// decay and an optional clamp range. The clamp is applied to every updated
// Param of the group after each step; quantization scales use it to stay
// positive (clamp_min = eps), as "scales clamped after each step".
//
// Groups mirror torch.optim's param_groups: options left unset in a group
// take the optimizer's defaults, a Param may belong to one group only, and
// a Param that does not require a gradient is skipped by step() (PyTorch
// skips Params whose .grad is None). Each group's `initial_lr` is its lr at
// construction; schedules (optim/schedule.hpp) scale it.
//
// State is kept per Param, as in PyTorch: a step count and named buffers
// ("exp_avg", "exp_avg_sq" for AdamW; "momentum_buffer" for SGD).
// state_dict(names) exports it keyed by parameter name, load_state_dict
// imports it after checking every name, buffer and shape.

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"
#include "qaware/core/threading.hpp"

namespace qaware {

// Named parameters, in a stable order: {"encoder.layer.0.attention.self.query.weight", &param}.
template <typename Scalar>
using NamedParams = std::vector<std::pair<std::string, Param<Scalar>*>>;

template <typename Scalar>
struct ParamGroup {
  std::vector<Param<Scalar>*> params;
  std::optional<double> lr;            // unset: the optimizer's default (always set after construction)
  std::optional<double> weight_decay;  // unset: the optimizer's default (always set after construction)
  std::optional<Scalar> clamp_min;     // applied to the group's Params after each step
  std::optional<Scalar> clamp_max;
  std::string name;                    // for messages only
  double initial_lr = 0.0;             // set at construction to *lr; schedules scale it
};

// One Param's optimizer state.
template <typename Scalar>
struct ParamState {
  std::int64_t step = 0;                             // updates applied to this Param
  std::map<std::string, DynTensor<Scalar>> buffers;  // e.g. "exp_avg"
};

// Exported optimizer state, keyed by parameter name.
template <typename Scalar>
struct OptimizerStateDict {
  std::map<std::string, ParamState<Scalar>> params;  // only Params that have state
  std::vector<double> group_lr;                      // current lr of each group
  std::vector<double> group_initial_lr;              // initial_lr of each group
};

// What schedules need: the groups' learning rates, independent of Scalar.
class LrControl {
 public:
  virtual ~LrControl() = default;
  virtual std::size_t num_groups() const = 0;
  virtual double lr(std::size_t group) const = 0;
  virtual void set_lr(std::size_t group, double lr) = 0;
  virtual double initial_lr(std::size_t group) const = 0;
};

namespace detail {
// Elements per parallel chunk in the elementwise optimizer loops. Each
// element's update is independent, so results never depend on the chunking.
constexpr Index kOptimGrain = 1 << 15;
}  // namespace detail

template <typename Scalar>
class Optimizer : public LrControl {
 public:
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  ~Optimizer() override = default;

  // One update of every Param that requires a gradient, then the clamps.
  void step() {
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      ParamGroup<Scalar>& group = groups_[g];
      for (std::size_t i = 0; i < group.params.size(); ++i) {
        Param<Scalar>& p = *group.params[i];
        if (!p.requires_grad()) continue;
        QAWARE_CHECK(p.grad().shape() == p.shape(), name_, ".step: ", param_label(g, i), " has value ",
                     p.shape().str(), " but gradient ", p.grad().shape().str());
        ParamState<Scalar>& st = state_[g][i];
        update(group, p, st);
        if (group.clamp_min || group.clamp_max) clamp(p.value(), group.clamp_min, group.clamp_max);
      }
    }
  }

  // Zeroes the gradient of every Param in every group.
  void zero_grad() {
    for (auto& group : groups_)
      for (Param<Scalar>* p : group.params) p->zero_grad();
  }

  std::vector<ParamGroup<Scalar>>& groups() { return groups_; }
  const std::vector<ParamGroup<Scalar>>& groups() const { return groups_; }

  std::size_t num_groups() const override { return groups_.size(); }
  double lr(std::size_t g) const override { return *group_at(g).lr; }
  void set_lr(std::size_t g, double lr) override {
    QAWARE_CHECK(lr >= 0 && std::isfinite(lr), name_, ".set_lr: group ", g, " learning rate must be finite and >= 0, got ", lr);
    group_mut(g).lr = lr;
  }
  double initial_lr(std::size_t g) const override { return group_at(g).initial_lr; }

  // The state of p, or nullptr when p is not in this optimizer.
  const ParamState<Scalar>* state(const Param<Scalar>& p) const {
    auto it = index_.find(&p);
    if (it == index_.end()) return nullptr;
    return &state_[it->second.first][it->second.second];
  }

  // Exports every Param's state under its name. Every Param of the optimizer
  // must be named exactly once in `names`; names of Params not in this
  // optimizer are ignored (a frozen embedding, say).
  OptimizerStateDict<Scalar> state_dict(const NamedParams<Scalar>& names) const {
    OptimizerStateDict<Scalar> out;
    for (const auto& [name, p] : resolve_names(names, "state_dict")) {
      const ParamState<Scalar>& st = *state(*p);
      if (st.step == 0 && st.buffers.empty()) continue;
      out.params.emplace(name, st);
    }
    for (const auto& g : groups_) {
      out.group_lr.push_back(*g.lr);
      out.group_initial_lr.push_back(g.initial_lr);
    }
    return out;
  }

  // Imports state exported by state_dict. Everything is checked before
  // anything changes: group count, every name, the buffers each optimizer
  // expects and their shapes. A Param absent from `sd.params` gets fresh
  // state (it had never been stepped).
  void load_state_dict(const NamedParams<Scalar>& names, const OptimizerStateDict<Scalar>& sd) {
    QAWARE_CHECK(sd.group_lr.size() == groups_.size() && sd.group_initial_lr.size() == groups_.size(), name_,
                 ".load_state_dict: the state has ", sd.group_lr.size(), " group learning rates and ",
                 sd.group_initial_lr.size(), " initial ones, but the optimizer has ", groups_.size(), " groups");
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      QAWARE_CHECK(std::isfinite(sd.group_lr[g]) && sd.group_lr[g] >= 0 && std::isfinite(sd.group_initial_lr[g]) &&
                       sd.group_initial_lr[g] >= 0,
                   name_, ".load_state_dict: group ", g, " has learning rate ", sd.group_lr[g], " / initial ",
                   sd.group_initial_lr[g]);
    }
    const auto resolved = resolve_names(names, "load_state_dict");
    std::map<std::string, const Param<Scalar>*> by_name;
    for (const auto& [name, p] : resolved) by_name.emplace(name, p);
    for (const auto& [name, st] : sd.params) {
      auto it = by_name.find(name);
      QAWARE_CHECK(it != by_name.end(), name_, ".load_state_dict: state for '", name,
                   "', which names no parameter of this optimizer");
      QAWARE_CHECK(st.step >= 0, name_, ".load_state_dict: '", name, "' has step ", st.step);
      check_state(name, *it->second, st);
    }
    // Commit.
    for (const auto& [name, p] : resolved) {
      const auto& pos = index_.at(p);
      auto it = sd.params.find(name);
      state_[pos.first][pos.second] = it == sd.params.end() ? ParamState<Scalar>{} : it->second;
    }
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      groups_[g].lr = sd.group_lr[g];
      groups_[g].initial_lr = sd.group_initial_lr[g];
    }
  }

  const std::string& name() const { return name_; }

 protected:
  // `defaults_lr` and `defaults_wd` fill the groups' unset options.
  Optimizer(std::string name, std::vector<ParamGroup<Scalar>> groups, double default_lr, double default_wd)
      : name_(std::move(name)), groups_(std::move(groups)) {
    QAWARE_CHECK(!groups_.empty(), name_, ": no parameter groups");
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      ParamGroup<Scalar>& group = groups_[g];
      if (!group.lr) group.lr = default_lr;
      if (!group.weight_decay) group.weight_decay = default_wd;
      QAWARE_CHECK(std::isfinite(*group.lr) && *group.lr >= 0, name_, ": group ", g, " has invalid learning rate ",
                   *group.lr);
      QAWARE_CHECK(std::isfinite(*group.weight_decay) && *group.weight_decay >= 0, name_, ": group ", g,
                   " has invalid weight_decay ", *group.weight_decay);
      QAWARE_CHECK(!group.clamp_min || !std::isnan(static_cast<double>(*group.clamp_min)), name_, ": group ", g,
                   " has a NaN clamp_min");
      QAWARE_CHECK(!group.clamp_max || !std::isnan(static_cast<double>(*group.clamp_max)), name_, ": group ", g,
                   " has a NaN clamp_max");
      QAWARE_CHECK(!group.clamp_min || !group.clamp_max || *group.clamp_min <= *group.clamp_max, name_, ": group ",
                   g, " has clamp_min ", *group.clamp_min, " > clamp_max ", *group.clamp_max);
      group.initial_lr = *group.lr;
      state_.emplace_back(group.params.size());
      for (std::size_t i = 0; i < group.params.size(); ++i) {
        Param<Scalar>* p = group.params[i];
        QAWARE_CHECK(p != nullptr, name_, ": group ", g, " parameter ", i, " is null");
        auto [it, fresh] = index_.emplace(p, std::make_pair(g, i));
        QAWARE_CHECK(fresh, name_, ": a parameter appears twice (group ", it->second.first, " index ",
                     it->second.second, " and group ", g, " index ", i, ")");
      }
    }
  }

  // Applies one update to p (its gradient is p.grad()) with st, the Param's
  // state; st.step counts the update.
  virtual void update(const ParamGroup<Scalar>& group, Param<Scalar>& p, ParamState<Scalar>& st) = 0;
  // The buffers a Param with `step` updates must carry (e.g. {"exp_avg",
  // "exp_avg_sq"} once step > 0).
  virtual std::vector<std::string> expected_buffers(std::int64_t step) const = 0;
  // Buffers that are never negative (second moments); load_state_dict refuses negative values there.
  virtual bool is_nonnegative_buffer(const std::string& /*buffer*/) const { return false; }

  std::string name_;

 private:
  static void clamp(DynTensor<Scalar>& v, const std::optional<Scalar>& lo, const std::optional<Scalar>& hi) {
    Scalar* x = v.data();
    const bool has_lo = lo.has_value(), has_hi = hi.has_value();
    const Scalar l = has_lo ? *lo : Scalar(0), h = has_hi ? *hi : Scalar(0);
    parallel_for(0, v.numel(), detail::kOptimGrain, [&](Index b, Index e) {
      // As torch.clamp: NaN stays NaN.
      for (Index k = b; k < e; ++k) {
        if (has_lo && x[k] < l) x[k] = l;
        if (has_hi && x[k] > h) x[k] = h;
      }
    });
  }

  const ParamGroup<Scalar>& group_at(std::size_t g) const {
    QAWARE_CHECK(g < groups_.size(), name_, ": group ", g, " out of range (", groups_.size(), " groups)");
    return groups_[g];
  }
  ParamGroup<Scalar>& group_mut(std::size_t g) {
    QAWARE_CHECK(g < groups_.size(), name_, ": group ", g, " out of range (", groups_.size(), " groups)");
    return groups_[g];
  }
  std::string param_label(std::size_t g, std::size_t i) const {
    return detail::concat("parameter ", i, " of group ", g, groups_[g].name.empty() ? "" : " ('" + groups_[g].name + "')");
  }

  // Maps names to this optimizer's Params; every Param must be named once.
  std::vector<std::pair<std::string, const Param<Scalar>*>> resolve_names(const NamedParams<Scalar>& names,
                                                                          const char* what) const {
    std::vector<std::pair<std::string, const Param<Scalar>*>> out;
    std::unordered_map<const Param<Scalar>*, std::string> seen;
    std::map<std::string, int> used;
    for (const auto& [name, p] : names) {
      QAWARE_CHECK(++used[name] == 1, name_, ".", what, ": parameter name '", name, "' appears twice");
      if (index_.count(p) == 0) continue;
      auto [it, fresh] = seen.emplace(p, name);
      QAWARE_CHECK(fresh, name_, ".", what, ": one parameter is named both '", it->second, "' and '", name, "'");
      out.emplace_back(name, p);
    }
    for (std::size_t g = 0; g < groups_.size(); ++g)
      for (std::size_t i = 0; i < groups_[g].params.size(); ++i)
        QAWARE_CHECK(seen.count(groups_[g].params[i]) != 0, name_, ".", what, ": ", param_label(g, i), " (shape ",
                     groups_[g].params[i]->shape().str(), ") has no name");
    return out;
  }

  void check_state(const std::string& name, const Param<Scalar>& p, const ParamState<Scalar>& st) const {
    const std::vector<std::string> want = expected_buffers(st.step);
    for (const std::string& b : want) {
      auto it = st.buffers.find(b);
      QAWARE_CHECK(it != st.buffers.end(), name_, ".load_state_dict: '", name, "' (step ", st.step,
                   ") lacks buffer '", b, "'");
      QAWARE_CHECK(it->second.shape() == p.shape(), name_, ".load_state_dict: buffer '", b, "' of '", name,
                   "' has shape ", it->second.shape().str(), " but the parameter is ", p.shape().str());
      // A step from a non-finite moment (or a negative second moment) turns
      // the weights into NaN; no optimizer writes such a state.
      const bool nonnegative = is_nonnegative_buffer(b);
      const Scalar* v = it->second.data();
      for (Index i = 0; i < it->second.numel(); ++i)
        QAWARE_CHECK(std::isfinite(v[i]) && (!nonnegative || v[i] >= 0), name_, ".load_state_dict: buffer '", b,
                     "' of '", name, "' holds ", v[i], " at index ", i,
                     nonnegative ? " (must be finite and >= 0)" : " (must be finite)");
    }
    for (const auto& kv : st.buffers) {
      bool known = false;
      for (const std::string& b : want) known = known || b == kv.first;
      QAWARE_CHECK(known, name_, ".load_state_dict: '", name, "' has unexpected buffer '", kv.first, "' (step ",
                   st.step, ")");
    }
  }

  std::vector<ParamGroup<Scalar>> groups_;
  std::vector<std::vector<ParamState<Scalar>>> state_;  // [group][param]
  std::unordered_map<const Param<Scalar>*, std::pair<std::size_t, std::size_t>> index_;
};

// One group holding every Param given (for the single-group constructors).
template <typename Scalar>
std::vector<ParamGroup<Scalar>> single_group(std::vector<Param<Scalar>*> params) {
  ParamGroup<Scalar> g;
  g.params = std::move(params);
  return {std::move(g)};
}

}  // namespace qaware
