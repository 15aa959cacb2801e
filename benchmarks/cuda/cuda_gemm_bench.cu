// The CUDA INT8 GEMM (dp4a) against cuBLAS SGEMM and cuBLASLt's int8 GEMM
// (CUBLAS_COMPUTE_32I) on BERT shapes, timed with CUDA events in one run.
//
//   qaware_cuda_gemm_bench [--csv FILE] [--quick]
//
// For every shape C[M][N] = A[M][K] * W[N][K]^T (W in PyTorch's Linear
// layout): int8 A and W, int32 C for qaware and cuBLASLt, float for SGEMM.
// Each figure is the median over 7 batches of the mean time per call (after
// warm-up), in TOPS = 2 M N K / time. qaware's int32 results are compared with
// cuBLASLt's element by element (they must be identical), so every timed
// shape is also a correctness check on the device.

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "qaware/cuda/gemm.cuh"

namespace {

using qaware::Index;

void check_cublas(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw qaware::Error(std::string("cuBLAS: ") + call + " failed with status " + std::to_string(static_cast<int>(s)));
}
#define CUBLAS_CHECK(call) check_cublas((call), #call)

// Median over `batches` of the mean time of `reps` calls, in seconds.
double time_it(const std::function<void()>& f, int reps, int batches = 7) {
  cudaEvent_t start, stop;
  QAWARE_CUDA_CHECK(cudaEventCreate(&start));
  QAWARE_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> t;
  for (int b = 0; b < batches; ++b) {
    QAWARE_CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < reps; ++i) f();
    QAWARE_CUDA_CHECK(cudaEventRecord(stop));
    QAWARE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    QAWARE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    t.push_back(ms * 1e-3 / reps);
  }
  QAWARE_CUDA_CHECK(cudaEventDestroy(start));
  QAWARE_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// cuBLASLt int8 x int8 -> int32, column-major C^T[N][M] = W[N][K] * A^T (the "TN" form its int8 kernels need).
struct LtInt8 {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulHeuristicResult_t algo{};
  void* workspace = nullptr;
  std::size_t workspace_bytes = 32u << 20;

  LtInt8(int M, int N, int K) {
    CUBLAS_CHECK(cublasLtCreate(&handle));
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, K, N, K));  // W: K x N column-major, op T -> N x K
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, K, M, K));  // A^T: K x M column-major
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, N, M, N));
    QAWARE_CUDA_CHECK(cudaMalloc(&workspace, workspace_bytes));
    cublasLtMatmulPreference_t pref = nullptr;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                      sizeof workspace_bytes));
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, op, la, lb, lc, lc, pref, 1, &algo, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0) throw qaware::Error("cuBLASLt found no int8 algorithm for this shape");
  }
  ~LtInt8() {
    cudaFree(workspace);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(handle);
  }
  void run(const std::int8_t* w, const std::int8_t* a, std::int32_t* c) const {
    const std::int32_t one = 1, zero = 0;
    CUBLAS_CHECK(cublasLtMatmul(handle, op, &one, w, la, a, lb, &zero, c, lc, c, lc, &algo.algo, workspace,
                                workspace_bytes, nullptr));
  }
};

struct Row {
  int M, N, K;
  double ours, sgemm, lt;
  long long mismatches;
};

}  // namespace

int main(int argc, char** argv) {
  std::string csv;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--csv" && i + 1 < argc) {
      csv = argv[++i];
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--csv FILE] [--quick]\n", argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  try {
    if (qaware::cuda::device_count() == 0) {
      // QAWARE_REQUIRE_GPU (tools/gpu_check.sh run) makes a machine without a usable GPU an error.
      const char* require = std::getenv("QAWARE_REQUIRE_GPU");
      const bool required = require != nullptr && *require != '\0' && std::string(require) != "0";
      std::printf("no usable CUDA device (%s): nothing to benchmark\n", qaware::cuda::device_status().c_str());
      return required ? 1 : 0;
    }
    cudaDeviceProp prop{};
    QAWARE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int clock_khz = 0;
    QAWARE_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    // dp4a: 4 multiply-adds (8 ops) per instruction, 64 instructions per clock per SM (sm_80, sm_90).
    const double dp4a_peak = static_cast<double>(prop.multiProcessorCount) * clock_khz * 1e3 * 64 * 8 / 1e12;
    std::printf("device: %s, %d SMs, %.0f MHz, sm_%d%d; dp4a peak by arithmetic %.1f TOPS\n", prop.name,
                prop.multiProcessorCount, clock_khz / 1e3, prop.major, prop.minor, dp4a_peak);

    cublasHandle_t blas = nullptr;
    CUBLAS_CHECK(cublasCreate(&blas));
    std::vector<int> ms = quick ? std::vector<int>{128, 2048} : std::vector<int>{128, 512, 2048, 8192, 16384};
    const int nk[3][2] = {{768, 768}, {3072, 768}, {768, 3072}};
    std::vector<Row> rows;
    std::mt19937 gen(42);
    std::uniform_int_distribution<int> byte(-128, 127);
    std::printf("%6s %6s %6s | %10s %10s %10s | %8s %8s | %s\n", "M", "N", "K", "qaware", "SGEMM", "cuBLASLt",
                "/SGEMM", "/Lt", "int32 vs Lt");
    for (int M : ms) {
      for (const auto& s : nk) {
        const int N = s[0], K = s[1];
        std::vector<std::int8_t> a(static_cast<std::size_t>(M) * K), w(static_cast<std::size_t>(N) * K);
        for (auto& x : a) x = static_cast<std::int8_t>(byte(gen));
        for (auto& x : w) x = static_cast<std::int8_t>(byte(gen));
        std::vector<float> af(a.begin(), a.end()), wf(w.begin(), w.end());

        qaware::cuda::DeviceBuffer<std::int8_t> da(static_cast<Index>(a.size())), dw(static_cast<Index>(w.size()));
        da.upload(a.data(), static_cast<Index>(a.size()));
        dw.upload(w.data(), static_cast<Index>(w.size()));
        qaware::cuda::DeviceBuffer<float> daf(static_cast<Index>(af.size())), dwf(static_cast<Index>(wf.size())),
            dcf(static_cast<Index>(M) * N);
        daf.upload(af.data(), static_cast<Index>(af.size()));
        dwf.upload(wf.data(), static_cast<Index>(wf.size()));
        qaware::cuda::DeviceBuffer<std::int32_t> dc(static_cast<Index>(M) * N), dlt(static_cast<Index>(M) * N);
        const qaware::cuda::DevicePackedMatrix pw =
            qaware::cuda::pack_b(w.data(), K, N, K, qaware::gemm::BLayout::kNxK, 0);
        LtInt8 lt(M, N, K);

        const double flops = 2.0 * M * N * K;
        const int reps = std::max(3, static_cast<int>(2e11 / flops));
        const double t_ours = time_it(
            [&] { qaware::cuda::gemm(da.data(), M, K, K, 0, pw, qaware::cuda::Output::int32(dc.data(), N)); }, reps);
        const float one = 1.0f, zero = 0.0f;
        const double t_sgemm = time_it(
            [&] {
              CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, dwf.data(), K, daf.data(), K,
                                       &zero, dcf.data(), N));
            },
            reps);
        const double t_lt = time_it([&] { lt.run(dw.data(), da.data(), dlt.data()); }, reps);
        QAWARE_CUDA_CHECK(cudaDeviceSynchronize());

        std::vector<std::int32_t> c(static_cast<std::size_t>(M) * N), cl(c.size());
        dc.download(c.data(), static_cast<Index>(c.size()));
        dlt.download(cl.data(), static_cast<Index>(cl.size()));
        long long bad = 0;
        for (std::size_t i = 0; i < c.size(); ++i) bad += c[i] != cl[i];

        Row r{M, N, K, flops / t_ours / 1e12, flops / t_sgemm / 1e12, flops / t_lt / 1e12, bad};
        rows.push_back(r);
        std::printf("%6d %6d %6d | %10.1f %10.1f %10.1f | %7.2fx %7.2fx | %s\n", M, N, K, r.ours, r.sgemm, r.lt,
                    r.ours / r.sgemm, r.ours / r.lt, bad == 0 ? "identical" : (std::to_string(bad) + " differ").c_str());
        std::fflush(stdout);
      }
    }
    cublasDestroy(blas);
    std::printf("(TOPS; qaware at %.0f%% of the dp4a peak on its best shape)\n",
                100.0 * std::max_element(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
                          return x.ours < y.ours;
                        })->ours / dp4a_peak);
    if (!csv.empty()) {
      std::ofstream f(csv);
      f << "device,M,N,K,qaware_tops,sgemm_tops,cublaslt_int8_tops,dp4a_peak_tops,mismatches\n";
      for (const Row& r : rows)
        f << '"' << prop.name << "\"," << r.M << ',' << r.N << ',' << r.K << ',' << r.ours << ',' << r.sgemm << ','
          << r.lt << ',' << dp4a_peak << ',' << r.mismatches << '\n';
      if (!f) throw qaware::Error("cannot write " + csv);
    }
    for (const Row& r : rows)
      if (r.mismatches != 0) {
        std::fprintf(stderr, "qaware's int32 results differ from cuBLASLt's\n");
        return 1;
      }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
