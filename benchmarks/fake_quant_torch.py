"""PyTorch 1.13 baseline for benchmarks/fake_quant_bench.cpp (run with /usr/bin/python3).

Same tensor (4096 x 3072 float32), one thread, same byte count per element as the C++
benchmark (4 read + 4 written + 1/8 for a mask bit; PyTorch actually writes a 1-byte bool
mask, so its real traffic is higher). The timed calls are the cachemask ops that the
fake-quant autograd functions run in forward.
"""

import time

import torch

torch.set_num_threads(1)
R, C = 4096, 3072
N = R * C
g = torch.Generator().manual_seed(1)
x = torch.randn(R, C, generator=g) * 0.05
scale_r = torch.rand(R, generator=g) * 0.0004 + 0.0002
zp_r = torch.randint(-2, 3, (R,), generator=g, dtype=torch.int32)
scale_c = torch.rand(C, generator=g) * 0.0004 + 0.0002
zp_c = torch.randint(-2, 3, (C,), generator=g, dtype=torch.int32)


def bench(name, fn, reps=10, bytes_per_elem=4 + 4 + 1 / 8):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    gbs = N * bytes_per_elem / best / 1e9
    print(f"{name:48s} {best * 1e3:8.2f} ms  {gbs:6.2f} GB/s")


def memcpy():
    y = torch.empty_like(x)
    bench("torch copy_ (memcpy, 8 bytes/element)", lambda: y.copy_(x), bytes_per_elem=8)


print(torch.__version__, "threads", torch.get_num_threads())
bench("fake_quantize_per_tensor_affine (cachemask)",
      lambda: torch.fake_quantize_per_tensor_affine(x.requires_grad_(True), 0.0004, 0, -128, 127))
bench("fake_quantize_per_channel_affine axis 0 (cachemask)",
      lambda: torch.fake_quantize_per_channel_affine(x, scale_r, zp_r, 0, -128, 127))
bench("fake_quantize_per_channel_affine axis 1 (cachemask)",
      lambda: torch.fake_quantize_per_channel_affine(x, scale_c, zp_c, 1, -128, 127))
memcpy()
