// SGD (plain, momentum with dampening and weight decay, Nesterov) against
// PyTorch 1.13 (tools/gen_optim_golden.py).

#include "optim/optim_golden.hpp"

namespace qaware::test {
namespace {

TEST(SGDTest, PlainMatchesPyTorch) {
  auto ps = golden_params();
  SGDOptions o;
  o.lr = 0.05;
  SGD<float> opt(raw(ps), o);
  replay_and_compare("sgd_plain", opt, ps, 0);
  for (const auto& p : ps) EXPECT_TRUE(opt.state(*p)->buffers.empty());
}

TEST(SGDTest, MomentumDampeningWeightDecayMatchPyTorch) {
  auto ps = golden_params();
  SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.dampening = 0.1;
  o.weight_decay = 1e-2;
  SGD<float> opt(raw(ps), o);
  replay_and_compare("sgd_momentum", opt, ps, 0);
  compare_state("sgd_momentum", opt, ps, {"momentum_buffer"}, 0);
}

TEST(SGDTest, NesterovMatchesPyTorch) {
  auto ps = golden_params();
  SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 1e-3;
  SGD<float> opt(raw(ps), o);
  replay_and_compare("sgd_nesterov", opt, ps, 0);
  compare_state("sgd_nesterov", opt, ps, {"momentum_buffer"}, 0);
}

TEST(SGDTest, PortableKernelsMatchPyTorchToo) {
  const ScopedMaxIsa portable(Isa::kScalar);  // the loops without intrinsics
  ASSERT_FALSE(detail::optim_cpu_has_fma());
  auto ps = golden_params();
  SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 1e-3;
  SGD<float> opt(raw(ps), o);
  replay_and_compare("sgd_nesterov", opt, ps, 0);
}

TEST(SGDTest, NesterovNeedsMomentumAndNoDampening) {
  auto ps = golden_params();
  SGDOptions o;
  o.nesterov = true;
  EXPECT_THROW(SGD<float>(raw(ps), o), Error);
  o.momentum = 0.9;
  o.dampening = 0.5;
  EXPECT_THROW(SGD<float>(raw(ps), o), Error);
  o.dampening = 0.0;
  EXPECT_NO_THROW(SGD<float>(raw(ps), o));
  o.momentum = -0.5;
  o.nesterov = false;
  EXPECT_THROW(SGD<float>(raw(ps), o), Error);
}

TEST(SGDTest, ClampAppliesAfterEachStep) {
  // One element, gradient 1, lr 1: p = 0.5 - 1 = -0.5 -> clamped to 0.25.
  Param<float> p(DynTensor<float>({1}, 0.5f));
  ParamGroup<float> g;
  g.params = {&p};
  g.lr = 1.0;
  g.clamp_min = 0.25f;
  SGD<float> opt({g});
  p.grad()[0] = 1.0f;
  opt.step();
  EXPECT_EQ(p.value()[0], 0.25f);
  p.grad()[0] = -10.0f;  // 0.25 + 10 = 10.25, no upper bound
  opt.step();
  EXPECT_EQ(p.value()[0], 10.25f);
}

TEST(SGDTest, MomentumStateRoundTrips) {
  auto a = golden_params();
  SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  SGD<float> opt_a(raw(a), o);
  for (int s = 0; s < 2; ++s) {
    set_golden_grads(a, s);
    opt_a.step();
  }
  NamedParams<float> na, nb;
  std::vector<std::unique_ptr<Param<float>>> b;
  for (std::size_t i = 0; i < a.size(); ++i) {
    b.push_back(std::make_unique<Param<float>>(a[i]->value()));
    na.emplace_back("w" + std::to_string(i), a[i].get());
    nb.emplace_back("w" + std::to_string(i), b[i].get());
  }
  SGD<float> opt_b(raw(b), o);
  opt_b.load_state_dict(nb, opt_a.state_dict(na));
  for (int s = 2; s < kGoldenSteps; ++s) {
    set_golden_grads(a, s);
    set_golden_grads(b, s);
    opt_a.step();
    opt_b.step();
  }
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(bit_equal(a[i]->value(), b[i]->value()));
}

}  // namespace
}  // namespace qaware::test
