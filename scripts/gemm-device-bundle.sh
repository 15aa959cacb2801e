#!/usr/bin/env bash
# Builds the INT8 GEMM test and benchmark binaries so they run on another
# x86-64 Linux machine (for example one with AVX-512 VNNI or AMX, which this
# build machine lacks), collects them into one folder plus a .tar.xz, and
# prints how to run them.
#
#   scripts/gemm-device-bundle.sh [BUILD_DIR]      (default: build-gemm-bundle)
#
# What it builds (nothing is downloaded):
#   bin/qaware_gemm_tests              fully static (-static; gtest, libgomp, libstdc++, glibc inside),
#                                      compiled WITHOUT any -march: the kernels' function target
#                                      attributes alone select AVX2 / AVX-VNNI / AVX-512 VNNI / AMX
#   bin/qaware_quant_tests, bin/qaware_ops_tests
#                                      the same way (the gemm suite also holds the float GEMM's
#                                      AVX2 and AVX-512 kernel tests)
#   bin/qaware_gemm_int8_bench_v3      benchmark, -march=x86-64-v3 (AVX2+FMA Eigen baseline)
#   bin/qaware_gemm_int8_bench_v4      benchmark, -march=x86-64-v4 (AVX-512 Eigen baseline)
#   bin/qaware_gemm_bench_v4           the float GEMM benchmark (ours AVX-512 / AVX2, Eigen, oneDNN)
#   bin/qaware_train_step_bench_v4     the BERT-block training step (issue #5)
#   lib/                               the benchmark's shared libraries (libdnnl, libbenchmark,
#                                      libOpenCL, libgomp, libstdc++, libm, libc) and the dynamic
#                                      loader, so it does not depend on the target's glibc
#   run-tests.sh, run-bench.sh, run-all.sh, README.txt
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-$ROOT/build-gemm-bundle}
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
BUNDLE=$BUILD/gemm-bundle
JOBS=${JOBS:-2}

configure() {  # configure <dir> <bench arch> [extra cmake args...]
  local dir=$1 arch=$2
  shift 2
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DQAWARE_NATIVE=OFF -DQAWARE_GEMM_PORTABLE=ON \
    -DQAWARE_GEMM_BENCH_ARCH="$arch" -DQAWARE_BUILD_EXAMPLES=OFF -DQAWARE_SANITIZE=OFF "$@" > "$dir.configure.log"
}

mkdir -p "$BUILD"
echo "== configuring and building in $BUILD (logs: *.configure.log)"
# The tests link libgomp.a (FindOpenMP would otherwise name libgomp.so, which
# -static cannot use). The benchmarks keep the shared libgomp: libdnnl.so uses
# it too, and one process must have one OpenMP runtime.
configure "$BUILD/tests" x86-64-v3 -DOpenMP_gomp_LIBRARY="$(${CXX:-c++} -print-file-name=libgomp.a)"
cmake --build "$BUILD/tests" -j "$JOBS" --target qaware_gemm_tests qaware_quant_tests qaware_ops_tests
configure "$BUILD/v3" x86-64-v3
cmake --build "$BUILD/v3" -j "$JOBS" --target qaware_gemm_int8_bench
# The float and training-step benchmarks: the library's own code paths are
# chosen at run time, but Eigen's elementwise code follows -march.
configure "$BUILD/v4" x86-64-v4 -DCMAKE_CXX_FLAGS=-march=x86-64-v4
cmake --build "$BUILD/v4" -j "$JOBS" --target qaware_gemm_int8_bench qaware_gemm_bench qaware_train_step_bench

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
cp "$BUILD/tests/tests/gemm/qaware_gemm_tests" "$BUNDLE/bin/"
cp "$BUILD/tests/tests/quant/qaware_quant_tests" "$BUNDLE/bin/"
cp "$BUILD/tests/tests/ops/qaware_ops_tests" "$BUNDLE/bin/"
# The fixtures the two test binaries read (found through QAWARE_TEST_DATA_DIR).
mkdir -p "$BUNDLE/data"
cp "$ROOT"/tests/data/requantize_golden.qawfix "$ROOT"/tests/data/fake_quant*.qfx "$BUNDLE/data/"
cp "$BUILD/v3/benchmarks/qaware_gemm_int8_bench" "$BUNDLE/bin/qaware_gemm_int8_bench_v3"
cp "$BUILD/v4/benchmarks/qaware_gemm_int8_bench" "$BUNDLE/bin/qaware_gemm_int8_bench_v4"
cp "$BUILD/v4/benchmarks/qaware_gemm_bench" "$BUNDLE/bin/qaware_gemm_bench_v4"
cp "$BUILD/v4/benchmarks/qaware_train_step_bench" "$BUNDLE/bin/qaware_train_step_bench_v4"
strip --strip-unneeded "$BUNDLE"/bin/* 2>/dev/null || true

for t in qaware_gemm_tests qaware_quant_tests qaware_ops_tests; do
  if ldd "$BUNDLE/bin/$t" >/dev/null 2>&1; then
    echo "error: $t is not statically linked" >&2
    exit 1
  fi
done

# Every shared library the benchmarks load, and the loader itself.
for exe in "$BUNDLE"/bin/qaware_*bench_v*; do
  ldd "$exe" | awk '/=> \// {print $3} /^[[:space:]]*\/.*ld-linux/ {print $1}'
done | sort -u | while read -r lib; do
  cp -L "$lib" "$BUNDLE/lib/"
done
LOADER=$(basename "$(ldd "$BUNDLE/bin/qaware_gemm_int8_bench_v3" | awk '/ld-linux/ {print $1}')")
chmod +x "$BUNDLE/lib/$LOADER"

cat > "$BUNDLE/run-tests.sh" <<'SH'
#!/usr/bin/env bash
# The INT8 GEMM and fake-quantization test suites (static binaries; the
# fake-quant suite runs its AVX-512 kernels where the CPU has AVX-512).
# Arguments go to both gtest binaries.
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export QAWARE_TEST_DATA_DIR="$D/data"
"$D/bin/qaware_gemm_tests" "$@"; rc=$?
"$D/bin/qaware_quant_tests" "$@" || rc=1
"$D/bin/qaware_ops_tests" "$@" || rc=1
exit $rc
SH

cat > "$BUNDLE/run-bench.sh" <<SH
#!/usr/bin/env bash
# The INT8 GEMM benchmark through the bundled loader and libraries (independent
# of this machine's glibc). Picks the x86-64-v4 build (AVX-512 Eigen baseline)
# when the CPU has AVX-512, else x86-64-v3. Arguments go to Google Benchmark.
D=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
V=\${QAWARE_BENCH_BUILD:-v3}
if [ -z "\${QAWARE_BENCH_BUILD:-}" ] && grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo \\
   && grep -qw avx512vl /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo && grep -qw avx512cd /proc/cpuinfo; then
  V=v4
fi
exec "\$D/lib/$LOADER" --library-path "\$D/lib" "\$D/bin/qaware_gemm_int8_bench_\$V" "\$@"
SH

cat > "$BUNDLE/run-float.sh" <<SH
#!/usr/bin/env bash
# run-float.sh [gemm|step] [gbench args]: the float GEMM benchmark
# (qaware_gemm_bench) or the training-step benchmark (qaware_train_step_bench),
# x86-64-v4 builds, through the bundled loader and libraries. For the step,
# QAWARE_MAX_ISA=avx2_vnni runs the float products on the AVX2 kernel instead
# of the AVX-512 one (compare the two in one session).
D=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
WHAT=\${1:-gemm}; shift || true
case "\$WHAT" in gemm) B=qaware_gemm_bench_v4 ;; step) B=qaware_train_step_bench_v4 ;; *) echo "gemm or step" >&2; exit 2 ;; esac
exec "\$D/lib/$LOADER" --library-path "\$D/lib" "\$D/bin/\$B" "\$@"
SH

cat > "$BUNDLE/run-all.sh" <<'SH'
#!/usr/bin/env bash
# run-all.sh [quick|full] [OUT_DIR]
# 1) the test suite; 2) the benchmark against oneDNN at each oneDNN ISA this CPU
# has (its default -- AMX on Sapphire Rapids --, then AVX512_CORE_VNNI, then
# AVX2), each time with the matching qaware path, Eigen FP32 and our best path.
# quick: 1 repetition, 0.2 s per benchmark (about 1.5 minutes in all on a
# 16-core Sapphire Rapids guest); full: 5 repetitions of 0.2 s, randomly
# interleaved so that a slow phase of a shared host does not land on one
# benchmark only, medians reported (about 4 minutes). Results: OUT_DIR
# (default ./gemm-results) as JSON plus console logs.
set -u
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=${1:-quick}
OUT=${2:-$PWD/gemm-results}
mkdir -p "$OUT"
if [ "$MODE" = full ]; then REPS=5; else REPS=1; fi
export QAWARE_BENCH_MIN_TIME=${QAWARE_BENCH_MIN_TIME:-0.2}
export QAWARE_BENCH_THREADS=${QAWARE_BENCH_THREADS:-1,2}
grep -m1 "model name" /proc/cpuinfo | tee "$OUT/cpu.txt"
grep -m1 -o -w -E "amx_int8|avx512_vnni|avx_vnni" /proc/cpuinfo | sort -u | tr '\n' ' ' | tee -a "$OUT/cpu.txt"; echo
echo "== tests"
"$D/run-tests.sh" 2>&1 | tee "$OUT/tests.log" | grep -E "^\[ (cpu|paths) |FAILED|PASSED|SKIPPED \] [0-9]"
bench() {  # bench <tag> <filter> [ONEDNN_MAX_CPU_ISA]
  local tag=$1 filter=$2 isa=${3:-}
  echo "== benchmark $tag (ONEDNN_MAX_CPU_ISA=${isa:-<default>})"
  ONEDNN_MAX_CPU_ISA=$isa "$D/run-bench.sh" --benchmark_filter="$filter" --benchmark_repetitions=$REPS \
    --benchmark_report_aggregates_only=$([ $REPS -gt 1 ] && echo true || echo false) \
    --benchmark_enable_random_interleaving=$([ $REPS -gt 1 ] && echo true || echo false) \
    --benchmark_out="$OUT/bench-$tag.json" --benchmark_out_format=json 2>&1 | tee "$OUT/bench-$tag.log"
}
CPU=$(cat /proc/cpuinfo)
if grep -qw amx_int8 <<<"$CPU"; then
  bench amx 'BM_GemmF32Eigen|BM_GemmF32OneDnn|BM_GemmU8S8OneDnn|BM_GemmU8S8Amx|BM_GemmU8S8RequantBest'
fi
if grep -qw avx512_vnni <<<"$CPU"; then
  bench avx512vnni 'BM_GemmU8S8OneDnn|BM_GemmU8S8Avx512Vnni|BM_GemmF32Eigen' AVX512_CORE_VNNI
fi
if grep -qw avx_vnni <<<"$CPU"; then
  bench avxvnni 'BM_GemmU8S8OneDnn|BM_GemmU8S8AvxVnni' AVX2_VNNI
fi
bench avx2 'BM_GemmU8S8OneDnn|BM_GemmU8S8Avx2' AVX2
echo "results in $OUT"
SH
chmod +x "$BUNDLE"/*.sh

cat > "$BUNDLE/README.txt" <<'TXT'
qaware INT8 GEMM device bundle (issue #4)

  ./run-tests.sh                      gtest suites; paths the CPU lacks are SKIPPED with a message
  ./run-float.sh gemm|step [args]     float GEMM / training-step benchmark (QAWARE_MAX_ISA=avx2_vnni|all)
  ./run-bench.sh [gbench args]        benchmark (bundled loader + libs)
  ./run-all.sh quick|full [OUT_DIR]   tests, then the benchmark once per oneDNN ISA the CPU has

Useful environment: QAWARE_MAX_ISA=avx2 (cap every qaware kernel), QAWARE_BENCH_THREADS=1,2,16,
QAWARE_BENCH_MIN_TIME=0.2, ONEDNN_MAX_CPU_ISA=AVX2|AVX512_CORE_VNNI|AVX512_CORE_AMX.
Expect: tests print "[ paths    ] cpu: ..." and pass with no failures (the
BestPathTheCpuOffersWasExercised test checks the best path ran); the
benchmark context prints onednn_u8s8s32_impl and qaware_best_path.
TXT

tar -C "$BUILD" -cJf "$BUILD/gemm-bundle.tar.xz" gemm-bundle
REL=${BUILD#"$ROOT"/}
echo
echo "== bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)), archive: $BUILD/gemm-bundle.tar.xz ($(du -h "$BUILD/gemm-bundle.tar.xz" | cut -f1))"
echo "On the other machine (x86-64 Linux; the archive is all it needs):"
echo "  tar xJf gemm-bundle.tar.xz -C /tmp && /tmp/gemm-bundle/run-all.sh quick /tmp/gemm-results"
echo "or piece by piece:"
echo "  /tmp/gemm-bundle/run-tests.sh"
echo "  ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI /tmp/gemm-bundle/run-bench.sh --benchmark_filter='U8S8OneDnn|Avx512Vnni'"
echo "From this repository's root, with the archive carried along (path relative to the root): $REL/gemm-bundle.tar.xz"
