#pragma once
// AdamW, as torch.optim.AdamW in PyTorch 1.13 (the single-tensor path, which
// is what PyTorch 1.13 runs on the CPU by default).
//
// Per Param with gradient g, in this order (all tensor math in Scalar, the
// scalar coefficients computed in double and rounded once to Scalar, as
// PyTorch does with Python floats; the roundings of each line are PyTorch's,
// see optim/kernels.hpp):
//   step += 1
//   p  *= 1 - lr * weight_decay                     (decoupled weight decay)
//   m   = m * beta1 + g * (1 - beta1)               (exp_avg)
//   v   = v * beta2 + (1 - beta2) * g * g           (exp_avg_sq)
//   vmax = max(vmax, v); use vmax for v below       (amsgrad only)
//   denom = sqrt(v) / sqrt(1 - beta2^step) + eps
//   p  += -(lr / (1 - beta1^step)) * m / denom
// Defaults are PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
// weight_decay 1e-2, amsgrad off, maximize off.

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "qaware/optim/kernels.hpp"
#include "qaware/optim/optimizer.hpp"

namespace qaware {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};

template <typename Scalar>
class AdamW : public Optimizer<Scalar> {
 public:
  AdamW(std::vector<ParamGroup<Scalar>> groups, AdamWOptions options = {})
      : Optimizer<Scalar>("AdamW", std::move(groups), options.lr, options.weight_decay), opt_(options) {
    QAWARE_CHECK(std::isfinite(opt_.eps) && opt_.eps >= 0, "AdamW: invalid eps ", opt_.eps);
    QAWARE_CHECK(opt_.beta1 >= 0 && opt_.beta1 < 1, "AdamW: invalid beta1 ", opt_.beta1, " (need 0 <= beta1 < 1)");
    QAWARE_CHECK(opt_.beta2 >= 0 && opt_.beta2 < 1, "AdamW: invalid beta2 ", opt_.beta2, " (need 0 <= beta2 < 1)");
  }
  AdamW(std::vector<Param<Scalar>*> params, AdamWOptions options = {})
      : AdamW(single_group(std::move(params)), options) {}

  const AdamWOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup<Scalar>& group, Param<Scalar>& p, ParamState<Scalar>& st) override {
    const Index n = p.numel();
    if (st.step == 0) {
      for (const std::string& b : expected_buffers(1)) st.buffers[b] = DynTensor<Scalar>::zeros(p.shape());
    }
    st.step += 1;
    const double lr = *group.lr, wd = *group.weight_decay;
    const double step = static_cast<double>(st.step);
    const double bias_correction1 = 1.0 - std::pow(opt_.beta1, step);
    const double bias_correction2 = 1.0 - std::pow(opt_.beta2, step);
    const double step_size = lr / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);

    detail::AdamWCoeffs<Scalar> c;
    c.decay = static_cast<Scalar>(1.0 - lr * wd);
    c.do_decay = (1.0 - lr * wd) != 1.0;
    c.beta1 = static_cast<Scalar>(opt_.beta1);
    c.one_minus_beta1 = static_cast<Scalar>(1.0 - opt_.beta1);
    c.beta2 = static_cast<Scalar>(opt_.beta2);
    c.one_minus_beta2 = static_cast<Scalar>(1.0 - opt_.beta2);
    c.bc2_sqrt = static_cast<Scalar>(bias_correction2_sqrt);
    c.eps = static_cast<Scalar>(opt_.eps);
    c.neg_step_size = static_cast<Scalar>(-step_size);
    c.grad_sign = opt_.maximize ? Scalar(-1) : Scalar(1);

    Scalar* x = p.value().data();
    const Scalar* gr = p.grad().data();
    Scalar* m = st.buffers.at("exp_avg").data();
    Scalar* v = st.buffers.at("exp_avg_sq").data();
    Scalar* vmax = opt_.amsgrad ? st.buffers.at("max_exp_avg_sq").data() : nullptr;
    parallel_for(0, n, detail::kOptimGrain,
                 [&](Index lo, Index hi) { detail::adamw_loop(c, x, gr, m, v, vmax, lo, hi); });
  }

  bool is_nonnegative_buffer(const std::string& b) const override { return b == "exp_avg_sq" || b == "max_exp_avg_sq"; }
  std::vector<std::string> expected_buffers(std::int64_t step) const override {
    if (step == 0) return {};
    if (opt_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return {"exp_avg", "exp_avg_sq"};
  }

 private:
  AdamWOptions opt_;
};

}  // namespace qaware
