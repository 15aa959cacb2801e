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


# ---------------------------------------------------------------------------
# Observers.

from torch.ao.quantization.observer import (  # noqa: E402
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)

# (name, qaware spec fields, PyTorch observer kwargs). Spec fields: bits, signed, narrow, reduce,
# custom (0/1), custom_min, custom_max.
SPECS = [
    ("int8", (8, 1, 0, 0, 0, 0, 0), dict(dtype=torch.qint8)),
    ("uint8", (8, 0, 0, 0, 0, 0, 0), dict(dtype=torch.quint8)),
    ("int8_reduce", (8, 1, 0, 1, 0, 0, 0), dict(dtype=torch.qint8, reduce_range=True)),
    ("uint8_reduce", (8, 0, 0, 1, 0, 0, 0), dict(dtype=torch.quint8, reduce_range=True)),
    ("int4", (4, 1, 0, 0, 0, 0, 0), dict(dtype=torch.qint8, quant_min=-8, quant_max=7)),
    ("uint4", (4, 0, 0, 0, 0, 0, 0), dict(dtype=torch.quint8, quant_min=0, quant_max=15)),
    ("int4_reduce", (4, 1, 0, 1, 0, 0, 0), dict(dtype=torch.qint8, quant_min=-8, quant_max=7, reduce_range=True)),
    ("int2", (2, 1, 0, 0, 0, 0, 0), dict(dtype=torch.qint8, quant_min=-2, quant_max=1)),
    ("uint2", (2, 0, 0, 0, 0, 0, 0), dict(dtype=torch.quint8, quant_min=0, quant_max=3)),
    ("int8_narrow", (8, 1, 1, 0, 0, 0, 0), dict(dtype=torch.qint8, quant_min=-127, quant_max=127)),
    ("uint8_narrow", (8, 0, 1, 0, 0, 0, 0), dict(dtype=torch.quint8, quant_min=0, quant_max=254)),
    ("uint8_custom", (8, 0, 0, 0, 1, 0, 255), dict(dtype=torch.quint8, quant_min=0, quant_max=255)),
]


def add_spec(w, p, spec_fields, symmetric):
    names = ("bits", "signed", "narrow", "reduce", "custom", "custom_min", "custom_max")
    for k, v in zip(names, spec_fields):
        w.add(p + "spec." + k, np.int64(v))
    w.add(p + "spec.symmetric", np.int64(symmetric))


def qscheme(symmetric, per_channel=False):
    if per_channel:
        return torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    return torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine


def allowed(kw, symmetric):
    # PyTorch refuses symmetric quint8 with reduce_range.
    return not (symmetric and kw["dtype"] == torch.quint8 and kw.get("reduce_range", False))


def minmax_pairs(rng):
    pairs = [(0.0, 0.0), (-1.0, 1.0), (0.0, 3.0), (-2.5, 0.0), (1.0, 1.0), (-1.0, -1.0), (2.0, 5.0), (-7.0, -3.0),
             (-1e-10, 1e-10), (0.0, 1e-9), (-1e-6, 3e-7), (-3e38, 3e38), (-0.1, 25.5), (-127.0, 127.0),
             (-128.0, 127.0), (0.0, 255.0)]
    for _ in range(40):
        a, b = sorted(rng.normal(0, rng.choice([0.01, 1.0, 100.0]), 2))
        pairs.append((a, b))
    for _ in range(8):
        pairs.append((-abs(rng.normal(0, 1)), 0.0))
        pairs.append((0.0, abs(rng.normal(0, 1))))
    pairs.append((float("inf"), -float("inf")))  # nothing observed; must stay last (no fused golden)
    return f32([p[0] for p in pairs]), f32([p[1] for p in pairs])


def gen_observers():
    w = FixtureWriter()
    rng = np.random.default_rng(3)

    # choose_qparams: PyTorch's _calculate_qparams, and the fused op's ChooseQuantizationParams.
    n = 0
    mins, maxs = minmax_pairs(rng)
    for name, fields, kw in SPECS:
        for symmetric in (0, 1):
            if not allowed(kw, symmetric):
                continue
            obs = MinMaxObserver(qscheme=qscheme(symmetric), **kw)
            scales, zps = [], []
            for a, b in zip(mins, maxs):
                sc, zp = obs._calculate_qparams(torch.tensor(a), torch.tensor(b))
                scales.append(sc.item())
                zps.append(zp.item())
            fs, fz = [], []
            for a, b in zip(mins[:-1], maxs[:-1]):  # the fused op needs an observed range
                x = torch.tensor([a, b])
                rmin, rmax = torch.tensor([float("inf")]), torch.tensor([-float("inf")])
                sc, zp = torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32)
                torch.fused_moving_avg_obs_fake_quant(x, torch.tensor([1]), torch.tensor([1]), rmin, rmax, sc, zp,
                                                      0.01, obs.quant_min, obs.quant_max, 0, False, bool(symmetric))
                fs.append(sc.item())
                fz.append(zp.item())
            p = f"qp.{n}."
            add_spec(w, p, fields, symmetric)
            w.add(p + "quant_min", np.int64(obs.quant_min))
            w.add(p + "quant_max", np.int64(obs.quant_max))
            w.add(p + "min", mins)
            w.add(p + "max", maxs)
            w.add(p + "scale", f32(scales))
            w.add(p + "zero_point", np.array(zps, dtype=np.int64))
            w.add(p + "fused_scale", f32(fs))
            w.add(p + "fused_zero_point", np.array(fz, dtype=np.int64))
            n += 1
    w.add("qp.count", np.int64(n))

    # MinMax and moving-average observers over a sequence of batches.
    n = 0
    for name, fields, kw, symmetric, cls, c in [
        ("int8", SPECS[0][1], SPECS[0][2], 1, MinMaxObserver, 0.0),
        ("uint8", SPECS[1][1], SPECS[1][2], 0, MinMaxObserver, 0.0),
        ("int4", SPECS[4][1], SPECS[4][2], 0, MinMaxObserver, 0.0),
        ("uint8", SPECS[1][1], SPECS[1][2], 0, MovingAverageMinMaxObserver, 0.01),
        ("int8_narrow", SPECS[9][1], SPECS[9][2], 1, MovingAverageMinMaxObserver, 0.01),
        ("uint4", SPECS[5][1], SPECS[5][2], 0, MovingAverageMinMaxObserver, 0.3),
        ("int8", SPECS[0][1], SPECS[0][2], 1, MovingAverageMinMaxObserver, 0.01),
    ]:
        extra = {} if cls is MinMaxObserver else dict(averaging_constant=c)
        obs = cls(qscheme=qscheme(symmetric), **kw, **extra)
        B = 6
        batches = f32(rng.normal(rng.normal(0, 0.5, (B, 1)), rng.uniform(0.5, 3, (B, 1)), (B, 40)))
        mins_t, maxs_t, scales, zps = [], [], [], []
        for b in range(B):
            obs(torch.tensor(batches[b]))
            mins_t.append(obs.min_val.item())
            maxs_t.append(obs.max_val.item())
            sc, zp = obs.calculate_qparams()
            scales.append(sc.item())
            zps.append(zp.item())
        p = f"mm.{n}."
        add_spec(w, p, fields, symmetric)
        w.add(p + "moving", np.int64(cls is MovingAverageMinMaxObserver))
        w.add(p + "averaging_constant", np.float64(c))
        w.add(p + "batches", batches)
        w.add(p + "min", f32(mins_t))
        w.add(p + "max", f32(maxs_t))
        w.add(p + "scale", f32(scales))
        w.add(p + "zero_point", np.array(zps, dtype=np.int64))
        n += 1
    w.add("mm.count", np.int64(n))

    # Per-channel observers on every axis of a rank-3 input.
    n = 0
    for axis in range(3):
        for cls, c, (name, fields, kw), symmetric in [
            (PerChannelMinMaxObserver, 0.0, SPECS[0], 1),
            (MovingAveragePerChannelMinMaxObserver, 0.01, SPECS[1], 0),
            (MovingAveragePerChannelMinMaxObserver, 0.2, SPECS[4], 1),
        ]:
            extra = {} if cls is PerChannelMinMaxObserver else dict(averaging_constant=c)
            obs = cls(ch_axis=axis, qscheme=qscheme(symmetric, True), **kw, **extra)
            B = 3
            batches = f32(rng.normal(0, rng.uniform(0.5, 2, (B, 1, 1, 1)), (B, 4, 6, 5)))
            mins_t, maxs_t = [], []
            for b in range(B):
                obs(torch.tensor(batches[b]))
                mins_t.append(obs.min_val.numpy().copy())
                maxs_t.append(obs.max_val.numpy().copy())
            sc, zp = obs.calculate_qparams()
            p = f"pcobs.{n}."
            add_spec(w, p, fields, symmetric)
            w.add(p + "axis", np.int64(axis))
            w.add(p + "moving", np.int64(cls is MovingAveragePerChannelMinMaxObserver))
            w.add(p + "averaging_constant", np.float64(c))
            w.add(p + "batches", batches)
            w.add(p + "min", f32(mins_t))
            w.add(p + "max", f32(maxs_t))
            w.add(p + "scale", sc.float())
            w.add(p + "zero_point", zp.to(torch.int64))
            n += 1
    w.add("pcobs.count", np.int64(n))

    # Percentile and MSE observers: references written out here (they are not PyTorch's).
    n = 0
    for kind, (name, fields, kw), symmetric, c in [
        ("percentile", SPECS[1], 0, None), ("percentile", SPECS[0], 1, 0.1), ("mse", SPECS[0], 1, None),
        ("mse", SPECS[5], 0, None), ("mse", SPECS[1], 0, 0.05)]:
        B = 3
        batches = f32(rng.standard_t(3, (B, 500)) * rng.uniform(0.5, 2, (B, 1)))
        obs = MinMaxObserver(qscheme=qscheme(symmetric), **kw)  # for its qparams only
        lo_run = hi_run = 0.0
        s_lo = s_hi = 0.0
        batch_ranges, errs = [], []
        for b in range(B):
            x = batches[b]
            if kind == "percentile":
                lo, hi = percentile_range(x, 99.9)
            else:
                lo, hi, e = mse_range(x, obs, 100)
                errs.append(e)
            batch_ranges.append((lo, hi))
            if c is None:
                s_lo += lo
                s_hi += hi
                lo_run, hi_run = s_lo / (b + 1), s_hi / (b + 1)
            elif b == 0:
                lo_run, hi_run = lo, hi
            else:
                lo_run = lo_run + c * (lo - lo_run)
                hi_run = hi_run + c * (hi - hi_run)
        fmin, fmax = F32(lo_run), F32(hi_run)
        sc, zp = obs._calculate_qparams(torch.tensor(fmin), torch.tensor(fmax))
        p = f"est.{n}."
        add_spec(w, p, fields, symmetric)
        w.add(p + "kind", np.int64(kind == "mse"))
        w.add(p + "percentile", np.float64(99.9))
        w.add(p + "candidates", np.int64(100))
        w.add(p + "averaging_constant", np.float64(c if c is not None else 0.0))
        w.add(p + "batches", batches)
        w.add(p + "batch_range", np.array(batch_ranges, dtype=np.float64))
        if errs:
            w.add(p + "errors", np.array(errs, dtype=np.float64))
        w.add(p + "min", fmin)
        w.add(p + "max", fmax)
        w.add(p + "scale", sc.float())
        w.add(p + "zero_point", zp.to(torch.int64))
        n += 1
    w.add("est.count", np.int64(n))
    gen_modules(w, rng)
    w.write(os.path.join(OUT, "fake_quant_observers.qfx"))


def gen_modules(w, rng):
    """torch.ao.quantization.FakeQuantize and _LearnableFakeQuantize over several steps."""
    from torch.ao.quantization.fake_quantize import FakeQuantize
    from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

    # step plan: (observer on, fake quant on)
    plan = [(1, 1), (1, 1), (1, 1), (0, 1), (0, 0), (1, 1)]
    cases = [
        ("fqm.0.", SPECS[1], 0, None, dict(observer=MovingAverageMinMaxObserver), (6, 16)),
        ("fqm.1.", SPECS[0], 1, 1, dict(observer=MovingAveragePerChannelMinMaxObserver, ch_axis=1), (3, 4, 5)),
        ("fqm.2.", SPECS[4], 0, None, dict(observer=MinMaxObserver), (40,)),
    ]
    for p, (name, fields, kw), symmetric, axis, okw, shape in cases:
        fq = FakeQuantize(qscheme=qscheme(symmetric, axis is not None), **kw, **okw)
        add_spec(w, p, fields, symmetric)
        w.add(p + "axis", np.int64(-1 if axis is None else axis))
        w.add(p + "moving", np.int64(okw["observer"] is not MinMaxObserver))
        w.add(p + "steps", np.int64(len(plan)))
        for t, (obs_on, fq_on) in enumerate(plan):
            fq.enable_observer(bool(obs_on))
            fq.enable_fake_quant(bool(fq_on))
            x = f32(rng.normal(0.2 * t, 1 + 0.3 * t, shape))
            y = fq(torch.tensor(x))
            w.add(p + f"x{t}", x)
            w.add(p + f"y{t}", y)
            w.add(p + f"scale{t}", fq.scale.detach().clone())
            w.add(p + f"zero_point{t}", fq.zero_point.detach().clone().to(torch.int64))
            w.add(p + f"plan{t}", np.array([obs_on, fq_on], dtype=np.int64))

    # Learnable: two static-estimate steps, then parameter learning with a backward pass.
    p = "lfqm.0."
    lfq = _LearnableFakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                 use_grad_scaling=True, dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    add_spec(w, p, SPECS[1][1], 0)
    for t in range(2):
        x = f32(rng.normal(0.1, 1.5, (8, 12)))
        y = lfq(torch.tensor(x))
        w.add(p + f"x{t}", x)
        w.add(p + f"y{t}", y.detach())
        w.add(p + f"scale{t}", lfq.scale.detach().clone())
        w.add(p + f"zero_point{t}", lfq.zero_point.detach().clone())
    lfq.enable_param_learning()
    x = torch.tensor(f32(rng.normal(0.1, 2.5, (8, 12))), requires_grad=True)
    dy = torch.tensor(f32(rng.normal(0, 1, (8, 12))))
    y = lfq(x)
    y.backward(dy)
    w.add(p + "x2", x.detach())
    w.add(p + "dy2", dy)
    w.add(p + "y2", y.detach())
    w.add(p + "dx2", x.grad)
    w.add(p + "dscale2", lfq.scale.grad)
    w.add(p + "dzero_point2", lfq.zero_point.grad)


def percentile_range(x, pct):
    """Batch percentiles, 'linear' definition, in double (see PercentileObserver)."""
    v = np.sort(x.astype(np.float64))
    n = v.size

    def quantile(q):
        h = float(n - 1) * q
        i = min(int(math.floor(h)), n - 1)
        j = min(i + 1, n - 1)
        t = h - i
        return v[i] + (v[j] - v[i]) * t

    q = pct / 100.0
    hi, lo = quantile(q), quantile(1.0 - q)
    # The definition is numpy's default ("linear") quantile.
    assert abs(hi - np.quantile(x.astype(np.float64), q)) <= 1e-12 * max(1.0, abs(hi))
    return lo, hi


def mse_range(x, obs, K):
    """Clipping range minimising the fake-quant squared error (see MseObserver), with PyTorch's ops."""
    a, b = float(x.min()), float(x.max())
    xt = torch.tensor(x)
    errs = []
    for k in range(1, K + 1):
        frac = k / K
        lo, hi = F32(a * frac), F32(b * frac)
        sc, zp = obs._calculate_qparams(torch.tensor(lo), torch.tensor(hi))
        y = torch.fake_quantize_per_tensor_affine(xt, sc.item(), int(zp.item()), obs.quant_min, obs.quant_max)
        d = y.numpy().astype(np.float64) - x.astype(np.float64)
        errs.append(math.fsum(d * d))
    best = int(np.argmin(errs))  # first minimum
    frac = (best + 1) / K
    return float(F32(a * frac)), float(F32(b * frac)), errs


# ---------------------------------------------------------------------------
# HistogramObserver over several batches (own file: the histograms are large).

def gen_histogram():
    w = FixtureWriter()
    rng = np.random.default_rng(4)
    scen = [
        ("uint8", [rng.normal(0, 1, 1200)], 0),
        ("int8", [rng.normal(0, 1, 1200), rng.normal(0, 3, 1200), rng.normal(0.5, 2, 1200)], 1),
        ("uint8", [rng.normal(0, 4, 1200), rng.normal(0, 1, 1200), rng.uniform(-3, 3, 1200)], 0),
        ("uint8", [rng.uniform(0, 6, 1200) * (rng.random(1200) < 0.7), rng.exponential(1.5, 1200)], 0),
        ("int8", [rng.uniform(-0.9, 0.9, 1200), rng.uniform(-0.97, 0.95, 1200)], 0),
        ("uint8", [rng.uniform(0.5, 3.7, 1200), rng.uniform(0.2, 4.9, 1200)], 0),
        ("int8", [np.full(500, 2.0), rng.normal(0, 2, 1200), rng.normal(1, 2, 1200)], 1),
        ("int4", [rng.normal(0, 2, 1200), rng.laplace(0, 1.5, 1200)], 1),
    ]
    spec_by_name = {s[0]: s for s in SPECS}
    for n, (name, batches, symmetric) in enumerate(scen):
        _, fields, kw = spec_by_name[name]
        obs = HistogramObserver(qscheme=qscheme(symmetric), **kw)
        p = f"hist.{n}."
        add_spec(w, p, fields, symmetric)
        w.add(p + "batches", np.int64(len(batches)))
        for b, x in enumerate(batches):
            x = f32(x)
            obs(torch.tensor(x))
            w.add(p + f"x{b}", x)
            w.add(p + f"histogram{b}", obs.histogram.numpy().copy())
            w.add(p + f"min{b}", f32(obs.min_val.item()))
            w.add(p + f"max{b}", f32(obs.max_val.item()))
        new_min, new_max = obs._non_linear_param_search()
        sc, zp = obs.calculate_qparams()
        w.add(p + "search_min", f32(new_min.item()))
        w.add(p + "search_max", f32(new_max.item()))
        w.add(p + "scale", sc.float())
        w.add(p + "zero_point", zp.to(torch.int64))
    w.add("hist.count", np.int64(len(scen)))
    w.write(os.path.join(OUT, "fake_quant_histogram.qfx"))


if __name__ == "__main__":
    gen_ops()
    gen_learnable()
    gen_observers()
    gen_histogram()
