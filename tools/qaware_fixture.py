"""Writer for qaware's test fixture format (QAWFIX, version 1).

Every golden file under tests/data is written by a generator script in tools/
through this module, and read by tests/common/fixture.hpp. Layout, all
little-endian:

    magic     6 bytes  b"QAWFIX"
    version   u16      1
    count     u32      number of records
    record * count:
      name_len  u16, name (UTF-8, name_len bytes)
      dtype     u8     1=f32 2=f64 3=i64 4=i32 5=u8 6=i8
      rank      u8     (at most 8)
      dims      i64 * rank
      data      numel * itemsize bytes, row-major

Small scalars (scales, zero points, flags) are stored as records of shape [1]:
FixtureWriter.add passes every value through np.ascontiguousarray, which gives
at least one dimension. Readers take element 0.
"""

import struct

import numpy as np

MAGIC = b"QAWFIX"
VERSION = 1
DTYPES = {
    np.dtype(np.float32): 1,
    np.dtype(np.float64): 2,
    np.dtype(np.int64): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.uint8): 5,
    np.dtype(np.int8): 6,
}


def _to_numpy(value):
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().cpu().contiguous().numpy()
    except ImportError:  # pragma: no cover - torch is optional for readers
        pass
    return np.asarray(value)


class FixtureWriter:
    """Collects named arrays and writes them as one fixture file."""

    def __init__(self):
        self._records = {}

    def add(self, name, value, dtype=None):
        arr = _to_numpy(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        if arr.dtype not in DTYPES:
            raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
        if name in self._records:
            raise KeyError(f"duplicate fixture record {name!r}")
        if arr.ndim > 8:
            raise ValueError(f"{name}: rank {arr.ndim} > 8")
        self._records[name] = np.ascontiguousarray(arr)

    def write(self, path):
        out = bytearray()
        out += MAGIC + struct.pack("<HI", VERSION, len(self._records))
        for name, arr in self._records.items():
            raw = name.encode("utf-8")
            out += struct.pack("<H", len(raw)) + raw
            out += struct.pack("<BB", DTYPES[arr.dtype], arr.ndim)
            out += struct.pack(f"<{arr.ndim}q", *arr.shape)
            out += arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        tmp = str(path) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        import os

        os.replace(tmp, path)
        print(f"wrote {path}: {len(self._records)} records, {len(out)} bytes")
