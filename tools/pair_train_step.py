#!/usr/bin/python3
"""Paired rounds of the training-step comparison of issue #5 (benchmarks/RESULTS.md):
each round runs our Google Benchmark program for the BERT-base block, then PyTorch's
step (tools/bench_train_step_torch.py), back to back, and the ratios are taken within
the round, so that the shared host's drift between minutes cancels as far as it can.

    /usr/bin/python3 tools/pair_train_step.py --rounds 14 [--log pairs.log]
    /usr/bin/python3 tools/pair_train_step.py --parse pairs.log [more.log ...]

Each round prints a progress line; at the end come the RESULTS.md table rows (round
time, threads, ours FP32 / QAT, PyTorch FP32 / QAT in seconds per step, ours QAT /
PyTorch QAT, ours QAT / ours FP32) and a summary per thread count: the median, range
and count of rounds at or below the 0.6x target of ours QAT / PyTorch QAT, and the
range of ours QAT / ours FP32 (target <= 1.2x). --log keeps both programs' raw output,
round by round; --parse summarises such logs again (several runs together).

Ours: the median of 3 repetitions of at least 2 s each (the benchmark's own
aggregate). PyTorch: the median of --steps steps after one warm-up step. Both with
1 and 2 threads. Needs the Release build (build/benchmarks/qaware_train_step_bench)
and Debian's python3-torch with libopenblas0-pthread (scripts/setup.sh --yardsticks).
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_RE = re.compile(r"BM_TrainStep(FP32|QAT)/C:768/NH:12/FF:3072/B:8/T:128/threads:(\d)/real_time_median\s+([\d.]+) ms")
TORCH_RE = re.compile(r"(fp32|qat)\s+threads=(\d): ([\d.]+) s")
ROUND_RE = re.compile(r"^### round \d+ (\d\d:\d\d)", re.M)


def run(cmd):
    """Runs cmd and returns its output; exits with a message naming it when it fails."""
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    except OSError as e:
        sys.exit(f"pair_train_step: cannot run {cmd[0]}: {e}")
    if done.returncode != 0:
        sys.exit(f"pair_train_step: {' '.join(cmd)} exited with {done.returncode}:\n{done.stdout[-2000:]}")
    return done.stdout


def parse_round(text, when):
    """The rows (when, threads, ours fp32, ours qat, torch fp32, torch qat) of one round's output."""
    ours = {(m.group(1).lower(), int(m.group(2))): float(m.group(3)) / 1000 for m in OURS_RE.finditer(text)}
    torch = {(m.group(1), int(m.group(2))): float(m.group(3)) for m in TORCH_RE.finditer(text)}
    rows = []
    for threads in (1, 2):
        keys = [("fp32", threads), ("qat", threads)]
        if all(k in ours for k in keys) and all(k in torch for k in keys):
            rows.append((when, threads, ours[keys[0]], ours[keys[1]], torch[keys[0]], torch[keys[1]]))
    return rows


def parse_logs(paths):
    rows = []
    for path in paths:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError as e:
            sys.exit(f"pair_train_step: cannot read {path}: {e}")
        marks = list(ROUND_RE.finditer(text))
        if not marks:
            sys.exit(f"pair_train_step: {path} holds no '### round' records (not a log of this script?)")
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            rows += parse_round(text[m.end():end], m.group(1))
    return rows


def report(rows):
    for threads in (1, 2):
        rs = [r for r in rows if r[1] == threads]
        for when, _, of, oq, tf, tq in rs:
            print(f"| {when} | {threads} | {of:.3f} | {oq:.3f} | {tf:.3f} | {tq:.3f} | **{oq / tq:.2f}** | {oq / of:.2f} |")
    print()
    for threads in (1, 2):
        rs = [r for r in rows if r[1] == threads]
        if not rs:
            continue
        ratio = [r[3] / r[5] for r in rs]
        overhead = [r[3] / r[2] for r in rs]
        print(f"{threads} thread(s), {len(rs)} rounds: ours QAT / PyTorch QAT median {statistics.median(ratio):.3f} "
              f"({min(ratio):.3f}-{max(ratio):.3f}), {sum(x <= 0.6 for x in ratio)} of {len(rs)} at or below 0.600; "
              f"ours QAT / ours FP32 {min(overhead):.2f}-{max(overhead):.2f}; "
              f"ours QAT {statistics.median(r[3] for r in rs):.3f} s, PyTorch QAT {statistics.median(r[5] for r in rs):.3f} s "
              f"(medians)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--steps", type=int, default=5, help="PyTorch's timed steps per round")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "benchmarks", "qaware_train_step_bench"))
    ap.add_argument("--python", default="/usr/bin/python3", help="the interpreter with Debian's torch")
    ap.add_argument("--log", help="append both programs' output, round by round, to this file")
    ap.add_argument("--parse", nargs="+", metavar="LOG", help="summarise logs of earlier runs instead of measuring")
    a = ap.parse_args()
    if a.parse:
        report(parse_logs(a.parse))
        return
    if a.rounds < 1 or a.steps < 1:
        sys.exit(f"pair_train_step: --rounds ({a.rounds}) and --steps ({a.steps}) must be at least 1")
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"pair_train_step: {a.bench} is not an executable; build first (cmake --build build)")
    ours_cmd = [a.bench, "--benchmark_filter=C:768", "--benchmark_repetitions=3", "--benchmark_min_time=2",
                "--benchmark_report_aggregates_only=true"]
    torch_cmd = [a.python, os.path.join(ROOT, "tools", "bench_train_step_torch.py"), "--steps", str(a.steps)]
    log = open(a.log, "a", encoding="utf-8") if a.log else None
    rows = []
    for i in range(1, a.rounds + 1):
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M")
        text = run(ours_cmd) + run(torch_cmd)
        if log:
            log.write(f"### round {i} {when}:00\n{text}")
            log.flush()
        got = parse_round(text, when)
        if len(got) != 2:
            sys.exit(f"pair_train_step: round {i}: could not read both programs' figures from:\n{text[-3000:]}")
        rows += got
        one = got[0]
        print(f"round {i}/{a.rounds} {when} UTC: 1 thread ours QAT {one[3]:.3f} s, PyTorch QAT {one[5]:.3f} s, "
              f"ratio {one[3] / one[5]:.2f}", flush=True)
    print()
    report(rows)


if __name__ == "__main__":
    main()
