#!/usr/bin/python3
"""Writes the QATTransformerBlock goldens for tests/nn/block_golden_test.cpp:

  tests/data/nn_block_params.qfx   inputs, mask, target, parameters, quantization parameters
  tests/data/nn_block_off.qfx      quantization off (FP32): output, loss, every gradient
  tests/data/nn_block_fixed.qfx    fake quantization with fixed scales / zero points
  tests/data/nn_block_lsq.qfx      learnable (LSQ) scales and zero points

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/gen_block_golden.py

The block is Hugging Face's BertLayer (post-LN), written here with torch's
functional ops and torch's own fake-quantization ops at the points where
qaware's block (BlockConfig with every quantization switch on) puts them:

    for lin in query, key, value, attention.output.dense, intermediate.dense, output.dense:
        lin(x) = F.linear(fq_act(x, lin.input_fake_quant), fq_w(W, lin.weight_fake_quant), b)
    q, k, v = fq(query(x)), fq(key(x)), fq(value(x))        attention.self.{q,k,v}_fake_quant
    scores  = fq((q_h @ k_h^T) * (1 / sqrt(HS)))           attention.self.scores_fake_quant
    probs   = fq(softmax(scores + mask))                   attention.self.probs_fake_quant
    a       = attention.output.dense(merge(probs @ v_h))
    h       = fq(LayerNorm(a + x))                         attention.output.LayerNorm.output_fake_quant
    g       = fq(gelu(intermediate.dense(h)))              intermediate.intermediate_act_fn.output_fake_quant
    y       = fq(LayerNorm(output.dense(g) + h))           output.LayerNorm.output_fake_quant
    loss    = mse_loss(y, target)

Weights: torch.fake_quantize_per_channel_affine (int8 symmetric, axis 0);
activations: torch.fake_quantize_per_tensor_affine (uint8 affine). LSQ mode:
torch._fake_quantize_learnable_per_channel_affine / _per_tensor_affine with
grad_factor = 1 / sqrt(numel * quant_max). Mask: [B, T] of 0/1 made additive
as (1 - mask) * finfo(float32).min, at [B, 1, 1, T].

Why the float32 comparison is meaningful despite rounding. A fake-quantized
element can round the other way when two implementations sum in different
orders. This golden avoids that, and checks that it did:
  * every scale is a power of two, weights are multiples of 2^-9 and biases
    multiples of 2^-6, so the products of fake-quantized operands (every GEMM
    here: the six linears, q k^T, probs v) are sums of integers times a
    power of two, below 2^24 units: exact in float32 in any summation
    order (asserted below). Everything up to the first non-exact op agrees
    bit for bit;
  * the non-exact ops (softmax, LayerNorm, GELU) differ between torch and
    qaware by a few ulps; the points right after them are checked here:
    every element lies at least MARGIN = 2^-12 quantization steps away from
    a rounding boundary (x / scale at k + 1/2). A few ulps are ~1e-5 steps
    at these magnitudes, so both sides round every element the same way.
    Seeds are tried in order until one passes; the one used is recorded.
Some weight channels and two activation points get half the scale their
range needs, so clamping (and the STE mask, and LSQ's clamp terms) is
exercised too.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qaware_fixture import FixtureWriter  # noqa: E402

B, T, C, NH, FF = 2, 8, 64, 4, 256
HS = C // NH
LENGTHS = [8, 5]
EPS = 1e-12
MARGIN = 2.0 ** -12
LINEARS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense"]
SHAPES = {"attention.self.query": (C, C), "attention.self.key": (C, C), "attention.self.value": (C, C),
          "attention.output.dense": (C, C), "intermediate.dense": (FF, C), "output.dense": (C, FF)}
# Activation points whose input comes out of a non-exact op (checked for margins).
FRAGILE = ["attention.self.probs_fake_quant", "attention.output.LayerNorm.output_fake_quant",
           "intermediate.intermediate_act_fn.output_fake_quant", "output.LayerNorm.output_fake_quant"]
# Activation points given half the scale their range needs (some clamping).
TIGHT = ["attention.self.scores_fake_quant", "intermediate.intermediate_act_fn.output_fake_quant"]
W_QMIN, W_QMAX, A_QMIN, A_QMAX = -128, 127, 0, 255


def pow2_at_least(v):
    return 2.0 ** math.ceil(math.log2(v))


def make_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float32
    x = torch.randn(B, T, C, generator=g, dtype=dt)
    target = torch.randn(B, T, C, generator=g, dtype=dt)
    mask = torch.zeros(B, T, dtype=dt)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1.0
    params, wint = {}, {}
    for name in LINEARS:
        out_f, in_f = SHAPES[name]
        std = 1.0 / math.sqrt(in_f)
        k = torch.clamp(torch.round(torch.randn(out_f, in_f, generator=g) * std / 2.0 ** -9), -127, 127)
        wint[name] = k.to(torch.int8)
        params[name + ".weight"] = (k * 2.0 ** -9).to(dt)
        params[name + ".bias"] = (torch.round(torch.randn(out_f, generator=g) * 0.1 * 64) / 64).to(dt)
    for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
        params[ln + ".weight"] = (1.0 + 0.2 * torch.randn(C, generator=g)).to(dt)
        params[ln + ".bias"] = (0.1 * torch.randn(C, generator=g)).to(dt)
    return x, target, mask, params, wint


def weight_qparams(w, name):
    amax = w.abs().amax(dim=1)
    scale = torch.tensor([pow2_at_least(float(a) / 127.0) for a in amax], dtype=torch.float32)
    scale[0::4] /= 2  # every fourth channel clamps its largest weights
    return scale, torch.zeros(w.shape[0], dtype=torch.int32)


def act_qparams(x, name):
    if name == "attention.self.probs_fake_quant":
        return 2.0 ** -8, 0
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    s = pow2_at_least((hi - lo) / 255.0)
    if name in TIGHT:
        s /= 2
    zp = int(min(max(round(-lo / s), A_QMIN), A_QMAX))
    return s, zp


class Block:
    """The block with a mode: 'off', 'calibrate' (choose qparams), 'fixed', 'lsq'."""

    def __init__(self, params, qp, mode):
        self.p, self.qp, self.mode = params, qp, mode
        self.margins = {}
        self.lsq = {}  # point -> (scale, zero_point) leaf tensors (LSQ mode)
        if mode == "lsq":
            for name, (s, z) in qp.items():
                self.lsq[name] = (s.clone().detach().float().reshape(-1).requires_grad_(True),
                                  z.clone().detach().float().reshape(-1).requires_grad_(True))

    def act(self, name, x):
        if self.mode == "off":
            return x
        if self.mode == "calibrate":
            s, zp = act_qparams(x.detach(), name)
            self.qp[name] = (torch.tensor([s], dtype=torch.float32), torch.tensor([zp], dtype=torch.int32))
        s, zp = float(self.qp[name][0][0]), int(self.qp[name][1][0])
        if name in FRAGILE:
            v = x.detach().double() * (1.0 / s)  # exact: s is a power of two
            self.margins[name] = float((v - torch.floor(v) - 0.5).abs().min())
        if self.mode == "lsq":
            ls, lz = self.lsq[name]
            gf = 1.0 / math.sqrt(x.numel() * A_QMAX)
            return torch._fake_quantize_learnable_per_tensor_affine(x, ls, lz, A_QMIN, A_QMAX, gf)
        return torch.fake_quantize_per_tensor_affine(x, s, zp, A_QMIN, A_QMAX)

    def weight(self, name, w):
        if self.mode == "off":
            return w
        if self.mode == "calibrate":
            self.qp[name] = weight_qparams(w.detach(), name)
        s, zp = self.qp[name]
        if self.mode == "lsq":
            ls, lz = self.lsq[name]
            gf = 1.0 / math.sqrt(w.numel() * W_QMAX)
            return torch._fake_quantize_learnable_per_channel_affine(w, ls, lz, 0, W_QMIN, W_QMAX, gf)
        return torch.fake_quantize_per_channel_affine(w, s, zp, 0, W_QMIN, W_QMAX)

    def linear(self, name, x):
        xq = self.act(name + ".input_fake_quant", x)
        wq = self.weight(name + ".weight_fake_quant", self.p[name + ".weight"])
        return F.linear(xq, wq, self.p[name + ".bias"])

    def forward(self, x, mask):
        p = self.p

        def heads(t):
            return t.reshape(B, T, NH, HS).permute(0, 2, 1, 3)

        q = heads(self.act("attention.self.q_fake_quant", self.linear("attention.self.query", x)))
        k = heads(self.act("attention.self.k_fake_quant", self.linear("attention.self.key", x)))
        v = heads(self.act("attention.self.v_fake_quant", self.linear("attention.self.value", x)))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(HS))
        scores = self.act("attention.self.scores_fake_quant", scores)
        ext = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        probs = torch.softmax(scores + ext, dim=-1)
        probs = self.act("attention.self.probs_fake_quant", probs)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(B, T, C)
        a = self.linear("attention.output.dense", ctx)
        h = F.layer_norm(a + x, (C,), p["attention.output.LayerNorm.weight"], p["attention.output.LayerNorm.bias"], EPS)
        h = self.act("attention.output.LayerNorm.output_fake_quant", h)
        g = F.gelu(self.linear("intermediate.dense", h))
        g = self.act("intermediate.intermediate_act_fn.output_fake_quant", g)
        o = self.linear("output.dense", g)
        y = F.layer_norm(o + h, (C,), p["output.LayerNorm.weight"], p["output.LayerNorm.bias"], EPS)
        return self.act("output.LayerNorm.output_fake_quant", y)


def check_exactness(qp, params):
    """The GEMMs of fake-quantized operands stay below 2^24 units (see the module doc):
    |q - zp| <= 255 for activations, |q| <= 128 for weights, biases on the 2^-6 grid."""
    for name in LINEARS:
        out_f, in_f = SHAPES[name]
        s_in = float(qp[name + ".input_fake_quant"][0][0])
        bmax = float(params[name + ".bias"].abs().max())
        for s_w in qp[name + ".weight_fake_quant"][0].tolist():
            unit = s_in * s_w
            assert 2.0 ** -6 / unit == round(2.0 ** -6 / unit), f"{name}: bias grid 2^-6 is not a multiple of {unit}"
            assert in_f * 255 * 128 + bmax / unit < 2 ** 24, f"{name}: products may exceed 2^24 units"
    assert HS * 255 * 255 < 2 ** 24 and T * 255 * 255 < 2 ** 24


def run(mode, x0, target, mask, params, qp):
    x = x0.clone().requires_grad_(True)
    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    blk = Block(leaves, qp, mode)
    y = blk.forward(x, mask)
    loss = F.mse_loss(y, target)
    loss.backward()
    grads = {n: t.grad for n, t in leaves.items()}
    grads["input"] = x.grad
    for name, (ls, lz) in blk.lsq.items():
        grads[name + ".scale"] = ls.grad
        grads[name + ".zero_point"] = lz.grad
    return y.detach(), loss.detach(), grads, blk.margins


def main():
    torch.set_num_threads(1)
    for seed in range(1, 400):
        x, target, mask, params, wint = make_inputs(seed)
        qp = {}
        with torch.no_grad():
            Block(params, qp, "calibrate").forward(x, mask)
        check_exactness(qp, params)
        _, _, _, margins = run("fixed", x, target, mask, params, qp)
        worst = min(margins.values())
        if worst >= MARGIN:
            break
        print(f"seed {seed}: smallest margin {worst:.2e} steps < {MARGIN:.2e}, trying the next seed")
    else:
        raise SystemExit("no seed passed the margin check")
    print(f"seed {seed}: margins (steps) " + ", ".join(f"{k.split('.')[-2]}={v:.2e}" for k, v in margins.items()))

    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.normpath(os.path.join(here, "..", "tests", "data"))

    w = FixtureWriter()
    w.add("seed", torch.tensor(seed, dtype=torch.int64))
    w.add("margin", torch.tensor(MARGIN, dtype=torch.float64))
    w.add("x", x)
    w.add("target", target)
    w.add("mask", mask)
    w.add("weight_unit", torch.tensor(2.0 ** -9, dtype=torch.float32))
    for name, t in params.items():
        if name.endswith(".weight") and name[:-len(".weight")] in wint:
            w.add("param_int." + name, wint[name[:-len(".weight")]])  # value = int * 2^-9
        else:
            w.add("param." + name, t)
    for name, (s, z) in qp.items():
        w.add("qparam." + name + ".scale", s.reshape(-1))
        w.add("qparam." + name + ".zero_point", z.reshape(-1).to(torch.int32))
    w.write(os.path.join(data, "nn_block_params.qfx"))

    for mode in ["off", "fixed", "lsq"]:
        y, loss, grads, margins = run(mode, x, target, mask, params, qp)
        if mode != "off":
            assert min(margins.values()) >= MARGIN, (mode, margins)
        w = FixtureWriter()
        w.add("output", y)
        w.add("loss", loss)
        for name, g in grads.items():
            w.add("grad." + name, g)
        w.write(os.path.join(data, f"nn_block_{mode}.qfx"))


if __name__ == "__main__":
    main()
