"""Golden values for qaware::quant::quantize_value (include/qaware/quant/requantize.hpp).

quantize_value must round and saturate exactly as PyTorch's fake quantization
does, since train/deploy parity rests on it. For several (scale, zero point,
range) configurations this writes float inputs x -- random values, exact
half-way ties, values far outside the range, +-0 -- and the integer q PyTorch
assigns them, recovered from torch.fake_quantize_per_tensor_affine as
q = round(fq / scale) + zero_point (|q - zp| <= 255, so the division is exact
after rounding).

Run with Debian's PyTorch:  /usr/bin/python3 tools/gen_requantize_golden.py
Writes tests/data/requantize_golden.qawfix.
"""

import pathlib

import numpy as np
import torch

from qaware_fixture import FixtureWriter

CONFIGS = [
    # scale, zero_point, quant_min, quant_max
    (0.5, 0, 0, 255),
    (0.25, 128, 0, 255),
    (2.0, 255, 0, 255),
    (0.1, 3, 0, 255),
    (0.0173, 77, 0, 255),
    (1.0 / 3.0, 0, -128, 127),
    (0.5, -128, -128, 127),
    (0.125, 5, -128, 127),
    (0.021, -3, -128, 127),
    (3.7e-3, 0, -127, 127),  # narrow range
    (1.0, 0, -8, 7),  # 4-bit
]


def inputs(scale, zp, qmin, qmax, rng):
    s = np.float32(scale)
    lo, hi = (qmin - zp) * float(s), (qmax - zp) * float(s)
    span = hi - lo
    xs = [rng.uniform(lo - 0.2 * span, hi + 0.2 * span, 400)]
    k = np.arange(qmin - zp - 3, qmax - zp + 3, dtype=np.float64)
    xs.append((k + 0.5) * float(s))  # ties (exact when scale is a power of two)
    xs.append((k - 0.5) * float(s))
    xs.append(k * float(s))
    # Far outside the range but still within int64 after scaling: PyTorch casts
    # to int64 before clamping, which is undefined past +-9.2e18 (it then returns
    # qmin even for +3e38); quantize_value saturates instead, tested separately.
    xs.append(np.array([0.0, -0.0, 1e10, -1e10, float(s) * 1e-3, -float(s) * 1e-3]))
    return np.concatenate(xs).astype(np.float32)


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    w = FixtureWriter()
    w.add("configs", np.array(len(CONFIGS), dtype=np.int64))
    disagree = 0
    for i, (scale, zp, qmin, qmax) in enumerate(CONFIGS):
        x = torch.from_numpy(inputs(scale, zp, qmin, qmax, rng))
        s32 = float(np.float32(scale))
        fq = torch.fake_quantize_per_tensor_affine(x, s32, zp, qmin, qmax)
        q = torch.round(fq / s32).to(torch.int64) + zp
        assert int(q.min()) >= qmin and int(q.max()) <= qmax
        if qmin >= 0 and qmax <= 255 and (qmin, qmax) == (0, 255):
            qp = torch.quantize_per_tensor(x, s32, zp, torch.quint8).int_repr().to(torch.int64)
            disagree += int((qp != q).sum())
        elif (qmin, qmax) == (-128, 127):
            qp = torch.quantize_per_tensor(x, s32, zp, torch.qint8).int_repr().to(torch.int64)
            disagree += int((qp != q).sum())
        w.add(f"x_{i}", x.numpy())
        w.add(f"scale_{i}", np.array(s32, dtype=np.float32))
        w.add(f"zp_{i}", np.array(zp, dtype=np.int64))
        w.add(f"qmin_{i}", np.array(qmin, dtype=np.int64))
        w.add(f"qmax_{i}", np.array(qmax, dtype=np.int64))
        w.add(f"q_{i}", q.to(torch.int32).numpy())
    print(f"torch {torch.__version__}: quantize_per_tensor differs from fake_quantize on {disagree} inputs")
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "requantize_golden.qawfix"
    w.write(out)


if __name__ == "__main__":
    main()
