#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler.LambdaLR driven by the
// factor functions of Hugging Face transformers:
//   lr of group g = initial_lr[g] * factor(last_step)
// Construction applies factor(0) (as LambdaLR's constructor does); each
// step() advances last_step by one and applies factor(last_step). Call it
// after optimizer.step(), as in PyTorch.
//
// Factors:
//   constant:                1
//   constant_with_warmup:    t < W ? t / max(1, W) : 1
//   linear_warmup_decay:     t < W ? t / max(1, W)
//                                  : max(0, (T - t) / max(1, T - W))
// (transformers.get_constant_schedule, get_constant_schedule_with_warmup and
// get_linear_schedule_with_warmup; T is the number of training steps.)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "qaware/core/error.hpp"
#include "qaware/optim/optimizer.hpp"

namespace qaware {

class LrSchedule {
 public:
  using Factor = std::function<double(std::int64_t step)>;

  LrSchedule(LrControl& opt, Factor factor, std::string name = "LrSchedule")
      : opt_(&opt), factor_(std::move(factor)), name_(std::move(name)) {
    QAWARE_CHECK(static_cast<bool>(factor_), name_, ": empty factor function");
    apply();
  }

  // Advances one step and sets every group's lr.
  void step() {
    ++last_step_;
    apply();
  }

  std::int64_t last_step() const { return last_step_; }
  // Restores a position (checkpoints): sets last_step and the lrs it implies.
  void set_last_step(std::int64_t step) {
    QAWARE_CHECK(step >= 0, name_, ".set_last_step: step must be >= 0, got ", step);
    last_step_ = step;
    apply();
  }
  double factor(std::int64_t step) const { return factor_(step); }
  const std::string& name() const { return name_; }

 private:
  void apply() {
    const double f = factor_(last_step_);
    QAWARE_CHECK(std::isfinite(f) && f >= 0, name_, ": factor at step ", last_step_, " is ", f);
    for (std::size_t g = 0; g < opt_->num_groups(); ++g) opt_->set_lr(g, opt_->initial_lr(g) * f);
  }

  LrControl* opt_;
  Factor factor_;
  std::string name_;
  std::int64_t last_step_ = 0;
};

inline LrSchedule constant_schedule(LrControl& opt) {
  return LrSchedule(opt, [](std::int64_t) { return 1.0; }, "constant_schedule");
}

inline LrSchedule constant_schedule_with_warmup(LrControl& opt, std::int64_t warmup_steps) {
  QAWARE_CHECK(warmup_steps >= 0, "constant_schedule_with_warmup: warmup_steps must be >= 0, got ", warmup_steps);
  return LrSchedule(
      opt,
      [warmup_steps](std::int64_t t) {
        if (t < warmup_steps) return static_cast<double>(t) / static_cast<double>(std::max<std::int64_t>(1, warmup_steps));
        return 1.0;
      },
      "constant_schedule_with_warmup");
}

inline LrSchedule linear_schedule_with_warmup(LrControl& opt, std::int64_t warmup_steps, std::int64_t training_steps) {
  QAWARE_CHECK(warmup_steps >= 0 && training_steps >= 0, "linear_schedule_with_warmup: warmup_steps (", warmup_steps,
               ") and training_steps (", training_steps, ") must be >= 0");
  return LrSchedule(
      opt,
      [warmup_steps, training_steps](std::int64_t t) {
        if (t < warmup_steps) return static_cast<double>(t) / static_cast<double>(std::max<std::int64_t>(1, warmup_steps));
        return std::max(0.0, static_cast<double>(training_steps - t) /
                                 static_cast<double>(std::max<std::int64_t>(1, training_steps - warmup_steps)));
      },
      "linear_schedule_with_warmup");
}

}  // namespace qaware
