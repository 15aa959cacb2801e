#!/usr/bin/python3
"""Writes tests/data/autograd_composed.qfx: a tiny transformer block run in
PyTorch (float32), with its inputs, parameters, intermediate values, loss and
every gradient, for tests/autograd/composed_golden_test.cpp.

Run with Debian's PyTorch:  /usr/bin/python3 tools/gen_autograd_golden.py

The graph (B=2, T=5, C=8, NH=2 heads of HS=4, FFN F=16, vocabulary V=11,
NCLS=6 classes), written with the ops qaware has:

    x      = tok_emb[ids] + pos_emb                       embedding, broadcast add
    q,k,v  = linear(x, W, b) -> [B,T,NH,HS] -> [B,NH,T,HS]  reshape, permute
    probs  = softmax(q @ k^T / sqrt(HS) + mask)           mask [B,1,1,T], -inf at padding
    ctx    = (probs @ v) -> [B,T,NH,HS] -> [B,T,C]
    h1     = layer_norm(x + linear(ctx, Wo, bo))          residual
    h2     = layer_norm(h1 + linear(gelu(linear(h1, W1, b1)), W2, b2))
    logits = linear(h2, Wc, bc)
    loss   = cross_entropy(logits, targets, ignore_index=-100) + 0.5 * mse(h2, mse_target)

Targets at padded positions are -100 (ignored).
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qaware_fixture import FixtureWriter  # noqa: E402

B, T, C, NH, FFN, V, NCLS = 2, 5, 8, 2, 16, 11, 6
HS = C // NH
LENGTHS = [5, 3]  # valid tokens per sequence; the rest is padding
EPS = 1e-5


def main():
    torch.manual_seed(20240601)
    dt = torch.float32

    def rnd(*shape, scale=0.5, shift=0.0):
        return (torch.randn(*shape, dtype=dt) * scale + shift).requires_grad_(True)

    params = {
        "tok_emb": rnd(V, C, scale=1.0),
        "pos_emb": rnd(T, C, scale=0.3),
        "wq": rnd(C, C), "bq": rnd(C, scale=0.1),
        "wk": rnd(C, C), "bk": rnd(C, scale=0.1),
        "wv": rnd(C, C), "bv": rnd(C, scale=0.1),
        "wo": rnd(C, C), "bo": rnd(C, scale=0.1),
        "ln1_w": rnd(C, scale=0.2, shift=1.0), "ln1_b": rnd(C, scale=0.1),
        "w1": rnd(FFN, C), "b1": rnd(FFN, scale=0.1),
        "w2": rnd(C, FFN), "b2": rnd(C, scale=0.1),
        "ln2_w": rnd(C, scale=0.2, shift=1.0), "ln2_b": rnd(C, scale=0.1),
        "wc": rnd(NCLS, C), "bc": rnd(NCLS, scale=0.1),
    }
    ids = torch.randint(0, V, (B, T), dtype=torch.int64)
    valid = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(LENGTHS):
        valid[b, :n] = True
    mask = torch.zeros(B, 1, 1, T, dtype=dt)
    mask[~valid[:, None, None, :]] = float("-inf")
    targets = torch.randint(0, NCLS, (B, T), dtype=torch.int64)
    targets[~valid] = -100
    mse_target = torch.randn(B, T, C, dtype=dt)

    p = params
    x = F.embedding(ids, p["tok_emb"]) + p["pos_emb"]

    def heads(t):
        return t.reshape(B, T, NH, HS).permute(0, 2, 1, 3)

    q = heads(F.linear(x, p["wq"], p["bq"]))
    k = heads(F.linear(x, p["wk"], p["bk"]))
    v = heads(F.linear(x, p["wv"], p["bv"]))
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(HS))
    probs = torch.softmax(scores + mask, dim=-1)
    ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)
    h1 = F.layer_norm(x + F.linear(ctx, p["wo"], p["bo"]), (C,), p["ln1_w"], p["ln1_b"], EPS)
    ffn = F.linear(F.gelu(F.linear(h1, p["w1"], p["b1"])), p["w2"], p["b2"])
    h2 = F.layer_norm(h1 + ffn, (C,), p["ln2_w"], p["ln2_b"], EPS)
    logits = F.linear(h2, p["wc"], p["bc"])
    loss = F.cross_entropy(logits.reshape(-1, NCLS), targets.reshape(-1), ignore_index=-100) + 0.5 * F.mse_loss(
        h2, mse_target)

    inter = {"x": x, "probs": probs, "h1": h1, "h2": h2, "logits": logits}
    for t in inter.values():
        t.retain_grad()
    loss.backward()

    w = FixtureWriter()
    w.add("ids", ids)
    w.add("mask", mask)
    w.add("targets", targets)
    w.add("mse_target", mse_target)
    w.add("num_heads", torch.tensor(NH, dtype=torch.int64))
    w.add("eps", torch.tensor(EPS, dtype=dt))
    for name, t in params.items():
        w.add("param." + name, t)
    for name, t in inter.items():
        w.add("out." + name, t)
    w.add("loss", loss)
    for name, t in params.items():
        w.add("grad." + name, t.grad)
    for name, t in inter.items():
        w.add("grad." + name, t.grad)
    here = os.path.dirname(os.path.abspath(__file__))
    w.write(os.path.normpath(os.path.join(here, "..", "tests", "data", "autograd_composed.qfx")))


if __name__ == "__main__":
    main()
