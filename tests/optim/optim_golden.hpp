#pragma once
// Shared helpers for the optimizer tests: the golden fixture written by
// tools/gen_optim_golden.py (PyTorch 1.13), a runner that replays its fixed
// gradients through a qaware optimizer, and float ulp distances.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/fixture.hpp"
#include "qaware/optim/adamw.hpp"
#include "qaware/optim/clip.hpp"
#include "qaware/optim/schedule.hpp"
#include "qaware/optim/sgd.hpp"

namespace qaware::test {

constexpr int kGoldenSteps = 6;
constexpr int kGoldenParams = 3;

inline const Fixture& optim_golden() {
  static const Fixture f = Fixture::load("optim_golden.qawfix");
  return f;
}

// Distance in units in the last place between two floats (0 when equal,
// including +0 / -0; max when either is NaN and the other is not).
inline std::int64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<std::int64_t>::max();
  auto key = [](float x) {
    std::int32_t i;
    std::memcpy(&i, &x, sizeof i);
    // Map to a monotonic integer line: negative floats below positive ones.
    return i < 0 ? static_cast<std::int64_t>(std::numeric_limits<std::int32_t>::min()) - i : static_cast<std::int64_t>(i);
  };
  const std::int64_t d = key(a) - key(b);
  return d < 0 ? -d : d;
}

// Largest ulp distance between two tensors of the same shape.
inline std::int64_t max_ulp(const DynTensor<float>& a, const DynTensor<float>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return std::numeric_limits<std::int64_t>::max();
  std::int64_t m = 0;
  for (Index i = 0; i < a.numel(); ++i) m = std::max(m, ulp_distance(a[i], b[i]));
  return m;
}

inline bool bit_equal(const DynTensor<float>& a, const DynTensor<float>& b) {
  return a.shape() == b.shape() && (a.numel() == 0 || std::memcmp(a.data(), b.data(), a.bytes()) == 0);
}

// The fixture's initial parameters, as Params.
inline std::vector<std::unique_ptr<Param<float>>> golden_params() {
  std::vector<std::unique_ptr<Param<float>>> ps;
  for (int i = 0; i < kGoldenParams; ++i)
    ps.push_back(std::make_unique<Param<float>>(optim_golden().get<float>("init." + std::to_string(i))));
  return ps;
}

inline std::vector<Param<float>*> raw(const std::vector<std::unique_ptr<Param<float>>>& ps) {
  std::vector<Param<float>*> out;
  for (const auto& p : ps) out.push_back(p.get());
  return out;
}

inline void set_golden_grads(const std::vector<std::unique_ptr<Param<float>>>& ps, int step) {
  for (int i = 0; i < kGoldenParams; ++i)
    ps[static_cast<std::size_t>(i)]->grad() =
        optim_golden().get<float>("grad." + std::to_string(step) + "." + std::to_string(i));
}

struct ReplayOptions {
  std::optional<double> clip;           // clip_grad_norm max_norm before each step
  std::function<std::optional<LrSchedule>(Optimizer<float>&)> schedule;  // stepped after each step
};

// Replays the golden gradients through `opt` (built over `ps`) and checks
// every parameter after every step against `<prefix>.param.<step>.<i>`
// within `max_ulps`, and the group lrs exactly. Returns the largest ulp
// distance seen.
inline std::int64_t replay_and_compare(const std::string& prefix, Optimizer<float>& opt,
                                       const std::vector<std::unique_ptr<Param<float>>>& ps, std::int64_t max_ulps,
                                       const ReplayOptions& ro = {}) {
  const Fixture& f = optim_golden();
  std::optional<LrSchedule> sched;
  if (ro.schedule) sched = ro.schedule(opt);
  std::int64_t worst = 0;
  for (int s = 0; s < kGoldenSteps; ++s) {
    set_golden_grads(ps, s);
    if (ro.clip) {
      const float n = clip_grad_norm(raw(ps), *ro.clip);
      const float want = f.scalar<float>(prefix + ".norm." + std::to_string(s));
      // PyTorch sums squares in float, we in double (see clip.hpp): 2 ulps
      // (observed: at most 1). The parameters are still checked exactly.
      EXPECT_LE(ulp_distance(n, want), 2) << prefix << " step " << s << ": norm " << n << " vs " << want;
    }
    opt.step();
    if (sched) sched->step();
    for (int i = 0; i < kGoldenParams; ++i) {
      const auto want = f.get<float>(prefix + ".param." + std::to_string(s) + "." + std::to_string(i));
      const std::int64_t d = max_ulp(ps[static_cast<std::size_t>(i)]->value(), want);
      worst = std::max(worst, d);
      EXPECT_LE(d, max_ulps) << prefix << " step " << s << " param " << i;
    }
    const auto lrs = f.get<double>(prefix + ".lr." + std::to_string(s));
    EXPECT_EQ(static_cast<std::size_t>(lrs.numel()), opt.num_groups());
    for (std::size_t g = 0; g < opt.num_groups(); ++g)
      EXPECT_EQ(opt.lr(g), lrs[static_cast<Index>(g)]) << prefix << " step " << s << " group " << g;
  }
  return worst;
}

// Checks the optimizer's final state buffers and step counts against the fixture.
inline void compare_state(const std::string& prefix, const Optimizer<float>& opt,
                          const std::vector<std::unique_ptr<Param<float>>>& ps, const std::vector<std::string>& buffers,
                          std::int64_t max_ulps) {
  const Fixture& f = optim_golden();
  for (int i = 0; i < kGoldenParams; ++i) {
    const ParamState<float>* st = opt.state(*ps[static_cast<std::size_t>(i)]);
    ASSERT_NE(st, nullptr);
    const std::string base = prefix + ".state." + std::to_string(i) + ".";
    if (f.has(base + "step")) {
      EXPECT_EQ(st->step, f.scalar<std::int64_t>(base + "step"));
    }
    for (const std::string& b : buffers) {
      ASSERT_TRUE(st->buffers.count(b)) << b;
      EXPECT_LE(max_ulp(st->buffers.at(b), f.get<float>(base + b)), max_ulps) << base << b;
    }
  }
}

}  // namespace qaware::test
