#!/usr/bin/python3
"""PyTorch's inference of a BERT encoder block, the yardstick for
benchmarks/deploy_bench.cpp (BM_BlockInt8 / BM_BlockFp32): FP32 eval and
torch.ao.quantization.quantize_dynamic INT8 (its nn.Linear layers become
dynamically quantized qint8 linears; the rest stays float), on every
quantized engine this torch build offers.

    /usr/bin/python3 tools/bench_deploy_torch.py [--batch 8 --seq 128] [--threads 1 2] [--reps 10]

The block is Hugging Face's BertLayer structure (post-LN, erf GELU,
LayerNorm eps 1e-12, hidden 768, 12 heads, FFN 3072), in eval mode under
torch.inference_mode(), on normal(0, 1) inputs without padding. Each
(mode, engine, threads) runs two warm-up forwards and then --reps timed ones;
the script prints the median and the best wall-clock time per forward.

BLAS: as tools/bench_train_step_torch.py, Debian's torch does its float
GEMMs through libblas.so.3: install libopenblas0-pthread
(`scripts/setup.sh --yardsticks`); the script calls openblas_set_num_threads
with torch.set_num_threads and prints what it found.
"""

import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_train_step_torch import blas_library, set_threads


class Block(nn.Module):
    def __init__(self, C=768, NH=12, FF=3072):
        super().__init__()
        self.C, self.NH, self.HS = C, NH, C // NH
        self.query, self.key, self.value, self.dense = (nn.Linear(C, C) for _ in range(4))
        self.ln1 = nn.LayerNorm(C, eps=1e-12)
        self.inter = nn.Linear(C, FF)
        self.out = nn.Linear(FF, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-12)
        for m in (self.query, self.key, self.value, self.dense, self.inter, self.out):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        B, T, C = x.shape

        def heads(t):
            return t.reshape(B, T, self.NH, self.HS).permute(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.HS))
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)
        h = self.ln1(self.dense(ctx) + x)
        return self.ln2(self.out(F.gelu(self.inter(h))) + h)


def time_forward(model, x, reps):
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 1])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    lib = blas_library()
    kind = "none found"
    if lib is not None:
        kind = "OpenBLAS" if hasattr(lib, "openblas_set_num_threads") else "not OpenBLAS (reference BLAS?)"
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    print(f"torch {torch.__version__}; libblas.so.3: {kind}; quantized engines: {', '.join(engines)}")
    torch.manual_seed(1)
    fp32 = Block().eval()
    rows = []
    for threads in a.threads:
        set_threads(threads)
        for batch in a.batch:
            x = torch.randn(batch, a.seq, 768)
            med, best = time_forward(fp32, x, a.reps)
            rows.append(("fp32", "-", threads, batch, med, best))
            print(f"  fp32            threads={threads} batch {batch}x{a.seq}: median {med * 1e3:.2f} ms, best {best * 1e3:.2f} ms",
                  flush=True)
            for engine in engines:
                torch.backends.quantized.engine = engine
                q = torch.ao.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
                med, best = time_forward(q, x, a.reps)
                rows.append(("dynamic int8", engine, threads, batch, med, best))
                print(f"  dynamic int8 {engine:8s} threads={threads} batch {batch}x{a.seq}: median {med * 1e3:.2f} ms, "
                      f"best {best * 1e3:.2f} ms", flush=True)
    print("\nmode, engine, threads, batch, median ms, best ms")
    for r in rows:
        print(f"{r[0]}, {r[1]}, {r[2]}, {r[3]}, {r[4] * 1e3:.2f}, {r[5] * 1e3:.2f}")


if __name__ == "__main__":
    main()
