#pragma once
// SGD with momentum, dampening, Nesterov and (coupled, L2) weight decay, as
// torch.optim.SGD in PyTorch 1.13. Per Param with gradient g:
//   d = g + weight_decay * p                       (when weight_decay != 0)
//   if momentum != 0:
//     buf = d                       on the first step (no dampening)
//     buf = buf * momentum + (1 - dampening) * d   afterwards
//     d = nesterov ? d + momentum * buf : buf
//   p += -lr * d
// (each line rounded as PyTorch's kernels do, see optim/kernels.hpp).
// PyTorch's SGD has no default lr; ours is 1e-3, like AdamW's.

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "qaware/optim/kernels.hpp"
#include "qaware/optim/optimizer.hpp"

namespace qaware {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

template <typename Scalar>
class SGD : public Optimizer<Scalar> {
 public:
  SGD(std::vector<ParamGroup<Scalar>> groups, SGDOptions options = {})
      : Optimizer<Scalar>("SGD", std::move(groups), options.lr, options.weight_decay), opt_(options) {
    QAWARE_CHECK(std::isfinite(opt_.momentum) && opt_.momentum >= 0, "SGD: invalid momentum ", opt_.momentum);
    QAWARE_CHECK(std::isfinite(opt_.dampening), "SGD: invalid dampening ", opt_.dampening);
    QAWARE_CHECK(!opt_.nesterov || (opt_.momentum > 0 && opt_.dampening == 0),
                 "SGD: Nesterov momentum requires momentum > 0 and zero dampening (momentum ", opt_.momentum,
                 ", dampening ", opt_.dampening, ")");
  }
  SGD(std::vector<Param<Scalar>*> params, SGDOptions options = {}) : SGD(single_group(std::move(params)), options) {}

  const SGDOptions& options() const { return opt_; }

 protected:
  void update(const ParamGroup<Scalar>& group, Param<Scalar>& p, ParamState<Scalar>& st) override {
    const Index n = p.numel();
    const bool first = st.step == 0;
    const bool has_momentum = opt_.momentum != 0.0;
    if (first && has_momentum) st.buffers["momentum_buffer"] = DynTensor<Scalar>(p.shape());
    st.step += 1;
    const double wd = *group.weight_decay;
    detail::SGDCoeffs<Scalar> c;
    c.weight_decay = static_cast<Scalar>(wd);
    c.has_weight_decay = wd != 0.0;
    c.momentum = static_cast<Scalar>(opt_.momentum);
    c.one_minus_dampening = static_cast<Scalar>(1.0 - opt_.dampening);
    c.first = first;
    c.nesterov = opt_.nesterov;
    c.neg_lr = static_cast<Scalar>(-*group.lr);
    c.grad_sign = opt_.maximize ? Scalar(-1) : Scalar(1);

    Scalar* x = p.value().data();
    const Scalar* gr = p.grad().data();
    Scalar* buf = has_momentum ? st.buffers.at("momentum_buffer").data() : nullptr;
    parallel_for(0, n, detail::kOptimGrain, [&](Index lo, Index hi) { detail::sgd_loop(c, x, gr, buf, lo, hi); });
  }

  std::vector<std::string> expected_buffers(std::int64_t step) const override {
    if (step == 0 || opt_.momentum == 0.0) return {};
    return {"momentum_buffer"};
  }

 private:
  SGDOptions opt_;
};

}  // namespace qaware
