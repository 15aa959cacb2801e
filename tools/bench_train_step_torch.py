#!/usr/bin/python3
"""PyTorch's training step of a BERT encoder block, the yardstick for
benchmarks/train_step_bench.cpp (the same step: forward, mse loss against a
fixed target, backward, AdamW, zero_grad).

    /usr/bin/python3 tools/bench_train_step_torch.py [--hidden 768 --heads 12 --ffn 3072
        --batch 8 --seq 128] [--threads 1 2] [--steps 3] [--modes fp32 qat]

The block is Hugging Face's BertLayer (post-LN, GELU, dropout 0.1 on the
attention probabilities and both residual branches, LayerNorm eps 1e-12),
with an additive padding mask (the last eighth of the second sequence
padded). QAT puts torch.ao.quantization FakeQuantize modules where qaware's
QAT block has them (the seed-style points):
  weights      FakeQuantize(MovingAveragePerChannelMinMaxObserver, averaging_constant=1,
               qint8, per_channel_symmetric, ch_axis=0)
  linear inputs and attention scores (before the mask and softmax)
               FakeQuantize(MovingAverageMinMaxObserver, quint8, per_tensor_affine)
Observers stay on (as during training). Each (mode, threads) runs one warm-up
step and then --steps timed steps; the script prints every step and the
median wall-clock and process CPU time per step.

BLAS: Debian's torch does its float GEMMs through libblas.so.3, i.e. whichever
BLAS update-alternatives selects. The reference BLAS (libblas3) runs at about
3.5 GFLOPS and makes a step take ~15 s; install libopenblas0-pthread for a fair
yardstick (`scripts/setup.sh --yardsticks` installs it with python3-torch). torch.set_num_threads does not reach OpenBLAS's own thread pool, so
this script calls openblas_set_num_threads as well, and prints the BLAS it found
and a 1024x768x768 GEMM's GFLOPS at each thread count.
"""

import argparse
import ctypes
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver


def act_fq():
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


def weight_fq():
    return FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0, quant_min=-128,
                        quant_max=127, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)


class QLinear(nn.Linear):
    def __init__(self, i, o, qat):
        super().__init__(i, o)
        nn.init.normal_(self.weight, std=0.02)
        nn.init.zeros_(self.bias)
        self.qat = qat
        if qat:
            self.input_fake_quant = act_fq()
            self.weight_fake_quant = weight_fq()

    def forward(self, x):
        if self.qat:
            return F.linear(self.input_fake_quant(x), self.weight_fake_quant(self.weight), self.bias)
        return F.linear(x, self.weight, self.bias)


class Block(nn.Module):
    def __init__(self, C, NH, FF, qat, p=0.1):
        super().__init__()
        self.C, self.NH, self.HS, self.p, self.qat = C, NH, C // NH, p, qat
        self.query, self.key, self.value, self.dense = (QLinear(C, C, qat) for _ in range(4))
        self.ln1 = nn.LayerNorm(C, eps=1e-12)
        self.inter = QLinear(C, FF, qat)
        self.out = QLinear(FF, C, qat)
        self.ln2 = nn.LayerNorm(C, eps=1e-12)
        if qat:
            self.scores_fake_quant = act_fq()

    def forward(self, x, ext_mask):
        B, T, C = x.shape

        def heads(t):
            return t.reshape(B, T, self.NH, self.HS).permute(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.HS))
        if self.qat:
            scores = self.scores_fake_quant(scores)
        probs = F.dropout(torch.softmax(scores + ext_mask, dim=-1), self.p, self.training)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)
        h = self.ln1(F.dropout(self.dense(ctx), self.p, self.training) + x)
        o = F.dropout(self.out(F.gelu(self.inter(h))), self.p, self.training)
        return self.ln2(o + h)


def blas_library():
    """The process's libblas.so.3 (the one torch calls), or None."""
    try:
        return ctypes.CDLL("libblas.so.3")
    except OSError:
        return None


def set_threads(threads):
    torch.set_num_threads(threads)
    lib = blas_library()
    if lib is not None and hasattr(lib, "openblas_set_num_threads"):
        lib.openblas_set_num_threads(ctypes.c_int(threads))


def gemm_gflops():
    a, b = torch.randn(1024, 768), torch.randn(768, 768)
    for _ in range(3):
        a @ b
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2.0 * 1024 * 768 * 768 * reps / (time.perf_counter() - t) / 1e9


def run(mode, threads, a):
    set_threads(threads)
    torch.manual_seed(1)
    block = Block(a.hidden, a.heads, a.ffn, mode == "qat").train()
    opt = torch.optim.AdamW(block.parameters())
    x = torch.randn(a.batch, a.seq, a.hidden)
    target = torch.randn(a.batch, a.seq, a.hidden)
    mask = torch.ones(a.batch, a.seq)
    if a.batch > 1:
        mask[1, a.seq - a.seq // 8:] = 0
    ext = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
    walls, cpus = [], []
    for step in range(a.steps + 1):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = F.mse_loss(block(x, ext), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        w1, c1 = time.perf_counter(), time.process_time()
        tag = "warm-up" if step == 0 else f"step {step}"
        print(f"  {mode} threads={threads} {tag}: wall {w1 - w0:.3f} s, cpu {c1 - c0:.3f} s, loss {loss.item():.5f}",
              flush=True)
        if step > 0:
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--ffn", type=int, default=3072)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--modes", nargs="+", default=["fp32", "qat"])
    a = ap.parse_args()
    print(f"torch {torch.__version__}; block C={a.hidden} NH={a.heads} FF={a.ffn}, batch {a.batch} x {a.seq}")
    cfg = torch.__config__.show()
    blas = [line.strip() for line in cfg.splitlines() if "BLAS_INFO" in line or "MKL" in line]
    print("build: " + (" | ".join(blas)[:300] if blas else "?"))
    lib = blas_library()
    kind = "none found"
    if lib is not None:
        kind = "OpenBLAS" if hasattr(lib, "openblas_set_num_threads") else "not OpenBLAS (reference BLAS?)"
    print(f"libblas.so.3: {kind}")
    for threads in a.threads:
        set_threads(threads)
        print(f"  float GEMM 1024x768x768, {threads} thread(s): {gemm_gflops():.1f} GFLOPS")
    results = {}
    for threads in a.threads:
        for mode in a.modes:
            results[(mode, threads)] = run(mode, threads, a)
    print("\nmedian per step (wall / process cpu):")
    for (mode, threads), (w, c) in results.items():
        print(f"  {mode:4s} threads={threads}: {w:.3f} s / {c:.3f} s")


if __name__ == "__main__":
    main()
