#pragma once
// Gradient checking against central finite differences (double precision).
//
// grad_check(f, inputs) builds f on a fresh tape with every input as a leaf,
// back-propagates a fixed random projection w of the output (so the checked
// scalar is L = sum(f(inputs) * w)), and compares each input's analytic
// gradient with (L(x + h) - L(x - h)) / 2h, element by element.
//
// An element passes when |analytic - numeric| <= atol + rtol * max(|a|, |n|).
// With h = 1e-6 the truncation error is O(h^2) ~ 1e-12 and the round-off
// error is O(eps * |L| / h) ~ 1e-10 * |L|, so rtol = 1e-6 and atol = 1e-8 hold
// for the small, O(1)-valued graphs the tests build.
//
// Ops whose output jumps (rounding in fake quantization) must not be checked
// this way; their tests compare against the analytic STE mask instead.

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "qaware/autograd/tape.hpp"
#include "qaware/core/rng.hpp"

namespace qaware {

struct GradCheckOptions {
  double step = 1e-6;   // h
  double rtol = 1e-6;
  double atol = 1e-8;
  std::uint64_t seed = 1234;  // for the projection w
  // Inputs (by position) not to check, e.g. integer-valued or masks.
  std::vector<int> skip;
};

struct GradCheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
  std::string report;  // the first failures, with positions and values
};

using GradCheckFn = std::function<Var<double>(Tape<double>&, const std::vector<Var<double>>&)>;

inline GradCheckResult grad_check(const GradCheckFn& f, const std::vector<DynTensor<double>>& inputs,
                                  const GradCheckOptions& opt = {}) {
  auto skipped = [&](std::size_t i) {
    for (int s : opt.skip)
      if (static_cast<std::size_t>(s) == i) return true;
    return false;
  };

  // Analytic gradients.
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (std::size_t i = 0; i < inputs.size(); ++i) vars.push_back(tape.leaf(inputs[i], !skipped(i)));
  Var<double> out = f(tape, vars);
  DynTensor<double> w(out.shape());
  Rng rng(opt.seed);
  init::uniform(w, rng, -1.0, 1.0);
  tape.backward(out, w);

  auto loss_at = [&](const std::vector<DynTensor<double>>& xs) {
    Tape<double> t;
    std::vector<Var<double>> vs;
    for (const auto& x : xs) vs.push_back(t.leaf(x, false));
    const DynTensor<double>& y = f(t, vs).value();
    QAWARE_CHECK(y.shape() == w.shape(), "grad_check: f returned shape ", y.shape().str(), " after ",
                 w.shape().str());
    double s = 0.0;
    for (Index k = 0; k < y.numel(); ++k) s += y[k] * w[k];
    return s;
  };

  GradCheckResult res;
  std::ostringstream rep;
  int failures = 0;
  std::vector<DynTensor<double>> xs = inputs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (skipped(i)) continue;
    const DynTensor<double>& analytic = vars[i].grad();
    for (Index k = 0; k < inputs[i].numel(); ++k) {
      const double x0 = inputs[i][k];
      const double h = opt.step * std::max(1.0, std::abs(x0));
      xs[i][k] = x0 + h;
      const double lp = loss_at(xs);
      xs[i][k] = x0 - h;
      const double lm = loss_at(xs);
      xs[i][k] = x0;
      const double numeric = (lp - lm) / (2.0 * h);
      const double a = analytic[k];
      const double err = std::abs(a - numeric);
      const double scale = std::max(std::abs(a), std::abs(numeric));
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (scale > 0) res.max_rel_error = std::max(res.max_rel_error, err / scale);
      if (err > opt.atol + opt.rtol * scale) {
        res.ok = false;
        if (++failures <= 10)
          rep << "input " << i << " " << inputs[i].shape().str() << " element " << k << ": analytic " << a
              << " numeric " << numeric << " (abs error " << err << ")\n";
      }
    }
  }
  if (failures > 10) rep << "... and " << failures - 10 << " more\n";
  res.report = rep.str();
  return res;
}

}  // namespace qaware
