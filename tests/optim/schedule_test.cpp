// Learning-rate schedules against torch.optim.lr_scheduler.LambdaLR with
// transformers' factor functions (tools/gen_optim_golden.py). Learning rates
// are doubles computed by the same formulas in the same order, so they must
// match exactly.

#include "optim/optim_golden.hpp"

namespace qaware::test {
namespace {

void check_schedule(const std::string& name, const std::function<LrSchedule(Optimizer<float>&)>& make) {
  Param<float> a(Shape{2}), b(Shape{2});
  ParamGroup<float> g0, g1;
  g0.params = {&a};
  g1.params = {&b};
  g1.lr = 0.05;
  AdamW<float> opt({g0, g1});
  LrSchedule sched = make(opt);
  const auto want = optim_golden().get<double>(name + ".lr");
  ASSERT_EQ(want.shape(), Shape({14, 2}));
  for (Index t = 0; t < 14; ++t) {
    EXPECT_EQ(sched.last_step(), t);
    EXPECT_EQ(opt.lr(0), want[t * 2 + 0]) << name << " step " << t;
    EXPECT_EQ(opt.lr(1), want[t * 2 + 1]) << name << " step " << t;
    opt.step();
    sched.step();
  }
  EXPECT_EQ(opt.initial_lr(0), 1e-3);
  EXPECT_EQ(opt.initial_lr(1), 0.05);
}

TEST(ScheduleTest, LinearWarmupDecayMatchesPyTorch) {
  check_schedule("sched_linear", [](Optimizer<float>& o) { return linear_schedule_with_warmup(o, 3, 10); });
}
TEST(ScheduleTest, LinearWithoutWarmupMatchesPyTorch) {
  check_schedule("sched_linear_nowarm", [](Optimizer<float>& o) { return linear_schedule_with_warmup(o, 0, 7); });
}
TEST(ScheduleTest, ConstantMatchesPyTorch) {
  check_schedule("sched_constant", [](Optimizer<float>& o) { return constant_schedule(o); });
}

TEST(ScheduleTest, ConstantWithWarmupFactors) {
  Param<float> a(Shape{1});
  AdamW<float> opt(std::vector<Param<float>*>{&a});
  LrSchedule s = constant_schedule_with_warmup(opt, 4);
  const double want[] = {0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0};
  for (double f : want) {
    EXPECT_EQ(opt.lr(0), 1e-3 * f);
    s.step();
  }
}

TEST(ScheduleTest, SetLastStepRestoresThePosition) {
  Param<float> a(Shape{1});
  AdamW<float> opt(std::vector<Param<float>*>{&a});
  LrSchedule s1 = linear_schedule_with_warmup(opt, 3, 10);
  for (int i = 0; i < 5; ++i) s1.step();
  const double lr5 = opt.lr(0);
  opt.set_lr(0, 123.0);
  LrSchedule s2 = linear_schedule_with_warmup(opt, 3, 10);
  s2.set_last_step(5);
  EXPECT_EQ(opt.lr(0), lr5);
  EXPECT_EQ(opt.lr(0), 1e-3 * (10.0 - 5.0) / 7.0);
  EXPECT_THROW(s2.set_last_step(-1), Error);
  EXPECT_THROW(linear_schedule_with_warmup(opt, -1, 10), Error);
  EXPECT_THROW(LrSchedule(opt, [](std::int64_t) { return -1.0; }), Error);
}

}  // namespace
}  // namespace qaware::test
