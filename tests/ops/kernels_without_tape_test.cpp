// The ops' kernels (ops/kernels/, quant/kernels/) build without the tape, as an inference
// runtime includes them: this file includes every one of them and then
// declares its own qaware::Tape and qaware::Var, which would not compile had
// any kernel header brought in autograd/tape.hpp. It is compiled on its own
// (no unity group). The kernels then run a small encoder step on raw
// buffers, checked against the definitions in double.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "qaware/ops/kernels/add.hpp"
#include "qaware/ops/kernels/attention_mask.hpp"
#include "qaware/ops/kernels/attention_products.hpp"
#include "qaware/ops/kernels/cross_entropy.hpp"
#include "qaware/ops/kernels/dropout.hpp"
#include "qaware/ops/kernels/embedding.hpp"
#include "qaware/ops/kernels/gelu.hpp"
#include "qaware/ops/kernels/layer_norm.hpp"
#include "qaware/ops/kernels/linear.hpp"
#include "qaware/ops/kernels/matmul.hpp"
#include "qaware/ops/kernels/mean.hpp"
#include "qaware/ops/kernels/mse_loss.hpp"
#include "qaware/ops/kernels/mul.hpp"
#include "qaware/ops/kernels/permute.hpp"
#include "qaware/ops/kernels/quantized_attention.hpp"
#include "qaware/ops/kernels/quantized_linear.hpp"
#include "qaware/ops/kernels/reshape.hpp"
#include "qaware/ops/kernels/scale.hpp"
#include "qaware/ops/kernels/select_position.hpp"
#include "qaware/ops/kernels/softmax.hpp"
#include "qaware/ops/kernels/sub.hpp"
#include "qaware/ops/kernels/sum.hpp"
#include "qaware/ops/kernels/tanh.hpp"
#include "qaware/quant/kernels/fake_quantize.hpp"
// The exported model's runtime includes only these kernels too.
#include "qaware/deploy/format.hpp"
#include "qaware/deploy/model.hpp"

namespace qaware {
// Redefinitions if the tape had been included.
template <typename Scalar>
class Tape {};
template <typename Scalar>
class Var {};
}  // namespace qaware

namespace qaware {
namespace {

TEST(KernelsWithoutTapeTest, EmbeddingLayerNormLinearGeluSoftmaxOnRawBuffers) {
  const Index N = 5, C = 8, OUT = 6, V = 11;
  std::vector<float> table(static_cast<std::size_t>(V * C));
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = std::sin(0.37f * static_cast<float>(i));
  const std::int64_t ids[N] = {3, 0, 10, 3, 7};
  std::vector<float> e(static_cast<std::size_t>(N * C)), h(e.size()), mean(N), rstd(N);
  ops::embedding_forward(table.data(), ids, e.data(), N, C);
  std::vector<float> gamma(C, 1.5f), beta(C, -0.25f);
  ops::layer_norm_forward(e.data(), gamma.data(), beta.data(), h.data(), mean.data(), rstd.data(), N, C, 1e-5f);
  std::vector<float> w(static_cast<std::size_t>(OUT * C)), b(OUT, 0.125f), y(static_cast<std::size_t>(N * OUT));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.11f * static_cast<float>(i));
  ops::linear_forward(h.data(), w.data(), b.data(), y.data(), N, C, OUT);
  std::vector<float> g(y.size()), p(y.size());
  ops::gelu_forward(y.data(), g.data(), N * OUT, GeluApprox::Erf);
  ops::softmax_forward(g.data(), p.data(), N, OUT);

  for (Index r = 0; r < N; ++r) {
    const float* row = table.data() + ids[r] * C;
    double m = 0, v = 0;
    for (Index c = 0; c < C; ++c) m += row[c];
    m /= C;
    for (Index c = 0; c < C; ++c) v += (row[c] - m) * (row[c] - m);
    v /= C;
    std::vector<double> hd(static_cast<std::size_t>(C)), gd(static_cast<std::size_t>(OUT));
    for (Index c = 0; c < C; ++c) hd[static_cast<std::size_t>(c)] = (row[c] - m) / std::sqrt(v + 1e-5) * 1.5 - 0.25;
    double zmax = -1e300, z = 0;
    for (Index o = 0; o < OUT; ++o) {
      double s = 0.125;
      for (Index c = 0; c < C; ++c) s += hd[static_cast<std::size_t>(c)] * w[static_cast<std::size_t>(o * C + c)];
      gd[static_cast<std::size_t>(o)] = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
      zmax = std::max(zmax, gd[static_cast<std::size_t>(o)]);
    }
    for (Index o = 0; o < OUT; ++o) z += std::exp(gd[static_cast<std::size_t>(o)] - zmax);
    for (Index o = 0; o < OUT; ++o)
      EXPECT_NEAR(p[static_cast<std::size_t>(r * OUT + o)], std::exp(gd[static_cast<std::size_t>(o)] - zmax) / z, 1e-5)
          << "row " << r << " column " << o;
  }
}

}  // namespace
}  // namespace qaware
