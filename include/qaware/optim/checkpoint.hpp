#pragma once
// Training checkpoints: parameters, optimizer state, step, schedule position
// and RNG states in one safetensors file, so that a resumed run continues
// bit for bit.
//
// Tensors (names follow the parameters' own, e.g. Hugging Face BERT's
// "encoder.layer.0.attention.self.query.weight"):
//   <param>                                   the value (F32 for float, F64 for double)
//   optimizer.state.<param>.step              I64 scalar (only Params that have state)
//   optimizer.state.<param>.<buffer>          exp_avg, exp_avg_sq, momentum_buffer, ...
//   optimizer.group.<g>.lr                    F64 scalar, current lr of group g
//   optimizer.group.<g>.initial_lr            F64 scalar
//   scheduler.last_step                       I64 scalar (when a schedule is given)
//   rng.<name>.state                          I64 [4], the xoshiro256** words (bit-cast)
//   rng.<name>.has_spare                      U8 scalar
//   rng.<name>.spare                          F64 scalar
//   train.step                                I64 scalar
// Metadata: "format" = "qaware.checkpoint", "format_version" = "1",
// "optimizer" = its name (or "none"), plus the caller's entries.
//
// load_checkpoint is strict and transactional: every tensor the given
// TrainingState expects must be present with the right dtype and shape, no
// other tensor may be (a typo'd name would otherwise be silently ignored),
// and nothing is modified until everything has been checked. Errors name
// the tensor.

#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/io/safetensors.hpp"
#include "qaware/optim/optimizer.hpp"
#include "qaware/optim/schedule.hpp"

namespace qaware {
namespace optim {

// The file format is io's; these are the names this header uses.
using io::DType;
using io::dtype_name;
using io::dtype_of;
using io::load_safetensors;
using io::Metadata;
using io::Safetensors;
using io::save_safetensors;
using io::TensorData;
using io::TensorDict;

constexpr const char* kCheckpointFormat = "qaware.checkpoint";
constexpr const char* kCheckpointVersion = "1";

// What a checkpoint saves and restores. Pointers may be null (not saved /
// not restored); the caller owns everything.
template <typename Scalar>
struct TrainingState {
  NamedParams<Scalar> params;
  Optimizer<Scalar>* optimizer = nullptr;
  LrSchedule* schedule = nullptr;
  std::vector<std::pair<std::string, Rng*>> rngs;
  std::int64_t step = 0;  // the training step count; set by load_checkpoint
};

namespace detail {

template <typename T>
TensorData scalar_tensor(T v) {
  DynTensor<T> t(Shape{});
  t[0] = v;
  return TensorData::from(t);
}

template <typename Scalar>
void check_names(const TrainingState<Scalar>& s, const char* fn) {
  std::set<std::string> seen;
  for (const auto& [name, p] : s.params) {
    QAWARE_CHECK(p != nullptr, fn, ": parameter '", name, "' is null");
    QAWARE_CHECK(!name.empty(), fn, ": empty parameter name");
    QAWARE_CHECK(seen.insert(name).second, fn, ": parameter name '", name, "' appears twice");
    for (const char* reserved : {"optimizer.", "scheduler.", "rng.", "train."})
      QAWARE_CHECK(name.rfind(reserved, 0) != 0, fn, ": parameter name '", name, "' uses the reserved prefix '",
                   reserved, "'");
  }
  std::set<std::string> rseen;
  for (const auto& [name, r] : s.rngs) {
    QAWARE_CHECK(r != nullptr, fn, ": rng '", name, "' is null");
    QAWARE_CHECK(rseen.insert(name).second, fn, ": rng name '", name, "' appears twice");
  }
}

}  // namespace detail

// The checkpoint's tensors and metadata (what save_checkpoint writes).
template <typename Scalar>
std::pair<TensorDict, Metadata> checkpoint_tensors(const TrainingState<Scalar>& s, const Metadata& user_metadata = {}) {
  detail::check_names(s, "save_checkpoint");
  TensorDict t;
  for (const auto& [name, p] : s.params) t.emplace(name, TensorData::from(p->value()));
  if (s.optimizer) {
    const OptimizerStateDict<Scalar> sd = s.optimizer->state_dict(s.params);
    for (const auto& [name, st] : sd.params) {
      const std::string base = "optimizer.state." + name + ".";
      t.emplace(base + "step", detail::scalar_tensor<std::int64_t>(st.step));
      for (const auto& [b, buf] : st.buffers) {
        QAWARE_CHECK(b != "step", "save_checkpoint: optimizer buffer named 'step' collides with the step count");
        t.emplace(base + b, TensorData::from(buf));
      }
    }
    for (std::size_t g = 0; g < sd.group_lr.size(); ++g) {
      const std::string base = "optimizer.group." + std::to_string(g) + ".";
      t.emplace(base + "lr", detail::scalar_tensor<double>(sd.group_lr[g]));
      t.emplace(base + "initial_lr", detail::scalar_tensor<double>(sd.group_initial_lr[g]));
    }
  }
  if (s.schedule) t.emplace("scheduler.last_step", detail::scalar_tensor<std::int64_t>(s.schedule->last_step()));
  for (const auto& [name, r] : s.rngs) {
    const Rng::Snapshot snap = r->snapshot();
    DynTensor<std::int64_t> words(Shape{4});
    for (int i = 0; i < 4; ++i) std::memcpy(&words[i], &snap.s[static_cast<std::size_t>(i)], 8);
    t.emplace("rng." + name + ".state", TensorData::from(words));
    t.emplace("rng." + name + ".has_spare", detail::scalar_tensor<std::uint8_t>(snap.has_spare ? 1 : 0));
    t.emplace("rng." + name + ".spare", detail::scalar_tensor<double>(snap.spare));
  }
  t.emplace("train.step", detail::scalar_tensor<std::int64_t>(s.step));
  Metadata md = user_metadata;
  md["format"] = kCheckpointFormat;
  md["format_version"] = kCheckpointVersion;
  md["optimizer"] = s.optimizer ? s.optimizer->name() : "none";
  return {std::move(t), std::move(md)};
}

template <typename Scalar>
void save_checkpoint(const std::string& path, const TrainingState<Scalar>& s, const Metadata& user_metadata = {}) {
  const auto [tensors, md] = checkpoint_tensors(s, user_metadata);
  save_safetensors(path, tensors, md);
}

// Restores `s` from tensors and metadata read from a checkpoint.
template <typename Scalar>
void restore_checkpoint(const Safetensors& file, TrainingState<Scalar>& s, const std::string& source = "<memory>") {
  const char* fn = "load_checkpoint";
  detail::check_names(s, fn);
  auto md = [&](const char* key) -> std::string {
    auto it = file.metadata.find(key);
    return it == file.metadata.end() ? std::string("<missing>") : it->second;
  };
  QAWARE_CHECK(md("format") == kCheckpointFormat, fn, ": ", source, " is not a qaware checkpoint (metadata format = '",
               md("format"), "')");
  QAWARE_CHECK(md("format_version") == kCheckpointVersion, fn, ": ", source, " has checkpoint format version '",
               md("format_version"), "'; this build reads version ", kCheckpointVersion);
  const std::string want_opt = s.optimizer ? s.optimizer->name() : "none";
  QAWARE_CHECK(md("optimizer") == want_opt, fn, ": ", source, " holds state of optimizer '", md("optimizer"),
               "' but the training state has '", want_opt, "'");

  std::set<std::string> used;
  auto get = [&](const std::string& name, DType dtype, const Shape& shape) -> const TensorData& {
    auto it = file.tensors.find(name);
    QAWARE_CHECK(it != file.tensors.end(), fn, ": ", source, " lacks tensor '", name, "' (", dtype_name(dtype), " ",
                 shape.str(), ")");
    QAWARE_CHECK(it->second.dtype == dtype, fn, ": ", source, ": tensor '", name, "' is ", dtype_name(it->second.dtype),
                 ", expected ", dtype_name(dtype));
    QAWARE_CHECK(it->second.shape == shape, fn, ": ", source, ": tensor '", name, "' has shape ",
                 it->second.shape.str(), ", expected ", shape.str());
    used.insert(name);
    return it->second;
  };
  const DType sdt = dtype_of<Scalar>();

  // Check and stage everything first.
  std::vector<std::pair<Param<Scalar>*, DynTensor<Scalar>>> values;
  for (const auto& [name, p] : s.params) values.emplace_back(p, get(name, sdt, p->shape()).template as<Scalar>());

  OptimizerStateDict<Scalar> sd;
  if (s.optimizer) {
    const std::string prefix = "optimizer.state.";
    std::map<std::string, Param<Scalar>*> by_name;
    for (const auto& [name, p] : s.params) by_name.emplace(name, p);
    for (const auto& [tname, td] : file.tensors) {
      if (tname.rfind(prefix, 0) != 0) continue;
      // optimizer.state.<param>.<buffer>; parameter names contain dots, so
      // match against the known names (longest first wins by construction:
      // the buffer name has no dot).
      const std::string rest = tname.substr(prefix.size());
      const auto dot = rest.rfind('.');
      QAWARE_CHECK(dot != std::string::npos && dot > 0, fn, ": ", source, ": malformed optimizer tensor name '", tname,
                   "'");
      const std::string pname = rest.substr(0, dot), buf = rest.substr(dot + 1);
      auto pit = by_name.find(pname);
      QAWARE_CHECK(pit != by_name.end(), fn, ": ", source, ": optimizer state '", tname,
                   "' names no parameter of the training state");
      ParamState<Scalar>& st = sd.params[pname];
      if (buf == "step") {
        st.step = get(tname, DType::I64, Shape{}).template as<std::int64_t>()[0];
      } else {
        st.buffers[buf] = get(tname, sdt, pit->second->shape()).template as<Scalar>();
      }
    }
    for (const auto& [pname, st] : sd.params)
      QAWARE_CHECK(used.count(prefix + pname + ".step"), fn, ": ", source, " lacks tensor '", prefix, pname,
                   ".step' (I64 [])");
    for (std::size_t g = 0; g < s.optimizer->num_groups(); ++g) {
      const std::string base = "optimizer.group." + std::to_string(g) + ".";
      sd.group_lr.push_back(get(base + "lr", DType::F64, Shape{}).template as<double>()[0]);
      sd.group_initial_lr.push_back(get(base + "initial_lr", DType::F64, Shape{}).template as<double>()[0]);
    }
  }
  std::int64_t sched_step = 0;
  if (s.schedule) {
    sched_step = get("scheduler.last_step", DType::I64, Shape{}).template as<std::int64_t>()[0];
    QAWARE_CHECK(sched_step >= 0, fn, ": ", source, ": scheduler.last_step is ", sched_step);
  }
  std::vector<Rng::Snapshot> snaps;
  for (const auto& [name, r] : s.rngs) {
    Rng::Snapshot snap{};
    const auto words = get("rng." + name + ".state", DType::I64, Shape{4}).template as<std::int64_t>();
    for (int i = 0; i < 4; ++i) std::memcpy(&snap.s[static_cast<std::size_t>(i)], &words[i], 8);
    const std::uint8_t spare_flag = get("rng." + name + ".has_spare", DType::U8, Shape{}).template as<std::uint8_t>()[0];
    QAWARE_CHECK(spare_flag <= 1, fn, ": ", source, ": rng.", name, ".has_spare is ", int(spare_flag));
    snap.has_spare = spare_flag == 1;
    snap.spare = get("rng." + name + ".spare", DType::F64, Shape{}).template as<double>()[0];
    QAWARE_CHECK(snap.s[0] | snap.s[1] | snap.s[2] | snap.s[3], fn, ": ", source, ": rng.", name,
                 ".state is all zeros (not a valid xoshiro256** state)");
    snaps.push_back(snap);
  }
  const std::int64_t step = get("train.step", DType::I64, Shape{}).template as<std::int64_t>()[0];
  QAWARE_CHECK(step >= 0, fn, ": ", source, ": train.step is ", step);
  for (const auto& kv : file.tensors)
    QAWARE_CHECK(used.count(kv.first), fn, ": ", source, " has unexpected tensor '", kv.first,
                 "' (not part of this training state)");

  // The optimizer validates its own state (buffers per step, shapes) before
  // changing anything; it goes first so a rejection leaves everything as is.
  if (s.optimizer) s.optimizer->load_state_dict(s.params, sd);
  // Copy into the existing buffers: the Params' storage does not move.
  for (auto& [p, v] : values)
    if (v.numel()) std::memcpy(p->value().data(), v.data(), v.bytes());
  if (s.schedule) s.schedule->set_last_step(sched_step);
  for (std::size_t i = 0; i < s.rngs.size(); ++i) s.rngs[i].second->restore(snaps[i]);
  s.step = step;
}

template <typename Scalar>
void load_checkpoint(const std::string& path, TrainingState<Scalar>& s) {
  restore_checkpoint(load_safetensors(path), s, path);
}

}  // namespace optim
}  // namespace qaware
