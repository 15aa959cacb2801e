#!/usr/bin/env python3
"""The demo's default model (examples/04_bert_qat_spam.cpp) in PyTorch, timed
per training step: the speed yardstick of the demo's training step.

Same architecture and step as the demo: byte vocabulary 259, 128 positions,
one token type, embedding LayerNorm, L post-LN BERT layers (erf GELU,
dropout 0.1, LayerNorm eps 1e-12), then for --task cls the pooler (tanh) and
a 2-way classifier, for --task mlm the MLM head (dense, GELU, LayerNorm,
decoder tied to the word embeddings) with 15 % of the positions predicted.
One step = forward, cross-entropy, backward, clip_grad_norm_(1.0), AdamW
(weight decay 0.01 on matrices), a LambdaLR warmup/decay schedule. FP32
eager mode; batches of random bytes with a padding mask.

    /usr/bin/python3 tools/bench_spam_torch.py [--task cls|mlm] [--threads 2] [--steps 30]
Prints the median milliseconds per step (after --warmup steps).
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, c, h, f, p):
        super().__init__()
        self.h = h
        self.qkv = nn.ModuleList(nn.Linear(c, c) for _ in range(3))
        self.o = nn.Linear(c, c)
        self.ln1 = nn.LayerNorm(c, eps=1e-12)
        self.i = nn.Linear(c, f)
        self.out = nn.Linear(f, c)
        self.ln2 = nn.LayerNorm(c, eps=1e-12)
        self.drop = nn.Dropout(p)

    def forward(self, x, add_mask):
        b, t, c = x.shape
        d = c // self.h
        q, k, v = (lin(x).view(b, t, self.h, d).transpose(1, 2) for lin in self.qkv)
        s = q @ k.transpose(-1, -2) / math.sqrt(d) + add_mask
        a = self.drop(torch.softmax(s, dim=-1)) @ v
        a = a.transpose(1, 2).reshape(b, t, c)
        x = self.ln1(x + self.drop(self.o(a)))
        return self.ln2(x + self.drop(self.out(F.gelu(self.i(x)))))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        c = a.hidden
        self.word = nn.Embedding(259, c)
        self.pos = nn.Embedding(a.seq, c)
        self.ttype = nn.Embedding(1, c)
        self.ln = nn.LayerNorm(c, eps=1e-12)
        self.drop = nn.Dropout(0.1)
        self.layers = nn.ModuleList(Layer(c, a.heads, a.ffn, 0.1) for _ in range(a.layers))
        self.task = a.task
        if a.task == "cls":
            self.pool = nn.Linear(c, c)
            self.cls = nn.Linear(c, 2)
        else:
            self.tdense = nn.Linear(c, c)
            self.tln = nn.LayerNorm(c, eps=1e-12)
            self.bias = nn.Parameter(torch.zeros(259))

    def forward(self, ids, mask):
        t = ids.shape[1]
        x = self.word(ids) + self.pos.weight[:t] + self.ttype.weight[0]
        x = self.drop(self.ln(x))
        add = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        for layer in self.layers:
            x = layer(x, add)
        if self.task == "cls":
            return self.cls(self.drop(torch.tanh(self.pool(x[:, 0]))))
        return self.tln(F.gelu(self.tdense(x))) @ self.word.weight.t() + self.bias


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="cls", choices=["cls", "mlm"])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    m = Model(a)
    decay = [q for q in m.parameters() if q.dim() >= 2]
    no_decay = [q for q in m.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3)
    total = a.steps + a.warmup
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.0, (total - s) / total))
    ids = torch.randint(0, 256, (a.batch, a.seq))
    mask = torch.ones(a.batch, a.seq)
    for b in range(a.batch):  # a padded tail on half the rows, as short emails have
        if b % 2:
            mask[b, a.seq // 2:] = 0
            ids[b, a.seq // 2:] = 256
    ids[:, 0] = 257
    if a.task == "cls":
        labels = torch.randint(0, 2, (a.batch,))
    else:
        labels = torch.where(torch.rand(a.batch, a.seq) < 0.15, ids, torch.full_like(ids, -100))
    m.train()
    times = []
    for step in range(total):
        t0 = time.perf_counter()
        logits = m(ids, mask)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if step >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    print("pytorch %s fp32 train step: median %.2f ms (min %.2f) over %d steps, batch %d x %d, %d threads, torch %s"
          % (a.task, statistics.median(times), min(times), len(times), a.batch, a.seq, a.threads, torch.__version__))


if __name__ == "__main__":
    main()
