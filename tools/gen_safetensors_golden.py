"""Golden safetensors file and conversion tables for qaware's IO tests.

The reference implementation (the `safetensors` Python package) is not
available on this machine (not in Debian 12; no other package registry is
reachable), so this script carries its own small writer and reader that
follow the format specification and the reference writer's conventions
(safetensors/src/tensor.rs: tensors sorted by descending dtype order, then by
name; compact serde_json header with "__metadata__" first; header padded with
spaces to a multiple of 8; data offsets relative to the data buffer). Tensor
values and the F16 / BF16 conversions come from PyTorch 1.13.

Writes:
  tests/data/golden.safetensors        the file, every supported dtype, metadata,
                                        a scalar, an empty tensor, a name needing escapes
  tests/data/safetensors_golden.qawfix the same tensors (expected values, raw bits of
                                        F16/BF16 as int32), and float32 -> F16/BF16
                                        conversion tables computed by PyTorch

Check a file written by qaware against the spec reader and the golden bytes:
  /usr/bin/python3 tools/gen_safetensors_golden.py --check path/to/file.safetensors

Run with Debian's PyTorch:  /usr/bin/python3 tools/gen_safetensors_golden.py
"""

import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qaware_fixture import FixtureWriter  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

# The reference's Dtype enum order (increasing alignment); writers sort descending.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
               "F64", "I64", "U64"]
TORCH_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
               torch.int8: "I8", torch.uint8: "U8", torch.int32: "I32", torch.int64: "I64"}
ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def spec_serialize(tensors, metadata=None):
    """A writer following the reference's ordering and formatting."""
    items = sorted(tensors.items(), key=lambda kv: (-DTYPE_ORDER.index(TORCH_DTYPE[kv[1].dtype]), kv[0].encode()))
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata, key=lambda s: s.encode())}
    offset = 0
    blobs = []
    for name, t in items:
        b = tensor_bytes(t)
        header[name] = {"dtype": TORCH_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    # serde_json's compact form; non-ASCII verbatim, control characters as \\u00xx.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def spec_read(buf):
    """A strict reader following the specification; returns (metadata, {name: (dtype, shape, bytes)})."""
    (n,) = struct.unpack("<Q", buf[:8])
    assert n <= 100_000_000 and 8 + n <= len(buf), "bad header length"
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    assert all(isinstance(v, str) for v in metadata.values())
    data = buf[8 + n:]
    spans = []
    out = {}
    for name, info in header.items():
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        size = ITEMSIZE[info["dtype"]] * int(np.prod(info["shape"], dtype=np.int64))
        b, e = info["data_offsets"]
        assert e - b == size, (name, b, e, size)
        spans.append((b, e))
        out[name] = (info["dtype"], tuple(info["shape"]), data[b:e])
    cursor = 0
    for b, e in sorted(spans):
        assert b == cursor, "gap or overlap"
        cursor = e
    assert cursor == len(data), "buffer not covered"
    return metadata, out


def golden_tensors():
    g = torch.Generator().manual_seed(1234)
    f16_src = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-7, 3.14159, -1e-5, 0.333333], dtype=torch.float32)
    bf16_src = torch.tensor([[1.0, -3.3e38], [1.17e-38, 0.1]], dtype=torch.float32)
    return {
        "encoder.layer.0.attention.self.query.weight": torch.randn(4, 3, generator=g),
        "encoder.layer.0.attention.self.query.bias": torch.randn(4, generator=g),
        "half": f16_src.to(torch.float16),
        "bhalf": bf16_src.to(torch.bfloat16),
        "int8_weight": torch.tensor([-128, -1, 0, 1, 127, 5, -7], dtype=torch.int8),
        "bytes": torch.tensor([0, 128, 255], dtype=torch.uint8),
        "zero_point": torch.tensor([[-2147483648, 2147483647], [0, -3]], dtype=torch.int32),
        "double": torch.tensor([1.0 / 3.0, -1e300], dtype=torch.float64),
        "steps": torch.tensor([0, -1, 9007199254740993], dtype=torch.int64),
        "scale": torch.tensor(0.0125, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        'escaped "name"\t\u00e9\u4e2d\U0001F600/\x01': torch.tensor([7.0], dtype=torch.float32),
    }


METADATA = {"format": "pt", "note": "unicod\u00e9 \"quoted\"\nline\\", "\u00fcber": "\x1f"}


def conversion_tables(w):
    # float32 values whose F16 / BF16 rounding is delicate: ties (to even and
    # odd), subnormal boundaries, overflow, NaN, +-0, plus random values.
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 65536.0, 1e9, -1e9, float("inf"), float("-inf"),
            float("nan"), 2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -26, 3 * 2.0 ** -25,
            5 * 2.0 ** -25, 2.0 ** -15, 6.1e-5, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8,
            1.0 + 3 * 2.0 ** -8, 3.4e38, -3.4e38, 1e-40, -1e-45, 2047.0, 2049.0, 4097.0, 0.1, 0.2, 0.3]
    f32 = torch.tensor(vals, dtype=torch.float32)
    # Exact ties in float32 for F16 (13 dropped bits = 0x1000) and BF16 (16
    # dropped bits = 0x8000), on even and odd kept mantissas, across exponents.
    ties = []
    for e in range(-24, 16):
        for mant in (0x000, 0x001, 0x3FE, 0x3FF):
            bits = ((e + 127) << 23) | (mant << 13) | 0x1000
            if 0 < e + 127 < 255:
                ties.append(bits)
    for e in range(-126, 128, 7):
        for mant in (0x00, 0x01, 0x7E, 0x7F):
            ties.append(((e + 127) << 23) | (mant << 16) | 0x8000)
    ties = torch.tensor(np.array(ties, dtype=np.uint32).view(np.int32))
    g = torch.Generator().manual_seed(99)
    rnd = torch.cat([torch.randn(500, generator=g) * 10.0 ** torch.randint(-9, 6, (500,), generator=g).float(),
                     ties.view(torch.float32), -ties.view(torch.float32)])
    f32 = torch.cat([f32, rnd])
    w.add("conv.f32", f32)
    w.add("conv.f16_bits", f32.to(torch.float16).view(torch.int16).to(torch.int32) & 0xFFFF)
    w.add("conv.bf16_bits", f32.to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        buf = open(sys.argv[2], "rb").read()
        meta, tensors = spec_read(buf)
        ref = spec_serialize(golden_tensors(), METADATA)
        _, ref_tensors = spec_read(ref)
        assert meta == METADATA, meta
        assert tensors.keys() == ref_tensors.keys()
        for k in tensors:
            assert tensors[k] == ref_tensors[k], k
        assert buf == ref, "readable, but not byte-identical to the reference writer's output"
        print(f"{sys.argv[2]}: read by the spec reader, {len(tensors)} tensors match, byte-identical")
        return
    tensors = golden_tensors()
    blob = spec_serialize(tensors, METADATA)
    spec_read(blob)  # self-check
    with open(os.path.join(DATA, "golden.safetensors"), "wb") as f:
        f.write(blob)
    print(f"wrote golden.safetensors: {len(tensors)} tensors, {len(blob)} bytes")
    w = FixtureWriter()
    for i, (name, t) in enumerate(sorted(tensors.items())):
        w.add(f"t{i}.name", np.frombuffer(name.encode("utf-8"), dtype=np.uint8).copy())
        w.add(f"t{i}.dtype", np.frombuffer(TORCH_DTYPE[t.dtype].encode(), dtype=np.uint8).copy())
        w.add(f"t{i}.shape", np.array(list(t.shape), dtype=np.int64))
        if t.dtype in (torch.float16, torch.bfloat16):
            w.add(f"t{i}.value", t.to(torch.float32))  # PyTorch's (exact) widening
            w.add(f"t{i}.bits", t.view(torch.int16).to(torch.int32) & 0xFFFF)
        else:
            w.add(f"t{i}.value", t)
    w.add("count", np.array(len(tensors), dtype=np.int64))
    conversion_tables(w)
    w.write(os.path.join(DATA, "safetensors_golden.qawfix"))


if __name__ == "__main__":
    main()
