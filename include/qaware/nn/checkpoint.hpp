#pragma once
// Training checkpoints of a Module: io/checkpoint.hpp's file (parameters,
// optimizer state, schedule, RNGs, step) plus the model's quantization
// buffers (observer ranges, non-learnable scales and zero points, switches)
// under their state-dict names, so that a resumed QAT run continues bit
// for bit: every Param, optimizer moment, observer statistic and dropout
// stream is restored.
//
//   nn::save_checkpoint(path, model, &optimizer, &schedule, step);
//   const std::int64_t step = nn::load_checkpoint(path, model, &optimizer, &schedule);
//
// The model's dropout RNGs (named_rngs) are saved as "rng.<name>"; extra
// generators (a data sampler, say) can be passed too. Loading is strict:
// the file must hold exactly the model's buffers and the io checkpoint's
// tensors. Buffer names are checked before anything changes; a file that
// is refused for any reason leaves the model, optimizer, schedule and RNGs
// as they were.

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/rng.hpp"
#include "qaware/optim/checkpoint.hpp"
#include "qaware/io/safetensors.hpp"
#include "qaware/nn/module.hpp"

namespace qaware {
namespace nn {

namespace detail {
template <typename Scalar>
optim::TrainingState<Scalar> training_state(Module<Scalar>& model, Optimizer<Scalar>* opt, LrSchedule* schedule,
                                         const std::vector<std::pair<std::string, Rng*>>& extra_rngs) {
  optim::TrainingState<Scalar> s;
  s.params = model.named_parameters();
  s.optimizer = opt;
  s.schedule = schedule;
  s.rngs = model.named_rngs();
  s.rngs.insert(s.rngs.end(), extra_rngs.begin(), extra_rngs.end());
  return s;
}

// The state-dict entries of `model` that are not Params (the quantization buffers).
template <typename Scalar>
io::TensorDict buffers(Module<Scalar>& model) {
  io::TensorDict all = model.state_dict();
  for (const auto& kv : model.named_parameters()) all.erase(kv.first);
  return all;
}
}  // namespace detail

template <typename Scalar>
void save_checkpoint(const std::string& path, Module<Scalar>& model, Optimizer<Scalar>* optimizer,
                     LrSchedule* schedule, std::int64_t step,
                     const std::vector<std::pair<std::string, Rng*>>& extra_rngs = {},
                     const io::Metadata& metadata = {}) {
  optim::TrainingState<Scalar> s = detail::training_state(model, optimizer, schedule, extra_rngs);
  s.step = step;
  auto [tensors, md] = optim::checkpoint_tensors(s, metadata);
  for (auto& [name, t] : detail::buffers(model))
    QAWARE_CHECK(tensors.emplace(name, std::move(t)).second, "nn::save_checkpoint: buffer '", name,
                 "' collides with a checkpoint tensor");
  io::save_safetensors(path, tensors, md);
}

// Restores everything save_checkpoint wrote; returns the saved step.
template <typename Scalar>
std::int64_t load_checkpoint(const std::string& path, Module<Scalar>& model, Optimizer<Scalar>* optimizer,
                             LrSchedule* schedule, const std::vector<std::pair<std::string, Rng*>>& extra_rngs = {}) {
  io::Safetensors file = io::load_safetensors(path);
  // Split off the model's buffers; the rest is io's checkpoint.
  io::TensorDict bufs;
  const io::TensorDict expected = detail::buffers(model);
  for (const auto& kv : expected) {
    auto it = file.tensors.find(kv.first);
    QAWARE_CHECK(it != file.tensors.end(), "nn::load_checkpoint: ", path, " lacks the model buffer '", kv.first, "'");
    bufs.emplace(kv.first, std::move(it->second));
    file.tensors.erase(it);
  }
  // The model's part of the file (buffers and Params, learnable scales
  // included) goes in first through load_state_dict, which either takes
  // all of it and passes every module's check or keeps the previous state.
  // restore_checkpoint then checks the rest (optimizer, schedule, RNGs,
  // step) before it changes anything and writes the same Param values
  // again; if it refuses the file, the model's previous state comes back,
  // so a refused file leaves model and training state as they were.
  io::TensorDict full = model.state_dict();
  io::TensorDict previous = full;
  for (auto& kv : full) {
    auto it = file.tensors.find(kv.first);
    if (it != file.tensors.end()) kv.second = it->second;
  }
  for (auto& kv : bufs) full[kv.first] = std::move(kv.second);
  try {
    model.load_state_dict(full);
  } catch (const Error& e) {
    throw Error(qaware::detail::concat("nn::load_checkpoint: ", path, ": ", e.what()));
  }
  full.clear();
  optim::TrainingState<Scalar> s = detail::training_state(model, optimizer, schedule, extra_rngs);
  try {
    optim::restore_checkpoint(file, s, path);
  } catch (const Error&) {
    model.load_state_dict(previous);
    throw;
  }
  return s.step;
}

}  // namespace nn
}  // namespace qaware
