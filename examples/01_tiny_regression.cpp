// 01_tiny_regression: the smallest qaware training loop.
//
// A two-layer MLP, y = W2 gelu(W1 x + b1) + b2, learns the smooth function
//   f(x) = sin(3 x) / 2 + x^2 / 4   on x in [-1.5, 1.5]
// from 256 fixed samples, with mse_loss and plain SGD written inline
// (optimizers arrive in a later step). Each step records the graph on a
// Tape, back-propagates, updates the Params and clears the tape.
//
// Build and run:  cmake --build build --target qaware_example_tiny_regression
//                 ./build/examples/qaware_example_tiny_regression

#include <cmath>
#include <cstdio>
#include <vector>

#include "qaware/qaware.hpp"

int main() {
  using namespace qaware;
  using Scalar = float;
  constexpr Index kSamples = 256, kHidden = 64, kSteps = 4000, kPrintEvery = 400;
  constexpr Scalar kLearningRate = 0.15f;  // full-batch SGD; 0.5 diverges

  // Data: x evenly spaced in [-1.5, 1.5], targets from f.
  DynTensor<Scalar> x(Shape{kSamples, 1}), y(Shape{kSamples, 1});
  for (Index i = 0; i < kSamples; ++i) {
    const double xi = -1.5 + 3.0 * static_cast<double>(i) / static_cast<double>(kSamples - 1);
    x[i] = static_cast<Scalar>(xi);
    y[i] = static_cast<Scalar>(std::sin(3.0 * xi) / 2.0 + xi * xi / 4.0);
  }

  // Parameters, initialised as torch.nn.Linear does: U(-1/sqrt(in), 1/sqrt(in)).
  Rng rng(42);
  Param<Scalar> w1(Shape{kHidden, 1}), b1(Shape{kHidden}), w2(Shape{1, kHidden}), b2(Shape{1});
  init::uniform(w1.value(), rng, -1.0, 1.0);
  init::uniform(b1.value(), rng, -1.0, 1.0);
  const double bound2 = 1.0 / std::sqrt(static_cast<double>(kHidden));
  init::uniform(w2.value(), rng, -bound2, bound2);
  init::uniform(b2.value(), rng, -bound2, bound2);
  std::vector<Param<Scalar>*> params = {&w1, &b1, &w2, &b2};

  Tape<Scalar> tape;
  Scalar loss_value = 0;
  for (Index step = 1; step <= kSteps; ++step) {
    Var<Scalar> input = tape.constant(x), target = tape.constant(y);
    Var<Scalar> hidden = gelu(linear(input, tape.param(w1), tape.param(b1)));
    Var<Scalar> pred = linear(hidden, tape.param(w2), tape.param(b2));
    Var<Scalar> loss = mse_loss(pred, target);
    loss_value = loss.item();

    for (Param<Scalar>* p : params) p->zero_grad();
    tape.backward(loss);
    for (Param<Scalar>* p : params) p->value().flat() -= kLearningRate * p->grad().flat();  // SGD
    tape.clear();

    if (step == 1 || step % kPrintEvery == 0)
      std::printf("step %5td  loss %.6f\n", static_cast<std::ptrdiff_t>(step), static_cast<double>(loss_value));
  }
  double mean = 0, variance = 0;
  for (Index i = 0; i < kSamples; ++i) mean += y[i] / static_cast<double>(kSamples);
  for (Index i = 0; i < kSamples; ++i) variance += (y[i] - mean) * (y[i] - mean) / static_cast<double>(kSamples);
  // Success: the MLP explains over 99% of the targets' variance.
  const bool learned = loss_value < 0.01 * variance;
  std::printf("final loss %.6f (targets' variance %.4f): %s\n", static_cast<double>(loss_value), variance,
              learned ? "learned" : "did NOT learn the function");
  return learned ? 0 : 1;
}
