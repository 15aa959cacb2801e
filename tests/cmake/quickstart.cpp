// Quick start: one linear layer on the autograd tape, forward and backward.
#include <qaware/qaware.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace qaware;
  Rng rng(42);                  // same seed, same numbers on every machine
  Param<float> w(Shape{2, 3});  // weight (OUT, IN), PyTorch's layout
  Param<float> b(Shape{2});     // bias, zeros
  init::normal(w.value(), rng, 0.0, 0.5);

  Tape<float> tape;
  DynTensor<float> x({1, 3});   // one row of 3 features: [1, 2, 3]
  for (Index i = 0; i < 3; ++i) x[i] = float(i + 1);
  Var<float> y = linear(tape.constant(x), tape.param(w), tape.param(b));  // y = x W^T + b: [1, 2]
  tape.backward(y, DynTensor<float>(y.shape(), 1.0f));                  // seed dL/dy = 1

  bool ok = true;
  for (Index o = 0; o < 2; ++o) {
    float expect = 0.0f;
    for (Index i = 0; i < 3; ++i) {
      expect += w.value()[o * 3 + i] * x[i];
      ok = ok && w.grad()[o * 3 + i] == x[i];  // dL/dW = dy^T x: each row is x
    }
    ok = ok && std::abs(y.value()[o] - expect) <= 1e-5f;  // float rounding of a 3-term dot product
    ok = ok && b.grad()[o] == 1.0f;                        // dL/db = dy
  }
  std::printf("y = [%g, %g]: %s\n", y.value()[0], y.value()[1], ok ? "ok" : "MISMATCH");
  tape.clear();  // a training loop clears the tape after every step
  return ok ? 0 : 1;
}
