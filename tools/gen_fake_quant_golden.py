"""Golden fixtures for qaware's fake quantization (tests/quant/).

Run with Debian's PyTorch 1.13:  /usr/bin/python3 tools/gen_fake_quant_golden.py

Writes (QAWFIX format, see tools/qaware_fixture.py):
  tests/data/fake_quant_ops.qfx        per-tensor / per-channel fake quant: outputs and STE masks
  tests/data/fake_quant_learnable.qfx  LSQ (learnable) forward and the x / scale / zero-point gradients
  tests/data/fake_quant_observers.qfx  qparams, MinMax, moving average, per-channel, histogram,
                                       percentile, MSE observers; FakeQuantize modules

Every record of one case shares a prefix "<group>.<index>."; "<group>.count" holds the number of
cases. Integer parameters are stored as int64 scalars, float parameters as float32 scalars.
All random data comes from numpy's default_rng with fixed seeds.
"""

import math
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qaware_fixture import FixtureWriter  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

F32 = np.float32

# (name, quant_min, quant_max, is_signed)
RANGES = [
    ("int8", -128, 127, True),
    ("uint8", 0, 255, False),
    ("int8_reduce", -64, 63, True),
    ("uint8_reduce", 0, 127, False),
    ("int4", -8, 7, True),
    ("uint4", 0, 15, False),
    ("int2", -2, 1, True),
    ("uint2", 0, 3, False),
    ("int8_narrow", -127, 127, True),
    ("uint8_narrow", 0, 254, False),
]

SPECIALS = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, -1e-45, 0.0, -0.0]


def f32(v):
    return np.asarray(v, dtype=F32)


def mask_of(fn, x):
    """The STE mask PyTorch's backward applies: grad of sum(fn(x)) w.r.t. x (exact 0/1)."""
    xx = x.clone().requires_grad_(True)
    y = fn(xx)
    y.backward(torch.ones_like(y))
    return y.detach(), xx.grad.detach()


def per_tensor_inputs(scale, zp, qmin, qmax, rng):
    s = F32(scale)
    vals = []
    # Ties at +-0.5 steps over the whole range (and a few steps beyond), and their float neighbours.
    ks = list(range(qmin - zp - 3, qmax - zp + 3))
    near = set(ks[:5] + ks[-5:]) | set(rng.choice(ks, min(12, len(ks)), replace=False).tolist())
    for k in ks:
        t = F32(F32(k + 0.5) * s)
        vals += [t, F32(F32(-(k + 0.5)) * s)]
        if k in near:
            vals += [np.nextafter(t, F32(np.inf)), np.nextafter(t, F32(-np.inf))]
    # Around the ends of the range: qmax - z + {0.49, 0.5, 0.51} steps, and the same below qmin.
    for d in (0.49, 0.5, 0.51):
        vals += [F32(F32(qmax - zp + d) * s), F32(F32(qmin - zp - d) * s)]
    vals += list(f32(rng.normal(0.0, (qmax - qmin) * scale / 4.0, 32)))
    # x / scale near 2^63 (where PyTorch's int64 conversion overflows) and specials.
    for m in (9.2e18, 9.223372e18, 9.3e18, -9.3e18, 2e9, -2e9, 3e9):
        vals.append(F32(F32(m) * s))
    vals += [F32(v) for v in SPECIALS]
    return torch.tensor(np.array(vals, dtype=F32))


def gen_ops():
    w = FixtureWriter()
    rng = np.random.default_rng(1)
    n = 0
    for name, qmin, qmax, signed in RANGES:
        zps = sorted({0, qmin, qmax, (qmin + qmax) // 2 + 1})
        for scale in (0.125, 0.1, 0.0371):
            for zp in zps:
                if scale == 0.125 and zp != (qmin + qmax) // 2 + 1:
                    continue
                if scale == 0.0371 and zp != 0:
                    continue
                x = per_tensor_inputs(scale, zp, qmin, qmax, rng)
                y, m = mask_of(lambda t: torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax), x)
                p = f"pt.{n}."
                w.add(p + "x", x)
                w.add(p + "y", y)
                w.add(p + "mask", m.numpy().astype(np.uint8))
                w.add(p + "scale", f32(scale))
                w.add(p + "zero_point", np.int64(zp))
                w.add(p + "quant_min", np.int64(qmin))
                w.add(p + "quant_max", np.int64(qmax))
                n += 1
    # All-zero tensor.
    x = torch.zeros(37)
    y, m = mask_of(lambda t: torch.fake_quantize_per_tensor_affine(t, 0.02, 3, -8, 7), x)
    p = f"pt.{n}."
    w.add(p + "x", x)
    w.add(p + "y", y)
    w.add(p + "mask", m.numpy().astype(np.uint8))
    w.add(p + "scale", f32(0.02))
    w.add(p + "zero_point", np.int64(3))
    w.add(p + "quant_min", np.int64(-8))
    w.add(p + "quant_max", np.int64(7))
    n += 1
    w.add("pt.count", np.int64(n))

    # Per channel: every axis of rank-2..4 tensors, plus long channel runs (the run kernel) and
    # short ones (the vector-parameter kernel).
    shapes = [(5, 7), (3, 4, 6), (2, 3, 4, 5), (3, 20, 33), (70, 3), (2, 100), (1, 9, 1, 17)]
    ranges = [("int8", -128, 127), ("uint8", 0, 255), ("int4", -8, 7), ("uint2", 0, 3), ("narrow", -127, 127)]
    n = 0
    for si, shape in enumerate(shapes):
        for axis in range(len(shape)):
            _, qmin, qmax = ranges[(si + axis) % len(ranges)]
            C = shape[axis]
            scale = f32(rng.uniform(0.01, 0.2, C))
            zp = rng.integers(qmin, qmax + 1, C).astype(np.int32)
            zp[0] = qmin
            if C > 1:
                zp[1] = qmax
            bshape = [1] * len(shape)
            bshape[axis] = C
            q = rng.integers(qmin - 4, qmax + 5, shape) + rng.choice([0.0, 0.5, -0.5, 0.49, 0.51], shape)
            x = f32((q - zp.reshape(bshape)) * scale.reshape(bshape))
            flat = x.reshape(-1)
            k = min(len(SPECIALS), flat.size)
            flat[rng.choice(flat.size, k, replace=False)] = f32(SPECIALS[:k])
            xt = torch.tensor(x)
            st = torch.tensor(scale)
            zt = torch.tensor(zp)
            y, m = mask_of(lambda t: torch.fake_quantize_per_channel_affine(t, st, zt, axis, qmin, qmax), xt)
            p = f"pc.{n}."
            w.add(p + "x", xt)
            w.add(p + "y", y)
            w.add(p + "mask", m.numpy().astype(np.uint8))
            w.add(p + "scale", scale)
            w.add(p + "zero_point", zp)
            w.add(p + "axis", np.int64(axis))
            w.add(p + "quant_min", np.int64(qmin))
            w.add(p + "quant_max", np.int64(qmax))
            n += 1
    w.add("pc.count", np.int64(n))
    w.write(os.path.join(OUT, "fake_quant_ops.qfx"))


def lsq_inputs(scale, zp, qmin, qmax, n, rng):
    q = rng.uniform(qmin - 6, qmax + 6, n)
    # Half-step ties relative to the rounded zero point, and plain random values.
    q[: n // 4] = np.round(q[: n // 4]) + 0.5
    x = f32(q * scale - zp * scale)
    x[-3:] = f32([0.0, float("nan"), float("inf")])
    return x


def gen_learnable():
    w = FixtureWriter()
    rng = np.random.default_rng(2)
    n = 0
    cases = [
        (-128, 127, 0.05, 0.0, 1.0),
        (-128, 127, 0.05, 3.7, 1.0),
        (0, 255, 0.02, 127.5, 1.0),   # forward rounds to 128 (even), backward truncates 128.0 -> 128
        (0, 255, 0.02, 100.5, 0.25),  # forward 100, backward 101
        (-8, 7, 0.3, -2.5, 1.0),      # forward -2, backward trunc(-2.0) = -2
        (-8, 7, 0.3, -3.7, 1.0),      # forward -4, backward trunc(-3.2) = -3
        (0, 15, 0.1, 0.4, None),      # LSQ grad factor 1/sqrt(numel * quant_max)
        (-2, 1, 0.5, 0.0, None),
        (-128, 127, 0.05, 300.0, 1.0),  # zero point clamped to quant_max
    ]
    for qmin, qmax, scale, zp, gf in cases:
        N = 300
        x = torch.tensor(lsq_inputs(scale, zp, qmin, qmax, N, rng))
        dy = torch.tensor(f32(rng.normal(0, 1, N)))
        g = gf if gf is not None else 1.0 / (N * qmax) ** 0.5
        xx = x.clone().requires_grad_(True)
        s = torch.tensor([scale], dtype=torch.float32, requires_grad=True)
        z = torch.tensor([zp], dtype=torch.float32, requires_grad=True)
        y = torch._fake_quantize_learnable_per_tensor_affine(xx, s, z, qmin, qmax, g)
        y.backward(dy)
        p = f"lpt.{n}."
        w.add(p + "x", x)
        w.add(p + "dy", dy)
        w.add(p + "y", y.detach())
        w.add(p + "dx", xx.grad)
        w.add(p + "dscale", s.grad)
        w.add(p + "dzero_point", z.grad)
        w.add(p + "scale", f32(scale))
        w.add(p + "zero_point", f32(zp))
        w.add(p + "quant_min", np.int64(qmin))
        w.add(p + "quant_max", np.int64(qmax))
        w.add(p + "grad_factor", np.float64(g))
        w.add(p + "lsq_default", np.int64(gf is None))
        # Element by element (one call per element), so every per-element term is pinned exactly.
        m = 96
        ds_e = np.zeros(m, dtype=F32)
        dz_e = np.zeros(m, dtype=F32)
        for i in range(m):
            xi = x[i : i + 1].clone().requires_grad_(True)
            si = torch.tensor([scale], dtype=torch.float32, requires_grad=True)
            zi = torch.tensor([zp], dtype=torch.float32, requires_grad=True)
            torch._fake_quantize_learnable_per_tensor_affine(xi, si, zi, qmin, qmax, g).backward(dy[i : i + 1])
            ds_e[i] = si.grad.item()
            dz_e[i] = zi.grad.item()
        w.add(p + "dscale_elem", ds_e)
        w.add(p + "dzero_point_elem", dz_e)
        n += 1
    w.add("lpt.count", np.int64(n))

    # Per channel (PyTorch 1.13 needs rank >= 2 for these gradients to keep the channel axis).
    n = 0
    pcases = [((6, 40), 0, -128, 127, 1.0), ((6, 40), 1, 0, 255, 0.5), ((3, 5, 7), 1, -8, 7, None),
              ((3, 5, 7), 2, 0, 15, 1.0), ((2, 3, 4, 5), 0, -128, 127, 1.0), ((2, 3, 4, 5), 3, -2, 1, 1.0),
              ((64, 1), 0, -128, 127, 1.0)]
    for shape, axis, qmin, qmax, gf in pcases:
        C = shape[axis]
        numel = int(np.prod(shape))
        scale = f32(rng.uniform(0.02, 0.3, C))
        zp = f32(rng.uniform(qmin - 2, qmax + 2, C))
        zp[0] = F32(qmin + 0.5)
        if C > 2:
            zp[2] = F32((qmin + qmax) // 2 + 0.5)
        bshape = [1] * len(shape)
        bshape[axis] = C
        q = rng.uniform(qmin - 6, qmax + 6, shape)
        q.reshape(-1)[: numel // 4] = np.round(q.reshape(-1)[: numel // 4]) + 0.5
        x = f32((q - np.round(zp).reshape(bshape)) * scale.reshape(bshape))
        x.reshape(-1)[-2:] = f32([float("nan"), -float("inf")])
        dy = f32(rng.normal(0, 1, shape))
        g = gf if gf is not None else 1.0 / (numel * qmax) ** 0.5
        xx = torch.tensor(x, requires_grad=True)
        s = torch.tensor(scale, requires_grad=True)
        z = torch.tensor(zp, requires_grad=True)
        y = torch._fake_quantize_learnable_per_channel_affine(xx, s, z, axis, qmin, qmax, g)
        y.backward(torch.tensor(dy))
        p = f"lpc.{n}."
        w.add(p + "x", x)
        w.add(p + "dy", dy)
        w.add(p + "y", y.detach())
        w.add(p + "dx", xx.grad)
        w.add(p + "dscale", s.grad)
        w.add(p + "dzero_point", z.grad)
        w.add(p + "scale", scale)
        w.add(p + "zero_point", zp)
        w.add(p + "axis", np.int64(axis))
        w.add(p + "quant_min", np.int64(qmin))
        w.add(p + "quant_max", np.int64(qmax))
        w.add(p + "grad_factor", np.float64(g))
        w.add(p + "lsq_default", np.int64(gf is None))
        n += 1
    w.add("lpc.count", np.int64(n))
    w.write(os.path.join(OUT, "fake_quant_learnable.qfx"))


if __name__ == "__main__":
    gen_ops()
    gen_learnable()
