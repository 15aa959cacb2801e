// AdamW against PyTorch 1.13 (tools/gen_optim_golden.py), parameter groups
// with their own lr / weight decay / clamp, state export and import.

#include "optim/optim_golden.hpp"

namespace qaware::test {
namespace {

TEST(AdamWTest, DefaultsMatchPyTorch) {
  auto ps = golden_params();
  AdamW<float> opt(raw(ps));
  // Exact: same operations, same roundings as PyTorch (optim/kernels.hpp).
  replay_and_compare("adamw_default", opt, ps, 0);
  compare_state("adamw_default", opt, ps, {"exp_avg", "exp_avg_sq"}, 0);
}

TEST(AdamWTest, GroupsWithOwnLrDecayAndClampMatchPyTorch) {
  auto ps = golden_params();
  ParamGroup<float> weights, scales;
  weights.params = {ps[0].get(), ps[1].get()};
  scales.params = {ps[2].get()};
  scales.lr = 0.05;
  scales.weight_decay = 0.0;
  scales.clamp_min = 0.05f;
  scales.clamp_max = 3.0f;
  AdamWOptions o;
  o.lr = 3e-3;
  o.beta1 = 0.8;
  o.beta2 = 0.99;
  o.eps = 1e-6;
  o.weight_decay = 0.1;
  AdamW<float> opt({weights, scales}, o);
  EXPECT_EQ(opt.lr(0), 3e-3);
  EXPECT_EQ(opt.lr(1), 0.05);
  EXPECT_EQ(*opt.groups()[0].weight_decay, 0.1);
  replay_and_compare("adamw_groups", opt, ps, 0);
  compare_state("adamw_groups", opt, ps, {"exp_avg", "exp_avg_sq"}, 0);
  for (float v : ps[2]->value()) {
    EXPECT_GE(v, 0.05f);
    EXPECT_LE(v, 3.0f);
  }
}

TEST(AdamWTest, PortableKernelsMatchPyTorchToo) {
  // The loops without AVX2 intrinsics (what a CPU without FMA runs) round
  // the same way: std::fma is exact wherever it runs.
  const ScopedMaxIsa portable(Isa::kScalar);  // the loops without intrinsics
  ASSERT_FALSE(detail::optim_cpu_has_fma());
  for (bool amsgrad : {false, true}) {
    auto ps = golden_params();
    AdamWOptions o;
    o.lr = 2e-3;
    o.amsgrad = amsgrad;
    o.maximize = !amsgrad;
    AdamW<float> opt(raw(ps), o);
    replay_and_compare(amsgrad ? "adamw_amsgrad" : "adamw_maximize", opt, ps, 0);
  }
  auto ps = golden_params();
  AdamW<float> opt(raw(ps));
  replay_and_compare("adamw_default", opt, ps, 0);
}

TEST(AdamWTest, DoublePrecisionMatchesScalarReference) {
  // AdamW<double> against the update formula written out in long double.
  Param<double> p(DynTensor<double>({3}, 0.0));
  p.value()[0] = 1.5;
  p.value()[1] = -0.25;
  p.value()[2] = 3.0;
  AdamWOptions o;
  o.lr = 0.01;
  AdamW<double> opt(std::vector<Param<double>*>{&p}, o);
  long double x[3] = {1.5L, -0.25L, 3.0L}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int step = 1; step <= 4; ++step) {
    for (int k = 0; k < 3; ++k) p.grad()[k] = 0.1 * (k + 1) * (step % 2 ? 1 : -2);
    opt.step();
    for (int k = 0; k < 3; ++k) {
      const long double g = p.grad()[k];
      x[k] *= 1 - 0.01L * 0.01L;
      m[k] = 0.9L * m[k] + 0.1L * g;
      v[k] = 0.999L * v[k] + 0.001L * g * g;
      const long double bc1 = 1 - std::pow(0.9L, step), bc2 = 1 - std::pow(0.999L, step);
      x[k] -= 0.01L / bc1 * m[k] / (std::sqrt(v[k]) / std::sqrt(bc2) + 1e-8L);
      // A handful of double roundings per step on O(1) values.
      EXPECT_NEAR(p.value()[k], static_cast<double>(x[k]), 1e-14) << "step " << step << " k " << k;
    }
  }
}

TEST(AdamWTest, AmsgradMatchesPyTorch) {
  auto ps = golden_params();
  AdamWOptions o;
  o.lr = 2e-3;
  o.amsgrad = true;
  AdamW<float> opt(raw(ps), o);
  replay_and_compare("adamw_amsgrad", opt, ps, 0);
  compare_state("adamw_amsgrad", opt, ps, {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, 0);
}

TEST(AdamWTest, MaximizeMatchesPyTorch) {
  auto ps = golden_params();
  AdamWOptions o;
  o.lr = 2e-3;
  o.maximize = true;
  AdamW<float> opt(raw(ps), o);
  replay_and_compare("adamw_maximize", opt, ps, 0);
}

TEST(AdamWTest, TrainingLoopWithClipClampAndScheduleMatchesPyTorch) {
  auto ps = golden_params();
  ParamGroup<float> weights, scales;
  weights.params = {ps[0].get(), ps[1].get()};
  scales.params = {ps[2].get()};
  scales.lr = 1e-2;
  scales.weight_decay = 0.0;
  scales.clamp_min = 1e-3f;
  AdamW<float> opt({weights, scales});
  ReplayOptions ro;
  ro.clip = 1.0;
  ro.schedule = [](Optimizer<float>& o) { return std::optional<LrSchedule>(linear_schedule_with_warmup(o, 2, 5)); };
  replay_and_compare("loop", opt, ps, 0, ro);
}

TEST(AdamWTest, FrozenParamIsSkippedAndZeroGradClearsAllGroups) {
  auto ps = golden_params();
  ps[1]->set_requires_grad(false);
  ParamGroup<float> a, b;
  a.params = {ps[0].get()};
  b.params = {ps[1].get(), ps[2].get()};
  AdamW<float> opt({a, b});
  set_golden_grads(ps, 0);
  const DynTensor<float> frozen = ps[1]->value();
  opt.step();
  EXPECT_TRUE(bit_equal(ps[1]->value(), frozen));
  EXPECT_EQ(opt.state(*ps[1])->step, 0);
  EXPECT_EQ(opt.state(*ps[0])->step, 1);
  EXPECT_EQ(opt.state(*ps[2])->step, 1);
  opt.zero_grad();
  for (const auto& p : ps)
    for (float g : p->grad()) EXPECT_EQ(g, 0.0f);
}

TEST(AdamWTest, InvalidOptionsAndGroupsThrow) {
  auto ps = golden_params();
  AdamWOptions o;
  o.beta1 = 1.0;
  EXPECT_THROW(AdamW<float>(raw(ps), o), Error);
  o = {};
  o.beta2 = -0.1;
  EXPECT_THROW(AdamW<float>(raw(ps), o), Error);
  o = {};
  o.eps = -1;
  EXPECT_THROW(AdamW<float>(raw(ps), o), Error);
  o = {};
  o.lr = -1e-3;
  EXPECT_THROW(AdamW<float>(raw(ps), o), Error);
  // The same Param in two groups.
  ParamGroup<float> a, b;
  a.params = {ps[0].get()};
  b.params = {ps[1].get(), ps[0].get()};
  try {
    AdamW<float> opt({a, b});
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("appears twice"), std::string::npos) << e.what();
  }
  ParamGroup<float> c;
  c.params = {ps[0].get()};
  c.clamp_min = 2.0f;
  c.clamp_max = 1.0f;
  EXPECT_THROW(AdamW<float>({c}), Error);
  ParamGroup<float> d;
  d.params = {nullptr};
  EXPECT_THROW(AdamW<float>({d}), Error);
  AdamW<float> opt(raw(ps));
  EXPECT_THROW(opt.set_lr(0, -1.0), Error);
  EXPECT_THROW(opt.set_lr(3, 1.0), Error);
}

NamedParams<float> names_of(const std::vector<std::unique_ptr<Param<float>>>& ps) {
  NamedParams<float> n;
  for (std::size_t i = 0; i < ps.size(); ++i) n.emplace_back("p" + std::to_string(i), ps[i].get());
  return n;
}

TEST(AdamWTest, StateDictRoundTripResumesBitIdentically) {
  // Uninterrupted: 6 golden steps.
  auto full = golden_params();
  AdamW<float> opt_full(raw(full));
  for (int s = 0; s < kGoldenSteps; ++s) {
    set_golden_grads(full, s);
    opt_full.step();
  }
  // Interrupted after 3: export, fresh optimizer over copies, import, 3 more.
  auto first = golden_params();
  AdamW<float> opt_first(raw(first));
  for (int s = 0; s < 3; ++s) {
    set_golden_grads(first, s);
    opt_first.step();
  }
  const OptimizerStateDict<float> sd = opt_first.state_dict(names_of(first));
  EXPECT_EQ(sd.params.size(), 3u);
  EXPECT_EQ(sd.params.at("p0").step, 3);
  std::vector<std::unique_ptr<Param<float>>> second;
  for (const auto& p : first) second.push_back(std::make_unique<Param<float>>(p->value()));
  AdamW<float> opt_second(raw(second));
  opt_second.load_state_dict(names_of(second), sd);
  for (int s = 3; s < kGoldenSteps; ++s) {
    set_golden_grads(second, s);
    opt_second.step();
  }
  for (std::size_t i = 0; i < full.size(); ++i) EXPECT_TRUE(bit_equal(full[i]->value(), second[i]->value())) << i;
}

TEST(AdamWTest, LoadStateDictRejectsBadStateWithoutChangingAnything) {
  auto ps = golden_params();
  AdamW<float> opt(raw(ps));
  set_golden_grads(ps, 0);
  opt.step();
  const auto names = names_of(ps);
  const OptimizerStateDict<float> good = opt.state_dict(names);
  auto expect_error = [&](const OptimizerStateDict<float>& sd, const NamedParams<float>& n, const char* needle) {
    try {
      opt.load_state_dict(n, sd);
      FAIL() << "expected an Error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_EQ(opt.state(*ps[0])->step, 1);  // untouched
  };
  auto sd = good;
  sd.params.at("p1").buffers.erase("exp_avg_sq");
  expect_error(sd, names, "lacks buffer 'exp_avg_sq'");
  sd = good;
  sd.params.at("p2").buffers.at("exp_avg") = DynTensor<float>::zeros({12});
  expect_error(sd, names, "has shape [12] but the parameter is [3, 4]");
  sd = good;
  sd.params["nope"] = sd.params.at("p0");
  expect_error(sd, names, "'nope'");
  sd = good;
  sd.params.at("p0").buffers["momentum_buffer"] = DynTensor<float>::zeros({5, 7});
  expect_error(sd, names, "unexpected buffer 'momentum_buffer'");
  sd = good;
  sd.group_lr.push_back(1.0);
  expect_error(sd, names, "groups");
  auto partial = names;
  partial.pop_back();
  expect_error(good, partial, "has no name");
  auto dup = names;
  dup[1].first = "p0";
  expect_error(good, dup, "appears twice");
}

}  // namespace
}  // namespace qaware::test
