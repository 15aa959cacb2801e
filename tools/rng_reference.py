#!/usr/bin/env python3
"""Independent reference values for qaware::Rng (tests/core/rng_test.cpp).

Written from the published algorithms, not from qaware's C++:
  - splitmix64: https://prng.di.unimi.it/splitmix64.c (Vigna), used to fill
    the four 64-bit words of the xoshiro state from the seed;
  - xoshiro256** 1.0: https://prng.di.unimi.it/xoshiro256starstar.c
    (Blackman & Vigna);
  - uniform double in [0, 1): (x >> 11) * 2^-53;
  - Marsaglia's polar method for normals (pairs; the second value of a pair
    is returned by the next call).
Sanity anchor: the first splitmix64 output for seed 0 is the well-known
0xe220a8397b1dcdaf.

Run: /usr/bin/python3 tools/rng_reference.py  (any Python 3 works; no numpy).
"""
import math

M = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


def xoshiro256ss(seed):
    s, x = [], seed
    for _ in range(4):
        x, z = splitmix64(x)
        s.append(z)
    while True:
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield result


def uniforms(seed):
    for x in xoshiro256ss(seed):
        yield (x >> 11) * 2.0**-53


def normals(seed, n):
    u01 = uniforms(seed)
    out = []
    while len(out) < n:
        u = 2.0 * next(u01) - 1.0
        v = 2.0 * next(u01) - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        m = math.sqrt(-2.0 * math.log(s) / s)
        out += [u * m, v * m]
    return out[:n]


def main():
    assert splitmix64(0)[1] == 0xE220A8397B1DCDAF
    for seed in (0, 42, 0x5EED):
        g = xoshiro256ss(seed)
        print(f"seed {seed:#x} next_u64:", ", ".join(f"0x{next(g):016x}ULL" for _ in range(6)))
    g = uniforms(42)
    print("seed 0x2a uniform:", ", ".join(repr(next(g)) for _ in range(3)))
    print("seed 0x2a normal:", ", ".join(repr(x) for x in normals(42, 4)))


if __name__ == "__main__":
    main()
