// clip_grad_norm against torch.nn.utils.clip_grad_norm_ (PyTorch 1.13),
// including non-finite norms, and against a double-precision reference.

#include "optim/optim_golden.hpp"
#include "qaware/core/rng.hpp"

namespace qaware::test {
namespace {

std::vector<std::unique_ptr<Param<float>>> params_with_step0_grads() {
  auto ps = golden_params();
  set_golden_grads(ps, 0);
  return ps;
}

// PyTorch accumulates the norm in float with its own association; we
// accumulate in double and round once (clip.hpp). The norm may differ by a
// couple of ulps, and so the clipped gradients (g * coef) by as much.
constexpr std::int64_t kNormUlps = 2;  // observed: at most 1

void check_against_golden(const std::string& name, double max_norm) {
  auto ps = params_with_step0_grads();
  const float n = clip_grad_norm(raw(ps), max_norm);
  EXPECT_LE(ulp_distance(n, optim_golden().scalar<float>(name + ".norm")), kNormUlps) << name;
  for (int i = 0; i < kGoldenParams; ++i)
    EXPECT_LE(max_ulp(ps[static_cast<std::size_t>(i)]->grad(), optim_golden().get<float>(name + ".grad." + std::to_string(i))),
              kNormUlps)
        << name << " grad " << i;
}

TEST(ClipGradNormTest, ClippedMatchesPyTorch) { check_against_golden("clip_small", 1.0); }
TEST(ClipGradNormTest, UnclippedLeavesGradientsAlone) {
  check_against_golden("clip_large", 1e4);
  auto ps = params_with_step0_grads();
  clip_grad_norm(raw(ps), 1e4);
  for (int i = 0; i < kGoldenParams; ++i)
    EXPECT_TRUE(bit_equal(ps[static_cast<std::size_t>(i)]->grad(), optim_golden().get<float>("grad.0." + std::to_string(i))));
}
TEST(ClipGradNormTest, ZeroMaxNormZeroesGradients) { check_against_golden("clip_zero", 0.0); }

TEST(ClipGradNormTest, NormMatchesDoubleReference) {
  auto ps = params_with_step0_grads();
  double sq = 0;
  for (const auto& p : ps)
    for (float g : p->grad()) sq += static_cast<double>(g) * g;
  const float n = clip_grad_norm(raw(ps), 1e30);
  // Exact up to the final rounding: within half an ulp of sqrt(sum) in double.
  EXPECT_LE(std::abs(static_cast<double>(n) - std::sqrt(sq)),
            0.5 * (std::nextafter(n, INFINITY) - n) * (1 + 1e-9));
}

TEST(ClipGradNormTest, NonFiniteNormScalesLikePyTorchByDefault) {
  for (const char* name : {"clip_nan", "clip_inf"}) {
    auto ps = params_with_step0_grads();
    ps[1]->grad()[3] = std::string(name) == "clip_nan" ? NAN : INFINITY;
    const float n = clip_grad_norm(raw(ps), 1.0);
    const float want = optim_golden().scalar<float>(std::string(name) + ".norm");
    EXPECT_TRUE(std::isnan(n) ? std::isnan(want) : n == want) << name << " " << n << " vs " << want;
    for (int i = 0; i < kGoldenParams; ++i)
      EXPECT_EQ(max_ulp(ps[static_cast<std::size_t>(i)]->grad(),
                        optim_golden().get<float>(std::string(name) + ".grad." + std::to_string(i))),
                0)
          << name << " grad " << i;
  }
}

TEST(ClipGradNormTest, NonFiniteNormErrorAndSkipLeaveGradientsAlone) {
  auto ps = params_with_step0_grads();
  ps[2]->grad()[0] = INFINITY;
  const DynTensor<float> before = ps[0]->grad();
  try {
    clip_grad_norm(raw(ps), 1.0, NonFinite::Error);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inf"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(bit_equal(ps[0]->grad(), before));
  const float n = clip_grad_norm(raw(ps), 1.0, NonFinite::Skip);
  EXPECT_TRUE(std::isinf(n));
  EXPECT_TRUE(bit_equal(ps[0]->grad(), before));
}

TEST(ClipGradNormTest, FrozenParamsAreIgnoredAndEmptyIsZero) {
  auto ps = params_with_step0_grads();
  ps[1]->set_requires_grad(false);
  double sq = 0;
  for (int i : {0, 2})
    for (float g : ps[static_cast<std::size_t>(i)]->grad()) sq += static_cast<double>(g) * g;
  EXPECT_EQ(clip_grad_norm(raw(ps), 1e30), static_cast<float>(std::sqrt(sq)));
  EXPECT_EQ(clip_grad_norm(std::vector<Param<float>*>{}, 1.0), 0.0f);
  EXPECT_THROW(clip_grad_norm(raw(ps), -1.0), Error);
  EXPECT_THROW(clip_grad_norm(raw(ps), NAN), Error);
}

TEST(ClipGradNormTest, OptimizerOverloadCoversAllGroups) {
  auto ps = params_with_step0_grads();
  auto qs = params_with_step0_grads();
  ParamGroup<float> a, b;
  a.params = {qs[0].get()};
  b.params = {qs[1].get(), qs[2].get()};
  AdamW<float> opt({a, b});
  EXPECT_EQ(clip_grad_norm(opt, 0.5), clip_grad_norm(raw(ps), 0.5));
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(bit_equal(ps[i]->grad(), qs[i]->grad()));
}

TEST(ClipGradNormTest, ResultDoesNotDependOnThreadCount) {
  // One large tensor and several small ones, 1 thread vs all.
  std::vector<std::unique_ptr<Param<float>>> ps;
  Rng rng(7);
  for (Index n : {100000, 17, 33333, 5}) {
    ps.push_back(std::make_unique<Param<float>>(Shape{n}));
    init::normal(ps.back()->grad(), rng, 0.0, 1.0);
  }
  std::vector<DynTensor<float>> g0;
  for (const auto& p : ps) g0.push_back(p->grad());
  set_num_threads(1);
  const float n1 = clip_grad_norm(raw(ps), 0.5);
  std::vector<DynTensor<float>> g1;
  for (std::size_t i = 0; i < ps.size(); ++i) {
    g1.push_back(ps[i]->grad());
    ps[i]->grad() = g0[i];
  }
  set_num_threads(0);
  const float n2 = clip_grad_norm(raw(ps), 0.5);
  EXPECT_EQ(n1, n2);
  for (std::size_t i = 0; i < ps.size(); ++i) EXPECT_TRUE(bit_equal(g1[i], ps[i]->grad()));
}

}  // namespace
}  // namespace qaware::test
