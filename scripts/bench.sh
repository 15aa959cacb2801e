#!/usr/bin/env bash
# Benchmarks qaware's INT8 GEMM against FP32 GEMMs on this CPU, for BERT's
# linear-layer shapes, and prints one compact table.
#
# Builds (Release, in build/, reusing it) and runs two of the benchmark
# programs with a Google Benchmark filter:
#   qaware_gemm_int8_bench  Eigen FP32, our INT8 GEMM on every path this CPU
#                           has (trained-like weights), oneDNN u8s8s32 with A's
#                           zero point (like ours) when CMake found oneDNN
#   qaware_gemm_bench       our float GEMM and oneDNN's sgemm
# Shapes M x N x K: M = 128 and 512 token rows times BERT-base's 768 x 768
# (Q/K/V/O), 3072 x 768 (FFN up) and 768 x 3072 (FFN down). Every figure is
# GOPS = 2 M N K / s / 1e9 over the median call, with the best call in
# brackets. INT8/FP32 and ours/oneDNN compare rows of one process.
#
#   scripts/bench.sh [--threads 1,2] [--min-time SECONDS] [--build-dir DIR] [--no-build] [--smoke]
#     --threads    thread counts (default 1)
#     --min-time   Google Benchmark's minimum time per row (default 0.5)
#     --no-build   use the programs already built in the build directory
#     --smoke      one shape, tiny minimum time: checks that it works, not speed
# QAWARE_BENCH_SCALAR=1 also times the (slow) scalar path. QAWARE_JOBS sets
# the build's parallelism (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
do_build=1
threads=1
min_time=0.5
shapes="128x768x768,128x3072x768,128x768x3072,512x768x768,512x3072x768,512x768x3072"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --min-time) min_time=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --smoke) min_time=0.01; shapes="128x768x768"; shift ;;
    *) echo "bench: unknown argument '$1' (known: --threads LIST, --min-time S, --build-dir DIR, --no-build, --smoke)" >&2; exit 2 ;;
  esac
done
if ! [[ $threads =~ ^[0-9]+(,[0-9]+)*$ ]]; then
  echo "bench: --threads takes a comma-separated list of counts, e.g. 1,2 (got '$threads')" >&2
  exit 2
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "bench: python3 prints the table; install it (apt-get install python3)" >&2
  exit 1
fi

int8_target=qaware_gemm_int8_bench
float_target=qaware_gemm_bench
if [ $do_build -eq 1 ]; then
  ./scripts/setup.sh
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build_dir" -j"${QAWARE_JOBS:-$(nproc)}" --target "$int8_target" "$float_target"
fi

# A target's program, from CMake's list of targets (any generator).
program() {
  local dir
  dir=$(grep -E "/$1\.dir$" "$build_dir/CMakeFiles/TargetDirectories.txt" 2>/dev/null | head -n1 || true)
  if [ -z "$dir" ] || [ ! -x "$(dirname "$(dirname "$dir")")/$1" ]; then
    echo "bench: $1 is not built in $build_dir (benchmarks need QAWARE_BUILD_BENCHMARKS=ON and Google Benchmark)" >&2
    exit 1
  fi
  echo "$(dirname "$(dirname "$dir")")/$1"
}
int8_bench=$(program "$int8_target")
float_bench=$(program "$float_target")

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
threads_re=${threads//,/|}
echo "bench: timing ${shapes//,/ } on ${threads} thread(s), ${min_time} s per row; logs in ${out} while it runs"
QAWARE_BENCH_SHAPES=$shapes "$float_bench" \
  --benchmark_filter="^BM_GemmF32(Ours|OneDnn)/.*/threads:(${threads_re})/" \
  --benchmark_min_time="$min_time" \
  --benchmark_out="$out/float.json" --benchmark_out_format=json >"$out/float.log" 2>&1 ||
  { cat "$out/float.log" >&2; echo "bench: $float_bench failed" >&2; exit 1; }
QAWARE_BENCH_SHAPES=$shapes QAWARE_BENCH_THREADS=$threads QAWARE_BENCH_MIN_TIME=$min_time "$int8_bench" \
  --benchmark_filter='^BM_GemmF32Eigen/|^BM_GemmU8S8OneDnnZp/|^BM_GemmU8S8(Scalar|Avx2|AvxVnni|Avx512Vnni|Amx)/.*/weights:1/' \
  --benchmark_out="$out/int8.json" --benchmark_out_format=json >"$out/int8.log" 2>&1 ||
  { cat "$out/int8.log" >&2; echo "bench: $int8_bench failed" >&2; exit 1; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown")
git diff --quiet HEAD 2>/dev/null || commit="$commit + local changes"
python3 - "$out/int8.json" "$out/float.json" "$commit" "$int8_bench" "$float_bench" <<'EOF'
import json, re, sys, time

int8_file, float_file, commit, int8_bench, float_bench = sys.argv[1:6]
int8, flt = json.load(open(int8_file)), json.load(open(float_file))
ctx = int8["context"]

def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"

def cpuinfo_field(name):
    try:
        for line in open("/proc/cpuinfo"):
            if line.split(":")[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"

name_re = re.compile(r"^BM_(\w+)/M:(\d+)/N:(\d+)/K:(\d+)/threads:(\d+)/")
rows = {}  # (threads, M, N, K) -> {column: (median, best)}
def collect(doc, counter):
    for b in doc["benchmarks"]:
        m = name_re.match(b["name"])
        if not m or b.get("run_type", "iteration") != "iteration":
            continue
        kind, M, N, K, t = m.group(1), *map(int, m.groups()[1:])
        cell = rows.setdefault((t, M, N, K), {})
        if b.get("error_occurred"):
            cell[kind] = None
        elif counter + "_med" in b:
            cell[kind] = (b[counter + "_med"], b[counter + "_best"])
collect(int8, "GOPS")
collect(flt, "GFLOPS")

path_cols = [("Scalar", "scalar"), ("Avx2", "avx2"), ("AvxVnni", "avxvnni"), ("Avx512Vnni", "avx512vnni"), ("Amx", "amx")]
runnable = ctx.get("qaware_paths", "").split(",")
compiled = ctx.get("qaware_compiled_paths", "").split(",")
seen = {k for cell in rows.values() for k in cell}
paths = [(k, n) for k, n in path_cols if "GemmU8S8" + k in seen]
have_dnnl = "onednn_version" in ctx

print()
print(f"CPU: {cpu_model()} (family {cpuinfo_field('cpu family')} model {cpuinfo_field('model')}), "
      f"{ctx.get('num_cpus', '?')} CPUs; commit {commit}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
print(f"INT8 GEMM paths on this CPU: {', '.join(runnable)}; best: {ctx.get('qaware_best_path', '?')}")
for _, n in path_cols:
    if n in compiled and n not in runnable:
        print(f"  {n}: skipped, this CPU (or its OS, or QAWARE_MAX_ISA) lacks it")
    elif n == "scalar" and "GemmU8S8Scalar" not in seen:
        print("  scalar: not timed (slow; QAWARE_BENCH_SCALAR=1 adds it)")
if have_dnnl:
    print(f"oneDNN {ctx['onednn_version']}: u8s8s32 impl {ctx.get('onednn_u8s8s32_impl', '?')}, "
          f"ONEDNN_MAX_CPU_ISA={ctx.get('ONEDNN_MAX_CPU_ISA', '<unset>')}")
else:
    print("oneDNN: not found at build time (apt-get install libdnnl-dev, then rerun); its columns are empty")
print()

def cell(v):
    if v is None:
        return "skipped"
    return f"{v[0]:.0f} ({v[1]:.0f})" if v[0] >= 100 else f"{v[0]:.1f} ({v[1]:.1f})"
def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"

cols = [("Eigen FP32", "GemmF32Eigen"), ("ours FP32", "GemmF32Ours")]
if have_dnnl:
    cols.append(("oneDNN f32", "GemmF32OneDnn"))
cols += [("INT8 " + n, "GemmU8S8" + k) for k, n in paths]
if have_dnnl:
    cols.append(("oneDNN int8", "GemmU8S8OneDnnZp"))
head = ["M x N x K", "thr"] + [c for c, _ in cols] + ["INT8/FP32"]
fp32_kinds = ["GemmF32Eigen", "GemmF32Ours", "GemmF32OneDnn"]
if have_dnnl:
    head += ["ours/oneDNN med", "best"]
table = [head]
for key in sorted(rows, key=lambda k: (k[0], k[1], k[2], k[3])):
    t, M, N, K = key
    c = rows[key]
    line = [f"{M} x {N} x {K}", str(t)] + [cell(c.get(k)) if k in c else "-" for _, k in cols]
    ours = [c["GemmU8S8" + k] for k, _ in paths if c.get("GemmU8S8" + k)]
    best_ours = max(ours, key=lambda v: v[0]) if ours else None
    fp32 = [c[k] for k in fp32_kinds if c.get(k)]
    best_fp32 = max(fp32, key=lambda v: v[0]) if fp32 else None
    line.append(ratio(best_ours and best_ours[0], best_fp32 and best_fp32[0]))
    if have_dnnl:
        dnn = c.get("GemmU8S8OneDnnZp")
        line += [ratio(best_ours and best_ours[0], dnn and dnn[0]), ratio(best_ours and best_ours[1], dnn and dnn[1])]
    table.append(line)
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for r in table:
    print("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths))))
print()
print("GOPS (GFLOPS for FP32) = 2 M N K / s / 1e9 over the median call (best call in brackets); per-call clock: CPU time")
print("for one-thread INT8-program rows, wall time otherwise.")
print("INT8 = our best path on trained-like weights, A uint8 with zero point 3; oneDNN int8 = u8s8s32 matmul given")
print("the same zero point. INT8/FP32 = our best INT8 median over the row's best FP32 median; ours/oneDNN = our best")
print("INT8 over oneDNN int8, median over median and best over best. Eigen and the INT8 columns come from one process")
print("(qaware_gemm_int8_bench); ours FP32 and oneDNN f32 from qaware_gemm_bench, run just before it.")
print(f"Full benchmark programs: {int8_bench} and {float_bench} (all shapes and threads, --help);")
print("the recorded figures and how they were measured: benchmarks/RESULTS.md.")
EOF
