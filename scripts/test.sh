#!/usr/bin/env bash
# Builds and runs every test, twice:
#   (a) build/      Release: tests, benchmarks and examples; the whole ctest
#                   suite (unit tests, consumer-project tests, benchmark smoke).
#   (b) build-asan/ RelWithDebInfo with -fsanitize=address,undefined
#                   (QAWARE_SANITIZE=ON) and line tables only (-g1: the
#                   sanitizers' stack traces keep file:line; full -g made a
#                   large test file compile about 1.5x slower), benchmarks
#                   and examples off; ctest
#                   without the `consumer` tests (they build other projects and
#                   check packaging, not memory safety) and without tests
#                   labelled `slow` (if any; they run in (a)), and without
#                   the ONNX exporter (QAWARE_WITH_ONNX=OFF): phase (c) runs
#                   it under the sanitizers on every model its INT8-model
#                   fuzzer loads, and its onnxruntime tests run in (a).
#   (c) build-fuzz/ clang with -fsanitize=fuzzer,address,undefined
#                   (QAWARE_FUZZ=ON): the libFuzzer harnesses of tests/fuzz,
#                   each run for QAWARE_FUZZ_SECONDS (default 15) from its seed
#                   corpus; any crash, leak, UB report, timeout or broken
#                   property fails the phase. Skipped with a message where
#                   clang cannot link libFuzzer.
#   (d) build-cuda/ QAWARE_WITH_CUDA=ON where nvcc exists: builds the CUDA
#                   GEMM's tests and benchmark (sm_80, sm_90) and runs ctest -L
#                   cuda. Without a GPU the kernel tests skip with a message;
#                   the build, the link and the host-side tests still count.
#                   Skipped with a message where there is no nvcc.
# Exits non-zero when any phase fails; prints each phase's time at the end.
# QAWARE_JOBS overrides the parallelism (default: nproc).
set -uo pipefail
cd "$(dirname "$0")/.."

jobs=${QAWARE_JOBS:-$(nproc)}
names=()
results=()
times=()
failed=0

# phase <name> <command...>: runs the command, records its status and time.
phase() {
  local name=$1
  shift
  echo
  echo "=== ${name}: $*"
  local start=$SECONDS
  "$@"
  local rc=$?
  names+=("$name")
  times+=($((SECONDS - start)))
  if [ $rc -eq 0 ]; then
    results+=("ok")
  else
    results+=("FAILED (exit ${rc})")
    failed=1
  fi
  return $rc
}
skip() {
  names+=("$1")
  times+=(0)
  results+=("skipped (an earlier phase failed)")
}

summary() {
  echo
  echo "=== summary (${jobs} jobs)"
  for i in "${!names[@]}"; do
    printf '  %-22s %6ss  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
  done
  printf '  %-22s %6ss\n' "total" "$SECONDS"
}

if ! phase setup ./scripts/setup.sh; then
  summary
  exit 1
fi
# onnxruntime for the ONNX tests (npm, into .cache/onnxruntime). Where npm's
# registry is unreachable those tests skip with a message; nothing else needs it.
echo
echo "=== onnxruntime: ./scripts/fetch_onnxruntime.sh"
ort_start=$SECONDS
if ./scripts/fetch_onnxruntime.sh; then ort_result=ok; else ort_result="unavailable: the onnxruntime tests skip"; fi
names+=(onnxruntime)
times+=($((SECONDS - ort_start)))
results+=("$ort_result")

# (a) Release
if phase release-configure cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
     -DQAWARE_BUILD_TESTS=ON -DQAWARE_BUILD_BENCHMARKS=ON -DQAWARE_BUILD_EXAMPLES=ON &&
   phase release-build cmake --build build -j"$jobs"; then
  phase release-ctest ctest --test-dir build --output-on-failure -j"$jobs"
else
  skip release-ctest
fi

# (b) ASan + UBSan
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if phase asan-configure cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQAWARE_SANITIZE=ON \
     "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
     -DQAWARE_BUILD_TESTS=ON -DQAWARE_BUILD_BENCHMARKS=OFF -DQAWARE_BUILD_EXAMPLES=OFF -DQAWARE_WITH_ONNX=OFF &&
   phase asan-build cmake --build build-asan -j"$jobs"; then
  phase asan-ctest ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE "consumer|slow"
else
  skip asan-ctest
fi

# (c) fuzzing
if echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer - -o /tmp/qaware_fuzz_probe.$$ >/dev/null 2>&1; then
  rm -f /tmp/qaware_fuzz_probe.$$
  if phase fuzz-configure cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
       -DQAWARE_FUZZ=ON -DQAWARE_FUZZ_SECONDS="${QAWARE_FUZZ_SECONDS:-15}" -DQAWARE_NATIVE=OFF \
       -DQAWARE_BUILD_TESTS=ON -DQAWARE_BUILD_BENCHMARKS=OFF -DQAWARE_BUILD_EXAMPLES=OFF &&
     phase fuzz-build cmake --build build-fuzz -j"$jobs" --target qaware_fuzz_all; then
    phase fuzz-run ctest --test-dir build-fuzz --output-on-failure -j"$jobs" -L fuzz
  else
    skip fuzz-run
  fi
else
  echo "test.sh: clang cannot link -fsanitize=fuzzer (Debian: libclang-rt-14-dev); fuzzing skipped"
  names+=(fuzz)
  times+=(0)
  results+=("skipped (no libFuzzer)")
fi

# (d) CUDA: compile, link and host-side checks (the GPU runs are tools/gpu_check.sh's)
nvcc_path=$(command -v nvcc || true)
if [ -z "$nvcc_path" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc_path=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc_path" ]; then
  if phase cuda-configure cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DQAWARE_WITH_CUDA=ON \
       -DCMAKE_CUDA_COMPILER="$nvcc_path" -DQAWARE_BUILD_TESTS=ON -DQAWARE_BUILD_BENCHMARKS=ON \
       -DQAWARE_BUILD_EXAMPLES=OFF -DQAWARE_WITH_ONNX=OFF &&
     phase cuda-build cmake --build build-cuda -j"$jobs" --target qaware_cuda_tests qaware_cuda_gemm_bench; then
    phase cuda-ctest ctest --test-dir build-cuda --output-on-failure -j"$jobs" -L cuda
  else
    skip cuda-ctest
  fi
else
  echo "test.sh: no nvcc (CUDA toolkit) found; the CUDA build is skipped"
  names+=(cuda)
  times+=(0)
  results+=("skipped (no nvcc)")
fi

summary
if [ $failed -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all phases passed"
