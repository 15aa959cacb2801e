#!/usr/bin/python3
"""Writes a tiny BERT for tests/nn/bert_golden_test.cpp:

  tests/data/nn_bert_tiny.safetensors  a BertModel state dict (float32) under the
                                       exact names transformers' BertModel uses
                                       (plus the embeddings.position_ids buffer
                                       older transformers versions save)
  tests/data/nn_bert_tiny.qfx          inputs, the head parameters, the outputs,
                                       the loss and every gradient

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/gen_bert_golden.py
(transformers is not installed: the names are written by hand, following
modeling_bert.py's module tree; the computation is BertModel's, written with
torch.nn.functional.)

Model: vocabulary 40, hidden 32, 2 layers, 2 heads, FFN 64, 16 positions,
2 token types, LayerNorm eps 1e-12, GELU (erf), no dropout; batch 2 x 6
tokens, the second sequence padded after 4 (attention_mask 0/1, made
additive as (1 - mask) * finfo(float32).min). Heads:
  MLM (BertLMPredictionHead, "cls.predictions"): gelu(dense), LayerNorm, then
      logits = h @ word_embeddings^T + bias (tied decoder);
  classifier ("classifier"): logits = pooled @ W^T + b, pooled = tanh(dense(seq[:, 0])).
loss = cross_entropy(mlm logits, mlm_labels, ignore_index=-100) + cross_entropy(cls logits, labels).
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_safetensors_golden import spec_serialize  # noqa: E402
from qaware_fixture import FixtureWriter  # noqa: E402

V, C, L, NH, FF, P, TT = 40, 32, 2, 2, 64, 16, 2
HS = C // NH
B, T = 2, 6
LENGTHS = [6, 4]
NLABELS = 3
EPS = 1e-12


def model_params(g):
    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    p = {
        "embeddings.word_embeddings.weight": rnd(V, C, std=0.5),
        "embeddings.position_embeddings.weight": rnd(P, C),
        "embeddings.token_type_embeddings.weight": rnd(TT, C),
        "embeddings.LayerNorm.weight": 1.0 + rnd(C, std=0.1),
        "embeddings.LayerNorm.bias": rnd(C, std=0.1),
    }
    for i in range(L):
        pre = f"encoder.layer.{i}."
        for lin, (o, n) in {"attention.self.query": (C, C), "attention.self.key": (C, C),
                            "attention.self.value": (C, C), "attention.output.dense": (C, C),
                            "intermediate.dense": (FF, C), "output.dense": (C, FF)}.items():
            p[pre + lin + ".weight"] = rnd(o, n, std=1.0 / math.sqrt(n))
            p[pre + lin + ".bias"] = rnd(o, std=0.1)
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
            p[pre + ln + ".weight"] = 1.0 + rnd(C, std=0.1)
            p[pre + ln + ".bias"] = rnd(C, std=0.1)
    p["pooler.dense.weight"] = rnd(C, C, std=1.0 / math.sqrt(C))
    p["pooler.dense.bias"] = rnd(C, std=0.1)
    return p


def head_params(g):
    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    return {
        "cls.predictions.transform.dense.weight": rnd(C, C, std=1.0 / math.sqrt(C)),
        "cls.predictions.transform.dense.bias": rnd(C, std=0.1),
        "cls.predictions.transform.LayerNorm.weight": 1.0 + rnd(C, std=0.1),
        "cls.predictions.transform.LayerNorm.bias": rnd(C, std=0.1),
        "cls.predictions.bias": rnd(V, std=0.1),
        "classifier.weight": rnd(NLABELS, C, std=1.0 / math.sqrt(C)),
        "classifier.bias": rnd(NLABELS, std=0.1),
    }


def bert(p, ids, types, mask):
    e = F.embedding(ids, p["embeddings.word_embeddings.weight"]) + F.embedding(
        types, p["embeddings.token_type_embeddings.weight"])
    e = e + F.embedding(torch.arange(T), p["embeddings.position_embeddings.weight"])
    h = F.layer_norm(e, (C,), p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], EPS)
    ext = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min

    def heads(t):
        return t.reshape(B, T, NH, HS).permute(0, 2, 1, 3)

    for i in range(L):
        pre = f"encoder.layer.{i}."

        def lin(name, x):
            return F.linear(x, p[pre + name + ".weight"], p[pre + name + ".bias"])

        q, k, v = (heads(lin(n, h)) for n in ["attention.self.query", "attention.self.key", "attention.self.value"])
        probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(HS)) + ext, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)
        a = F.layer_norm(lin("attention.output.dense", ctx) + h, (C,), p[pre + "attention.output.LayerNorm.weight"],
                         p[pre + "attention.output.LayerNorm.bias"], EPS)
        o = lin("output.dense", F.gelu(lin("intermediate.dense", a)))
        h = F.layer_norm(o + a, (C,), p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], EPS)
    pooled = torch.tanh(F.linear(h[:, 0], p["pooler.dense.weight"], p["pooler.dense.bias"]))
    return h, pooled


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(20240607)
    mp = {k: v.float().requires_grad_(True) for k, v in model_params(g).items()}
    hp = {k: v.float().requires_grad_(True) for k, v in head_params(g).items()}
    ids = torch.randint(0, V, (B, T), generator=g)
    types = torch.randint(0, TT, (B, T), generator=g)
    mask = torch.zeros(B, T)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1.0
    mlm_labels = torch.full((B, T), -100, dtype=torch.int64)
    mlm_labels[0, 1], mlm_labels[0, 4], mlm_labels[1, 2] = 7, 19, 33
    labels = torch.tensor([2, 0], dtype=torch.int64)

    seq, pooled = bert(mp, ids, types, mask)
    t = F.gelu(F.linear(seq, hp["cls.predictions.transform.dense.weight"], hp["cls.predictions.transform.dense.bias"]))
    t = F.layer_norm(t, (C,), hp["cls.predictions.transform.LayerNorm.weight"],
                     hp["cls.predictions.transform.LayerNorm.bias"], EPS)
    mlm_logits = F.linear(t, mp["embeddings.word_embeddings.weight"], hp["cls.predictions.bias"])
    cls_logits = F.linear(pooled, hp["classifier.weight"], hp["classifier.bias"])
    loss = F.cross_entropy(mlm_logits.reshape(-1, V), mlm_labels.reshape(-1), ignore_index=-100) + F.cross_entropy(
        cls_logits, labels)
    loss.backward()

    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.normpath(os.path.join(here, "..", "tests", "data"))
    st = {k: v.detach() for k, v in mp.items()}
    st["embeddings.position_ids"] = torch.arange(P, dtype=torch.int64)[None, :]
    blob = spec_serialize(st, {"format": "pt"})
    path = os.path.join(data, "nn_bert_tiny.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(blob)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {len(st)} tensors, {len(blob)} bytes")

    w = FixtureWriter()
    for name, v in [("ids", ids), ("token_type_ids", types), ("attention_mask", mask), ("mlm_labels", mlm_labels),
                    ("labels", labels)]:
        w.add(name, v)
    for k, v in hp.items():
        w.add("head." + k, v)
    w.add("sequence_output", seq)
    w.add("pooled_output", pooled)
    w.add("mlm_logits", mlm_logits)
    w.add("cls_logits", cls_logits)
    w.add("loss", loss)
    for k, v in list(mp.items()) + list(hp.items()):
        w.add("grad." + k, v.grad)
    w.write(os.path.join(data, "nn_bert_tiny.qfx"))


if __name__ == "__main__":
    main()
