#!/usr/bin/python3
"""Paired rounds of INT8 inference: ours against PyTorch, back to back.

    /usr/bin/python3 tools/pair_deploy.py [--rounds 5] [--build build] [--threads 1 2]

Each round runs benchmarks/deploy_bench.cpp's BERT-base block cases
(BM_BlockInt8 and BM_BlockFp32 at batch 8 x 128 and 1 x 128) and then
tools/bench_deploy_torch.py (FP32 eval and quantize_dynamic INT8 on each
quantized engine), and prints, per round, the times and the ratios
PyTorch FP32 / ours INT8 and PyTorch dynamic INT8 / ours INT8 (how many
times faster ours is), then the median and range of each ratio over the
rounds. Times are medians within a run (ours: Google Benchmark's mean of
one run of --benchmark_min_time; PyTorch: median of --reps forwards).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def ours(build, threads):
    prog = os.path.join(build, "benchmarks", "qaware_deploy_bench")
    flt = "BM_Block(Int8|Fp32)/C:768/NH:12/FF:3072/B:(8|1)/T:128/threads:(" + "|".join(map(str, threads)) + ")/"
    out = subprocess.run([prog, "--benchmark_filter=" + flt, "--benchmark_format=json", "--benchmark_min_time=1"],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        m = re.match(r"BM_Block(Int8|Fp32)/.*B:(\d+)/T:128/threads:(\d+)", b["name"])
        res[("ours " + m.group(1).lower(), int(m.group(2)), int(m.group(3)))] = b["real_time"]  # ms
    return res


def torch_times(threads):
    out = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "bench_deploy_torch.py"), "--threads",
                          *map(str, threads), "--reps", "10"], capture_output=True, text=True, check=True).stdout
    res = {}
    rows = out.split("mode, engine, threads, batch, median ms, best ms")[1].strip().splitlines()
    for line in rows:
        mode, engine, th, batch, med, _best = [s.strip() for s in line.split(",")]
        key = "torch fp32" if mode == "fp32" else "torch int8 " + engine
        res[(key, int(batch), int(th))] = float(med)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    ratios = {}
    for r in range(a.rounds):
        t = ours(a.build, a.threads)
        t.update(torch_times(a.threads))
        for th in a.threads:
            for batch in (8, 1):
                mine = t[("ours int8", batch, th)]
                line = [f"round {r + 1} threads {th} batch {batch}x128: ours int8 {mine:.2f} ms, ours fp32 "
                        f"{t[('ours fp32', batch, th)]:.2f} ms"]
                for key in sorted(k for k in t if k[1] == batch and k[2] == th and k[0].startswith("torch")):
                    ratio = t[key] / mine
                    ratios.setdefault((key[0], batch, th), []).append(ratio)
                    line.append(f"{key[0]} {t[key]:.2f} ms ({ratio:.2f}x)")
                print(", ".join(line), flush=True)
    print("\nPyTorch time / ours INT8 time (how many times faster ours is), median (min-max):")
    for (name, batch, th), v in sorted(ratios.items()):
        print(f"  {name:22s} batch {batch}x128 threads {th}: {statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})")


if __name__ == "__main__":
    sys.exit(main())
