#!/usr/bin/env bash
# The CUDA GEMM's check on a GPU machine, in two steps so that time on the GPU
# goes to running, not to setting up:
#
#   tools/gpu_check.sh build [BUNDLE]        here (nvcc, no GPU needed): builds the CUDA tests and
#                                            benchmark for sm_80 and sm_90 into BUNDLE
#                                            (default .device/cuda-bundle, git-ignored), GoogleTest
#                                            and libstdc++ linked statically, and copies this script
#                                            next to them
#   tools/gpu_check.sh run [BUNDLE] [OUT]    on the GPU machine: records the GPU (nvidia-smi), runs
#                                            every CUDA test and the benchmark, and writes
#                                            OUT/gpu.txt, OUT/tests.txt, OUT/tests.xml, OUT/bench.txt
#                                            and OUT/bench.csv (OUT defaults to $OUT, else BUNDLE/out)
#
# The run step needs only the NVIDIA driver, the CUDA 13 runtime and cuBLAS
# (libcudart.so.13, libcublas.so.13, libcublasLt.so.13: searched in the CUDA
# toolkit and in Python's nvidia packages when the loader does not find them).
# It exits non-zero when a test fails or the benchmark's int32 results differ
# from cuBLASLt's.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=${1:-}
case "$mode" in
  build)
    BUNDLE=${2:-$ROOT/.device/cuda-bundle}
    nvcc_path=$(command -v nvcc || true)
    if [ -z "$nvcc_path" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc_path=/usr/local/cuda/bin/nvcc; fi
    if [ -z "$nvcc_path" ]; then
      echo "gpu_check.sh: no nvcc found (install the CUDA toolkit)" >&2
      exit 1
    fi
    build=$BUNDLE.build
    echo "== configuring $build (log: $build.configure.log)"
    mkdir -p "$BUNDLE"
    cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DQAWARE_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_path" \
      -DQAWARE_NATIVE=OFF -DQAWARE_BUILD_TESTS=ON -DQAWARE_BUILD_BENCHMARKS=ON -DQAWARE_BUILD_EXAMPLES=OFF \
      -DQAWARE_WITH_ONNX=OFF "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc" > "$build.configure.log"
    echo "== building qaware_cuda_tests and qaware_cuda_gemm_bench"
    cmake --build "$build" -j"${QAWARE_JOBS:-$(nproc)}" --target qaware_cuda_tests qaware_cuda_gemm_bench
    cp "$build/tests/cuda/qaware_cuda_tests" "$build/benchmarks/cuda/qaware_cuda_gemm_bench" "$BUNDLE/"
    mkdir -p "$BUNDLE/tools"
    cp "$ROOT/tools/gpu_check.sh" "$BUNDLE/tools/"
    git -C "$ROOT" rev-parse HEAD > "$BUNDLE/commit.txt" 2>/dev/null || echo unknown > "$BUNDLE/commit.txt"
    echo "== bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)); on the GPU machine run:"
    echo "   $BUNDLE/tools/gpu_check.sh run $BUNDLE"
    ;;
  run)
    BUNDLE=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
    [ -x "$BUNDLE/qaware_cuda_tests" ] || BUNDLE=$ROOT/.device/cuda-bundle
    if [ ! -x "$BUNDLE/qaware_cuda_tests" ]; then
      echo "gpu_check.sh: no qaware_cuda_tests in $BUNDLE (run 'tools/gpu_check.sh build' first)" >&2
      exit 1
    fi
    out=${3:-${OUT:-$BUNDLE/out}}
    mkdir -p "$out"
    # The CUDA runtime and cuBLAS: where the loader does not know them, the
    # first copy found (the toolkit's, or a Python package's such as PyTorch's).
    for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
      if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
        d=$(find /usr/local /opt /usr/lib /root /home -name "$lib" -printf '%h\n' 2>/dev/null | head -1 || true)
        if [ -n "$d" ]; then export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
      fi
    done
    {
      echo "commit: $(cat "$BUNDLE/commit.txt" 2>/dev/null || echo unknown)"
      echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
    } | tee "$out/gpu.txt"
    rc=0
    export QAWARE_REQUIRE_GPU=1  # here a skipped GPU test is a failure
    echo "== tests"
    "$BUNDLE/qaware_cuda_tests" --gtest_output="xml:$out/tests.xml" 2>&1 | tee "$out/tests.txt" || rc=1
    echo "== benchmark"
    "$BUNDLE/qaware_cuda_gemm_bench" --csv "$out/bench.csv" 2>&1 | tee "$out/bench.txt" || rc=1
    echo "== results in $out; exit $rc"
    exit $rc
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
