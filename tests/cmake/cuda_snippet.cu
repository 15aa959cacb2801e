#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "qaware/cuda/gemm.cuh"

// y = dequantize(x * w^T) on the GPU: x uint8 [M, K] with zero point 128,
// w int8 [N, K] (PyTorch's Linear layout), float y [M, N].
int main() {
  if (qaware::cuda::device_count() == 0) {
    std::printf("no CUDA device here: nothing to run\n");
    return 0;
  }
  const qaware::Index M = 4, N = 3, K = 8;
  const std::vector<std::uint8_t> x(M * K, 130);
  const std::vector<std::int8_t> w(N * K, -2);
  const float w_scale = 0.01f;

  // Weights: packed and copied to the device once.
  const auto packed = qaware::cuda::pack_b(w.data(), K, N, /*ldb=*/K, qaware::gemm::BLayout::kNxK);
  qaware::gemm::Dequantize dq;
  dq.a_scale = 0.05f;
  dq.b_scales = &w_scale;
  dq.b_scale_count = 1;
  const qaware::cuda::DeviceDequantize stage(dq, N);

  qaware::cuda::DeviceBuffer<std::uint8_t> x_dev(M * K);
  qaware::cuda::DeviceBuffer<float> y_dev(M * N);
  x_dev.upload(x.data(), M * K);
  qaware::cuda::gemm(x_dev.data(), M, K, /*lda=*/K, /*x zero point=*/128, packed,
                     qaware::cuda::Output::dequantize(y_dev.data(), /*ldc=*/N, stage));
  std::vector<float> y(M * N);
  y_dev.download(y.data(), M * N);  // waits for the GEMM (same stream)

  // (130 - 128) * -2 summed over K = 8 is -32; times 0.05 * 0.01.
  std::printf("y[0][0] = %g\n", y[0]);
  return std::fabs(y[0] - (-32 * 0.05f * 0.01f)) < 1e-6f ? 0 : 1;
}
